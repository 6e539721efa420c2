//! The binary: parse arguments, run, map the result to an exit code. Everything else
//! lives in the library.

use std::process::ExitCode;

use clap::Parser;
use tandem::cli::Cli;
use tandem::exit::Status;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return Status::Error.into();
        }
    };
    match runtime.block_on(tandem::cli::run(cli)) {
        Ok(status) => status.into(),
        Err(err) => {
            // The whole chain: the outermost context says what was being done, the
            // innermost what went wrong.
            eprintln!("error: {err:#}");
            Status::Error.into()
        }
    }
}

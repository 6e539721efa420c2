//! The binary: parse arguments, run, map the result to an exit code. Everything else
//! lives in the library.

use std::process::ExitCode;

use clap::Parser;
use tandem::cli::Cli;
use tandem::exit::Status;

fn main() -> ExitCode {
    quiet_broken_pipe();
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

/// `tandem catalog NODE | head` must end quietly when the reader goes away, as ripgrep
/// does, not with a panic. Rust ignores SIGPIPE, so a write to a closed pipe fails with
/// EPIPE and `print!` panics with "failed printing to stdout: Broken pipe": every other
/// panic still goes to the default hook. Exit 0, because the reader got what it asked
/// for (`set -o pipefail` pipelines would otherwise fail on a successful `head`).
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

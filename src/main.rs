//! The binary: parse arguments, run, map the result to an exit code. Everything else
//! lives in the library.

use std::process::ExitCode;

use clap::Parser;
use tandem::cli::Cli;
use tandem::exit::Status;

fn main() -> ExitCode {
    quiet_broken_pipe();
    raise_open_file_limit();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cli.blocking_threads())
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

/// One socket per node in flight, plus the run's own files: the usual soft limit of 1,024
/// open files is reached before 1,000 nodes. The soft limit is raised to the hard limit,
/// which needs no privilege; if that fails the run goes on with the limit it has (a
/// node past it then fails with "too many open files", named in its report).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

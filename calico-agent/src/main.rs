//! `calico-agent`: the calico-rs daemon for one host. `calico-agent --help` lists the options
//! (each also read from a `CALICO_AGENT_*` environment variable); the crate documentation
//! (`calico_agent`) describes what it does.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing::error;

fn main() -> ExitCode {
    let options = calico_agent::cli::Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour only for a person at a terminal, never in a log file or the journal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calico-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(calico_agent::daemon::run(options));
    // Blocking reads of a hung file system must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("calico-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

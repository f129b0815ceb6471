//! `calico-rs`: the operator's tool (`trace`, `flows`, `status`); see
//! [`calico_agent::tool`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when what reads the output goes away
    // (`calico-rs flows --follow | head`), instead of panicking on the broken pipe.
    // SAFETY: restoring a signal's default action, before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    ExitCode::from(calico_agent::tool::run(
        calico_agent::tool::ToolOptions::parse(),
    ))
}

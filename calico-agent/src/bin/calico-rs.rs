//! `calico-rs`: the operator's tool (`trace`, `flows`, `status`); see
//! [`calico_agent::tool`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ExitCode::from(calico_agent::tool::run(
        calico_agent::tool::ToolOptions::parse(),
    ))
}

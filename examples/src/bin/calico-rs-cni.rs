//! `calico-rs-cni`: calico-rs's CNI plugin. A container runtime runs it with the CNI
//! variables (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`,
//! `CNI_PATH`) and the network configuration on stdin; it prints the result (or the spec's
//! error object) on stdout and exits 0 (or 1). The logic is the library `calico_cni`.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => calico_cni::run(|k| std::env::var(k).ok(), &stdin),
        Err(e) => calico_cni::Outcome {
            stdout: calico_cni::CniError::new(calico_cni::Code::Io, format!("read stdin: {e}"), "")
                .to_json(calico_cni::spec::NEWEST_VERSION),
            status: 1,
        },
    };
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(outcome.stdout.as_bytes())
        .and_then(|()| out.flush());
    if written.is_err() || outcome.status != 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

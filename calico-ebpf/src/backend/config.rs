//! How the backend is configured ([`EbpfConfig`]) and why it cannot start
//! ([`StartError`]).

use std::ffi::CString;
use std::path::PathBuf;

use crate::error::{GenerateError, SysError};
use crate::tc::{Blocks, TcError};

/// How the backend runs.
#[derive(Clone, Debug)]
pub struct EbpfConfig {
    /// The network namespace whose interfaces it programs (`None`: the agent's own).
    pub netns: Option<PathBuf>,
    /// Host interfaces to filter besides those the ruleset names (the uplinks).
    pub host_interfaces: Vec<String>,
    /// The most elements each set map holds.
    pub set_capacity: u32,
    /// The shared tc blocks the interfaces' clsact qdiscs are bound to
    /// ([`Blocks::DEFAULT`] unless another program on the host uses those indexes).
    pub blocks: Blocks,
    /// The license the programs declare. The kernel lets only programs with a
    /// GPL-compatible declaration call `bpf_fib_lookup` (and the conntrack kfuncs); which
    /// one the project's generated programs declare is the maintainers' decision, so there
    /// is no default.
    pub license: CString,
}

/// Why the backend cannot start: each names what the kernel or the process lacks, so the
/// agent stops before programming anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Creating maps failed (no `CAP_BPF`/root, or a kernel without BPF).
    #[error("the eBPF dataplane cannot create its maps: {0}")]
    Maps(SysError),
    /// The kernel refused a program with everything the policy programs use but rules
    /// (the route lookup helper, the flow table).
    #[error("the kernel refuses the eBPF dataplane's programs: {0}")]
    Load(SysError),
    /// The probe's program could not be generated (a bug).
    #[error("the eBPF dataplane cannot generate its probe program: {0}")]
    Probe(GenerateError),
    /// The namespace could not be entered, or a netlink socket opened in it.
    #[error("the eBPF dataplane cannot open a netlink socket in its namespace: {0}")]
    Netlink(String),
    /// Attaching a program with tc failed: `needs` names what the kernel (or the process)
    /// lacks, the kernel's error says more.
    #[error("the eBPF dataplane cannot attach its programs with tc (it needs {needs}): {source}")]
    Attach {
        /// What is missing, e.g. the clsact qdisc (`CONFIG_NET_SCH_INGRESS`).
        needs: &'static str,
        /// The kernel's answer.
        #[source]
        source: TcError,
    },
    /// The filters a previous backend left could not be listed.
    #[error("the eBPF dataplane cannot list the tc filters already in place: {0}")]
    TakeOver(TcError),
    /// The configured tc blocks cannot be used.
    #[error("the eBPF dataplane's tc blocks: {0}")]
    Blocks(String),
    /// The dispatcher's maps could not be made (or the pinned ones opened), or its
    /// programs loaded.
    #[error("the eBPF dataplane cannot set up its dispatcher: {0}")]
    Dispatch(SysError),
}

/// What a kernel without the clsact qdisc lacks.
pub(super) const NEEDS_CLSACT: &str = "the clsact qdisc, CONFIG_NET_SCH_INGRESS, and CAP_NET_ADMIN";
/// What a kernel without the bpf classifier lacks.
pub(super) const NEEDS_CLS_BPF: &str =
    "the bpf classifier in direct-action mode, CONFIG_NET_CLS_BPF (kernel 4.4 or later)";

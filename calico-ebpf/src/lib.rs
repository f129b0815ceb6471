//! calico-rs's eBPF ACL backend (issue #21), first slice: the IR's chains generated into
//! eBPF programs at run time and loaded with `bpf(2)`, IP sets and named-port sets as BPF
//! maps, and an `AclBackend` attaching the programs to interfaces through a dispatcher on
//! shared tc blocks (which stays when the agent exits), for the subset of the IR
//! implemented. See the crate's README for what exists and what does not.
//!
//! * [`backend`]: [`backend::EbpfBackend`], the `AclBackend` for the supported subset;
//! * [`generate`]: IR → instructions ([`generate::generate`], [`generate::hook_program`]);
//!   refuses, by name, what is not implemented ([`GenerateError`]);
//! * [`sets`]: the maps the programs read, and set ids; [`set_table`]: a change set's set
//!   changes as map writes;
//! * [`shared`]: loaded programs shared by the interfaces whose generated programs are
//!   equal, with their per-interface values ([`generate::params`]);
//! * [`program`]: loading, and running a program on a frame (`BPF_PROG_TEST_RUN`);
//!   [`tail`]: the later pieces of a policy split into programs chained with tail calls,
//!   their program arrays pinned by [`pins`];
//! * [`frame`]: frames for a [`calico_core::eval::Packet`];
//! * [`layout`]: the byte layouts generator, maps and tests share;
//! * [`btf`]: the kernel's BTF, for the conntrack kfuncs;
//! * [`generate::conntrack`]: where the conntrack state comes from (a test's context,
//!   the kernel's kfuncs, or the programs' own flow table);
//! * [`insn`], [`sys`]: the instruction encoding, and the raw `bpf(2)` calls;
//! * [`dispatch`]: the dispatcher the shared tc blocks' filters run, tail-calling each
//!   interface's programs by its index;
//! * [`tc`]: the clsact qdisc (bound to shared blocks) and `bpf` filters over rtnetlink.

pub mod adopt;
pub mod backend;
pub mod btf;
pub mod counters;
pub mod dispatch;
pub mod entries;
pub mod error;
pub mod frame;
pub mod generate;
pub mod insn;
pub mod layout;
pub mod pins;
pub mod program;
pub mod set_table;
pub mod sets;
pub mod shared;
pub mod sys;
pub mod tail;
pub mod tc;

pub use error::{Error, GenerateError, SysError};

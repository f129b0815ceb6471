//! # calico-mock
//!
//! In-memory backends for calico-rs, and a simulated multi-host network: the "vRouter" that
//! orchestrator authors use in their own tests, where a real kernel is not at hand.
//!
//! * [`MockFib`], [`MockAcl`], [`MockBgp`] implement the `calico-core` backend traits, so an
//!   [`Agent`](calico_core::agent::Agent) can run on them; [`MockAcl`] applies a change set
//!   whole or not at all and refuses what nftables refuses, including what the kernel only
//!   checks at commit (`calico_core::dataplane::validate::check_commit`, the
//!   validator every backend shares);
//! * [`interpret`] evaluates a packet against an IR ruleset exactly as nftables evaluates the
//!   table the IR maps to;
//! * [`MockNetwork`] joins several hosts, each compiling its own ACLs and routes, exchanging
//!   workload routes over BGP, and tells whether a packet between two workloads is
//!   delivered, and if not, which host and rule dropped it.
//!
//! The mock gives the same verdicts as the reference evaluator (`calico_core::eval`): that
//! is proptested in `tests/equivalence.rs`. It is a stand-in for the kernel only in tests of
//! code *above* the dataplane; the Linux backend is tested on the real kernel.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod acl;
mod bgp;
mod fib;
mod interpreter;
mod network;
mod replay;
#[cfg(test)]
mod tests;

pub use acl::MockAcl;
pub use bgp::{MockBgp, MockBgpFabric};
pub use fib::MockFib;
pub use interpreter::{interpret, interpret_marked, ConnState, Outcome, PacketContext};
pub use network::{Delivery, Hop, MockHost, MockNetwork, SendError, FABRIC_INTERFACE};
pub use replay::{replay_first_packet, Replay};

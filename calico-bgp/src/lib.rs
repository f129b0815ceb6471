//! BGP for calico-rs: spreads each host's workload routes to the others, by a native speaker
//! or through BIRD 2.
//!
//! * [`packet`]: the BGP-4 wire format, decoded totally and encoded back.
//! * [`session`]: the RFC 4271 session state machine (pure) and the task running it over TCP.
//! * [`rib`]: Adj-RIB-In, Loc-RIB with the decision process and multipath, Adj-RIB-Out rules.
//! * [`speaker`]: [`speaker::Speaker`], the native speaker implementing
//!   [`calico_core::dataplane::BgpBackend`], with graceful restart (RFC 4724) both as
//!   receiving and as restarting speaker.
//! * [`bfd`]: Bidirectional Forwarding Detection (RFC 5880/5881) for the speaker's peerings:
//!   a dead peer's routes go within a second instead of a hold time.
//! * [`bird`]: [`bird::BirdBgp`], the same trait driving a BIRD 2 daemon, as Calico does.
//! * [`frr`]: [`frr::FrrBgp`], the same trait driving FRR's zebra, bfdd and bgpd.
//!
//! Nothing here depends on a dataplane crate: what is system-specific is injected. The
//! speaker takes its sockets from a [`speaker::socket::SocketOpener`] (by default the
//! process's network namespace), the BIRD driver reads BIRD's kernel table through a
//! [`bird::KernelTable`] (any [`calico_core::dataplane::FibBackend`], such as calico-linux's).
#![warn(missing_docs)]

pub mod bfd;
pub mod bird;
mod daemon;
pub mod frr;
pub mod packet;
#[cfg(test)]
mod policy_tests;
pub mod rib;
pub mod session;
pub mod speaker;
#[cfg(test)]
mod test_support;

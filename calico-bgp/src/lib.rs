//! BGP for calico-rs: spreads each host's workload routes to the others, by a native speaker
//! or through BIRD 2.
//!
//! * [`packet`]: the BGP-4 wire format, decoded totally and encoded back.
//! * [`session`]: the RFC 4271 session state machine (pure) and the task running it over TCP.
//! * [`rib`]: Adj-RIB-In, Loc-RIB with the decision process and multipath, Adj-RIB-Out rules.
//! * [`speaker`]: [`speaker::Speaker`], the native speaker implementing
//!   [`calico_core::dataplane::BgpBackend`], with graceful restart (RFC 4724) both as
//!   receiving and as restarting speaker.
//! * [`bird`]: [`bird::BirdBgp`], the same trait driving a BIRD 2 daemon, as Calico does.
#![warn(missing_docs)]

pub mod bird;
pub mod packet;
pub mod rib;
pub mod session;
pub mod speaker;

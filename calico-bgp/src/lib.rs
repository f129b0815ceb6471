//! BGP for calico-rs: spreads each host's workload routes to the others.
//!
//! * [`bird`]: a [`calico_core::backend::BgpBackend`] driving a BIRD 2 daemon, as Calico does.
#![warn(missing_docs)]

pub mod bird;

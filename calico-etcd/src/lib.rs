//! # calico-etcd
//!
//! calico-rs's cluster datastore on etcd v3, in Calico's own key layout, so a cluster that
//! `calicoctl` set up in etcd can be served by calico-rs agents unchanged. It implements
//! calico-core's [`ResourceSource`](calico_core::datastore::ResourceSource) and
//! [`ResourceWriter`](calico_core::datastore::ResourceWriter); the gRPC client stays out of
//! calico-core.
#![warn(missing_docs)]

pub mod ipam;

#[cfg(feature = "fixtures")]
pub mod testing;

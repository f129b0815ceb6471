//! # calico-cni
//!
//! calico-rs's CNI plugin as a library (the binary `calico-rs-cni` in the examples is a thin
//! wrapper): the CNI 1.0 commands ADD, DEL, CHECK and VERSION over a Calico-style dataplane
//! and Calico's datastore.
//!
//! * [`spec`]: the runtime's environment, the network configuration, the result and the
//!   error object with the spec's codes.
//! * [`net`]: the veth pair, addresses, routes and sysctls, as Calico sets them.
//! * [`ipam`]: addresses from Calico IPAM in etcd ([`calico_etcd::ipam`]), held under the
//!   handle `<network>.<container id>`.
//! * [`endpoint`]: the `WorkloadEndpoint` the agent programs, written to etcd.
//! * [`cmd`]: the commands; [`cmd::run`] is the whole plugin.
//!
//! ADD is all or nothing (whatever was done is undone on a failure); DEL is idempotent and
//! cleans up after a half-done ADD; concurrent ADDs on one host never share an address
//! (IPAM writes are compare-and-swap transactions).
#![warn(missing_docs)]

pub mod cmd;
pub mod endpoint;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod ipam;
pub mod net;
pub mod spec;

pub use cmd::{run, Outcome};
pub use spec::{CniError, Code, NetConf, RuntimeEnv};

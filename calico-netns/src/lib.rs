//! Linux network namespaces for calico-rs.
//!
//! * [`enter`]: production code. Runs a piece of work on a short-lived thread that entered a
//!   namespace with `setns(2)`: sockets (TCP, netlink, nfnetlink) and `/proc/sys/net` files
//!   belong to the namespace of the thread that opens them, for their whole life, so they
//!   can be used from any thread afterwards while no long-lived thread ever changes
//!   namespace.
//! * `fixtures` (feature `fixtures`): the harness of privileged tests, benchmarks and demos.
//!   Creates namespaces with `ip netns`, wires them with veth pairs and workloads, and
//!   removes them when the guard drops (also when a test panics).

#![warn(missing_docs)]

pub mod enter;
#[cfg(feature = "fixtures")]
pub mod fixtures;

pub use enter::{enter_path, run_in, EnterError};

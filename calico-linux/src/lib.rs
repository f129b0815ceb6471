//! The Linux vRouter backend of calico-rs.
//!
//! * [`fib`]: the FIB backend ([`fib::LinuxFib`]): routes over rtnetlink, workload interfaces.
//! * [`netns`]: network namespaces for tests and benchmarks (create, enter, always remove).
//!
//! Routes and workload interfaces are programmed over rtnetlink; ACLs over nf_tables netlink.

pub mod fib;
pub mod netns;

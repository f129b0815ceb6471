//! The Linux vRouter backend of calico-rs.
//!
//! * [`netns`]: network namespaces for tests and benchmarks (create, enter, always remove).
//!
//! Routes and workload interfaces are programmed over rtnetlink; ACLs over nf_tables netlink.

pub mod netns;

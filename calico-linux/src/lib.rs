//! The Linux vRouter backend of calico-rs.
//!
//! * [`acl`]: the compiled ACL IR programmed into nftables, atomically, and read back.
//! * [`nft`]: the nf_tables netlink protocol, spoken directly (safe Rust, no libnftnl).
//! * [`netns`]: network namespaces for tests and benchmarks (create, enter, always remove).
//!
//! Routes and workload interfaces are programmed over rtnetlink.

pub mod acl;
pub mod netns;
pub mod nft;

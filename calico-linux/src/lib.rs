//! The Linux vRouter backend of calico-rs.
//!
//! * [`fib`]: the FIB backend ([`fib::LinuxFib`]): routes over rtnetlink, workload interfaces.
//! * [`acl`]: the ACL backend ([`acl::LinuxAcl`]): the compiled IR programmed into nftables,
//!   atomically, and read back.
//! * [`flowlog`]: the packets the ACLs log to a netlink log group (NFLOG), for flow logs.
//! * `nft` (internal): the nf_tables netlink protocol, spoken directly (safe Rust, no
//!   libnftnl).
//!
//! Sockets in another network namespace are opened through [`calico_netns`].

#![warn(missing_docs)]

pub mod acl;
mod events;
pub mod fib;
pub mod flowlog;
pub(crate) mod nft;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

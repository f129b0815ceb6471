//! Pieces the example programs and their tests share.
//!
//! * [`bird_on_linux`]: calico-bgp's BIRD driver wired to the Linux kernel table BIRD writes
//!   its routes to (calico-bgp itself does not depend on calico-linux); it lives in the
//!   `calico-agent` crate, the daemon that uses it, and is re-exported here.

#![warn(missing_docs)]

pub use calico_agent::bird_on_linux;

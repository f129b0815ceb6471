//! Pieces the example programs and their tests share.
//!
//! * [`bird_on_linux`]: calico-bgp's BIRD driver wired to the Linux kernel table BIRD writes
//!   its routes to (calico-bgp itself does not depend on calico-linux).

#![warn(missing_docs)]

pub mod bird_on_linux;

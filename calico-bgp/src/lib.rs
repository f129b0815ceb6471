//! BGP for calico-rs.
//!
//! * [`packet`]: the BGP-4 wire format, decoded totally and encoded back.
pub mod packet;

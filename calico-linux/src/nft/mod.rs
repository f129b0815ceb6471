//! A small, safe speaker of the nf_tables netlink protocol: framing ([`netlink`]), the
//! expressions calico-rs uses ([`expr`]), and a socket that commits a whole transaction in
//! one datagram or runs a dump ([`socket`]).
//!
//! Why not the `nftnl` crate: its safe API lacks interval sets, verdict maps, concatenated
//! keys and reading rules back, which would need a layer of `unsafe` FFI over libnftnl for
//! most of what calico-rs does. The protocol itself is a few message types of plain
//! type-length-value attributes; speaking it directly keeps every byte checked, the decoder
//! fuzzable, and the transaction's size and acknowledgements under our control.

pub mod expr;
pub mod netlink;
pub mod proto;
pub mod socket;

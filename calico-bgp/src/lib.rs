//! BGP for calico-rs.
//!
//! * [`packet`]: the BGP-4 wire format, decoded totally and encoded back.
//! * [`session`]: the RFC 4271 session state machine (pure) and the task running it over TCP.
//! * [`rib`]: Adj-RIB-In, Loc-RIB with the decision process and multipath, Adj-RIB-Out rules.
//! * [`speaker`]: [`speaker::Speaker`], the native speaker implementing `BgpBackend`.
pub mod packet;
pub mod rib;
pub mod session;
pub mod speaker;

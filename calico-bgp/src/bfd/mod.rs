//! Bidirectional Forwarding Detection for the speaker's peerings: RFC 5880 in asynchronous
//! mode, single hop (RFC 5881), for BGP (RFC 5882).
//!
//! A BGP session notices a dead peer only when its hold time runs out (90 s by default);
//! BFD notices it after `multiplier` missed packets, 900 ms with the default 300 ms × 3.
//! A peering with [`PeerConfig::bfd`](calico_core::dataplane::PeerConfig::bfd) set runs a
//! BFD session beside its BGP session; when that BFD session goes from Up to Down, the
//! speaker ends the BGP session at once with a Cease NOTIFICATION, subcode 10 "BFD Down"
//! (RFC 9384): the peer's routes are withdrawn (ECMP shrinks to the surviving next hops) and
//! the session is re-established as usual once the peer is back.
//!
//! * [`packet`]: the Control packet, decoded with the checks of RFC 5880 §6.8.6, and its
//!   authentication section.
//! * [`auth`]: authentication (§6.7, optional per peering: simple password, keyed and
//!   meticulous keyed MD5 and SHA-1): signing, digests, sequence-number windows.
//! * [`fsm`]: one session's state machine and timers, pure (packets and time in; packets
//!   and state changes out).
//! * [`socket`]: the UDP sockets (port 3784, source ports 49152–65535, TTL 255 out and
//!   required in, RFC 5881 §4–5).
//! * [`service`]: the task running every session of a speaker.
//!
//! ```text
//!   speaker task ──set_sessions──▶ BFD service task ──BfdEvent (state changes)──▶ speaker
//!                                   │  Session (fsm) per peer, timers
//!                                   │  send: one UDP socket per session
//!                                   ▲  receive: a reader per family (port 3784) → queue
//! ```
//!
//! A session without authentication discards authenticated packets, and one with it
//! unauthenticated ones (§6.8.6). Not implemented: demand mode and the echo function (we advertise a required
//! echo interval of 0), multi-hop BFD (RFC 5883). A BGP session is not held down while its
//! BFD session is down (RFC 5882 §4.2 makes that optional): it is only ended when BFD goes
//! from Up to Down.

pub mod auth;
pub mod fsm;
pub mod packet;
pub mod service;
pub mod socket;

pub use packet::{ControlPacket, Diagnostic, State};
pub use service::{BfdEvent, BfdService, SessionSpec, SessionStatus};

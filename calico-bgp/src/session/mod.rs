//! BGP sessions: the RFC 4271 state machine ([`fsm`], pure; the OPEN negotiation it relies on
//! lives beside it) and the tokio task that runs it over TCP ([`io`]).

pub mod fsm;
mod inbound;
pub mod io;
mod negotiation;
mod queue;

pub use fsm::{
    Action, Direction, Event, Fsm, GracefulRestart, Negotiated, PeerGracefulRestart, SessionConfig,
    SessionDown, Timer, GR_FORWARDING_STATE, GR_RESTART_STATE,
};
pub use inbound::{ReadCredit, INBOUND_WINDOW};

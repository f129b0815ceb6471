//! BGP sessions: the RFC 4271 state machine ([`fsm`], pure) and the tokio task that runs it
//! over TCP ([`io`]).

pub mod fsm;
pub mod io;

pub use fsm::{
    Action, Direction, Event, Fsm, GracefulRestart, Negotiated, PeerGracefulRestart, SessionConfig,
    SessionDown, Timer,
};

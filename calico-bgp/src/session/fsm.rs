//! The RFC 4271 §8 finite state machine of one peering, as a pure value: events in, actions
//! out. No sockets, no clocks: the I/O task ([`super::io`]) turns socket and timer activity
//! into [`Event`]s and carries out the [`Action`]s, so every transition is testable alone.
//!
//! A peering may have two TCP connections at once, one we opened ([`Direction::Outbound`])
//! and one the peer opened ([`Direction::Inbound`]); the machine runs both through OPEN and
//! resolves the collision by BGP identifier (RFC 4271 §6.8) as soon as the peer's
//! identifier is known.

use std::time::Duration;

use calico_core::dataplane::PeerState;

use super::negotiation::{negotiate, open_message};
pub use super::negotiation::{
    GracefulRestart, Negotiated, PeerGracefulRestart, SessionConfig, SessionDown,
    GR_FORWARDING_STATE, GR_RESTART_STATE,
};
use crate::packet::notification::{CeaseSubcode, FsmSubcode};
use crate::packet::{AfiSafi, DecodeError, ErrorCode, Message, Notification, Open, Update};

/// Which side opened a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

impl Direction {
    fn index(self) -> usize {
        self as usize
    }

    fn other(self) -> Direction {
        match self {
            Direction::Outbound => Direction::Inbound,
            Direction::Inbound => Direction::Outbound,
        }
    }
}

/// A timer the machine starts and stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// Time to try connecting again.
    ConnectRetry,
    /// No message from the peer for the hold time on this connection.
    Hold(Direction),
    /// Time to send a KEEPALIVE on this connection.
    Keepalive(Direction),
}

/// Something that happened.
// Received UPDATEs dominate; boxing them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The peering is configured: start it.
    Start,
    /// The peering is to stop, telling the peer why.
    Stop(CeaseSubcode),
    /// The established session (and any connection being opened) is to end with a Cease of
    /// this subcode; the peering goes on, connecting again after the retry delay.
    Reset(CeaseSubcode, String),
    /// The peering is to stop without a NOTIFICATION, only closing TCP: we are restarting
    /// gracefully and the peer is to keep our routes (RFC 4724).
    StopForRestart,
    /// A timer fired.
    TimerExpired(Timer),
    /// A TCP connection is up.
    Connected(Direction),
    /// Connecting failed.
    ConnectFailed(String),
    /// A connection closed or failed.
    Closed(Direction, String),
    /// A message arrived.
    Received(Direction, Message),
    /// An UPDATE arrived that the I/O task keeps (it was prepared for the RIB where it was
    /// read): handled as [`Event::Received`] with the UPDATE, but delivered as
    /// [`Action::DeliverReceived`].
    UpdateReceived(Direction),
    /// Bytes arrived that are not a valid message.
    Malformed(Direction, DecodeError),
}

/// Something the I/O task is to do.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send a message on a connection.
    Send(Direction, Message),
    /// Close a connection (after sending what is queued).
    Close(Direction),
    /// Start (or restart) a timer.
    StartTimer(Timer, Duration),
    /// Stop a timer.
    StopTimer(Timer),
    /// The session is established.
    Up(Negotiated),
    /// The established session went down.
    Down(SessionDown),
    /// Routes arrived.
    Deliver(Update),
    /// The UPDATE of an [`Event::UpdateReceived`] is to be delivered (the I/O task keeps
    /// them in order: the next one not delivered yet).
    DeliverReceived,
    /// The peer asks us to send a family again.
    Refresh(AfiSafi),
}

/// The message type of an UPDATE (RFC 4271 §4.1).
const UPDATE_KIND: u8 = 2;

/// How long to wait for the peer's OPEN (RFC 4271 suggests 4 minutes).
const OPEN_HOLD: Duration = Duration::from_secs(240);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Clone, Debug)]
struct Connection {
    stage: Stage,
    negotiated: Option<Negotiated>,
}

/// The state machine of one peering.
#[derive(Clone, Debug)]
pub struct Fsm {
    config: SessionConfig,
    running: bool,
    connecting: bool,
    connections: [Option<Connection>; 2],
    retry_delay: Duration,
    last_error: Option<String>,
    /// A session has been established since the machine was created.
    established_once: bool,
}

impl Fsm {
    /// A stopped machine (state Idle).
    pub fn new(config: SessionConfig) -> Fsm {
        let retry_delay = config.connect_retry_min;
        Fsm {
            config,
            running: false,
            connecting: false,
            connections: [None, None],
            retry_delay,
            last_error: None,
            established_once: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The RFC 4271 state of the most advanced connection.
    pub fn state(&self) -> PeerState {
        let stage = self.connections.iter().flatten().map(|c| c.stage).max();
        match stage {
            Some(Stage::Established) => PeerState::Established,
            Some(Stage::OpenConfirm) => PeerState::OpenConfirm,
            Some(Stage::OpenSent) => PeerState::OpenSent,
            None if !self.running => PeerState::Idle,
            None if self.connecting => PeerState::Connect,
            None => PeerState::Active,
        }
    }

    /// The negotiated parameters of the established connection.
    pub fn established(&self) -> Option<&Negotiated> {
        self.connections
            .iter()
            .flatten()
            .find(|c| c.stage == Stage::Established)
            .and_then(|c| c.negotiated.as_ref())
    }

    /// The last error seen, for an operator.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The OPEN we send.
    pub fn open_message(&self) -> Open {
        open_message(&self.config, self.established_once)
    }

    /// Feeds one event; appends what to do to `out`.
    pub fn handle(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::Start => {
                if !self.running {
                    self.running = true;
                    self.retry_delay = self.config.connect_retry_min;
                    self.connect(out);
                }
            }
            Event::Stop(subcode) => {
                self.running = false;
                out.push(Action::StopTimer(Timer::ConnectRetry));
                for dir in [Direction::Outbound, Direction::Inbound] {
                    if self.connections[dir.index()].is_some() {
                        out.push(Action::Send(
                            dir,
                            Message::Notification(Notification::cease(subcode)),
                        ));
                        self.tear_down(dir, format!("stopped: {subcode:?}"), false, out);
                    }
                }
                self.connecting = false;
            }
            Event::Reset(subcode, reason) => {
                for dir in [Direction::Outbound, Direction::Inbound] {
                    if self.connections[dir.index()].is_some() {
                        let notification = Notification::cease(subcode);
                        self.notify_and_close(dir, notification, reason.clone(), out);
                    }
                }
            }
            Event::StopForRestart => {
                self.running = false;
                out.push(Action::StopTimer(Timer::ConnectRetry));
                for dir in [Direction::Outbound, Direction::Inbound] {
                    self.tear_down(dir, "stopped for a graceful restart".into(), false, out);
                }
                self.connecting = false;
            }
            Event::TimerExpired(Timer::ConnectRetry) => {
                if self.running && self.connections[Direction::Outbound.index()].is_none() {
                    self.connect(out);
                }
            }
            Event::TimerExpired(Timer::Hold(dir)) => {
                if self.connections[dir.index()].is_some() {
                    // Not graceful: we send a NOTIFICATION, and RFC 4724 keeps routes only
                    // across a session that ended without one (RFC 8538, which extends
                    // graceful restart to hold timer expiry, is not implemented). A peer
                    // that went silent is withdrawn at once.
                    self.notify_and_close(
                        dir,
                        Notification::new(ErrorCode::HoldTimerExpired),
                        "hold timer expired".into(),
                        out,
                    );
                }
            }
            Event::TimerExpired(Timer::Keepalive(dir)) => {
                let Some(conn) = &self.connections[dir.index()] else {
                    return;
                };
                if let Some(n) = conn.negotiated.as_ref().filter(|n| n.keepalive > 0) {
                    out.push(Action::Send(dir, Message::Keepalive));
                    out.push(Action::StartTimer(
                        Timer::Keepalive(dir),
                        Duration::from_secs(n.keepalive.into()),
                    ));
                }
            }
            Event::Connected(dir) => self.connected(dir, out),
            Event::ConnectFailed(reason) => {
                self.connecting = false;
                self.last_error = Some(format!("connect failed: {reason}"));
                self.schedule_retry(out);
            }
            Event::Closed(dir, reason) => {
                if self.connections[dir.index()].is_some() {
                    self.tear_down(dir, format!("connection closed: {reason}"), true, out);
                }
            }
            Event::Malformed(dir, error) => {
                if self.connections[dir.index()].is_some() {
                    self.notify_and_close(
                        dir,
                        error.notification(),
                        format!("malformed message from peer: {error}"),
                        out,
                    );
                }
            }
            Event::Received(dir, message) => self.received(dir, message, out),
            Event::UpdateReceived(dir) => self.update_received(dir, out),
        }
    }

    fn connect(&mut self, out: &mut Vec<Action>) {
        if self.config.passive || self.connecting || !self.running {
            return;
        }
        self.connecting = true;
        out.push(Action::Connect);
    }

    fn schedule_retry(&mut self, out: &mut Vec<Action>) {
        if !self.running || self.config.passive || self.connections.iter().any(Option::is_some) {
            return;
        }
        out.push(Action::StartTimer(Timer::ConnectRetry, self.retry_delay));
        self.retry_delay = (self.retry_delay * 2).min(self.config.connect_retry_max);
    }

    fn connected(&mut self, dir: Direction, out: &mut Vec<Action>) {
        if dir == Direction::Outbound {
            self.connecting = false;
        }
        if !self.running {
            out.push(Action::Close(dir));
            return;
        }
        let established_gr = self
            .connections
            .iter()
            .flatten()
            .filter(|c| c.stage == Stage::Established)
            .filter_map(|c| c.negotiated.as_ref())
            .find(|n| n.graceful_restart.is_some())
            .map(|n| n.direction);
        match (dir, established_gr) {
            (Direction::Inbound, Some(Direction::Inbound)) => {
                // RFC 4724 §4.2: the peer opened a new connection in place of its established
                // one: it restarted before we saw the old connection end.
                self.tear_down(
                    Direction::Inbound,
                    "peer reconnected (restarted) while the session was established".into(),
                    true,
                    out,
                );
            }
            (Direction::Inbound, Some(Direction::Outbound)) => {
                // A restarted peer (RFC 4724 §4.2), or only its side of a connection
                // collision arriving late: its OPEN decides (see `open_received`), so a
                // stray connection cannot end the established session.
            }
            _ if self.established().is_some() => {
                // RFC 4271 §6.8: a connection colliding with an established one is closed.
                out.push(Action::Send(
                    dir,
                    Message::Notification(Notification::cease(
                        CeaseSubcode::ConnectionCollisionResolution,
                    )),
                ));
                out.push(Action::Close(dir));
                return;
            }
            _ => {}
        }
        if self.connections[dir.index()].is_some() {
            // The peer opened a new connection in place of its previous one.
            self.tear_down(dir, "replaced by a new connection".into(), true, out);
        }
        self.connections[dir.index()] = Some(Connection {
            stage: Stage::OpenSent,
            negotiated: None,
        });
        out.push(Action::StopTimer(Timer::ConnectRetry));
        out.push(Action::Send(dir, Message::Open(self.open_message())));
        out.push(Action::StartTimer(Timer::Hold(dir), OPEN_HOLD));
    }

    /// The stage of the connection a message arrived on (`None`: no such connection
    /// any more), its hold timer started again.
    fn heard_from(&mut self, dir: Direction, out: &mut Vec<Action>) -> Option<Stage> {
        let conn = self.connections[dir.index()].as_ref()?;
        if let Some(n) = &conn.negotiated {
            if n.hold_time > 0 {
                out.push(Action::StartTimer(
                    Timer::Hold(dir),
                    Duration::from_secs(n.hold_time.into()),
                ));
            }
        }
        Some(conn.stage)
    }

    /// An UPDATE the I/O task keeps: delivered on an established connection, an error
    /// otherwise, as [`Fsm::received`] handles one.
    fn update_received(&mut self, dir: Direction, out: &mut Vec<Action>) {
        match self.heard_from(dir, out) {
            Some(Stage::Established) => out.push(Action::DeliverReceived),
            Some(stage) => self.unexpected(dir, stage, UPDATE_KIND, out),
            None => {}
        }
    }

    fn received(&mut self, dir: Direction, message: Message, out: &mut Vec<Action>) {
        let Some(stage) = self.heard_from(dir, out) else {
            return;
        };
        match (stage, message) {
            (_, Message::Notification(n)) => {
                self.tear_down(dir, format!("peer sent NOTIFICATION: {n}"), false, out);
            }
            (Stage::OpenSent, Message::Open(open)) => self.open_received(dir, open, out),
            (Stage::OpenConfirm, Message::Keepalive) => {
                let Some(conn) = self.connections[dir.index()].as_mut() else {
                    return;
                };
                conn.stage = Stage::Established;
                self.established_once = true;
                self.retry_delay = self.config.connect_retry_min;
                self.last_error = None;
                if let Some(n) = conn.negotiated.clone() {
                    out.push(Action::Up(n));
                }
            }
            (Stage::Established, Message::Keepalive) => {}
            (Stage::Established, Message::Update(update)) => out.push(Action::Deliver(update)),
            (Stage::Established, Message::RouteRefresh(r)) => {
                let negotiated = self.connections[dir.index()]
                    .as_ref()
                    .and_then(|c| c.negotiated.as_ref());
                // Only subtype 0 asks for the routes again (RFC 2918). 1 and 2 are the
                // beginning and end markers of RFC 7313's enhanced refresh, which we do not
                // advertise; any other value is to be ignored (RFC 7313 §5).
                let request = r.subtype == 0;
                if request && negotiated.is_some_and(|n| n.families.contains(&r.family)) {
                    out.push(Action::Refresh(r.family));
                }
            }
            (stage, message) => self.unexpected(dir, stage, message.kind(), out),
        }
    }

    /// A message of type `kind` that `stage` does not expect: an FSM error (RFC 4271 §6.6).
    fn unexpected(&mut self, dir: Direction, stage: Stage, kind: u8, out: &mut Vec<Action>) {
        let subcode = match stage {
            Stage::OpenSent => FsmSubcode::UnexpectedMessageInOpenSent,
            Stage::OpenConfirm => FsmSubcode::UnexpectedMessageInOpenConfirm,
            Stage::Established => FsmSubcode::UnexpectedMessageInEstablished,
        };
        self.notify_and_close(
            dir,
            Notification::new(ErrorCode::FiniteStateMachine(subcode)),
            format!("unexpected message type {kind} in {stage:?}"),
            out,
        );
    }

    fn open_received(&mut self, dir: Direction, open: Open, out: &mut Vec<Action>) {
        let negotiated = match negotiate(&self.config, &open, dir) {
            Ok(negotiated) => negotiated,
            Err((notification, reason)) => {
                return self.notify_and_close(dir, notification, reason, out)
            }
        };
        let other = dir.other();
        if let Some(old) = self.connections[other.index()]
            .as_ref()
            .filter(|c| c.stage == Stage::Established)
        {
            let old_gr = old
                .negotiated
                .as_ref()
                .is_some_and(|n| n.graceful_restart.is_some());
            // Only the peer can open a connection in place of its session, and only a peer
            // that restarted says so (the Restart State bit). Our own connection, or the
            // peer's side of a collision, arriving after the other side was established
            // is a collision like any other: ending the session for it would flap it.
            let restarted = negotiated
                .graceful_restart
                .as_ref()
                .is_some_and(|g| g.restarted);
            if old_gr && restarted && dir == Direction::Inbound {
                // RFC 4724 §4.2: an OPEN from the peer on a new connection while the old
                // session is established: the peer restarted; keep its routes as stale.
                self.tear_down(
                    other,
                    "peer restarted: it opened a new session while the old one was established"
                        .into(),
                    true,
                    out,
                );
            } else {
                // RFC 4271 §6.8: a connection colliding with an established one is closed.
                return self.notify_and_close(
                    dir,
                    Notification::cease(CeaseSubcode::ConnectionCollisionResolution),
                    "a second connection collided with the established session".into(),
                    out,
                );
            }
        }
        // Collision resolution (RFC 4271 §6.8): keep the connection opened by the speaker
        // with the higher BGP identifier.
        if self.connections[other.index()].is_some() {
            let keep = if self.config.router_id > open.router_id {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            let lose = keep.other();
            self.notify_and_close(
                lose,
                Notification::cease(CeaseSubcode::ConnectionCollisionResolution),
                "connection collision resolved in favour of the other connection".into(),
                out,
            );
            if lose == dir {
                return;
            }
        }
        let Some(conn) = self.connections[dir.index()].as_mut() else {
            return;
        };
        conn.stage = Stage::OpenConfirm;
        conn.negotiated = Some(negotiated.clone());
        out.push(Action::Send(dir, Message::Keepalive));
        if negotiated.hold_time > 0 {
            out.push(Action::StartTimer(
                Timer::Hold(dir),
                Duration::from_secs(negotiated.hold_time.into()),
            ));
            out.push(Action::StartTimer(
                Timer::Keepalive(dir),
                Duration::from_secs(negotiated.keepalive.into()),
            ));
        } else {
            out.push(Action::StopTimer(Timer::Hold(dir)));
        }
    }

    fn notify_and_close(
        &mut self,
        dir: Direction,
        notification: Notification,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Send(dir, Message::Notification(notification)));
        self.tear_down(dir, reason, false, out);
    }

    /// Closes a connection; `graceful`: without a NOTIFICATION, so the peer's routes may be
    /// kept if it negotiated graceful restart.
    fn tear_down(&mut self, dir: Direction, reason: String, graceful: bool, out: &mut Vec<Action>) {
        let Some(conn) = self.connections[dir.index()].take() else {
            return;
        };
        out.push(Action::Close(dir));
        out.push(Action::StopTimer(Timer::Hold(dir)));
        out.push(Action::StopTimer(Timer::Keepalive(dir)));
        if conn.stage == Stage::Established {
            let graceful = graceful
                && conn
                    .negotiated
                    .as_ref()
                    .and_then(|n| n.graceful_restart.as_ref())
                    .is_some_and(|gr| !gr.families.is_empty());
            out.push(Action::Down(SessionDown {
                reason: reason.clone(),
                graceful,
            }));
        }
        self.last_error = Some(reason);
        self.schedule_retry(out);
    }
}

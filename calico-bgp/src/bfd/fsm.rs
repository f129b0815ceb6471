//! One BFD session's state machine (RFC 5880 §6.2, §6.8), pure: it is handed packets and
//! the time, and says what to send and when its state changed. The service task
//! ([`super::service`]) does the I/O.
//!
//! ```text
//!                 +--+ Down, AdminDown, Timer
//!                 |  |
//!          +-------+  |  Down      +------+
//!          |       |<-+----------->|      |
//!          | Down  |     Init      | Init |
//!          |       |-------------->|      |
//!          +-------+               +------+
//!            ^   |                  |   Init, Up
//!  AdminDown,|   | Up               |
//!  Down,     |   v                  v
//!  Timer   +------+                  |
//!          |  Up  |<-----------------+
//!          +------+
//! ```
//!
//! Asynchronous mode only. While the session is not Up we advertise a desired transmit
//! interval of one second (§6.8.3); on Up the configured one, announced with a Poll
//! sequence. The detection time is the peer's multiplier times the longer of our required
//! receive interval and its desired transmit interval (§6.8.4).

use std::time::Duration;

use calico_core::dataplane::BfdConfig;
use tokio::time::Instant;

use super::packet::{ControlPacket, Diagnostic, State};

/// The slowest transmit interval we advertise while the session is not Up (§6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// A state change of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Why (the diagnostic we now send).
    pub diag: Diagnostic,
    /// The peer's state as last heard. A session taken down by the peer's AdminDown is no
    /// failure of the path: RFC 5882 §3.2 forbids telling clients (BGP) it is one.
    pub remote: State,
}

/// What we know of the remote system (the `bfd.Remote*` variables).
#[derive(Clone, Copy, Debug)]
struct Remote {
    disc: u32,
    state: State,
    min_rx: Duration,
    desired_tx: Duration,
    detect_mult: u8,
}

/// One BFD session.
#[derive(Debug)]
pub struct Session {
    config: BfdConfig,
    local_disc: u32,
    state: State,
    diag: Diagnostic,
    remote: Remote,
    /// The desired transmit interval we advertise.
    desired_tx: Duration,
    /// A Poll sequence is running: our packets carry P until one with F arrives.
    polling: bool,
    /// A Poll arrived: the next packet, sent at once, carries F.
    final_owed: bool,
    /// The transmit interval in force (an increase waits for the Poll sequence to end).
    tx_interval: Duration,
    next_tx: Instant,
    /// When the peer is declared down unless a packet arrives (Init and Up only).
    detect_at: Option<Instant>,
    rng: u64,
}

impl Session {
    /// A session in state Down, sending its first packet at once.
    pub fn new(config: BfdConfig, local_disc: u32, now: Instant) -> Session {
        Session {
            config,
            local_disc,
            state: State::Down,
            diag: Diagnostic::None,
            remote: Remote {
                disc: 0,
                state: State::Down,
                min_rx: Duration::from_micros(1),
                desired_tx: Duration::ZERO,
                detect_mult: 0,
            },
            desired_tx: SLOW_TX,
            polling: false,
            final_owed: false,
            tx_interval: SLOW_TX,
            next_tx: now,
            detect_at: None,
            rng: u64::from(local_disc) | 1 << 63,
        }
    }

    /// Our discriminator.
    pub fn local_disc(&self) -> u32 {
        self.local_disc
    }

    /// The peer's discriminator (0 until heard, and again after a detection timeout).
    pub fn remote_disc(&self) -> u32 {
        self.remote.disc
    }

    /// The peer's state as it last told us.
    pub fn remote_state(&self) -> State {
        self.remote.state
    }

    /// The session state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The diagnostic we send: why the session last went down.
    pub fn diag(&self) -> Diagnostic {
        self.diag
    }

    /// The timers.
    pub fn config(&self) -> &BfdConfig {
        &self.config
    }

    /// The detection time in force: the peer's multiplier times the longer of our required
    /// receive interval and its desired transmit interval (§6.8.4).
    pub fn detection_time(&self) -> Duration {
        let interval = self.config.min_rx.max(self.remote.desired_tx);
        interval * u32::from(self.remote.detect_mult.max(1))
    }

    /// Changes the timers; announced with a Poll sequence when the session is Up.
    pub fn set_config(&mut self, config: BfdConfig) {
        if config == self.config {
            return;
        }
        let min_tx = config.min_tx;
        self.config = config;
        if self.state == State::Up {
            self.set_desired_tx(min_tx);
            self.polling = true;
        }
    }

    /// When [`Session::on_timer`] must next be called.
    pub fn next_deadline(&self) -> Instant {
        match self.detect_at {
            Some(d) => d.min(self.next_tx),
            None => self.next_tx,
        }
    }

    /// Takes a packet the peer sent us (already decoded and demultiplexed to us). Returns
    /// the state change, if any; a packet with Final owed is then due at once.
    pub fn receive(&mut self, p: &ControlPacket, now: Instant) -> Option<Transition> {
        self.remote = Remote {
            disc: p.my_disc,
            state: p.state,
            min_rx: p.required_min_rx,
            desired_tx: p.desired_min_tx,
            detect_mult: p.detect_mult,
        };
        if p.final_ && self.polling {
            self.polling = false;
            self.tx_interval = self.desired_tx;
        }
        if p.poll {
            self.final_owed = true;
            self.next_tx = now;
        }
        if self.state == State::AdminDown {
            return None;
        }
        self.detect_at = Some(now + self.detection_time());
        let next = match (self.state, p.state) {
            (State::Down, State::AdminDown) => None,
            (_, State::AdminDown) => Some((State::Down, Diagnostic::NeighborDown)),
            (State::Down, State::Down) => Some((State::Init, Diagnostic::None)),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                Some((State::Up, Diagnostic::None))
            }
            (State::Up, State::Down) => Some((State::Down, Diagnostic::NeighborDown)),
            _ => None,
        };
        next.map(|(to, diag)| self.enter(to, diag, now))
    }

    /// Runs the timers: returns the packet due now, if any, and a state change (the
    /// detection time passed without a packet).
    pub fn on_timer(&mut self, now: Instant) -> (Option<ControlPacket>, Option<Transition>) {
        let mut change = None;
        if self.detect_at.is_some_and(|d| d <= now) {
            self.detect_at = None;
            self.remote.disc = 0;
            if matches!(self.state, State::Init | State::Up) {
                change = Some(self.enter(State::Down, Diagnostic::DetectionTimeExpired, now));
            }
        }
        let packet = (self.next_tx <= now).then(|| self.transmit(now)).flatten();
        (packet, change)
    }

    /// The packet to send when this session is removed: AdminDown, so that the peer takes
    /// its side down at once instead of after its detection time (§6.8.16).
    pub fn admin_down_packet(&self) -> ControlPacket {
        ControlPacket {
            state: State::AdminDown,
            diag: Diagnostic::AdminDown,
            poll: false,
            final_: false,
            ..self.packet()
        }
    }

    fn enter(&mut self, to: State, diag: Diagnostic, now: Instant) -> Transition {
        let from = self.state;
        self.state = to;
        self.diag = diag;
        if to == State::Up {
            // §6.8.3: the configured interval only once Up, announced by a Poll sequence.
            self.set_desired_tx(self.config.min_tx);
            self.polling = true;
        } else {
            self.polling = false;
            self.desired_tx = SLOW_TX;
            self.tx_interval = SLOW_TX;
        }
        // Tell the peer at once rather than at the next interval: the handshake and the
        // news of a failure travel in one round trip.
        self.next_tx = now;
        Transition {
            from,
            to,
            diag,
            remote: self.remote.state,
        }
    }

    /// A decrease takes effect at once; an increase while Up only when the Poll sequence
    /// ends (§6.8.3).
    fn set_desired_tx(&mut self, interval: Duration) {
        self.desired_tx = interval;
        if interval < self.tx_interval {
            self.tx_interval = interval;
        }
    }

    fn transmit(&mut self, now: Instant) -> Option<ControlPacket> {
        let interval = self.tx_interval.max(self.remote.min_rx);
        self.next_tx = now + self.jitter(interval);
        let final_ = std::mem::take(&mut self.final_owed);
        // §6.8.7: nothing periodic to a peer that asked for none (RequiredMinRx 0); the
        // Final of a Poll is still owed.
        if self.remote.min_rx.is_zero() && !final_ {
            return None;
        }
        Some(ControlPacket {
            final_,
            poll: self.polling && !final_,
            ..self.packet()
        })
    }

    fn packet(&self) -> ControlPacket {
        ControlPacket {
            diag: self.diag,
            state: self.state,
            poll: false,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: self.config.multiplier,
            my_disc: self.local_disc,
            your_disc: self.remote.disc,
            desired_min_tx: self.desired_tx,
            required_min_rx: self.config.min_rx,
            required_min_echo_rx: Duration::ZERO,
        }
    }

    /// The interval less a random 0–25 % (0–10 % more with a multiplier of 1), so that
    /// sessions do not synchronise (§6.8.7).
    fn jitter(&mut self, interval: Duration) -> Duration {
        // xorshift64: cheap, and quality is irrelevant here.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let upper: u64 = if self.config.multiplier == 1 { 90 } else { 100 };
        let percent = 75 + self.rng % (upper - 75 + 1);
        interval * percent as u32 / 100
    }
}

#[cfg(test)]
mod tests;

//! The BFD service: one task running every session of a speaker. It owns the sockets,
//! demultiplexes received packets to sessions (by our discriminator, or by the peer's
//! address while the peer does not know it yet, RFC 5880 §6.3), runs the timers, and reports
//! every state change.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use calico_core::dataplane::BfdConfig;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::auth::{AuthError, Authenticator};
use super::fsm::{Session, Transition};
use super::packet::{AuthSection, ControlPacket, Diagnostic, State};
use super::socket::{self, Received, TTL};
use crate::speaker::socket::SocketOpener;

/// A session to run: single hop, to `peer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSpec {
    /// The peer's address.
    pub peer: IpAddr,
    /// Our address to send from; unspecified: the kernel's choice of source.
    pub local: IpAddr,
    /// The timers.
    pub config: BfdConfig,
}

/// A state change of the session with `peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdEvent {
    /// The peer.
    pub peer: IpAddr,
    /// What changed.
    pub transition: Transition,
}

/// What an operator can read about one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// The peer.
    pub peer: IpAddr,
    /// The session state.
    pub state: State,
    /// Why it last went down.
    pub diag: Diagnostic,
    /// The peer's state as it last told us.
    pub remote_state: State,
    /// Our discriminator.
    pub local_disc: u32,
    /// The peer's (0 until heard).
    pub remote_disc: u32,
}

enum Request {
    Set(Vec<SessionSpec>),
    Status(oneshot::Sender<Vec<SessionStatus>>),
}

/// A handle on the service task; the task ends (sending AdminDown on every session) when
/// the handle is dropped.
#[derive(Debug, Clone)]
pub struct BfdService {
    requests: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Set(_) => "Set",
            Request::Status(_) => "Status",
        })
    }
}

impl BfdService {
    /// Starts the service (inside a tokio runtime). Sockets come from `opener`; state
    /// changes go to `events`.
    pub fn spawn(opener: Arc<dyn SocketOpener>, events: mpsc::UnboundedSender<BfdEvent>) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        let task = Task {
            opener,
            events,
            sessions: BTreeMap::new(),
            by_disc: HashMap::new(),
            receivers: [None, None],
            datagrams: mpsc::channel(256),
            next_disc: seed(),
        };
        tokio::spawn(task.run(rx));
        BfdService { requests }
    }

    /// Runs exactly these sessions: new ones start (in Down), gone ones end with AdminDown,
    /// changed timers are announced by a Poll sequence.
    pub fn set_sessions(&self, sessions: Vec<SessionSpec>) {
        let _ = self.requests.send(Request::Set(sessions));
    }

    /// Every session's state, by peer address (empty once the task has ended).
    pub async fn status(&self) -> Vec<SessionStatus> {
        let (tx, rx) = oneshot::channel();
        let _ = self.requests.send(Request::Status(tx));
        rx.await.unwrap_or_default()
    }
}

struct Running {
    session: Session,
    spec: SessionSpec,
    sender: UdpSocket,
    /// The session's authentication, when configured (RFC 5880 §6.7).
    auth: Option<Authenticator>,
}

impl Running {
    /// Sends `packet` to the peer, signed when the session is authenticated.
    async fn send(&mut self, packet: &ControlPacket) {
        let bytes = match &mut self.auth {
            Some(a) => a.seal(packet),
            None => packet.encode().to_vec(),
        };
        let to = SocketAddr::new(self.spec.peer, socket::CONTROL_PORT);
        if let Err(e) = self.sender.send_to(&bytes, to).await {
            tracing::debug!(peer = %self.spec.peer, error = %e, "BFD send failed");
        }
    }

    /// Whether `bytes` (decoded into `packet` and `section`) passes the session's
    /// authentication (§6.8.6: a packet must be authenticated exactly when the session is).
    fn authentic(
        &mut self,
        bytes: &[u8],
        packet: &ControlPacket,
        section: Option<&AuthSection>,
    ) -> Result<(), AuthError> {
        let detection = self.session.detection_time();
        match (&mut self.auth, section) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(AuthError::Unexpected),
            (Some(a), s) => a.check(bytes, s, packet.detect_mult, detection, Instant::now()),
        }
    }
}

/// A datagram as a receiving socket's reader hands it to the task.
type Datagram = (Received, [u8; DATAGRAM_MAX]);

/// Longest datagram looked at: a Control packet is 24 bytes, 52 with the longest
/// authentication section.
const DATAGRAM_MAX: usize = 64;

struct Task {
    opener: Arc<dyn SocketOpener>,
    events: mpsc::UnboundedSender<BfdEvent>,
    sessions: BTreeMap<IpAddr, Running>,
    by_disc: HashMap<u32, IpAddr>,
    /// The readers of the receiving sockets, IPv4 then IPv6, running while a session of
    /// the family exists.
    receivers: [Option<tokio::task::JoinHandle<()>>; 2],
    datagrams: (mpsc::Sender<Datagram>, mpsc::Receiver<Datagram>),
    next_disc: u32,
}

impl Task {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        loop {
            let next = self
                .sessions
                .values()
                .map(|r| r.session.next_deadline())
                .min();
            tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::Set(specs)) => self.set(specs).await,
                    Some(Request::Status(reply)) => { let _ = reply.send(self.status()); }
                    None => break,
                },
                Some((got, buf)) = self.datagrams.1.recv() => self.received(got, &buf).await,
                _ = sleep_until(next), if next.is_some() => self.timers().await,
            }
        }
        let gone: Vec<IpAddr> = self.sessions.keys().copied().collect();
        for peer in gone {
            self.remove(peer).await;
        }
        for reader in self.receivers.iter_mut().filter_map(Option::take) {
            reader.abort();
        }
    }

    fn status(&self) -> Vec<SessionStatus> {
        let status = |r: &Running| SessionStatus {
            peer: r.spec.peer,
            state: r.session.state(),
            diag: r.session.diag(),
            remote_state: r.session.remote_state(),
            local_disc: r.session.local_disc(),
            remote_disc: r.session.remote_disc(),
        };
        self.sessions.values().map(status).collect()
    }

    async fn set(&mut self, specs: Vec<SessionSpec>) {
        let wanted: BTreeMap<IpAddr, SessionSpec> =
            specs.into_iter().map(|s| (s.peer, s)).collect();
        let gone: Vec<IpAddr> = self
            .sessions
            .iter()
            .filter(|(peer, r)| wanted.get(peer).is_none_or(|w| w.local != r.spec.local))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in gone {
            self.remove(peer).await;
        }
        for spec in wanted.into_values() {
            match self.sessions.get_mut(&spec.peer) {
                Some(r) => {
                    if spec.config.authentication != r.spec.config.authentication {
                        let seq = self.next_disc;
                        r.auth = spec
                            .config
                            .authentication
                            .as_ref()
                            .map(|a| Authenticator::new(a, seq));
                    }
                    r.session.set_config(spec.config.clone());
                    r.spec = spec;
                }
                None => self.add(spec),
            }
        }
        self.sync_receivers();
    }

    fn add(&mut self, spec: SessionSpec) {
        let disc = self.new_disc();
        let sender = match socket::sender(self.opener.as_ref(), spec.local, disc) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(peer = %spec.peer, error = %e, "BFD: cannot open the session's socket; the session is not run");
                return;
            }
        };
        tracing::info!(peer = %spec.peer, discriminator = disc, config = ?spec.config, "BFD session started");
        self.by_disc.insert(disc, spec.peer);
        let session = Session::new(spec.config.clone(), disc, Instant::now());
        // A random start for our sequence numbers (§6.8.1), from the discriminators' source.
        let auth =
            (spec.config.authentication.as_ref()).map(|a| Authenticator::new(a, self.new_disc()));
        self.sessions.insert(
            spec.peer,
            Running {
                session,
                spec,
                sender,
                auth,
            },
        );
    }

    async fn remove(&mut self, peer: IpAddr) {
        let Some(mut r) = self.sessions.remove(&peer) else {
            return;
        };
        self.by_disc.remove(&r.session.local_disc());
        // Tell the peer, so that it does not wait for its detection time (§6.8.16).
        let down = r.session.admin_down_packet();
        r.send(&down).await;
        tracing::info!(%peer, "BFD session removed");
    }

    fn new_disc(&mut self) -> u32 {
        loop {
            self.next_disc = self
                .next_disc
                .wrapping_mul(1_103_515_245)
                .wrapping_add(12_345);
            let d = self.next_disc;
            if d != 0 && !self.by_disc.contains_key(&d) {
                return d;
            }
        }
    }

    /// Opens the receiving socket of each family that has a session; closes the others.
    fn sync_receivers(&mut self) {
        for (i, v6) in [false, true].into_iter().enumerate() {
            let needed = self.sessions.keys().any(|p| p.is_ipv6() == v6);
            if !needed {
                if let Some(reader) = self.receivers[i].take() {
                    reader.abort();
                }
            } else if self.receivers[i].is_none() {
                let any = if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                match socket::receiver(self.opener.as_ref(), any) {
                    Ok(s) => {
                        self.receivers[i] = Some(tokio::spawn(read(s, self.datagrams.0.clone())))
                    }
                    Err(e) => {
                        tracing::error!(port = socket::CONTROL_PORT, error = %e, "BFD: cannot receive: its sessions will never come up")
                    }
                }
            }
        }
    }

    async fn received(&mut self, r: Received, buf: &[u8]) {
        let from = r.from.ip().to_canonical();
        if r.ttl != Some(TTL) {
            tracing::debug!(%from, ttl = ?r.ttl, "BFD packet with TTL other than 255 dropped (RFC 5881 §5)");
            return;
        }
        let bytes = &buf[..r.len.min(buf.len())];
        let (packet, section) = match ControlPacket::decode_authenticated(bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%from, error = %e, "BFD packet discarded");
                return;
            }
        };
        // §6.3: by our discriminator once the peer knows it, else by its address.
        let peer = match packet.your_disc {
            0 => from,
            d => match self.by_disc.get(&d) {
                Some(p) => *p,
                None => return,
            },
        };
        let Some(running) = self.sessions.get_mut(&peer).filter(|_| peer == from) else {
            tracing::debug!(%from, "BFD packet for no session of ours discarded");
            return;
        };
        if let Err(e) = running.authentic(bytes, &packet, section.as_ref()) {
            tracing::debug!(%from, error = %e, "BFD packet failed authentication, discarded");
            return;
        }
        if let Some(t) = running.session.receive(&packet, Instant::now()) {
            self.report(peer, t);
        }
        // A Final owed goes at once.
        self.timers().await;
    }

    async fn timers(&mut self) {
        let now = Instant::now();
        let mut changes = Vec::new();
        for (peer, r) in self.sessions.iter_mut() {
            if r.session.next_deadline() > now {
                continue;
            }
            let (packet, change) = r.session.on_timer(now);
            if let Some(p) = packet {
                r.send(&p).await;
            }
            changes.extend(change.map(|t| (*peer, t)));
        }
        for (peer, t) in changes {
            self.report(peer, t);
        }
    }

    fn report(&self, peer: IpAddr, t: Transition) {
        if t.to == State::Up {
            tracing::info!(%peer, from = %t.from, "BFD session up");
        } else {
            tracing::warn!(%peer, from = %t.from, to = %t.to, diagnostic = %t.diag, "BFD session state changed");
        }
        let _ = self.events.send(BfdEvent {
            peer,
            transition: t,
        });
    }
}

/// Reads a receiving socket until the task aborts it, handing datagrams over (a full
/// queue holds the reader back: the kernel's socket buffer absorbs a burst, then drops).
async fn read(socket: UdpSocket, to: mpsc::Sender<Datagram>) {
    loop {
        let mut buf = [0u8; DATAGRAM_MAX];
        match socket::receive(&socket, &mut buf).await {
            Ok(r) => {
                if to.send((r, buf)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "BFD: receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A start for discriminators that differs between runs, so that a restarted speaker's
/// packets are not taken for its previous incarnation's (§6.8.1 asks for uniqueness).
fn seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u32) ^ std::process::id().rotate_left(16)
}

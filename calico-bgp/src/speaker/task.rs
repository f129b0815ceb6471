//! The speaker's task: the I/O shell around the [`SpeakerState`] machine. It owns the
//! listener and the peering tasks, feeds the machine the API's commands, the peerings'
//! events and the stale-route deadlines, and carries out what the machine returns.
//!
//! It runs on a thread of its own (a single-threaded runtime driving only it), while the
//! listener and the peerings (their readers, decoding, and writers) run in the runtime the
//! speaker was created in. The RIB's work comes in bursts of hundreds of milliseconds (a
//! full table): there it neither holds up the peerings' I/O (their keepalives among it) nor
//! is held up by it. In the caller's runtime, a reader woken by a credit the speaker task
//! gave back was queued behind that task on the same worker (tokio runs a task woken by
//! the running one next, on that worker, and no other worker may take it over), so
//! decoding and applying a table mostly took turns on one core; apart, they overlap.

use std::collections::HashMap;
use std::net::SocketAddr;

use calico_core::dataplane::{BackendError, BgpSettings, ExportedRoutes, LearnedRoute, PeerStatus};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::listener::Listener;
use super::socket::SocketFactory;
use super::state::{Output, PeerStart, SpeakerState};
use super::SpeakerOptions;
use crate::bfd::{self, BfdEvent, BfdService, SessionSpec};
use crate::packet::notification::CeaseSubcode;
use crate::rib::PeerId;
use crate::session::io::{PeerCommand, PeerEvent, PeerHandle};

/// A request to the speaker's task.
pub(crate) enum Command {
    Configure(BgpSettings, oneshot::Sender<Result<(), BackendError>>),
    SetExports(ExportedRoutes, oneshot::Sender<()>),
    Learned(oneshot::Sender<Vec<LearnedRoute>>),
    Status(oneshot::Sender<Vec<PeerStatus>>),
    /// The listener accepted a connection.
    Accepted(TcpStream, SocketAddr),
    /// Close every session without a NOTIFICATION and end (handled by [`Task::run`]).
    StopForRestart(oneshot::Sender<()>),
}

type Events = mpsc::UnboundedReceiver<(PeerId, PeerEvent)>;
type BfdEvents = mpsc::UnboundedReceiver<BfdEvent>;

pub(crate) struct Task {
    state: SpeakerState,
    options: SpeakerOptions,
    sockets: SocketFactory,
    peers: HashMap<PeerId, PeerHandle>,
    events_tx: mpsc::UnboundedSender<(PeerId, PeerEvent)>,
    listener: Option<Listener>,
    /// The listener was handed to the speaker: never bind one.
    fixed_listener: bool,
    commands_tx: mpsc::WeakSender<Command>,
    changed: watch::Sender<u64>,
    bfd: BfdService,
    /// The runtime the speaker was created in: the listener and the peerings are spawned
    /// there, and their sockets registered with it.
    io: Handle,
}

impl Task {
    /// Starts the task on a thread of its own (called inside a tokio runtime, where the
    /// peerings are to run); returns where to send it commands. It ends when every sender
    /// is gone or after [`Command::StopForRestart`].
    pub(crate) fn spawn(
        options: SpeakerOptions,
        listener: Option<tokio::net::TcpListener>,
        changed: watch::Sender<u64>,
        (bfd, bfd_events): (BfdService, BfdEvents),
    ) -> std::io::Result<mpsc::Sender<Command>> {
        let (tx, rx) = mpsc::channel(64);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut task = Task {
            state: SpeakerState::new(options.clone()),
            sockets: SocketFactory::new(options.sockets.clone())
                .with_source(options.listen_address),
            options,
            peers: HashMap::new(),
            events_tx,
            listener: None,
            fixed_listener: listener.is_some(),
            commands_tx: tx.downgrade(),
            changed,
            bfd,
            io: Handle::current(),
        };
        if let Some(listener) = listener {
            task.serve(listener);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        std::thread::Builder::new()
            .name("bgp-speaker".into())
            .spawn(move || runtime.block_on(task.run(rx, events_rx, bfd_events)))?;
        Ok(tx)
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: Events,
        mut bfd_events: BfdEvents,
    ) {
        let restart = loop {
            let next = self.state.next_deadline();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::StopForRestart(reply)) => break Some(reply),
                    Some(c) => self.command(c),
                    None => break None,
                },
                Some((id, event)) = events.recv() => {
                    let outputs = self.state.peer_event(id, event, Instant::now());
                    self.carry_out(outputs);
                }
                Some(event) = bfd_events.recv() => self.bfd_event(event),
                _ = sleep_until(next), if next.is_some() => {
                    let outputs = self.state.stale_timers(Instant::now());
                    self.carry_out(outputs);
                }
            }
        };
        match restart {
            Some(reply) => {
                self.stop_for_restart().await;
                let _ = reply.send(());
            }
            None => self.shut_down().await,
        }
    }

    /// The speaker was dropped: close every session cleanly.
    async fn shut_down(mut self) {
        for peer in self.peers.values() {
            peer.send(PeerCommand::Stop(CeaseSubcode::AdministrativeShutdown));
        }
        if let Some(listener) = self.listener.take() {
            listener.close().await;
        }
    }

    /// Stopping for a graceful restart: close TCP without a NOTIFICATION, so that peers
    /// keep our routes until we are back.
    async fn stop_for_restart(mut self) {
        tracing::warn!(
            peers = self.peers.len(),
            established = self.state.established(),
            restart_time = ?self.options.graceful_restart.map(|g| g.restart_time),
            "stopping for a graceful restart: sessions closed without NOTIFICATION, peers keep our routes for our restart time"
        );
        let peers: Vec<PeerHandle> = self.peers.drain().map(|(_, p)| p).collect();
        for peer in &peers {
            peer.send(PeerCommand::StopForRestart);
        }
        for peer in peers {
            peer.join().await;
        }
        if let Some(listener) = self.listener.take() {
            listener.close().await;
        }
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Configure(settings, reply) => {
                let _ = reply.send(self.configure(settings));
            }
            Command::SetExports(exports, reply) => {
                let outputs = self.state.set_exports(exports);
                self.carry_out(outputs);
                let _ = reply.send(());
            }
            Command::Learned(reply) => {
                let _ = reply.send(self.state.learned_routes());
            }
            Command::Status(reply) => {
                let _ = reply.send(self.state.peer_status());
            }
            Command::Accepted(stream, from) => {
                let address = from.ip().to_canonical();
                let handle = self
                    .state
                    .peer_at(address)
                    .and_then(|id| self.peers.get(&id));
                match handle {
                    Some(peer) => peer.send(PeerCommand::Accepted(stream)),
                    None => {
                        tracing::info!(%address, "connection from an unconfigured address refused")
                    }
                }
            }
            // Taken by `run` before it gets here.
            Command::StopForRestart(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn configure(&mut self, settings: BgpSettings) -> Result<(), BackendError> {
        self.state.validate(&settings)?;
        let io = self.io.clone();
        let _io = io.enter();
        // The listener: bound once, rebound when the port changes (unless handed to us).
        if !self.fixed_listener {
            let want = SocketAddr::new(self.options.listen_address, settings.listen_port);
            if self.listener.as_ref().map(Listener::local) != Some(want) {
                let listener = self.sockets.listen(want).map_err(|e| {
                    BackendError::Unavailable(format!("cannot listen on {want}: {e}"))
                })?;
                self.serve(listener);
            }
        }
        if let Some(listener) = &mut self.listener {
            listener.sync_keys(&settings.peers)?;
            listener.sync_ttl(&settings.peers)?;
        }
        self.bfd
            .set_sessions(bfd_sessions(&settings, self.options.listen_address));
        let outputs = self.state.configure(settings);
        self.carry_out(outputs);
        Ok(())
    }

    /// A peering's BFD session went from Up to Down: its BGP session ends now (RFC 5882
    /// §4.3) rather than when the hold time runs out.
    fn bfd_event(&mut self, event: BfdEvent) {
        let t = event.transition;
        if t.from != bfd::State::Up || t.to == bfd::State::Up {
            return;
        }
        if t.remote == bfd::State::AdminDown {
            // The peer turned its BFD off: not a failure of the path (RFC 5882 §3.2).
            tracing::info!(peer = %event.peer, "BFD session administratively down at the peer; the BGP session stays");
            return;
        }
        let handle = self
            .state
            .peer_at(event.peer)
            .and_then(|id| self.peers.get(&id));
        if let Some(peer) = handle {
            tracing::warn!(peer = %event.peer, diagnostic = %t.diag, "BFD session down: ending the BGP session");
            let reason = format!("BFD session down: {}", t.diag);
            peer.send(PeerCommand::Reset(CeaseSubcode::BfdDown, reason));
        }
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let listener = Listener::serve(listener, self.commands_tx.clone(), Command::Accepted);
        if let Some(old) = self.listener.replace(listener) {
            old.abort();
        }
    }

    fn carry_out(&mut self, outputs: Vec<Output>) {
        let io = self.io.clone();
        let _io = io.enter();
        for output in outputs {
            match output {
                Output::StartPeer(PeerStart {
                    peer,
                    remote,
                    session,
                    password,
                    options,
                }) => {
                    let sockets = self
                        .sockets
                        .clone()
                        .with_md5_password(password)
                        .with_session(&options);
                    let handle = PeerHandle::spawn(
                        peer,
                        (session, self.state.rib().importer()),
                        remote,
                        sockets,
                        (self.events_tx.clone(), self.options.send_queue_limit),
                    );
                    self.peers.insert(peer, handle);
                }
                Output::StopPeer { peer, why } => {
                    if let Some(handle) = self.peers.remove(&peer) {
                        handle.send(PeerCommand::Stop(why));
                    }
                }
                Output::Send { peer, bytes } => {
                    if let Some(handle) = self.peers.get(&peer) {
                        handle.send(PeerCommand::Send(bytes));
                    }
                }
                Output::Notify => self.notify(),
            }
        }
    }
}

/// The BFD sessions the peerings of `settings` ask for, sent from `listen` when it is a
/// specific address of the peer's family.
fn bfd_sessions(settings: &BgpSettings, listen: std::net::IpAddr) -> Vec<SessionSpec> {
    let unspecified = |peer: std::net::IpAddr| match peer {
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    settings
        .peers
        .iter()
        .filter_map(|p| {
            let config = p.bfd.clone()?;
            let same_family = listen.is_ipv4() == p.address.is_ipv4();
            let local = if same_family && !listen.is_unspecified() {
                listen
            } else {
                unspecified(p.address)
            };
            Some(SessionSpec {
                peer: p.address,
                local,
                config,
            })
        })
        .collect()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

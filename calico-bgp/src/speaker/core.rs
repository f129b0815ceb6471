//! The task that owns the RIB and the peerings: it applies configuration, takes accepted
//! connections from the listener, feeds UPDATEs into the RIB and sends each peer what changes
//! for it.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use calico_core::dataplane::{
    BackendError, BgpSettings, LearnedRoute, PeerConfig, PeerState, PeerStatus,
};
use ipnet::IpNet;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::md5;
use super::socket::SocketFactory;
use super::{GracefulRestartOptions, SpeakerOptions};
use crate::packet::notification::CeaseSubcode;
use crate::packet::update::{end_of_rib, pack_announcements, pack_withdrawals};
use crate::packet::{AfiSafi, Context, Message, MpNextHop, PathAttributes, Update};
use crate::rib::hash::BuildRibHasher;
use crate::rib::{family_of, Change, Path, PeerId, PeerInfo, Rib, RibSettings, RouteAttrs};
use crate::session::io::{PeerCommand, PeerEvent, PeerHandle};
use crate::session::{GracefulRestart, Negotiated, PeerGracefulRestart, SessionConfig};

/// A request to the core task.
pub(crate) enum Command {
    Configure(BgpSettings, oneshot::Sender<Result<(), BackendError>>),
    SetExports(BTreeSet<IpNet>, oneshot::Sender<()>),
    Learned(oneshot::Sender<Vec<LearnedRoute>>),
    Status(oneshot::Sender<Vec<PeerStatus>>),
    Accepted(TcpStream, SocketAddr),
    /// Close every session without a NOTIFICATION and end (handled by [`Core::run`]).
    StopForRestart(oneshot::Sender<()>),
}

/// The listening socket and the task accepting on it.
struct Listener {
    local: SocketAddr,
    socket: Arc<tokio::net::TcpListener>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Stops accepting; the socket closes once the task is gone.
    async fn close(self) {
        self.task.abort();
        drop(self.socket);
        let _ = self.task.await;
    }
}

struct Peer {
    id: PeerId,
    config: PeerConfig,
    handle: PeerHandle,
    state: PeerState,
    last_error: Option<String>,
    session: Option<(Negotiated, SocketAddr)>,
    /// Routes kept across the peer's restart (RFC 4724).
    stale: Option<Stale>,
    /// The table dump was sent without End-of-RIB (a restarting speaker whose exports are
    /// not known yet): send it once they are.
    eor_owed: bool,
    /// Families of the session whose End-of-RIB the peer has not sent yet since the session
    /// came up; empty (with a session) once its initial table is complete.
    eor_awaited: Vec<AfiSafi>,
}

/// A peer's routes kept stale across its restart.
#[derive(Clone, Debug)]
struct Stale {
    /// Families with stale routes.
    families: Vec<AfiSafi>,
    /// Waiting for the session to come back (else for End-of-RIB).
    reconnecting: bool,
    /// When the routes still stale are removed.
    deadline: Instant,
    /// The latest `deadline` may ever be, set when the routes first became stale: a peer
    /// flapping again and again cannot keep them for ever.
    ceiling: Instant,
}

pub(crate) struct Core {
    options: SpeakerOptions,
    sockets: SocketFactory,
    settings: Option<BgpSettings>,
    rib: Rib,
    exports: BTreeSet<IpNet>,
    peers: HashMap<IpAddr, Peer>,
    ids: HashMap<PeerId, IpAddr>,
    next_id: u32,
    events_tx: mpsc::UnboundedSender<(PeerId, PeerEvent)>,
    listener: Option<Listener>,
    /// TCP MD5 passwords installed on the listener, by peer address.
    listener_keys: HashMap<IpAddr, String>,
    /// The listener was handed to the speaker: never bind one.
    fixed_listener: bool,
    commands_tx: mpsc::WeakSender<Command>,
    changed: watch::Sender<u64>,
    /// Exports were set at least once.
    exports_set: bool,
}

impl Core {
    pub(crate) fn spawn(
        options: SpeakerOptions,
        listener: Option<tokio::net::TcpListener>,
        changed: watch::Sender<u64>,
    ) -> mpsc::Sender<Command> {
        let (tx, rx) = mpsc::channel(64);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut core = Core {
            sockets: SocketFactory::new(options.sockets.clone())
                .with_source(options.listen_address),
            options,
            settings: None,
            rib: Rib::new(RibSettings {
                local_as: 0,
                router_id: [0, 0, 0, 0].into(),
                cluster_id: None,
            }),
            exports: BTreeSet::new(),
            peers: HashMap::new(),
            ids: HashMap::new(),
            next_id: 0,
            events_tx,
            listener: None,
            listener_keys: HashMap::new(),
            fixed_listener: listener.is_some(),
            commands_tx: tx.downgrade(),
            changed,
            exports_set: false,
        };
        if let Some(listener) = listener {
            core.serve(listener);
        }
        tokio::spawn(core.run(rx, events_rx));
        tx
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<(PeerId, PeerEvent)>,
    ) {
        let mut restart = None;
        loop {
            let next = self.next_stale_deadline();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::StopForRestart(reply)) => {
                        restart = Some(reply);
                        break;
                    }
                    Some(c) => self.command(c),
                    None => break,
                },
                Some((id, event)) = events.recv() => self.event(id, event),
                _ = sleep_until(next), if next.is_some() => self.stale_timers(),
            }
        }
        let Some(reply) = restart else {
            // The speaker was dropped: close every session cleanly.
            for peer in self.peers.values() {
                peer.handle
                    .send(PeerCommand::Stop(CeaseSubcode::AdministrativeShutdown));
            }
            if let Some(listener) = self.listener.take() {
                listener.close().await;
            }
            return;
        };
        // Stopping for a graceful restart: close TCP without a NOTIFICATION, so that peers
        // keep our routes until we are back.
        let established = self.peers.values().filter(|p| p.session.is_some()).count();
        tracing::warn!(
            peers = self.peers.len(),
            established,
            restart_time = ?self.options.graceful_restart.map(|g| g.restart_time),
            "stopping for a graceful restart: sessions closed without NOTIFICATION, peers keep our routes for our restart time"
        );
        let peers: Vec<Peer> = self.peers.drain().map(|(_, p)| p).collect();
        for peer in &peers {
            peer.handle.send(PeerCommand::StopForRestart);
        }
        for peer in peers {
            peer.handle.join().await;
        }
        if let Some(listener) = self.listener.take() {
            listener.close().await;
        }
        let _ = reply.send(());
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
                self.set_exports(exports);
                let _ = reply.send(());
            }
            Command::Learned(reply) => {
                let _ = reply.send(self.rib.learned_routes());
            }
            Command::Status(reply) => {
                let mut status: Vec<PeerStatus> = self
                    .peers
                    .values()
                    .map(|p| PeerStatus {
                        address: p.config.address,
                        state: p.state,
                        prefixes_received: self.rib.received(p.id),
                        end_of_rib_received: p.state == PeerState::Established
                            && p.session.is_some()
                            && p.eor_awaited.is_empty(),
                        last_error: p.last_error.clone(),
                    })
                    .collect();
                status.sort_by_key(|s| s.address);
                let _ = reply.send(status);
            }
            Command::Accepted(stream, from) => {
                let address = from.ip().to_canonical();
                match self.peers.get(&address) {
                    Some(peer) => peer.handle.send(PeerCommand::Accepted(stream)),
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

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let commands = self.commands_tx.clone();
        let socket = Arc::new(listener);
        let listener = socket.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, from)) => {
                        let Some(commands) = commands.upgrade() else {
                            return;
                        };
                        if commands
                            .send(Command::Accepted(stream, from))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tracing::info!(%local, "BGP listener ready");
        if let Some(old) = self.listener.replace(Listener {
            local,
            socket,
            task,
        }) {
            old.task.abort();
        }
        // A new socket holds no keys yet.
        self.listener_keys.clear();
    }

    /// Makes the listener's TCP MD5 keys those of `peers`: sets new and changed passwords,
    /// removes the keys of peers without one (or no longer configured).
    fn sync_listener_keys(&mut self, peers: &BTreeSet<PeerConfig>) -> Result<(), BackendError> {
        let Some(listener) = &self.listener else {
            return Ok(());
        };
        let fd = listener.socket.as_fd();
        let wanted: HashMap<IpAddr, &str> = peers
            .iter()
            .filter_map(|p| Some((p.address, p.password.as_deref()?)))
            .collect();
        let stale: Vec<IpAddr> = self
            .listener_keys
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        for peer in stale {
            md5::set_key(fd, peer, None)
                .map_err(|e| BackendError::Unavailable(format!("removing a listener key: {e}")))?;
            self.listener_keys.remove(&peer);
            tracing::info!(%peer, "TCP MD5 key removed from the listener");
        }
        for (peer, password) in wanted {
            if self.listener_keys.get(&peer).map(String::as_str) == Some(password) {
                continue;
            }
            match md5::set_key(fd, peer, Some(password)) {
                Ok(()) => {
                    self.listener_keys.insert(peer, password.to_string());
                    tracing::info!(%peer, "TCP MD5 key set on the listener");
                }
                Err(e @ md5::Md5Error::FamilyMismatch { .. }) => {
                    // An IPv6 peer cannot reach an IPv4 listener anyway; we connect to it.
                    tracing::warn!(error = %e, listener = %listener.local, "peer cannot connect to us; only outgoing connections are signed");
                }
                Err(e) => {
                    return Err(BackendError::Unavailable(format!(
                        "listener {}: {e}",
                        listener.local
                    )))
                }
            }
        }
        Ok(())
    }

    fn configure(&mut self, settings: BgpSettings) -> Result<(), BackendError> {
        if let Some(gr) = &self.options.graceful_restart {
            gr.validate()
                .map_err(|e| BackendError::Unsupported(e.to_string()))?;
        }
        for p in &settings.peers {
            if let Some(password) = &p.password {
                md5::validate(p.address, password)
                    .map_err(|e| BackendError::Unsupported(e.to_string()))?;
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(p) = settings.peers.iter().find(|p| !seen.insert(p.address)) {
            return Err(BackendError::Unsupported(format!(
                "peer {} is configured twice",
                p.address
            )));
        }
        // The listener: bound once, rebound when the port changes (unless handed to us).
        if !self.fixed_listener {
            let want = SocketAddr::new(self.options.listen_address, settings.listen_port);
            if self.listener.as_ref().map(|l| l.local) != Some(want) {
                let listener = self.sockets.listen(want).map_err(|e| {
                    BackendError::Unavailable(format!("cannot listen on {want}: {e}"))
                })?;
                self.serve(listener);
            }
        }
        self.sync_listener_keys(&settings.peers)?;
        let global_changed = self.settings.as_ref().is_none_or(|old| {
            (old.local_as, old.router_id, old.cluster_id)
                != (settings.local_as, settings.router_id, settings.cluster_id)
        });
        if global_changed {
            let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
            for a in addresses {
                self.stop_peer(a, CeaseSubcode::OtherConfigurationChange);
            }
            self.rib = Rib::new(RibSettings {
                local_as: settings.local_as.0,
                router_id: settings.router_id,
                cluster_id: settings.cluster_id,
            });
            self.rib.set_exports(self.exports.clone());
        }
        let wanted: HashMap<IpAddr, &PeerConfig> =
            settings.peers.iter().map(|p| (p.address, p)).collect();
        let existing: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in existing {
            match wanted.get(&address) {
                None => self.stop_peer(address, CeaseSubcode::PeerDeconfigured),
                Some(cfg) if **cfg != self.peers[&address].config => {
                    self.stop_peer(address, CeaseSubcode::OtherConfigurationChange)
                }
                Some(_) => {}
            }
        }
        self.settings = Some(settings.clone());
        for cfg in &settings.peers {
            if !self.peers.contains_key(&cfg.address) {
                self.start_peer(cfg.clone(), &settings);
            }
        }
        self.notify();
        Ok(())
    }

    fn start_peer(&mut self, config: PeerConfig, settings: &BgpSettings) {
        let id = PeerId(self.next_id);
        self.next_id += 1;
        let family = match config.address {
            IpAddr::V4(_) => AfiSafi::IPV4_UNICAST,
            IpAddr::V6(_) => AfiSafi::IPV6_UNICAST,
        };
        let session = SessionConfig {
            local_as: settings.local_as.0,
            remote_as: config.remote_as.0,
            router_id: settings.router_id,
            hold_time: config.hold_time,
            passive: config.passive,
            families: vec![family],
            graceful_restart: self.options.graceful_restart.map(|g| GracefulRestart {
                restart_time: u16::try_from(g.restart_time.as_secs().min(0x0fff)).unwrap_or(0x0fff),
                restarting: g.restarting,
            }),
            connect_retry_min: self.options.connect_retry_min,
            connect_retry_max: self.options.connect_retry_max,
        };
        let remote = SocketAddr::new(config.address, self.options.peer_port);
        tracing::info!(peer = %config.address, remote_as = config.remote_as.0, "starting peering");
        let sockets = self
            .sockets
            .clone()
            .with_md5_password(config.password.clone());
        let handle = PeerHandle::spawn(id, session, remote, sockets, self.events_tx.clone());
        self.ids.insert(id, config.address);
        self.peers.insert(
            config.address,
            Peer {
                id,
                config,
                handle,
                state: PeerState::Idle,
                last_error: None,
                session: None,
                stale: None,
                eor_owed: false,
                eor_awaited: Vec::new(),
            },
        );
    }

    fn stop_peer(&mut self, address: IpAddr, why: CeaseSubcode) {
        let Some(peer) = self.peers.remove(&address) else {
            return;
        };
        tracing::info!(peer = %address, reason = ?why, "stopping peering");
        peer.handle.send(PeerCommand::Stop(why));
        self.ids.remove(&peer.id);
        if peer.session.is_some() || peer.stale.is_some() {
            self.peer_gone(peer.id);
        }
    }

    fn gr_options(&self) -> Option<GracefulRestartOptions> {
        self.options.graceful_restart
    }

    /// The earliest time stale routes of some peer are to be removed.
    fn next_stale_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.stale.as_ref().map(|s| s.deadline))
            .min()
    }

    /// A peer that negotiated graceful restart went down without a NOTIFICATION: keep its
    /// routes of the families it listed, stale, for its restart time.
    fn peer_restarting(
        &mut self,
        id: PeerId,
        address: IpAddr,
        gr: &PeerGracefulRestart,
        why: &str,
    ) {
        let families = gr.retained_families();
        let (count, changes) = self.rib.peer_restarting(id, &families);
        if !changes.is_empty() {
            self.propagate(&changes, Some(id));
        }
        let eor_wait = self
            .gr_options()
            .map_or(Duration::ZERO, |o| o.stale_routes_time);
        let restart_time = Duration::from_secs(gr.restart_time.into());
        let Some(p) = self.peers.get_mut(&address) else {
            return;
        };
        if count == 0 {
            p.stale = None;
            self.rib.forget_peer(id);
            tracing::info!(peer = %address, reason = why, "peer restarting, no routes of it to keep");
            return;
        }
        let now = Instant::now();
        let ceiling = p
            .stale
            .as_ref()
            .map_or(now + restart_time + eor_wait, |s| s.ceiling);
        let deadline = (now + restart_time).min(ceiling);
        let kept: Vec<AfiSafi> = families
            .into_iter()
            .filter(|f| self.rib.stale(id, *f) > 0)
            .collect();
        tracing::warn!(
            peer = %address,
            reason = why,
            stale_routes = count,
            families = ?kept,
            "peer restarting (graceful restart): keeping {count} routes stale for up to {} s (its restart time)",
            deadline.saturating_duration_since(now).as_secs()
        );
        p.stale = Some(Stale {
            families: kept,
            reconnecting: true,
            deadline,
            ceiling,
        });
    }

    /// A peer whose routes are stale is back: drop those of families it did not keep its
    /// forwarding state for, wait for its End-of-RIB for the others.
    fn peer_returned(&mut self, id: PeerId, address: IpAddr, negotiated: &Negotiated) {
        let Some(stale) = self.peers.get_mut(&address).and_then(|p| p.stale.take()) else {
            return;
        };
        let mut changes = Vec::new();
        let mut kept = Vec::new();
        for family in stale.families {
            let preserved = negotiated
                .graceful_restart
                .as_ref()
                .is_some_and(|g| g.forwarding_preserved(family));
            if preserved {
                kept.push(family);
                continue;
            }
            let n = self.rib.stale(id, family);
            changes.extend(self.rib.sweep_stale(id, family));
            tracing::warn!(
                peer = %address,
                ?family,
                "peer back without its forwarding state preserved (no F bit): {n} stale routes removed"
            );
        }
        if !kept.is_empty() {
            let eor_wait = self
                .gr_options()
                .map_or(Duration::ZERO, |o| o.stale_routes_time);
            let now = Instant::now();
            let deadline = (now + eor_wait).min(stale.ceiling);
            let n: usize = kept.iter().map(|f| self.rib.stale(id, *f)).sum();
            tracing::info!(
                peer = %address,
                families = ?kept,
                "peer back after a restart: keeping {n} stale routes until its End-of-RIB (at most {} s)",
                deadline.saturating_duration_since(now).as_secs()
            );
            if let Some(p) = self.peers.get_mut(&address) {
                p.stale = Some(Stale {
                    families: kept,
                    reconnecting: false,
                    deadline,
                    ceiling: stale.ceiling,
                });
            }
        }
        if !changes.is_empty() {
            self.propagate(&changes, None);
            self.notify();
        }
    }

    /// The peer sent End-of-RIB for `family`: its routes of that family still stale go.
    fn end_of_rib_received(&mut self, id: PeerId, address: IpAddr, family: AfiSafi) -> Vec<Change> {
        let Some(p) = self.peers.get_mut(&address) else {
            return Vec::new();
        };
        let awaited = p.eor_awaited.len();
        p.eor_awaited.retain(|f| *f != family);
        let table_complete = awaited > 0 && p.eor_awaited.is_empty();
        // Whether stale routes of `family` wait for this End-of-RIB (and whether they were
        // the last stale family).
        let stale = p
            .stale
            .as_mut()
            .filter(|s| s.families.contains(&family))
            .map(|s| {
                s.families.retain(|f| *f != family);
                s.families.is_empty()
            });
        if stale == Some(true) {
            p.stale = None;
        }
        if table_complete {
            // The peer's initial table is complete: status readers may be waiting for it.
            tracing::debug!(peer = %address, "initial table complete (End-of-RIB for every family)");
            self.notify();
        }
        if stale.is_none() {
            tracing::debug!(peer = %address, ?family, "End-of-RIB received");
            return Vec::new();
        }
        let n = self.rib.stale(id, family);
        tracing::info!(peer = %address, ?family, "End-of-RIB received after the peer's restart: {n} routes still stale removed");
        self.rib.sweep_stale(id, family)
    }

    /// Removes the stale routes whose time is up.
    fn stale_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<(IpAddr, PeerId, Stale)> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.stale.as_ref().is_some_and(|s| s.deadline <= now))
            .filter_map(|(a, p)| Some((*a, p.id, p.stale.take()?)))
            .collect();
        for (address, id, stale) in due {
            let n: usize = stale.families.iter().map(|f| self.rib.stale(id, *f)).sum();
            if stale.reconnecting {
                tracing::warn!(peer = %address, "peer did not come back within its restart time: {n} stale routes removed");
                self.peer_gone(id);
            } else {
                tracing::warn!(peer = %address, families = ?stale.families, "no End-of-RIB from the peer in time after its restart: {n} stale routes removed");
                let mut changes = Vec::new();
                for f in &stale.families {
                    changes.extend(self.rib.sweep_stale(id, *f));
                }
                if !changes.is_empty() {
                    self.propagate(&changes, None);
                }
            }
            self.notify();
        }
    }

    fn peer_gone(&mut self, id: PeerId) {
        let changes = self.rib.peer_down(id);
        self.propagate(&changes, Some(id));
        self.rib.forget_peer(id);
        if !changes.is_empty() {
            self.notify();
        }
    }

    fn event(&mut self, id: PeerId, event: PeerEvent) {
        let Some(address) = self.ids.get(&id).copied() else {
            return; // a peering that was stopped
        };
        match event {
            PeerEvent::State { state, last_error } => {
                if let Some(p) = self.peers.get_mut(&address) {
                    p.state = state;
                    p.last_error = last_error;
                }
                self.notify();
            }
            PeerEvent::Up { negotiated, local } => {
                let Some(p) = self.peers.get_mut(&address) else {
                    return;
                };
                p.session = Some((negotiated.clone(), local));
                p.eor_awaited = negotiated.families.clone();
                let local_as = self.rib.settings().local_as;
                let info = PeerInfo {
                    address,
                    remote_as: negotiated.remote_as,
                    router_id: negotiated.remote_id,
                    ebgp: negotiated.remote_as != local_as,
                    rr_client: p.config.route_reflector_client,
                    local_address: local.ip().to_canonical(),
                    families: negotiated.families.clone(),
                };
                self.rib.peer_up(id, info);
                self.peer_returned(id, address, &negotiated);
                self.send_table(id, &negotiated.families);
            }
            PeerEvent::Down(down) => {
                let Some(p) = self.peers.get_mut(&address) else {
                    return;
                };
                let negotiated = p.session.take().map(|(n, _)| n);
                // The state report follows; never show Established without a session.
                p.state = PeerState::Active;
                p.last_error = Some(down.reason.clone());
                p.eor_owed = false;
                p.eor_awaited.clear();
                let gr = negotiated
                    .and_then(|n| n.graceful_restart)
                    .filter(|g| down.graceful && !g.families.is_empty());
                match gr {
                    Some(gr) => self.peer_restarting(id, address, &gr, &down.reason),
                    None => {
                        p.stale = None;
                        self.peer_gone(id);
                    }
                }
            }
            PeerEvent::Updates(updates) => {
                let mut changes = Vec::new();
                let mut several = updates.len() > 1;
                for update in updates {
                    let eor = update.end_of_rib_family();
                    changes.extend(self.rib.apply_owned(id, update));
                    if let Some(family) = eor {
                        let swept = self.end_of_rib_received(id, address, family);
                        several |= !swept.is_empty();
                        changes.extend(swept);
                    }
                }
                if several {
                    changes = merge_changes(changes);
                }
                if !changes.is_empty() {
                    self.propagate(&changes, None);
                    self.notify();
                }
            }
            PeerEvent::Refresh(family) => self.send_table(id, &[family]),
        }
    }

    fn set_exports(&mut self, exports: BTreeSet<IpNet>) {
        self.exports_set = true;
        self.exports = exports.clone();
        let (added, removed) = self.rib.set_exports(exports);
        // What peers had for a prefix before the change: our own route for removed
        // prefixes, the learned best path for added ones.
        let mut changes: Vec<(IpNet, Option<Old>, Now)> = Vec::new();
        for p in added {
            let learned = self.rib.best(&p).first().cloned();
            changes.push((p, Some(Old::Learned(learned)), Now::Lookup));
        }
        for p in removed {
            changes.push((p, Some(Old::Local), Now::Lookup));
        }
        self.advertise(&changes, None);
        // A restarting speaker held its End-of-RIB back until its routes were known.
        let owed: Vec<(PeerId, Vec<AfiSafi>)> = self
            .peers
            .values_mut()
            .filter_map(|p| {
                std::mem::take(&mut p.eor_owed)
                    .then(|| Some((p.id, p.session.as_ref()?.0.families.clone())))
                    .flatten()
            })
            .collect();
        for (id, families) in owed {
            let batch = Batch {
                end_of_rib: families,
                ..Batch::default()
            };
            self.send_batch(id, batch, true);
        }
    }

    fn propagate(&mut self, changes: &[Change], except: Option<PeerId>) {
        let exports = self.rib.exports();
        let changes: Vec<(IpNet, Option<Old>, Now)> = changes
            .iter()
            .filter(|c| c.best)
            .map(|c| {
                if exports.contains(&c.prefix) {
                    // Our own route is advertised, whatever was learned.
                    return (c.prefix, None, Now::Lookup);
                }
                let old = Some(Old::Learned(c.old_best.clone()));
                (c.prefix, old, Now::Learned(c.new_best.clone()))
            })
            .collect();
        self.advertise(&changes, except);
    }

    /// Sends every established peer (but `except`) what changed for it among `changes`
    /// (prefix, what was advertised before: `None` means nothing changed for anyone).
    fn advertise(&mut self, changes: &[(IpNet, Option<Old>, Now)], except: Option<PeerId>) {
        if changes.is_empty() {
            return;
        }
        // Established peers only: a restarting peer is known to the RIB (its stale routes
        // are) but has no session to send on.
        let targets: Vec<PeerId> = self
            .rib
            .peers()
            .ids()
            .filter(|id| Some(*id) != except)
            .filter(|id| {
                self.ids
                    .get(id)
                    .and_then(|a| self.peers.get(a))
                    .is_some_and(|p| p.session.is_some())
            })
            .collect();
        for to in targets {
            let Some(mut exporter) = self.rib.exporter(to) else {
                continue;
            };
            let mut batch = Batch::default();
            for (prefix, old, now) in changes {
                let Some(old) = old else { continue };
                let before = match old {
                    Old::Local => exporter.local_route_for(prefix),
                    Old::Learned(path) => exporter.route_with(prefix, path.as_ref()),
                };
                let now = match now {
                    Now::Lookup => exporter.route(prefix),
                    Now::Learned(path) => exporter.route_with(prefix, path.as_ref()),
                };
                match (before, now) {
                    (Some(_), None) => batch.withdraw(*prefix),
                    (before, Some(now)) if before.as_deref() != Some(&*now) => {
                        batch.announce(*prefix, now)
                    }
                    _ => {}
                }
            }
            drop(exporter);
            self.send_batch(to, batch, false);
        }
    }

    /// Sends a peer its whole Adj-RIB-Out for `families`, then End-of-RIB (held back while
    /// a restarting speaker's exports are not known yet).
    fn send_table(&mut self, to: PeerId, families: &[AfiSafi]) {
        let Some(mut exporter) = self.rib.exporter(to) else {
            return;
        };
        let mut batch = Batch::default();
        let candidates: Vec<IpNet> = exporter.candidates().collect();
        for prefix in candidates {
            if !families.contains(&family_of(&prefix)) {
                continue;
            }
            if let Some(attrs) = exporter.route(&prefix) {
                batch.announce(prefix, attrs);
            }
        }
        drop(exporter);
        let restarting = self.gr_options().is_some_and(|g| g.restarting);
        if restarting && !self.exports_set {
            if let Some(p) = self.ids.get(&to).and_then(|a| self.peers.get_mut(a)) {
                p.eor_owed = true;
            }
        } else {
            batch.end_of_rib = families.to_vec();
        }
        self.send_batch(to, batch, true);
    }

    fn send_batch(&self, to: PeerId, batch: Batch, always: bool) {
        if batch.is_empty() && !always {
            return;
        }
        let Some(address) = self.ids.get(&to) else {
            return;
        };
        let Some(peer) = self.peers.get(address) else {
            return;
        };
        let Some((negotiated, _)) = &peer.session else {
            return;
        };
        let ctx = Context {
            four_octet_as: negotiated.four_octet_as,
        };
        let mut bytes = Vec::new();
        let mut encode = |u: Update| {
            if let Err(e) = Message::Update(u).encode_into(&ctx, &mut bytes) {
                tracing::error!(peer = %address, error = %e, "cannot encode UPDATE; prefixes not sent");
            }
        };
        for prefixes in [&batch.withdraw_v4, &batch.withdraw_v6] {
            for u in pack_withdrawals(prefixes) {
                encode(u);
            }
        }
        for (attrs, prefixes) in batch.announce.into_values() {
            let (mut v4, mut v6) = (Vec::new(), Vec::new());
            for p in prefixes {
                match p {
                    IpNet::V4(_) => v4.push(p),
                    IpNet::V6(_) => v6.push(p),
                }
            }
            if !v4.is_empty() {
                let mut path = attrs.path.clone();
                match attrs.next_hop {
                    IpAddr::V4(nh) => {
                        path.next_hop = Some(nh);
                        pack(&path, None, &v4, &mut encode);
                    }
                    IpAddr::V6(_) => pack(&path, Some(mp_next_hop(&attrs)), &v4, &mut encode),
                }
            }
            if !v6.is_empty() {
                pack(&attrs.path, Some(mp_next_hop(&attrs)), &v6, &mut encode);
            }
        }
        for family in batch.end_of_rib {
            encode(end_of_rib(family));
        }
        if !bytes.is_empty() {
            peer.handle.send(PeerCommand::Send(bytes));
        }
    }
}

/// Merges repeated changes of one prefix (several UPDATEs in one batch): the first one's
/// previous best path is what peers had.
fn merge_changes(changes: Vec<Change>) -> Vec<Change> {
    let mut at: HashMap<IpNet, usize, BuildRibHasher> = HashMap::default();
    let mut merged: Vec<Change> = Vec::with_capacity(changes.len());
    for c in changes {
        match at.get(&c.prefix) {
            Some(&i) => {
                merged[i].best |= c.best;
                merged[i].new_best = c.new_best;
            }
            None => {
                at.insert(c.prefix, merged.len());
                merged.push(c);
            }
        }
    }
    merged
}

fn mp_next_hop(attrs: &RouteAttrs) -> MpNextHop {
    MpNextHop {
        global: attrs.next_hop,
        link_local: attrs.link_local,
    }
}

fn pack(
    path: &PathAttributes,
    next_hop: Option<MpNextHop>,
    prefixes: &[IpNet],
    encode: &mut impl FnMut(Update),
) {
    match pack_announcements(path, next_hop, prefixes) {
        Ok(updates) => updates.into_iter().for_each(encode),
        Err(e) => tracing::error!(error = %e, "cannot pack announcements; prefixes not sent"),
    }
}

/// What a peer was sent for a prefix before a change.
#[derive(Clone, Debug)]
pub(crate) enum Old {
    /// Our own route.
    Local,
    /// The learned best path (if any) as it was.
    Learned(Option<Path>),
}

/// What a peer is to be sent for a prefix after a change.
#[derive(Clone, Debug)]
pub(crate) enum Now {
    /// Look it up (exports and Loc-RIB).
    Lookup,
    /// The learned best path (no local export of the prefix).
    Learned(Option<Path>),
}

#[derive(Default)]
struct Batch {
    withdraw_v4: Vec<IpNet>,
    withdraw_v6: Vec<IpNet>,
    announce: HashMap<usize, (Arc<RouteAttrs>, Vec<IpNet>)>,
    end_of_rib: Vec<AfiSafi>,
}

impl Batch {
    fn withdraw(&mut self, prefix: IpNet) {
        match prefix {
            IpNet::V4(_) => self.withdraw_v4.push(prefix),
            IpNet::V6(_) => self.withdraw_v6.push(prefix),
        }
    }

    fn announce(&mut self, prefix: IpNet, attrs: Arc<RouteAttrs>) {
        self.announce
            .entry(Arc::as_ptr(&attrs) as usize)
            .or_insert_with(|| (attrs, Vec::new()))
            .1
            .push(prefix);
    }

    fn is_empty(&self) -> bool {
        self.withdraw_v4.is_empty()
            && self.withdraw_v6.is_empty()
            && self.announce.is_empty()
            && self.end_of_rib.is_empty()
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

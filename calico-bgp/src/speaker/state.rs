//! The speaker as a pure state machine: configured peers, the RIB, our exports, graceful
//! restart bookkeeping and outbound batching. It takes an input (a configuration or export
//! change, a peering's event, the passing of time) and returns what is to be done as a list
//! of [`Output`]s; it opens no socket, spawns no task and reads no clock (the current time
//! is an argument), so that recorded scenarios can drive it (`tests/speaker_scenarios.rs`).
//!
//! The speaker's task (`speaker/task.rs`) around it carries the outputs out.

mod sending;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use calico_core::dataplane::{
    BackendError, BgpSettings, ExportedRoutes, LearnedRoute, PeerConfig, PeerState, PeerStatus,
};
use ipnet::IpNet;
use tokio::time::Instant;

use super::add_path::AddPathOut;
use super::backlog::{self, Backlog};
use super::groups;
use super::outbound::{deltas_of, merge_changes, sources_of, Batch, Delta, Now, Old};
use super::peers::Peers;
use super::refilter::{self, Export, Soft};
use super::restart::{self, Kept};
use super::settings;
use super::SpeakerOptions;
use crate::packet::notification::CeaseSubcode;
use crate::packet::{AddPathFamilies, AddPathFamily, AfiSafi};
use crate::rib::{Change, InboundBatch, PeerId, PeerInfo, Rib, RibSettings};
use crate::session::io::{PeerEvent, SharedBytes};
use crate::session::{GracefulRestart, Negotiated, PeerGracefulRestart, SessionConfig};

/// Something the speaker's task is to do.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Start a peering task.
    StartPeer(PeerStart),
    /// Stop a peering task, closing its session with a Cease of this subcode.
    StopPeer {
        /// The peering.
        peer: PeerId,
        /// The Cease subcode.
        why: CeaseSubcode,
    },
    /// Send encoded UPDATE messages on a peer's established session.
    Send {
        /// The peering.
        peer: PeerId,
        /// The messages, encoded for the session; the same allocation for every peer of
        /// an update group.
        bytes: SharedBytes,
    },
    /// Tell [`BgpBackend::subscribe`](calico_core::dataplane::BgpBackend::subscribe) waiters that
    /// learned routes or peer status changed.
    Notify,
}

/// A peering to start.
#[derive(PartialEq, Eq)]
pub struct PeerStart {
    /// Its id (events of its task are to carry it).
    pub peer: PeerId,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// The session's configuration.
    pub session: SessionConfig,
    /// The TCP MD5 password of its connections.
    pub password: Option<String>,
    /// Its socket options: source address and GTSM.
    pub options: calico_core::dataplane::SessionOptions,
}

impl std::fmt::Debug for PeerStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password itself: this ends up in logs.
        f.debug_struct("PeerStart")
            .field("peer", &self.peer)
            .field("remote", &self.remote)
            .field("session", &self.session)
            .field("password", &self.password.as_ref().map(|_| "<password>"))
            .field("options", &self.options)
            .finish()
    }
}

/// The speaker's state (see the [module docs](self)).
#[derive(Debug)]
pub struct SpeakerState {
    options: SpeakerOptions,
    settings: Option<BgpSettings>,
    rib: Rib,
    exports: ExportedRoutes,
    peers: Peers,
    /// Exports were set at least once.
    exports_set: bool,
}

impl SpeakerState {
    /// A speaker with no configuration yet.
    pub fn new(options: SpeakerOptions) -> SpeakerState {
        SpeakerState {
            options,
            settings: None,
            rib: Rib::new(RibSettings {
                local_as: 0,
                router_id: [0, 0, 0, 0].into(),
                cluster_id: None,
            }),
            exports: ExportedRoutes::new(),
            peers: Peers::default(),
            exports_set: false,
        }
    }

    /// The RIB.
    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// The peering with the peer at `address`, if it is configured.
    pub fn peer_at(&self, address: IpAddr) -> Option<PeerId> {
        self.peers.at(address).map(|p| p.id)
    }

    /// Every configured peering, by address.
    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.peers.iter().map(|p| p.id).collect()
    }

    /// How many peers have an established session.
    pub fn established(&self) -> usize {
        self.peers.iter().filter(|p| p.session.is_some()).count()
    }

    /// The learned routes (in no particular order).
    pub fn learned_routes(&self) -> Vec<LearnedRoute> {
        self.rib.learned_routes()
    }

    /// The status of every configured peer, by address.
    pub fn peer_status(&self) -> Vec<PeerStatus> {
        self.peers.status(&self.rib)
    }

    /// When [`SpeakerState::stale_timers`] is next due, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        restart::next_deadline(&self.peers)
    }

    /// Checks settings before [`SpeakerState::configure`]: graceful restart options, TCP
    /// MD5 passwords, no peer twice.
    pub fn validate(&self, settings: &BgpSettings) -> Result<(), BackendError> {
        settings::validate(&self.options, settings)
    }

    /// Applies settings that passed [`SpeakerState::validate`]: a change of our AS, router
    /// id or cluster id restarts every peering; peerings deconfigured or changed stop, new
    /// ones start.
    pub fn configure(&mut self, settings: BgpSettings) -> Vec<Output> {
        let mut out = Vec::new();
        let global_changed = self.settings.as_ref().is_none_or(|old| {
            (old.local_as, old.router_id, old.cluster_id)
                != (settings.local_as, settings.router_id, settings.cluster_id)
        });
        if global_changed {
            for a in self.peers.addresses() {
                self.stop_peer(a, CeaseSubcode::OtherConfigurationChange, &mut out);
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
        // A session whose filters change follows them in place when it can (see
        // `refilter`), else starts again.
        let refilter =
            |a: IpAddr| self.rib.policy().peer_filters(a) != settings.policy.peer_filters(a);
        let refiltered: Vec<IpAddr> = self
            .peers
            .addresses()
            .into_iter()
            .filter(|a| refilter(*a))
            .collect();
        // What the peerings whose export rules change had, once per update group.
        let exporting: Vec<PeerId> = refiltered
            .iter()
            .filter_map(|a| self.peers.at(*a))
            .filter(|p| {
                refilter::changed(self.rib.policy(), &settings.policy, p.config.address).export
            })
            .map(|p| p.id)
            .collect();
        let had = refilter::advertised_by_group(&self.rib, &self.peers, &exporting);
        let mut soft: Vec<Soft> = refiltered
            .iter()
            .filter_map(|a| refilter::plan(&self.rib, self.peers.at(*a)?, &settings.policy, &had))
            .collect();
        let refiltered: Vec<IpAddr> = refiltered
            .into_iter()
            .filter(|a| !soft.iter().any(|s| s.address == *a))
            .collect();
        for address in self.peers.addresses() {
            let why = match (wanted.get(&address), self.peers.at(address)) {
                (None, _) => CeaseSubcode::PeerDeconfigured,
                (Some(cfg), Some(p)) if !settings::same_session(cfg, &p.config) => {
                    CeaseSubcode::OtherConfigurationChange
                }
                (Some(_), Some(_)) if refiltered.contains(&address) => {
                    CeaseSubcode::OtherConfigurationChange
                }
                (Some(cfg), Some(_)) => {
                    // Only BFD changed: the BFD service follows, the session stays.
                    if let Some(p) = self.peers.at_mut(address) {
                        p.config = (*cfg).clone();
                    }
                    continue;
                }
                _ => continue,
            };
            self.stop_peer(address, why, &mut out);
        }
        let retag = self.rib.policy().communities != settings.policy.communities;
        self.rib.set_policy(settings.policy.clone());
        // Only for peerings that stayed (not stopped for another change).
        soft.retain(|s| self.peers.at(s.address).is_some_and(|p| p.id == s.id));
        self.refilter(soft, &mut out);
        if retag {
            // New communities: every established peer is sent its table again (each route
            // replaces the one it had), once per update group.
            let established: Vec<PeerId> = self
                .peers
                .iter_mut()
                .filter(|p| p.session_families().is_some())
                .map(|p| p.id)
                .collect();
            self.send_tables(&established, &mut out);
        }
        for cfg in &settings.peers {
            if self.peers.at(cfg.address).is_none() {
                self.start_peer(cfg.clone(), &settings, &mut out);
            }
        }
        self.settings = Some(settings);
        out.push(Output::Notify);
        out
    }

    /// Applies [`Soft`] refilters once the new policy is in the RIB: the tables of peers
    /// whose export rules changed are computed and encoded once per update group of the
    /// new policy whose members had the same (see `refilter`); then the ROUTE-REFRESH
    /// requests of those whose import rules changed.
    fn refilter(&mut self, soft: Vec<Soft>, out: &mut Vec<Output>) {
        for s in &soft {
            tracing::info!(peer = %s.address, "filters changed: following them without a new session");
        }
        let exports: HashMap<PeerId, &Export> = soft
            .iter()
            .filter_map(|s| Some((s.id, s.export.as_ref()?)))
            .collect();
        let ids: Vec<PeerId> = soft
            .iter()
            .filter(|s| s.export.is_some())
            .map(|s| s.id)
            .collect();
        for group in refilter::table_groups(&self.rib, &self.peers, &ids) {
            // Within a group, those that had the same (one shared list) and the same families.
            let mut alike: Vec<(&Export, Vec<PeerId>)> = Vec::new();
            for id in group.members {
                let export = exports[&id];
                let same = |e: &&Export| std::sync::Arc::ptr_eq(&e.1, &export.1) && e.0 == export.0;
                match alike.iter_mut().find(|(e, _)| same(e)) {
                    Some((_, members)) => members.push(id),
                    None => alike.push((export, vec![id])),
                }
            }
            for ((families, had), members) in alike {
                if let Some(mut exporter) = self.rib.exporter(members[0]) {
                    let batch = refilter::readvertise(&mut exporter, families, had);
                    self.send_batch_to(&members, batch, false, out);
                }
            }
        }
        for s in soft {
            if let Some(bytes) = s.refresh {
                out.push(Output::Send {
                    peer: s.id,
                    bytes: bytes.into(),
                });
            }
        }
    }

    /// Sets the routes we originate (prefixes truncated to their network).
    pub fn set_exports(&mut self, exports: ExportedRoutes) -> Vec<Output> {
        let mut out = Vec::new();
        self.exports_set = true;
        self.exports = exports.clone();
        let (added, removed) = self.rib.set_exports(exports);
        // What peers had for a prefix before the change: our own route for removed
        // prefixes, the learned best path for added ones.
        let mut deltas: Vec<Delta> = Vec::new();
        for p in added {
            let learned = self.rib.best(&p).first().cloned();
            deltas.push((p, Some(Old::Learned(learned)), Now::Lookup));
        }
        for p in removed {
            deltas.push((p, Some(Old::Local), Now::Lookup));
        }
        let touched: Vec<IpNet> = deltas.iter().map(|d| d.0).collect();
        self.advertise(&deltas, &touched, None, &mut out);
        // A restarting speaker held its End-of-RIB back until its routes were known.
        let owed: Vec<(PeerId, Vec<AfiSafi>)> = self
            .peers
            .iter_mut()
            .filter_map(|p| {
                let owed = std::mem::take(&mut p.eor_owed);
                owed.then(|| Some((p.id, p.session_families()?.to_vec())))
                    .flatten()
            })
            .collect();
        for (id, families) in owed {
            self.send_batch(id, Batch::end_of_rib(families), true, &mut out);
        }
        out
    }

    /// Handles an event of peering `id` at time `now`.
    pub fn peer_event(&mut self, id: PeerId, event: PeerEvent, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(address) = self.peers.address_of(id) else {
            return out; // a peering that was stopped
        };
        match event {
            PeerEvent::State { state, last_error } => {
                if let Some(p) = self.peers.at_mut(address) {
                    p.state = state;
                    p.last_error = last_error;
                }
                out.push(Output::Notify);
            }
            PeerEvent::Up {
                negotiated,
                local,
                interface,
            } => {
                let end = (local, interface);
                self.peer_up((id, address), negotiated, end, now, &mut out);
            }
            PeerEvent::Down(down) => {
                let Some(p) = self.peers.at_mut(address) else {
                    return out;
                };
                let negotiated = p.session.take().map(|(n, _)| n);
                if negotiated.is_some() {
                    *p.counters.flaps.get_or_insert(0) += 1;
                    p.counters.established_since = None;
                }
                // The state report follows; never show Established without a session.
                p.state = PeerState::Active;
                p.last_error = Some(down.reason.clone());
                p.eor_owed = false;
                p.eor_awaited.clear();
                p.add_path_out = None;
                p.backlog = None;
                let gr = negotiated
                    .and_then(|n| n.graceful_restart)
                    .filter(|g| down.graceful && !g.families.is_empty());
                match gr {
                    Some(gr) => {
                        self.peer_restarting((id, address), &gr, &down.reason, now, &mut out)
                    }
                    None => {
                        p.stale = None;
                        self.peer_gone(id, &mut out);
                    }
                }
            }
            PeerEvent::Updates(updates) => self.updates(id, address, updates, &mut out),
            PeerEvent::Refresh(family) => self.send_table(id, &[family], &mut out),
            PeerEvent::Stalled => {
                if let Some(p) = self.peers.at_mut(address).filter(|p| p.session.is_some()) {
                    tracing::debug!(peer = %address, "send queue stalled: changes noted until it drains");
                    p.backlog.get_or_insert_with(Backlog::default);
                }
            }
            PeerEvent::Drained => self.drained(id, &mut out),
            // Dropped here, after the UPDATEs it followed were applied: the peer's reader
            // may read on.
            PeerEvent::Credit(_) => {}
        }
        out
    }

    /// A stalled peer's send queue drained: it is sent the current state of what changed
    /// meanwhile (see `backlog.rs`).
    fn drained(&mut self, id: PeerId, out: &mut Vec<Output>) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let families = peer.session_families().map(<[AfiSafi]>::to_vec);
        let (Some(backlog), Some(families)) = (peer.backlog.take(), families) else {
            return;
        };
        let Some(mut exporter) = self.rib.exporter(id) else {
            return;
        };
        tracing::debug!(peer = %peer.config.address, prefixes = backlog.len(), "send queue drained: catching up");
        let add_path = peer.add_path_out.as_mut();
        let several = add_path
            .as_ref()
            .map_or(Default::default(), |a| a.families());
        let (multi, single): (Vec<AfiSafi>, Vec<AfiSafi>) =
            families.iter().partition(|f| several.contains(**f));
        let mut batch = backlog::catch_up(&mut exporter, &backlog.prefixes(&single));
        if let Some(add_path) = add_path {
            batch.merge(add_path.update(&self.rib, &mut exporter, backlog.prefixes(&multi)));
        }
        self.send_batch(id, batch, false, out);
    }

    /// Removes the stale routes whose time is up at `now`.
    pub fn stale_timers(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for (address, id, stale) in restart::take_due(&mut self.peers, now) {
            let n: usize = stale.families.iter().map(|f| self.rib.stale(id, *f)).sum();
            if stale.reconnecting {
                tracing::warn!(peer = %address, "peer did not come back within its restart time: {n} stale routes removed");
                self.peer_gone(id, &mut out);
            } else {
                tracing::warn!(peer = %address, families = ?stale.families, "no End-of-RIB from the peer in time after its restart: {n} stale routes removed");
                let mut changes = Vec::new();
                for f in &stale.families {
                    changes.extend(self.rib.sweep_stale(id, *f));
                }
                if !changes.is_empty() {
                    self.propagate(&changes, None, &mut out);
                }
            }
            out.push(Output::Notify);
        }
        out
    }

    fn stale_routes_time(&self) -> Duration {
        self.options
            .graceful_restart
            .map_or(Duration::ZERO, |o| o.stale_routes_time)
    }

    fn start_peer(&mut self, config: PeerConfig, settings: &BgpSettings, out: &mut Vec<Output>) {
        let family = match config.address {
            IpAddr::V4(_) => AfiSafi::IPV4_UNICAST,
            IpAddr::V6(_) => AfiSafi::IPV6_UNICAST,
        };
        let session = SessionConfig {
            local_as: settings.local_as.0,
            remote_as: config.remote_as.0,
            router_id: settings.router_id,
            hold_time: config.hold_time,
            keepalive: config.session.keepalive_time,
            passive: config.passive,
            families: vec![family],
            add_path: if config.add_path.is_on() {
                vec![AddPathFamily {
                    family,
                    receive: config.add_path.receive,
                    send: config.add_path.send,
                }]
            } else {
                Vec::new()
            },
            graceful_restart: self.options.graceful_restart.map(|g| GracefulRestart {
                restart_time: config.session.restart_time.unwrap_or(
                    u16::try_from(g.restart_time.as_secs().min(0x0fff)).unwrap_or(0x0fff),
                ),
                restarting: g.restarting,
            }),
            connect_retry_min: self.options.connect_retry_min,
            connect_retry_max: self.options.connect_retry_max,
        };
        let remote = SocketAddr::new(config.address, self.options.peer_port);
        tracing::info!(peer = %config.address, remote_as = config.remote_as.0, "starting peering");
        let password = config.password.clone();
        let options = config.session.clone();
        let peer = self.peers.add(config);
        out.push(Output::StartPeer(PeerStart {
            peer,
            remote,
            session,
            password,
            options,
        }));
    }

    fn stop_peer(&mut self, address: IpAddr, why: CeaseSubcode, out: &mut Vec<Output>) {
        let Some(peer) = self.peers.remove(address) else {
            return;
        };
        tracing::info!(peer = %address, reason = ?why, "stopping peering");
        out.push(Output::StopPeer { peer: peer.id, why });
        if peer.session.is_some() || peer.stale.is_some() {
            self.peer_gone(peer.id, out);
        }
    }

    fn peer_up(
        &mut self,
        (id, address): (PeerId, IpAddr),
        negotiated: Negotiated,
        (local, interface): (SocketAddr, Option<String>),
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(p) = self.peers.at_mut(address) else {
            return;
        };
        p.session = Some((negotiated.clone(), local));
        p.add_path_out = (!negotiated.add_path_send.is_empty())
            .then(|| AddPathOut::new(negotiated.add_path_send));
        p.counters.established_since = Some(std::time::SystemTime::now());
        // End-of-RIB is awaited only for the families the peer negotiated graceful restart
        // for (RFC 4724): a peer without it (GoBGP unconfigured, for one) may never send
        // one, and waiting for it would keep routes it withdrew for the whole restart time.
        p.eor_awaited = negotiated
            .families
            .iter()
            .copied()
            .filter(|f| {
                negotiated
                    .graceful_restart
                    .as_ref()
                    .is_some_and(|gr| gr.families.iter().any(|(g, _)| g == f))
            })
            .collect();
        let info = PeerInfo {
            address,
            remote_as: negotiated.remote_as,
            router_id: negotiated.remote_id,
            ebgp: negotiated.remote_as != self.rib.settings().local_as,
            rr_client: p.config.route_reflector_client,
            local_address: local.ip().to_canonical(),
            interface,
            families: negotiated.families.clone(),
            allow_local_as: p.config.session.allow_local_as,
            next_hop_mode: p.config.session.next_hop_mode,
        };
        self.rib.peer_up(id, info);
        // A peer whose routes are stale is back.
        if let Some(stale) = self.peers.at_mut(address).and_then(|p| p.stale.take()) {
            let srt = self.stale_routes_time();
            let (kept, changes) =
                restart::peer_returned(&mut self.rib, (id, address), stale, &negotiated, srt, now);
            if let Some(p) = self.peers.at_mut(address) {
                p.stale = kept;
            }
            if !changes.is_empty() {
                self.propagate(&changes, None, out);
                out.push(Output::Notify);
            }
        }
        self.send_table(id, &negotiated.families, out);
    }

    /// A peer that negotiated graceful restart went down without a NOTIFICATION.
    fn peer_restarting(
        &mut self,
        (id, address): (PeerId, IpAddr),
        gr: &PeerGracefulRestart,
        why: &str,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let previous = self.peers.at(address).and_then(|p| p.stale.clone());
        let srt = self.stale_routes_time();
        let (kept, changes) = restart::peer_restarting(
            &mut self.rib,
            (id, address),
            gr,
            previous.as_ref(),
            srt,
            now,
            why,
        );
        if !changes.is_empty() {
            self.propagate(&changes, Some(id), out);
        }
        let Some(p) = self.peers.at_mut(address) else {
            return;
        };
        match kept {
            Kept::Nothing => {
                p.stale = None;
                self.rib.forget_peer(id);
            }
            Kept::Stale(stale) => p.stale = Some(stale),
        }
    }

    fn peer_gone(&mut self, id: PeerId, out: &mut Vec<Output>) {
        let changes = self.rib.peer_down(id);
        self.propagate(&changes, Some(id), out);
        self.rib.forget_peer(id);
        if !changes.is_empty() {
            out.push(Output::Notify);
        }
    }

    fn updates(
        &mut self,
        id: PeerId,
        address: IpAddr,
        updates: InboundBatch,
        out: &mut Vec<Output>,
    ) {
        // Room for a change per prefix: one vector for the batch, never grown.
        let mut changes = Vec::with_capacity(updates.prefixes());
        let mut several = updates.len() > 1;
        if let Some(p) = self.peers.at_mut(address) {
            *p.counters.updates_received.get_or_insert(0) += updates.len() as u64;
        }
        let peers = &mut self.peers;
        let mut complete = false;
        let end_of_rib = |rib: &mut Rib, family, changes: &mut Vec<Change>| {
            let Some(p) = peers.at_mut(address) else {
                return;
            };
            let eor = restart::end_of_rib_received(rib, p, family);
            // The peer's initial table is complete: status readers may be waiting.
            complete |= eor.table_complete;
            several |= !eor.swept.is_empty();
            changes.extend(eor.swept);
        };
        self.rib.apply_batch(id, updates, &mut changes, end_of_rib);
        if complete {
            out.push(Output::Notify);
        }
        if several {
            changes = merge_changes(changes);
        }
        if !changes.is_empty() {
            self.propagate(&changes, None, out);
            out.push(Output::Notify);
        }
    }
}

//! The speaker's table of configured peers: what it knows of each peering besides its
//! routes (configuration, reported state, the established session, graceful restart and
//! End-of-RIB bookkeeping), by address and by [`PeerId`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use calico_core::dataplane::{PeerConfig, PeerCounters, PeerState, PeerStatus};

use super::add_path::AddPathOut;
use super::backlog::Backlog;
use super::restart::Stale;
use crate::packet::AfiSafi;
use crate::rib::{PeerId, Rib};
use crate::session::Negotiated;

/// One configured peering.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) id: PeerId,
    pub(crate) config: PeerConfig,
    pub(crate) state: PeerState,
    pub(crate) last_error: Option<String>,
    pub(crate) session: Option<(Negotiated, SocketAddr)>,
    /// Routes kept across the peer's restart (RFC 4724).
    pub(crate) stale: Option<Stale>,
    /// The table dump was sent without End-of-RIB (a restarting speaker whose exports are
    /// not known yet): send it once they are.
    pub(crate) eor_owed: bool,
    /// Families of the session whose End-of-RIB the peer has not sent yet since the session
    /// came up; empty (with a session) once its initial table is complete.
    pub(crate) eor_awaited: Vec<AfiSafi>,
    /// For metrics: sessions, flaps, UPDATEs both ways.
    pub(crate) counters: PeerCounters,
    /// What the peer was sent on the families it negotiated ADD-PATH send for (`None`
    /// without a session that did).
    pub(crate) add_path_out: Option<AddPathOut>,
    /// While the session's send queue is stalled: what changed for the peer meanwhile.
    pub(crate) backlog: Option<Backlog>,
}

impl Peer {
    /// The families negotiated on the established session.
    pub(crate) fn session_families(&self) -> Option<&[AfiSafi]> {
        self.session.as_ref().map(|(n, _)| n.families.as_slice())
    }
}

/// The configured peers, ordered by address (so that what the speaker does for "every
/// peer" happens in a stable order).
#[derive(Debug, Default)]
pub(crate) struct Peers {
    by_address: BTreeMap<IpAddr, Peer>,
    ids: HashMap<PeerId, IpAddr>,
    next_id: u32,
}

impl Peers {
    /// Adds a peering (in state Idle) under a new id.
    pub(crate) fn add(&mut self, config: PeerConfig) -> PeerId {
        let id = PeerId(self.next_id);
        self.next_id += 1;
        self.ids.insert(id, config.address);
        self.by_address.insert(
            config.address,
            Peer {
                id,
                config,
                state: PeerState::Idle,
                last_error: None,
                session: None,
                stale: None,
                eor_owed: false,
                eor_awaited: Vec::new(),
                add_path_out: None,
                backlog: None,
                counters: PeerCounters {
                    flaps: Some(0),
                    updates_received: Some(0),
                    updates_sent: Some(0),
                    ..PeerCounters::default()
                },
            },
        );
        id
    }

    /// Removes the peering at `address`.
    pub(crate) fn remove(&mut self, address: IpAddr) -> Option<Peer> {
        let peer = self.by_address.remove(&address)?;
        self.ids.remove(&peer.id);
        Some(peer)
    }

    /// The address of a configured peer.
    pub(crate) fn address_of(&self, id: PeerId) -> Option<IpAddr> {
        self.ids.get(&id).copied()
    }

    /// The peer at `address`.
    pub(crate) fn at(&self, address: IpAddr) -> Option<&Peer> {
        self.by_address.get(&address)
    }

    /// The peer at `address`, to change.
    pub(crate) fn at_mut(&mut self, address: IpAddr) -> Option<&mut Peer> {
        self.by_address.get_mut(&address)
    }

    /// A configured peer by id.
    pub(crate) fn get(&self, id: PeerId) -> Option<&Peer> {
        self.by_address.get(self.ids.get(&id)?)
    }

    /// A configured peer by id, to change.
    pub(crate) fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.by_address.get_mut(self.ids.get(&id)?)
    }

    /// Whether `id` is a configured peer with an established session.
    pub(crate) fn is_established(&self, id: PeerId) -> bool {
        self.get(id).is_some_and(|p| p.session.is_some())
    }

    /// Every configured address, in order.
    pub(crate) fn addresses(&self) -> Vec<IpAddr> {
        self.by_address.keys().copied().collect()
    }

    /// Every configured peer, by address.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Peer> + '_ {
        self.by_address.values()
    }

    /// Every configured peer, by address, to change.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Peer> + '_ {
        self.by_address.values_mut()
    }

    /// What [`BgpBackend::peer_status`](calico_core::dataplane::BgpBackend::peer_status)
    /// reports, by address.
    pub(crate) fn status(&self, rib: &Rib) -> Vec<PeerStatus> {
        self.iter()
            .map(|p| PeerStatus {
                address: p.config.address,
                state: p.state,
                prefixes_received: rib.received(p.id),
                end_of_rib_received: p.state == PeerState::Established
                    && p.session.is_some()
                    && p.eor_awaited.is_empty(),
                last_error: p.last_error.clone(),
                counters: p.counters.clone(),
            })
            .collect()
    }
}

//! Routes: per-peer Adj-RIB-In, the Loc-RIB with the decision process, and what each peer
//! is sent (Adj-RIB-Out).
//!
//! Layout, chosen for a million prefixes: per family, the prefixes' entries in blocks of
//! 256 neighbours found by a hash of the block (`prefix_map.rs`). Each entry holds every
//! peer's path for that prefix (several per peer when it sends path identifiers, RFC 7911:
//! a path is keyed by peer and path identifier) — the Adj-RIBs-In, stored by destination
//! as holo-routing does — ordered by the decision process, so the Loc-RIB best path and its
//! ECMP set are the first entries.
//! Attribute sets are interned and shared with [`Arc`]; the peerings' tasks intern those of
//! the UPDATEs they receive before passing them on ([`Importer`], `inbound.rs`). The
//! Adj-RIB-Out is not stored: what
//! a peer is sent is a function of the best path ([`Rib::exporter`]); withdrawals go to
//! every peer that may have had the prefix.
//!
//! Graceful restart (RFC 4724, receiving side): when a peer's session ends without a
//! NOTIFICATION, [`Rib::peer_restarting`] keeps its paths and marks them stale; they stay
//! in the Loc-RIB (still selected, still advertised and handed to the agent) until the
//! peer announces or withdraws them again, or [`Rib::sweep_stale`] removes those still
//! stale (on the peer's End-of-RIB, or when the speaker stops waiting).

mod apply;
pub mod attrs;
pub mod decision;
mod dest;
pub mod export;
pub mod hash;
mod import;
mod inbound;
mod policy;
mod prefix_map;
mod tables;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use calico_core::dataplane::{ExportedRoutes, LearnedRoute, RoutePolicy};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use attrs::{Interner, RouteAttrs, DEFAULT_LOCAL_PREF};
pub use decision::PathSource;
use dest::Dest;
use hash::BuildRibHasher;
pub use import::Rejection;
pub use inbound::{Importer, InboundBatch};
use tables::Tables;

use crate::packet::AfiSafi;

/// A peer as the RIB knows it (an index, stable while the peering exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// What the RIB needs to know about an established peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS.
    pub remote_as: u32,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer is in another AS.
    pub ebgp: bool,
    /// The peer is a route-reflector client of ours.
    pub rr_client: bool,
    /// Our address on the session: the next hop we announce ("next hop self").
    pub local_address: IpAddr,
    /// The interface the session runs over ([`crate::speaker::interface`]): the interface
    /// `BGPFilter` rules match the peer's routes by.
    pub interface: Option<String>,
    /// Families negotiated with the peer.
    pub families: Vec<AfiSafi>,
    /// Times our AS may be in an AS_PATH received from the peer (allowas-in; 0: none).
    pub allow_local_as: u8,
    /// Next hop handling towards the peer.
    pub next_hop_mode: calico_core::dataplane::NextHopMode,
}

/// One path to a prefix: who sent it, under which path identifier and with which
/// attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// The peer it came from.
    pub peer: PeerId,
    /// The path identifier the peer gave it (RFC 7911); 0 from a peer that sends no path
    /// identifiers (then it has at most one path per prefix).
    pub path_id: u32,
    /// Its attributes.
    pub attrs: Arc<RouteAttrs>,
}

/// The established peers.
#[derive(Clone, Debug, Default)]
pub struct PeerTable {
    peers: HashMap<PeerId, (PeerInfo, PathSource), BuildRibHasher>,
}

impl PeerTable {
    /// The decision-process view of a peer.
    pub fn source(&self, id: PeerId) -> Option<&PathSource> {
        self.peers.get(&id).map(|(_, s)| s)
    }

    /// The peer's information.
    pub fn info(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.get(&id).map(|(i, _)| i)
    }

    /// Every established peer.
    pub fn ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }
}

/// Speaker-wide settings the RIB applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RibSettings {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Cluster id when reflecting routes (defaults to the router id, RFC 4456 §7).
    pub cluster_id: Option<Ipv4Addr>,
}

/// A prefix whose Loc-RIB entry changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The prefix.
    pub prefix: IpNet,
    /// Whether the best path changed (so advertisements change); otherwise only the
    /// multipath set did.
    pub best: bool,
    /// The best path before the change.
    pub old_best: Option<Path>,
    /// The best path after the change.
    pub new_best: Option<Path>,
}

/// Paths (prefix and path identifier) of a peer kept across its restart and not announced
/// or withdrawn since.
#[derive(Debug, Default)]
struct StaleSet {
    v4: HashSet<(Ipv4Net, u32), BuildRibHasher>,
    v6: HashSet<(Ipv6Net, u32), BuildRibHasher>,
}

impl StaleSet {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Takes the paths of `family` out of the set.
    fn take(&mut self, family: AfiSafi) -> Vec<(IpNet, u32)> {
        if family == AfiSafi::IPV4_UNICAST {
            self.v4.drain().map(|(p, id)| (IpNet::V4(p), id)).collect()
        } else if family == AfiSafi::IPV6_UNICAST {
            self.v6.drain().map(|(p, id)| (IpNet::V6(p), id)).collect()
        } else {
            Vec::new()
        }
    }
}

/// The family of a unicast prefix.
pub fn family_of(prefix: &IpNet) -> AfiSafi {
    match prefix {
        IpNet::V4(_) => AfiSafi::IPV4_UNICAST,
        IpNet::V6(_) => AfiSafi::IPV6_UNICAST,
    }
}

/// The routing information base.
#[derive(Debug)]
pub struct Rib {
    settings: RibSettings,
    peers: PeerTable,
    /// Paths accepted from each peer (looked up once per UPDATE).
    received: HashMap<PeerId, usize, BuildRibHasher>,
    /// Every prefix's paths (the Adj-RIBs-In and the Loc-RIB).
    tables: Tables,
    exports: BTreeSet<IpNet>,
    /// The interfaces of the exports that have one (workload addresses).
    export_interfaces: BTreeMap<IpNet, String>,
    /// The attribute sets' interner, shared with the peerings' tasks.
    importer: Importer,
    /// Stale prefixes of restarting peers (graceful restart).
    stale: HashMap<PeerId, StaleSet>,
    /// Filters and communities ([`RoutePolicy`]).
    policy: Arc<RoutePolicy>,
}

impl Rib {
    /// An empty RIB.
    pub fn new(settings: RibSettings) -> Rib {
        Rib {
            settings,
            peers: PeerTable::default(),
            received: HashMap::default(),
            tables: Tables::default(),
            exports: BTreeSet::new(),
            export_interfaces: BTreeMap::new(),
            importer: Importer::default(),
            stale: HashMap::new(),
            policy: Arc::default(),
        }
    }

    /// Sets the route policy: later imports and exports follow it. Routes already taken
    /// in or sent out are not revisited (the speaker restarts a session whose filters
    /// changed, and sends its table again when communities change).
    pub fn set_policy(&mut self, policy: RoutePolicy) {
        self.policy = Arc::new(policy);
    }

    /// The route policy.
    pub fn policy(&self) -> &RoutePolicy {
        &self.policy
    }

    /// The settings.
    pub fn settings(&self) -> &RibSettings {
        &self.settings
    }

    /// The established peers.
    pub fn peers(&self) -> &PeerTable {
        &self.peers
    }

    /// Registers an established peer (again, after a graceful restart: its stale paths
    /// stay).
    pub fn peer_up(&mut self, id: PeerId, info: PeerInfo) {
        let source = PathSource {
            ebgp: info.ebgp,
            router_id: info.router_id,
            address: info.address,
        };
        self.peers.peers.insert(id, (info, source));
        self.received.entry(id).or_insert(0);
    }

    /// A peer's session ended without a NOTIFICATION and the peer negotiated graceful
    /// restart for `families` (RFC 4724 §4.2): its paths of those families are kept and
    /// marked stale (with those still stale from an earlier restart), its paths of other
    /// families are removed. The peer stays known. Returns how many prefixes are stale now
    /// and the prefixes whose entry changed.
    pub fn peer_restarting(&mut self, id: PeerId, families: &[AfiSafi]) -> (usize, Vec<Change>) {
        let mut changes = Vec::new();
        let keep4 = families.contains(&AfiSafi::IPV4_UNICAST);
        let keep6 = families.contains(&AfiSafi::IPV6_UNICAST);
        let mut set = self.stale.remove(&id).unwrap_or_default();
        let mut drop = Vec::new();
        for (prefix, dest) in self.tables.iter() {
            for p in dest.paths().iter().filter(|p| p.peer == id) {
                match prefix {
                    IpNet::V4(v4) if keep4 => set.v4.insert((v4, p.path_id)),
                    IpNet::V6(v6) if keep6 => set.v6.insert((v6, p.path_id)),
                    _ => {
                        drop.push((prefix, p.path_id));
                        continue;
                    }
                };
            }
        }
        for (prefix, path_id) in drop {
            self.set_path((id, path_id), prefix, None, &mut changes);
        }
        let stale = set.len();
        if stale > 0 {
            self.stale.insert(id, set);
        }
        self.importer.lock().prune();
        (stale, changes)
    }

    /// How many of a peer's paths of `family` are stale.
    pub fn stale(&self, id: PeerId, family: AfiSafi) -> usize {
        self.stale.get(&id).map_or(0, |s| {
            if family == AfiSafi::IPV4_UNICAST {
                s.v4.len()
            } else if family == AfiSafi::IPV6_UNICAST {
                s.v6.len()
            } else {
                0
            }
        })
    }

    /// Removes a peer's paths of `family` that are still stale (RFC 4724 §4.2: on its
    /// End-of-RIB, when it comes back without its forwarding state, or when the wait is
    /// over). Returns the prefixes whose entry changed.
    pub fn sweep_stale(&mut self, id: PeerId, family: AfiSafi) -> Vec<Change> {
        let mut changes = Vec::new();
        let Some(set) = self.stale.get_mut(&id) else {
            return changes;
        };
        let paths = set.take(family);
        if set.len() == 0 {
            self.stale.remove(&id);
        }
        for (prefix, path_id) in paths {
            self.set_path((id, path_id), prefix, None, &mut changes);
        }
        self.importer.lock().prune();
        changes
    }

    /// Removes every path a peer sent; returns the prefixes whose entry changed. The peer
    /// stays known (so that what it used to be sent can still be computed) until
    /// [`Rib::forget_peer`].
    pub fn peer_down(&mut self, id: PeerId) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.received.get(&id).copied().unwrap_or(0) > 0 {
            let (peers, local_as) = (&self.peers, self.settings.local_as);
            self.tables.remove_peer(id, peers, local_as, &mut changes);
        }
        self.received.insert(id, 0);
        self.stale.remove(&id);
        self.importer.lock().prune();
        changes
    }

    /// Forgets a peer whose paths [`Rib::peer_down`] removed.
    pub fn forget_peer(&mut self, id: PeerId) {
        self.peers.peers.remove(&id);
        self.received.remove(&id);
        self.stale.remove(&id);
    }

    /// Paths accepted from a peer (one per prefix unless it sends several with ADD-PATH).
    pub fn received(&self, id: PeerId) -> usize {
        self.received.get(&id).copied().unwrap_or(0)
    }

    /// Number of prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether no prefix has a path.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cluster id used when reflecting.
    pub fn cluster_id(&self) -> Ipv4Addr {
        self.settings.cluster_id.unwrap_or(self.settings.router_id)
    }

    /// The best path and the rest of the multipath set for a prefix.
    pub fn best(&self, prefix: &IpNet) -> &[Path] {
        let dest = self.tables.get(prefix);
        dest.map_or(&[], |d| &d.paths()[..d.multipath()])
    }

    /// Every path to a prefix (every peer's Adj-RIB-In entries), best first.
    pub fn paths(&self, prefix: &IpNet) -> &[Path] {
        self.tables.get(prefix).map_or(&[], |d| d.paths())
    }

    /// Every prefix with a best path.
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.tables.iter().map(|(p, _)| p)
    }

    /// The learned routes: each prefix's best path with the next hops of its multipath set.
    pub fn learned_routes(&self) -> Vec<LearnedRoute> {
        let route = |(prefix, d): (IpNet, &Dest)| LearnedRoute {
            prefix,
            next_hops: d.paths()[..d.multipath()]
                .iter()
                .map(|p| p.attrs.next_hop)
                .collect(),
        };
        self.tables.iter().map(route).collect()
    }

    /// Sets the locally originated routes; returns the prefixes added (or whose interface
    /// changed, which filters may judge differently) and removed.
    pub fn set_exports(&mut self, routes: ExportedRoutes) -> (Vec<IpNet>, Vec<IpNet>) {
        let exports: BTreeSet<IpNet> = routes.keys().copied().collect();
        let interfaces: BTreeMap<IpNet, String> = routes
            .into_iter()
            .filter_map(|(p, i)| Some((p, i?)))
            .collect();
        let moved = |p: &&IpNet| interfaces.get(p) != self.export_interfaces.get(p);
        let kept = exports.intersection(&self.exports).filter(moved);
        let added = exports
            .difference(&self.exports)
            .chain(kept)
            .copied()
            .collect();
        let removed = self.exports.difference(&exports).copied().collect();
        self.exports = exports;
        self.export_interfaces = interfaces;
        (added, removed)
    }

    /// The locally originated prefixes.
    pub fn exports(&self) -> &BTreeSet<IpNet> {
        &self.exports
    }

    /// The interface of a locally originated prefix (`None`: a blackhole, or not ours).
    pub fn export_interface(&self, prefix: &IpNet) -> Option<&str> {
        self.export_interfaces.get(prefix).map(String::as_str)
    }

    /// Distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.importer.lock().len()
    }

    /// The interner of this RIB's attribute sets, for the tasks decoding peers' UPDATEs to
    /// prepare them ([`Importer::prepare_into`]) before [`Rib::apply_batch`].
    pub fn importer(&self) -> Importer {
        self.importer.clone()
    }
}

//! The traits a dataplane or BGP implementation provides, and the plain data they exchange.
//!
//! Contract every implementation keeps:
//!
//! * **Atomic or per-item.** An ACL change set is applied whole or not at all. FIB changes are
//!   applied route by route (a route replace is atomic in the kernel); a route that cannot be
//!   programmed is reported by key and does not stop the others.
//! * **Idempotent.** Applying a change that is already in effect changes nothing.
//! * **Owned state only.** A backend touches only what it created: routes carrying the agent's
//!   route protocol, the agent's own nftables table(s), its own BGP exports.
//! * **Dump tells the truth.** `dump` reads the dataplane back (not a cache), so that the
//!   reconciler can detect and repair drift.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use async_trait::async_trait;
use ipnet::IpNet;

use crate::model::AsNumber;

/// Why a backend operation failed. Carries enough for an operator to act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The dataplane refused an operation.
    #[error("{op} failed: {reason}")]
    Dataplane {
        /// What was being done, e.g. `add route 10.0.0.1/32 dev cali1`.
        op: String,
        /// What the dataplane said.
        reason: String,
    },
    /// The interface a change refers to does not exist (yet).
    #[error("interface {0:?} does not exist")]
    MissingInterface(String),
    /// The input cannot be expressed by this backend.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The backend (a daemon, a socket) is not reachable.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

/// Where traffic for a route's destination goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteTarget {
    /// Out of a local workload's host-side interface, scope link (a /32 or /128 route).
    Workload {
        /// Host-side interface name.
        interface: String,
    },
    /// Dropped: an address block owned by this host with no workload on that address.
    Blackhole,
    /// Through one or more next hops (several means ECMP).
    Via(BTreeSet<NextHop>),
}

/// One next hop of a remote route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    /// The gateway address.
    pub gateway: IpAddr,
    /// The interface to reach it through, if it must be pinned.
    pub interface: Option<String>,
}

/// A route the agent wants in the FIB.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// Destination prefix.
    pub dst: IpNet,
    /// Where it goes.
    pub target: RouteTarget,
}

/// Changes to the FIB, applied in order: removals, then upserts (replace semantics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FibChangeSet {
    /// Destinations whose agent-owned route is to go.
    pub remove: Vec<IpNet>,
    /// Routes to create or replace.
    pub upsert: Vec<Route>,
}

impl FibChangeSet {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.upsert.is_empty()
    }
}

/// The outcome of a FIB change set: which items failed and why. Items not listed succeeded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FibReport {
    /// Destinations whose change failed.
    pub failed: Vec<(IpNet, BackendError)>,
}

/// Programs the forwarding table and the workload interfaces.
#[async_trait]
pub trait FibBackend: Send + Sync {
    /// Applies the changes. A failure of one route does not stop the others; it is reported.
    async fn apply(&self, changes: &FibChangeSet) -> Result<FibReport, BackendError>;
    /// Reads back every agent-owned route.
    async fn dump(&self) -> Result<Vec<Route>, BackendError>;
    /// Prepares a workload's host-side interface for routing (proxy ARP/NDP, forwarding, ...).
    /// Returns [`BackendError::MissingInterface`] when the interface does not exist yet.
    async fn configure_interface(&self, interface: &str) -> Result<(), BackendError>;
}

/// A BGP peering to establish.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerConfig {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS (equal to ours: iBGP).
    pub remote_as: AsNumber,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// Hold time to offer, seconds.
    pub hold_time: u16,
    /// Only accept connections, never initiate.
    pub passive: bool,
    /// The peer is a route-reflector client of ours.
    pub route_reflector_client: bool,
}

/// Everything a BGP backend needs to run this host's speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpSettings {
    /// Our AS.
    pub local_as: AsNumber,
    /// Our router id (the node's IPv4 address).
    pub router_id: Ipv4Addr,
    /// TCP port to listen on.
    pub listen_port: u16,
    /// Set when this speaker is a route reflector.
    pub cluster_id: Option<Ipv4Addr>,
    /// The peerings.
    pub peers: BTreeSet<PeerConfig>,
}

/// A best route learned from peers, with every equal-cost next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnedRoute {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Next hops of all equally good paths (more than one means ECMP).
    pub next_hops: BTreeSet<IpAddr>,
}

/// State of one peering (RFC 4271 FSM states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerState {
    /// Not trying.
    Idle,
    /// Connecting.
    Connect,
    /// Waiting for the peer to connect.
    Active,
    /// OPEN sent.
    OpenSent,
    /// OPEN received, waiting for KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
}

/// What an orchestrator can read about one peering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's address.
    pub address: IpAddr,
    /// FSM state.
    pub state: PeerState,
    /// Prefixes accepted from the peer.
    pub prefixes_received: usize,
    /// The session is established and the peer's initial table is complete: it sent
    /// End-of-RIB (RFC 4724) for every family of the session since it came up. A backend
    /// that cannot tell reports `state == Established`. An agent that kept its routes
    /// across a restart waits for this before dropping those no peer announces again.
    pub end_of_rib_received: bool,
    /// The last error seen on the session, for an operator.
    pub last_error: Option<String>,
}

/// Spreads this host's routes and learns the others'.
///
/// Declarative: the agent states the exports it wants; the backend converges on them.
#[async_trait]
pub trait BgpBackend: Send + Sync {
    /// Sets (or changes) the speaker's configuration and peerings.
    async fn configure(&self, settings: &BgpSettings) -> Result<(), BackendError>;
    /// Sets the complete set of locally originated prefixes to advertise.
    async fn set_exports(&self, prefixes: &BTreeSet<IpNet>) -> Result<(), BackendError>;
    /// The current best routes learned from peers.
    async fn learned_routes(&self) -> Result<Vec<LearnedRoute>, BackendError>;
    /// Resolves when learned routes or peer states may have changed since the last call.
    async fn changed(&self);
    /// The state of every peering.
    async fn peer_status(&self) -> Result<Vec<PeerStatus>, BackendError>;
}

/// Programs the ACLs: one agent-owned table holding the IR of [`crate::compile`].
#[async_trait]
pub trait AclBackend: Send + Sync {
    /// Applies a change set atomically: after an error nothing of it is in effect. A change
    /// set computed against the dataplane's actual state (see [`AclBackend::dump`]) never
    /// fails for reasons of its own content.
    async fn apply(&self, changes: &crate::compile::ChangeSet) -> Result<(), BackendError>;
    /// Reads the agent's table back from the dataplane (an empty ruleset when absent).
    async fn dump(&self) -> Result<crate::compile::ir::Ruleset, BackendError>;
}

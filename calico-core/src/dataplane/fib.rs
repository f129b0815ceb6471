//! The forwarding-table contract: the routes the agent wants, and the trait that programs them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;

use super::BackendError;

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

/// How a workload's host-side interface is prepared ([`FibBackend::configure_interface`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceSettings {
    /// Whether the kernel drops IPv4 packets whose source would not be routed back out of
    /// the interface (strict reverse-path filter: only the workload's own addresses pass).
    /// Off for a workload allowed to send from other networks (Calico's
    /// `allowSpoofedSourcePrefixes`); the ACLs still drop every source outside them.
    pub strict_source_check: bool,
}

impl Default for InterfaceSettings {
    /// A strict reverse-path filter, as Felix sets for every workload interface.
    fn default() -> Self {
        InterfaceSettings {
            strict_source_check: true,
        }
    }
}

/// The host's network interfaces by name, each with the addresses it holds (`ip address
/// show`), as [`FibBackend::interface_addresses`] reads them. An interface without an
/// address may be left out. Host endpoints without `interfaceName` govern the interfaces
/// holding one of their `expectedIPs`.
pub type InterfaceAddresses = BTreeMap<String, BTreeSet<IpAddr>>;

/// Programs the forwarding table and the workload interfaces.
#[async_trait]
pub trait FibBackend: Send + Sync {
    /// Applies the changes. A failure of one route does not stop the others; it is reported.
    async fn apply(&self, changes: &FibChangeSet) -> Result<FibReport, BackendError>;
    /// Reads back every agent-owned route.
    async fn dump(&self) -> Result<Vec<Route>, BackendError>;
    /// Prepares a workload's host-side interface for routing (proxy ARP/NDP, forwarding,
    /// the reverse-path filter `settings` asks for, ...). Called again when the settings
    /// change. Returns [`BackendError::MissingInterface`] when the interface does not exist
    /// yet.
    async fn configure_interface(
        &self,
        interface: &str,
        settings: InterfaceSettings,
    ) -> Result<(), BackendError>;
    /// Reads the addresses of the host's interfaces (optional): the agent reads them when
    /// a host endpoint of this node names no interface, to find its interfaces by its
    /// `expectedIPs` as Felix does. The default says [`BackendError::Unsupported`]: such host
    /// endpoints are then not enforced (the agent says so in its status notes).
    async fn interface_addresses(&self) -> Result<InterfaceAddresses, BackendError> {
        Err(BackendError::Unsupported(
            "this FIB backend cannot list interface addresses".into(),
        ))
    }
    /// Forgets the connections `addrs` take part in (optional): the agent calls it with the
    /// addresses that stopped belonging to a workload of this host (its endpoint removed,
    /// its address or floating IP gone or moved to another workload), after the ACLs and
    /// routes no longer carry them, so that a packet of a connection made before is judged
    /// by today's policy rather than let through as established, and a removed floating IP
    /// stops translating. Felix does the same when it removes a workload's route. The
    /// default does nothing: a dataplane without connection state has none to forget.
    async fn forget_connections(&self, addrs: &[IpAddr]) -> Result<(), BackendError> {
        let _ = addrs;
        Ok(())
    }
    /// Drift notification (optional): a counter bumped whenever someone other than this
    /// backend changed the state it owns (its routes, the links of workload interfaces: a
    /// re-created interface has lost its routes and settings) or an interface gained or lost
    /// an address (what [`FibBackend::interface_addresses`] reads). The agent repairs on each bump
    /// instead of waiting for the next periodic resync, which stays the backstop. `None`
    /// (the default) when the backend cannot tell.
    fn drift(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

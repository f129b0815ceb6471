//! The Linux FIB backend: [`LinuxFib`] programs the kernel's routing table over rtnetlink
//! and prepares workload interfaces.
//!
//! * **Ownership.** Every route it writes carries the agent's route protocol number
//!   ([`FibConfig::protocol`], `proto 80` by default) in the agent's table. It deletes only
//!   routes carrying that number (the kernel matches the protocol of a delete), and it never
//!   replaces a route of someone else: before an upsert it reads the table, and a destination
//!   held by a foreign route with the same metric is reported as a failure of that route. A
//!   destination that is free is created exclusively (`NLM_F_EXCL`), so a foreign route that
//!   appears in between is not overwritten either; only the agent's own routes are replaced.
//! * **Speed.** Changes go to the kernel in batches of many messages per datagram, each
//!   message acknowledged on its own, so one refused route does not stop the others.
//! * **Per-route outcome.** A route to an interface that does not exist fails with
//!   [`BackendError::MissingInterface`] (the agent retries once the interface is there);
//!   removing a route the kernel already dropped (its interface went away) succeeds.
//! * **Dump tells the truth.** [`FibBackend::dump`] reads the kernel's table back, filtered
//!   by protocol and table in the kernel (a strict-checking socket) and again here.
//!
//! `80` is not assigned in the kernel's list of route protocols (`rtnetlink.h`) nor in
//! iproute2's `rt_protos`; it is also Felix's default route protocol
//! (`dataplanedefs.DefaultRouteProto`), so `ip route show proto 80` shows an operator the same
//! thing on a calico-rs host as on a Calico one.

mod addresses;
mod conntrack;
mod drift;
mod interface;
mod links;
mod netlink;
mod route_msg;

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use calico_core::dataplane::{
    BackendError, FibBackend, FibChangeSet, FibReport, InterfaceAddresses, InterfaceSettings,
    Route, RouteTarget,
};
use ipnet::IpNet;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

use self::links::Links;
use self::netlink::{Failure, Netlink};
use self::route_msg::{KernelRoute, Owner};
use crate::events::DriftListener;

/// The route protocol number calico-rs tags its routes with unless configured otherwise.
pub const DEFAULT_PROTOCOL: u8 = 80;
/// The kernel's main routing table.
pub const MAIN_TABLE: u32 = 254;

/// How a [`LinuxFib`] marks and places its routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibConfig {
    /// Route protocol number of every agent route; routes with another number are never
    /// touched. Must be above 4 (0–4 are interpreted by the kernel or used by `ip route`).
    pub protocol: u8,
    /// Routing table the routes go to (254 is `main`). Neither 0 (unspecified) nor 255
    /// (`local`).
    pub table: u32,
    /// Whether [`FibBackend::configure_interface`] also switches on IPv4 and IPv6 forwarding
    /// for the whole namespace (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`), as
    /// Felix does. Without them no workload traffic is routed.
    pub enable_forwarding: bool,
    /// How long to wait for the kernel to answer a request before reporting it failed.
    pub timeout: Duration,
}

impl Default for FibConfig {
    fn default() -> Self {
        FibConfig {
            protocol: DEFAULT_PROTOCOL,
            table: MAIN_TABLE,
            enable_forwarding: true,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Programs a Linux network namespace's FIB and workload interfaces over rtnetlink.
///
/// Must be created inside a tokio runtime (its netlink connection runs as a task on it).
///
/// ```no_run
/// # async fn demo() -> Result<(), calico_core::dataplane::BackendError> {
/// use calico_core::dataplane::{FibBackend, FibChangeSet, InterfaceSettings, Route, RouteTarget};
/// use calico_linux::fib::{FibConfig, LinuxFib};
///
/// let fib = LinuxFib::new(FibConfig::default())?;
/// fib.configure_interface("cali0123456789a", InterfaceSettings::default()).await?;
/// let route = Route {
///     dst: "10.65.0.10/32".parse().unwrap(),
///     target: RouteTarget::Workload { interface: "cali0123456789a".into() },
/// };
/// let report = fib.apply(&FibChangeSet { remove: vec![], upsert: vec![route] }).await?;
/// assert!(report.failed.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LinuxFib {
    /// The current connection; replaced when its socket fails.
    netlink: std::sync::Mutex<Arc<Netlink>>,
    netns: Option<Arc<File>>,
    owner: Owner,
    config: FibConfig,
    /// Applies are serialised: each one reads the table and then changes it.
    apply_lock: tokio::sync::Mutex<()>,
    /// The port id of the current connection's socket (notifications of its changes are
    /// not drift).
    portid: Arc<AtomicU32>,
    /// Route and link notifications (see [`FibBackend::drift`]), opened in the namespace.
    drift: DriftListener,
}

impl LinuxFib {
    /// A FIB for the calling thread's network namespace.
    pub fn new(config: FibConfig) -> Result<LinuxFib, BackendError> {
        LinuxFib::open(None, config)
    }

    /// A FIB for the network namespace at `path` (e.g. `/var/run/netns/<name>` or
    /// `/proc/<pid>/ns/net`). Its socket and its `/proc/sys` writes are made from a thread
    /// inside that namespace; the calling thread's namespace does not change.
    pub fn in_netns(path: impl AsRef<Path>, config: FibConfig) -> Result<LinuxFib, BackendError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| {
            BackendError::Unavailable(format!(
                "cannot open network namespace {}: {e}",
                path.display()
            ))
        })?;
        LinuxFib::open(Some(Arc::new(file)), config)
    }

    fn open(netns: Option<Arc<File>>, config: FibConfig) -> Result<LinuxFib, BackendError> {
        if config.protocol <= 4 {
            return Err(BackendError::Unsupported(format!(
                "route protocol {}: 0-4 are reserved for the kernel and `ip route`",
                config.protocol
            )));
        }
        if config.table == 0 || config.table == 255 {
            return Err(BackendError::Unsupported(format!(
                "routing table {}: must be neither 0 (unspecified) nor 255 (local)",
                config.table
            )));
        }
        let netlink = Netlink::open(netns.as_deref(), config.timeout)?;
        let owner = Owner {
            protocol: config.protocol,
            table: config.table,
        };
        let portid = Arc::new(AtomicU32::new(netlink.portid()));
        let open_listener = || drift::listener(Arc::clone(&portid), owner);
        let drift = match netns.as_deref() {
            None => open_listener(),
            Some(ns) => calico_netns::run_in(ns, open_listener).unwrap_or_else(|e| {
                DriftListener::unavailable("rtnetlink", format!("cannot enter namespace: {e}"))
            }),
        };
        Ok(LinuxFib {
            netlink: std::sync::Mutex::new(Arc::new(netlink)),
            netns,
            owner,
            config,
            apply_lock: tokio::sync::Mutex::new(()),
            portid,
            drift,
        })
    }

    /// The connection to use, a new one if the last one's socket failed (the failed
    /// operation was reported; the next one works again).
    fn netlink(&self) -> Result<Arc<Netlink>, BackendError> {
        let mut current = self
            .netlink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.is_closed() {
            tracing::warn!("rtnetlink connection closed; opening a new one");
            *current = Arc::new(Netlink::open(self.netns.as_deref(), self.config.timeout)?);
            self.portid.store(current.portid(), Ordering::Relaxed);
        }
        Ok(Arc::clone(&current))
    }

    /// The configuration this FIB was made with.
    pub fn config(&self) -> &FibConfig {
        &self.config
    }

    /// Every route of the agent's table (both families, any protocol), or only those of
    /// `protocol` when it is not 0.
    async fn table_routes(
        &self,
        netlink: &Netlink,
        protocol: u8,
    ) -> Result<Vec<netlink_packet_route::route::RouteMessage>, BackendError> {
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let request = route_msg::dump_request(family, self.owner.table, protocol);
            let answer = netlink
                .dump(RouteNetlinkMessage::GetRoute(request))
                .await
                .map_err(|f| {
                    f.into_error(format!(
                        "dump routes of table {} ({family:?})",
                        self.owner.table
                    ))
                })?;
            routes.extend(answer.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(route) => Some(route),
                _ => None,
            }));
        }
        // The kernel filters already; this keeps a dump honest should it not.
        routes.retain(|m| {
            route_msg::kernel_route(m).is_some_and(|k| {
                k.table == self.owner.table && (protocol == 0 || k.protocol == protocol)
            })
        });
        Ok(routes)
    }
}

/// The netlink messages creating (`replace` false: only where the destination is free) or
/// replacing `routes`, with the routes they are for and the verb for error messages; a
/// route that cannot be expressed (e.g. its interface is missing) goes to `failed`.
fn new_route_messages<'r>(
    routes: Vec<&'r Route>,
    replace: bool,
    owner: &Owner,
    links: &Links,
    failed: &mut Vec<(IpNet, BackendError)>,
) -> (
    Vec<&'r Route>,
    Vec<(RouteNetlinkMessage, u16)>,
    &'static str,
) {
    let verb = if replace { "replace" } else { "add" };
    let flags = if replace {
        NLM_F_CREATE | NLM_F_REPLACE
    } else {
        NLM_F_CREATE | NLM_F_EXCL
    };
    let mut sent = Vec::with_capacity(routes.len());
    let mut messages = Vec::with_capacity(routes.len());
    for route in routes {
        match route_msg::route_message(route, owner, |name| links.index(name)) {
            Ok(message) => {
                messages.push((RouteNetlinkMessage::NewRoute(message), flags));
                sent.push(route);
            }
            Err(e) => {
                tracing::debug!(route = %route.dst, error = %e, "route not programmable");
                failed.push((route.dst, e));
            }
        }
    }
    (sent, messages, verb)
}

/// Deletes sent at most per destination in one apply: the agent's own route, and a few more
/// of its protocol someone may have added by hand at other metrics.
const MAX_DELETE_ROUNDS: usize = 4;

/// What the table holds at one destination: (protocol, metric) of each route.
type Occupancy = HashMap<IpNet, Vec<(u8, u32)>>;

fn occupancy(routes: &[netlink_packet_route::route::RouteMessage]) -> Occupancy {
    let mut map = Occupancy::new();
    for KernelRoute {
        dst,
        protocol,
        metric,
        ..
    } in routes.iter().filter_map(route_msg::kernel_route)
    {
        map.entry(dst).or_default().push((protocol, metric));
    }
    map
}

/// The interface a route failure with ENODEV is about.
fn interface_of(route: &Route) -> Option<&str> {
    match &route.target {
        RouteTarget::Workload { interface } => Some(interface),
        RouteTarget::Via(hops) => hops.iter().find_map(|h| h.interface.as_deref()),
        RouteTarget::Blackhole => None,
    }
}

/// Turns a refused change into an error an operator can act on.
fn route_failure(op: String, failure: Failure, route: Option<&Route>) -> BackendError {
    if let (Failure::Errno(libc::ENODEV), Some(interface)) = (failure, route.and_then(interface_of))
    {
        return BackendError::MissingInterface(interface.to_string());
    }
    let hint = match failure {
        Failure::Errno(libc::EEXIST) => {
            "; a route to this destination that is not the agent's appeared meanwhile, and is \
             left alone"
        }
        Failure::Errno(libc::ENETDOWN) => "; the interface is down",
        Failure::Errno(libc::ENETUNREACH) => {
            "; the gateway is not in a connected subnet: pin the next hop's interface (onlink)"
        }
        _ => "",
    };
    BackendError::Dataplane {
        op,
        reason: format!("{}{hint}", failure.describe()),
    }
}

impl LinuxFib {
    /// Removes the agent's routes to `remove`: a delete carrying the agent's protocol, which
    /// the kernel matches only against the agent's routes. What cannot be removed goes to
    /// `failed`.
    async fn remove_routes(
        &self,
        netlink: &Netlink,
        remove: &[IpNet],
        failed: &mut Vec<(IpNet, BackendError)>,
    ) {
        // Removals: a delete carrying the agent's protocol, which the kernel matches only
        // against the agent's routes. It removes one route per message, so a destination
        // where one went is tried again (a second route of ours at another metric, added
        // by hand, goes too) until the kernel finds none.
        let mut pending: Vec<&IpNet> = remove.iter().collect();
        let mut not_removed = std::collections::HashSet::new();
        for _ in 0..MAX_DELETE_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let messages = pending
                .iter()
                .map(|dst| {
                    let message = route_msg::delete_message(dst, &self.owner);
                    (RouteNetlinkMessage::DelRoute(message), 0)
                })
                .collect();
            let outcomes = netlink.execute_all(messages).await;
            let mut again = Vec::new();
            for (dst, outcome) in pending.into_iter().zip(outcomes) {
                match outcome {
                    Ok(()) => again.push(dst),
                    Err(Failure::Errno(libc::ESRCH | libc::ENOENT)) => {}
                    Err(failure) => {
                        if !not_removed.insert(dst) {
                            continue;
                        }
                        let op = route_msg::describe_removal(dst, &self.owner);
                        tracing::debug!(%op, reason = %failure.describe(), "route not removed");
                        failed.push((*dst, route_failure(op, failure, None)));
                    }
                }
            }
            pending = again;
        }
    }

    /// Creates or replaces the agent's routes in `upsert`; a destination held by a foreign
    /// route is left alone and reported in `failed`.
    async fn upsert_routes(
        &self,
        netlink: &Netlink,
        upsert: &[Route],
        failed: &mut Vec<(IpNet, BackendError)>,
    ) -> Result<(), BackendError> {
        let protocol = self.owner.protocol;
        // Upserts: created where the destination is free at the route's metric (EXCL), so
        // a new route costs one message and no table read. Where it is taken, the table
        // says by whom: our own route is replaced, a foreign one is left alone.
        let names: std::collections::BTreeSet<&str> = upsert
            .iter()
            .flat_map(|r| match &r.target {
                RouteTarget::Workload { interface } => vec![interface.as_str()],
                RouteTarget::Via(hops) => {
                    hops.iter().filter_map(|h| h.interface.as_deref()).collect()
                }
                RouteTarget::Blackhole => vec![],
            })
            .collect();
        let links = Links::read_some(netlink, &names).await?;
        let mut taken: Vec<&Route> = Vec::new();
        let (sent, messages, verb) =
            new_route_messages(upsert.iter().collect(), false, &self.owner, &links, failed);
        let outcomes = netlink.execute_all(messages).await;
        let mut errors = Vec::new();
        for (route, outcome) in sent.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                Err(Failure::Errno(libc::EEXIST)) => taken.push(route),
                Err(failure) => errors.push((route, verb, failure)),
            }
        }
        if !taken.is_empty() {
            let occupied = occupancy(&self.table_routes(netlink, 0).await?);
            let metric_holder = |route: &Route| {
                let metric = route_msg::default_metric(&route.dst);
                occupied
                    .get(&route.dst)
                    .and_then(|routes| routes.iter().find(|&&(_, m)| m == metric))
                    .map(|&(p, _)| p)
            };
            let mut ours = Vec::new();
            for route in taken {
                match metric_holder(route) {
                    Some(p) if p != protocol => {
                        let op = route_msg::describe_upsert("add", route, &self.owner);
                        tracing::debug!(%op, foreign_protocol = p, "destination held by a foreign route; left alone");
                        failed.push((
                            route.dst,
                            BackendError::Dataplane {
                                op,
                                reason: format!(
                                    "a route to {} with protocol {p} (not the agent's {}) \
                                     exists; it is left alone",
                                    route.dst, self.owner.protocol
                                ),
                            },
                        ));
                    }
                    // Ours, or gone since (then the replace creates it).
                    _ => ours.push(route),
                }
            }
            let (sent, messages, verb) =
                new_route_messages(ours, true, &self.owner, &links, failed);
            let outcomes = netlink.execute_all(messages).await;
            for (route, outcome) in sent.into_iter().zip(outcomes) {
                if let Err(failure) = outcome {
                    errors.push((route, verb, failure));
                }
            }
        }
        for (route, verb, failure) in errors {
            let op = route_msg::describe_upsert(verb, route, &self.owner);
            tracing::debug!(%op, reason = %failure.describe(), "route not programmed");
            failed.push((route.dst, route_failure(op, failure, Some(route))));
        }
        Ok(())
    }
}

/// One line per change set; every failure goes back to the caller in the report.
fn log_outcome(changes: &FibChangeSet, failed: &[(IpNet, BackendError)]) {
    if let Some((dst, first)) = failed.first() {
        tracing::warn!(
            failed = failed.len(),
            removals = changes.remove.len(),
            upserts = changes.upsert.len(),
            first = %dst,
            error = %first,
            "FIB change set partly applied"
        );
    } else {
        tracing::debug!(
            removals = changes.remove.len(),
            upserts = changes.upsert.len(),
            "FIB change set applied"
        );
    }
}

#[async_trait]
impl FibBackend for LinuxFib {
    async fn apply(&self, changes: &FibChangeSet) -> Result<FibReport, BackendError> {
        let _serialised = self.apply_lock.lock().await;
        let mut failed = Vec::new();
        if changes.is_empty() {
            return Ok(FibReport { failed });
        }
        let netlink = self.netlink()?;
        self.remove_routes(&netlink, &changes.remove, &mut failed)
            .await;
        self.upsert_routes(&netlink, &changes.upsert, &mut failed)
            .await?;
        log_outcome(changes, &failed);
        Ok(FibReport { failed })
    }

    async fn dump(&self) -> Result<Vec<Route>, BackendError> {
        let netlink = self.netlink()?;
        let messages = self.table_routes(&netlink, self.owner.protocol).await?;
        let links = Links::read(&netlink).await?;
        let mut routes = Vec::with_capacity(messages.len());
        for message in &messages {
            match route_msg::to_route(message, |index| links.name(index)) {
                Ok(route) => routes.push(route),
                Err(reason) => {
                    tracing::warn!(%reason, protocol = self.owner.protocol, "route carrying the agent's protocol is not one it programs; ignored")
                }
            }
        }
        routes.sort();
        Ok(routes)
    }

    async fn configure_interface(
        &self,
        interface: &str,
        settings: InterfaceSettings,
    ) -> Result<(), BackendError> {
        interface::validate_name(interface)?;
        let netlink = self.netlink()?;
        let link = links::link_by_name(&netlink, interface)
            .await?
            .ok_or_else(|| BackendError::MissingInterface(interface.to_string()))?;
        let was_down = !link.up;
        if was_down {
            links::set_up(&netlink, interface, link.index).await?;
        }
        let name = interface.to_string();
        let netns = self.netns.clone();
        let forwarding = self.config.enable_forwarding;
        let written = tokio::task::spawn_blocking(move || match netns {
            Some(ns) => calico_netns::run_in(&ns, || {
                interface::write_sysctls(&name, forwarding, settings)
            })
            .map_err(|e| BackendError::Unavailable(format!("cannot enter the namespace: {e}")))?,
            None => interface::write_sysctls(&name, forwarding, settings),
        })
        .await
        .map_err(|e| BackendError::Unavailable(format!("sysctl writer failed: {e}")))??;
        // Called again at every resync: a line only when something had to change.
        if was_down || written > 0 {
            tracing::info!(
                interface,
                settings = written,
                brought_up = was_down,
                "workload interface configured"
            );
        } else {
            tracing::debug!(interface, "workload interface already configured");
        }
        Ok(())
    }

    /// Removes the kernel's connection-tracking entries in which one of `addrs` is the
    /// original or reply source or destination (any zone), in the backend's namespace: four
    /// filtered ctnetlink flushes per address. A kernel that cannot filter flushes refuses
    /// them (nothing is removed) and the error says so.
    async fn forget_connections(&self, addrs: &[IpAddr]) -> Result<(), BackendError> {
        if addrs.is_empty() {
            return Ok(());
        }
        let addrs = addrs.to_vec();
        let netns = self.netns.clone();
        let flushed = tokio::task::spawn_blocking(move || match netns {
            Some(ns) => calico_netns::run_in(&ns, || conntrack::forget(&addrs))
                .map_err(|e| BackendError::Unavailable(format!("cannot enter the namespace: {e}"))),
            None => Ok(conntrack::forget(&addrs)),
        })
        .await
        .map_err(|e| BackendError::Unavailable(format!("conntrack flusher failed: {e}")))??;
        flushed.map_err(|e| {
            BackendError::Unavailable(format!(
                "cannot remove connection-tracking entries (ctnetlink filtered flush, Linux 6.x): {e}"
            ))
        })
    }

    /// Every interface of the namespace holding an address, with its addresses (both
    /// families, every scope), read from the kernel.
    async fn interface_addresses(&self) -> Result<InterfaceAddresses, BackendError> {
        addresses::read(&*self.netlink()?).await
    }

    /// Bumped by rtnetlink notifications: a route of the agent's protocol and table added,
    /// changed or removed by anyone but this backend, a link created, deleted, or brought
    /// up or down, or an address added to or removed from an interface. Listens from the
    /// first call on, in the backend's namespace.
    fn drift(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.drift.drift()
    }
}

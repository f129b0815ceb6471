//! [`MockFib`]: an in-memory forwarding table with interfaces.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use calico_core::dataplane::{
    BackendError, FibBackend, FibChangeSet, FibReport, InterfaceAddresses, InterfaceSettings,
    Route, RouteTarget,
};
use ipnet::IpNet;

#[derive(Debug, Default)]
struct State {
    routes: BTreeMap<IpNet, RouteTarget>,
    interfaces: BTreeSet<String>,
    /// Addresses of the interfaces (`ip address add` on a host's own interfaces).
    addrs: InterfaceAddresses,
    /// Bumped when an address comes or goes (the drift signal).
    drift: Option<tokio::sync::watch::Sender<u64>>,
    configured: BTreeMap<String, InterfaceSettings>,
    refuse: BTreeSet<IpNet>,
}

/// An in-memory FIB implementing [`FibBackend`]. Cloning shares the state, so a test can
/// hold one handle while the agent holds another.
#[derive(Clone, Debug, Default)]
pub struct MockFib(Arc<Mutex<State>>);

impl MockFib {
    /// An empty FIB with no interfaces.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("MockFib lock")
    }

    /// Creates an interface (as a CNI plugin or Nova would).
    pub fn add_interface(&self, name: &str) {
        self.state().interfaces.insert(name.to_string());
    }

    /// Removes an interface and the routes through it (as the kernel does).
    pub fn remove_interface(&self, name: &str) {
        let mut s = self.state();
        s.interfaces.remove(name);
        s.configured.remove(name);
        s.routes
            .retain(|_, t| !matches!(t, RouteTarget::Workload { interface } if interface == name));
    }

    /// Gives interface `iface` the address `ip` (`ip address add`), telling the agent by the
    /// drift signal.
    pub fn add_address(&self, iface: &str, ip: IpAddr) {
        let mut s = self.state();
        s.addrs.entry(iface.to_string()).or_default().insert(ip);
        bump(&s);
    }

    /// Takes the address `ip` off interface `iface` (`ip address del`), telling the agent by
    /// the drift signal.
    pub fn remove_address(&self, iface: &str, ip: IpAddr) {
        let mut s = self.state();
        if let Some(held) = s.addrs.get_mut(iface) {
            held.remove(&ip);
            if held.is_empty() {
                s.addrs.remove(iface);
            }
        }
        bump(&s);
    }

    /// Makes the FIB refuse routes to `dst` (to test error handling), or accept them again.
    pub fn refuse(&self, dst: IpNet, refuse: bool) {
        let mut s = self.state();
        if refuse {
            s.refuse.insert(dst);
        } else {
            s.refuse.remove(&dst);
        }
    }

    /// The routes programmed.
    pub fn routes(&self) -> BTreeMap<IpNet, RouteTarget> {
        self.state().routes.clone()
    }

    /// Deletes a route behind the agent's back (drift).
    pub fn delete_route(&self, dst: &IpNet) {
        self.state().routes.remove(dst);
    }

    /// The settings an interface was last configured with for routing, if it was.
    pub fn interface_settings(&self, iface: &str) -> Option<InterfaceSettings> {
        self.state().configured.get(iface).copied()
    }

    /// Whether an interface was configured for routing.
    pub fn is_configured(&self, iface: &str) -> bool {
        self.state().configured.contains_key(iface)
    }

    /// Longest-prefix match.
    pub fn lookup(&self, dst: IpAddr) -> Option<(IpNet, RouteTarget)> {
        self.state()
            .routes
            .iter()
            .filter(|(net, _)| net.contains(&dst))
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(n, t)| (*n, t.clone()))
    }
}

fn bump(s: &State) {
    if let Some(tx) = &s.drift {
        tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl MockFib {
    /// Applies a change set synchronously (what the [`FibBackend`] implementation does).
    pub fn apply_changes(&self, changes: &FibChangeSet) -> FibReport {
        let mut s = self.state();
        let mut report = FibReport::default();
        for dst in &changes.remove {
            s.routes.remove(dst);
        }
        for r in &changes.upsert {
            if s.refuse.contains(&r.dst) {
                report.failed.push((
                    r.dst,
                    BackendError::Dataplane {
                        op: format!("replace route {}", r.dst),
                        reason: "refused (MockFib::refuse)".into(),
                    },
                ));
                continue;
            }
            if let RouteTarget::Workload { interface } = &r.target {
                if !s.interfaces.contains(interface) {
                    report
                        .failed
                        .push((r.dst, BackendError::MissingInterface(interface.clone())));
                    continue;
                }
            }
            s.routes.insert(r.dst, r.target.clone());
        }
        report
    }
}

#[async_trait]
impl FibBackend for MockFib {
    async fn apply(&self, changes: &FibChangeSet) -> Result<FibReport, BackendError> {
        Ok(self.apply_changes(changes))
    }

    async fn dump(&self) -> Result<Vec<Route>, BackendError> {
        Ok(self
            .state()
            .routes
            .iter()
            .map(|(dst, target)| Route {
                dst: *dst,
                target: target.clone(),
            })
            .collect())
    }

    async fn configure_interface(
        &self,
        interface: &str,
        settings: InterfaceSettings,
    ) -> Result<(), BackendError> {
        let mut s = self.state();
        if !s.interfaces.contains(interface) {
            return Err(BackendError::MissingInterface(interface.to_string()));
        }
        s.configured.insert(interface.to_string(), settings);
        Ok(())
    }

    async fn interface_addresses(&self) -> Result<InterfaceAddresses, BackendError> {
        Ok(self.state().addrs.clone())
    }

    /// Bumped when an interface gains or loses an address ([`MockFib::add_address`]).
    fn drift(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        let mut s = self.state();
        let tx = s
            .drift
            .get_or_insert_with(|| tokio::sync::watch::channel(0).0);
        Some(tx.subscribe())
    }
}

//! The steps of a reconciliation pass ([`Engine::reconcile`]), one per backend: workload
//! interfaces and the host's addresses, the ACL table, the FIB, and BGP exports. Each
//! compares what the model wants with what the backend has and applies the difference,
//! recording failures for the next pass to retry.

use std::collections::BTreeMap;

use ipnet::IpNet;
use tracing::{debug, info, warn};

use super::super::status::{BackendHealth, EndpointState};
use super::{forget, record_failure, Engine};
use crate::dataplane::diff;
use crate::dataplane::{BackendError, InterfaceSettings, Route, RouteTarget};
use crate::routes::{desired_routes, fib_diff, local_exports, DesiredFib};

impl Engine {
    pub(super) async fn configure_interfaces(&mut self) {
        let spoofing = self.spoofing;
        let mut local: BTreeMap<String, InterfaceSettings> = BTreeMap::new();
        for ep in self.model.workload_endpoints.values() {
            if ep.node != self.node {
                continue;
            }
            // Another source than its own for IPv4 needs the kernel's reverse-path filter
            // off on its interface (the ACLs still check the source).
            let spoofs_v4 = ep
                .allow_spoofed_source_prefixes
                .iter()
                .any(|n| matches!(n, ipnet::IpNet::V4(_)));
            let settings = InterfaceSettings {
                strict_source_check: !(spoofing && spoofs_v4),
            };
            local.entry(ep.interface_name.clone()).or_insert(settings);
        }
        self.configured_interfaces
            .retain(|i, s| local.get(i) == Some(s));
        self.interface_state.retain(|i, _| local.contains_key(i));
        for (iface, settings) in local {
            if self.configured_interfaces.contains_key(&iface) {
                continue;
            }
            match self.fib.configure_interface(&iface, settings).await {
                Ok(()) => {
                    self.configured_interfaces.insert(iface.clone(), settings);
                    self.interface_state.remove(&iface);
                }
                Err(BackendError::MissingInterface(_)) => {
                    debug!(interface = %iface, "interface not there yet; will retry");
                    self.interface_state
                        .insert(iface, EndpointState::WaitingForInterface);
                }
                Err(e) => {
                    let state = EndpointState::Error(e.to_string());
                    // Logged when it starts or changes, not at every retry.
                    if self.interface_state.get(&iface) != Some(&state) {
                        warn!(interface = %iface, error = %e, "configuring interface failed; will retry");
                    } else {
                        debug!(interface = %iface, error = %e, "configuring interface failed again");
                    }
                    self.interface_state.insert(iface, state);
                }
            }
        }
    }

    /// Reads the host's interface addresses again, when a host endpoint of this node names
    /// no interface (it governs those holding its `expectedIPs`) and they may have changed,
    /// and hands them to the compiler. Returns false if reading failed (the compiler keeps
    /// the addresses it had; retried).
    pub(super) async fn refresh_interface_addresses(&mut self) -> bool {
        let node = &self.node;
        let needed = self
            .model
            .host_endpoints
            .values()
            .any(|h| &h.node == node && h.interface_name.is_none());
        if !needed || !self.interface_addrs_stale {
            return true;
        }
        match self.fib.interface_addresses().await {
            Ok(addrs) => {
                debug!(interfaces = addrs.len(), "interface addresses read");
                self.interface_addrs_stale = false;
                self.interface_addrs = Ok(addrs.clone());
                if self.compiler.interface_addresses() != &addrs {
                    self.revision += 1;
                }
                self.compiler.set_interface_addresses(&self.model, addrs);
                true
            }
            Err(BackendError::Unsupported(reason)) => {
                // Said once, not at every resync.
                if self.interface_addrs.as_ref().err() != Some(&reason) {
                    warn!(%reason, "host endpoints without interfaceName cannot be placed: the FIB backend cannot list interface addresses; their policy is not enforced");
                }
                self.interface_addrs_stale = false;
                self.interface_addrs = Err(reason);
                true
            }
            Err(e) => {
                record_failure(&mut self.fib_health, &e, "read interface addresses");
                self.interface_addrs = Err(e.to_string());
                false
            }
        }
    }

    /// Brings the ACL table to the compiled ruleset: the compiler's own change set when the
    /// table is known to be in step, else a diff against what is read back (adopting a
    /// programmed table without disturbing it). Returns false if something failed.
    pub(super) async fn reconcile_acl(&mut self, repairs: &mut u64) -> bool {
        self.compiler.render_staged(&self.model);
        let Some(acl) = self.acl.clone() else {
            return true;
        };
        let changes = if self.acl_in_step {
            self.compiler.take_changes()
        } else {
            self.compiler.take_changes();
            match acl.dump().await {
                Ok(programmed) => diff(&programmed, self.compiler.ruleset()),
                Err(e) => {
                    record_failure(&mut self.acl_health, &e, "read back ACLs");
                    return false;
                }
            }
        };
        if changes.is_empty() {
            self.acl_in_step = true;
            self.acl_health = BackendHealth::default();
            return true;
        }
        *repairs += changes.len() as u64;
        debug!(changes = changes.len(), "applying ACL change set");
        match acl.apply(&changes).await {
            Ok(()) => {
                self.acl_in_step = true;
                self.acl_health = BackendHealth::default();
                true
            }
            Err(e) => {
                record_failure(&mut self.acl_health, &e, "apply ACL change set");
                self.metrics().apply_errors_total += 1;
                self.acl_in_step = false;
                false
            }
        }
    }

    /// Brings the FIB to the desired routes. Returns false if something failed.
    /// Brings the FIB in line with the model's routes, then forgets the connections of the
    /// workload addresses that left this host ([`super::forget`]).
    pub(super) async fn reconcile_routes(&mut self, repairs: &mut u64) -> bool {
        let ok = self.apply_routes(repairs).await;
        self.forget_connections().await;
        ok
    }

    async fn apply_routes(&mut self, repairs: &mut u64) -> bool {
        let mut desired: DesiredFib =
            desired_routes(&self.node, &self.model, &self.learned, self.floating_ips);
        let wanted = forget::workload_addresses(&desired);
        // A route to an interface that is not there (or not set up) would be refused.
        desired.retain(|_, target| match target {
            RouteTarget::Workload { interface } => {
                self.configured_interfaces.contains_key(interface)
            }
            _ => true,
        });
        if self.programmed_routes.is_none() {
            match self.fib.dump().await {
                Ok(routes) => {
                    self.programmed_routes =
                        Some(routes.into_iter().map(|r| (r.dst, r.target)).collect());
                }
                Err(e) => {
                    record_failure(&mut self.fib_health, &e, "dump routes");
                    return false;
                }
            }
        }
        let before = (!self.forgetting.started())
            .then(|| forget::workload_addresses(self.programmed_routes.iter().flatten()));
        self.forgetting.note(wanted, before);
        self.keep_remote_routes_while_converging(&mut desired);
        let programmed = self.programmed_routes.as_mut().expect("just filled");
        let current: Vec<Route> = programmed
            .iter()
            .map(|(dst, target)| Route {
                dst: *dst,
                target: target.clone(),
            })
            .collect();
        let changes = fib_diff(&desired, &current);
        if changes.is_empty() {
            self.route_errors.clear();
            self.fib_health = BackendHealth::default();
            self.metrics().routes_programmed = programmed.len() as u64;
            return true;
        }
        *repairs += (changes.remove.len() + changes.upsert.len()) as u64;
        debug!(
            remove = changes.remove.len(),
            upsert = changes.upsert.len(),
            "applying route changes"
        );
        let result = self.fib.apply(&changes).await;
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                record_failure(&mut self.fib_health, &e, "apply route changes");
                self.metrics().apply_errors_total += 1;
                // We no longer know what is programmed: read it back next time.
                self.programmed_routes = None;
                return false;
            }
        };
        let failed: BTreeMap<IpNet, String> = report
            .failed
            .iter()
            .map(|(dst, e)| (*dst, e.to_string()))
            .collect();
        for dst in &changes.remove {
            if !failed.contains_key(dst) {
                programmed.remove(dst);
            }
        }
        for route in &changes.upsert {
            if !failed.contains_key(&route.dst) {
                programmed.insert(route.dst, route.target.clone());
            }
        }
        let routes_programmed = programmed.len() as u64;
        self.metrics().routes_programmed = routes_programmed;
        for (dst, e) in &failed {
            // Logged when it starts or changes, not at every retry.
            if self.route_errors.get(dst) != Some(e) {
                warn!(route = %dst, error = %e, "route not programmed; will retry");
            }
        }
        let ok = failed.is_empty();
        self.route_errors = failed;
        if ok {
            self.fib_health = BackendHealth::default();
        } else {
            self.metrics().apply_errors_total += 1;
            self.fib_health.consecutive_failures += 1;
            self.fib_health.last_error = self.route_errors.values().next().cloned();
        }
        ok
    }

    pub(super) async fn reconcile_exports(&mut self) -> bool {
        let Some(bgp) = self.bgp.clone() else {
            return true;
        };
        // The sessions first (from Node, BgpConfiguration and BgpPeer resources), so that
        // exports go to the right peers.
        let settings = crate::routes::peering::bgp_settings(&self.node, &self.model);
        if self.bgp_configured.as_ref() != Some(&settings) {
            if let Some(s) = &settings {
                if let Err(e) = bgp.configure(s).await {
                    record_failure(&mut self.bgp_health, &e, "configure BGP");
                    return false;
                }
                // Reconfigured at every resync: a line only when the settings changed.
                if self.bgp_logged.as_ref() != Some(s) {
                    info!(node = %self.node, peers = s.peers.len(), "BGP configured");
                    for (peer, why) in crate::routes::peering::held_peers(&self.model) {
                        warn!(%peer, %why, "BGP peering held back");
                    }
                    self.bgp_logged = Some(s.clone());
                }
            }
            self.bgp_configured = Some(settings);
        }
        let exports = local_exports(&self.node, &self.model, self.floating_ips);
        if self.exported.as_ref() == Some(&exports) {
            return true;
        }
        match bgp.set_exported_routes(&exports).await {
            Ok(()) => {
                self.exported = Some(exports);
                self.bgp_health = BackendHealth::default();
                true
            }
            Err(e) => {
                record_failure(&mut self.bgp_health, &e, "set BGP exports");
                false
            }
        }
    }
}

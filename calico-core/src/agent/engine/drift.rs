//! The backends' drift signals ([`FibBackend::drift`], [`AclBackend::drift`]), watched by
//! the engine: which backend says someone else changed its state.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{record_failure, Engine};
use crate::dataplane::{AclBackend, FibBackend, RouteTarget};
use crate::routes::desired_routes;

/// How long the engine waits after a drift signal before repairing, folding in the signals
/// that follow (one `nft delete table` or a deleted interface is a burst of events).
pub(super) const DEBOUNCE: Duration = Duration::from_millis(20);

/// Which backends reported drift.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Drifted {
    /// The FIB's routes, the workload interfaces' links or the interfaces' addresses.
    pub(super) fib: bool,
    /// The ACL table.
    pub(super) acl: bool,
}

/// The drift receivers of the backends that have one.
pub(super) struct DriftWatch {
    fib: Option<watch::Receiver<u64>>,
    acl: Option<watch::Receiver<u64>>,
}

impl DriftWatch {
    /// Subscribes to the backends' drift signals (those that offer one).
    pub(super) fn new(fib: &dyn FibBackend, acl: Option<&dyn AclBackend>) -> DriftWatch {
        DriftWatch {
            fib: fib.drift(),
            acl: acl.and_then(|a| a.drift()),
        }
    }

    /// Whether any backend can report drift.
    pub(super) fn is_active(&self) -> bool {
        self.fib.is_some() || self.acl.is_some()
    }

    /// Waits for the next drift signal. Cancel-safe: a signal not returned stays pending.
    /// A backend whose signal has gone (its listener stopped) is no longer watched.
    pub(super) async fn changed(&mut self) -> Drifted {
        loop {
            tokio::select! {
                gone = changed(&mut self.fib) => match gone {
                    Ok(()) => return Drifted { fib: true, acl: false },
                    Err(()) => self.fib = stopped("FIB"),
                },
                gone = changed(&mut self.acl) => match gone {
                    Ok(()) => return Drifted { fib: false, acl: true },
                    Err(()) => self.acl = stopped("ACL"),
                },
            }
        }
    }

    /// Adds the signals that came since `drifted` was returned.
    pub(super) fn fold(&mut self, mut drifted: Drifted) -> Drifted {
        drifted.fib |= take_change(&mut self.fib);
        drifted.acl |= take_change(&mut self.acl);
        drifted
    }
}

impl Engine {
    /// Reads back and repairs what a backend says someone else changed (BGP is not
    /// touched: its state is not in the kernel's tables).
    ///
    /// FIB drift re-reads the routes, and configures again the workload interfaces whose
    /// route is gone: a re-created interface (the kernel flushes its routes with it) has
    /// lost its settings too, and one brought down has lost its IPv4 routes. The others are
    /// left alone: workloads come and go all the time, and each one's interface events must
    /// not make every other interface be configured again (the resync still does that).
    pub(super) async fn repair_drift(&mut self, drifted: Drifted) {
        if drifted.acl {
            self.acl_in_step = false;
        }
        if drifted.fib {
            // An interface may have gained or lost an address.
            self.interface_addrs_stale = true;
            self.programmed_routes = None;
            match self.fib.dump().await {
                Ok(routes) => {
                    let present: BTreeSet<IpNet> = routes.iter().map(|r| r.dst).collect();
                    let desired =
                        desired_routes(&self.node, &self.model, &self.learned, self.floating_ips);
                    for (dst, target) in desired {
                        if let RouteTarget::Workload { interface } = target {
                            if !present.contains(&dst)
                                && self.configured_interfaces.remove(&interface).is_some()
                            {
                                debug!(%interface, route = %dst, "route gone: the interface is configured again");
                            }
                        }
                    }
                    self.programmed_routes =
                        Some(routes.into_iter().map(|r| (r.dst, r.target)).collect());
                }
                Err(e) => {
                    record_failure(&mut self.fib_health, &e, "dump routes");
                    self.configured_interfaces.clear();
                }
            }
        }
        self.repairing = Some(drifted);
        self.reconcile().await;
    }
}

fn stopped(which: &str) -> Option<watch::Receiver<u64>> {
    warn!(
        backend = which,
        "the backend's drift signal has stopped: drift is repaired by the periodic resync only"
    );
    None
}

async fn changed(rx: &mut Option<watch::Receiver<u64>>) -> Result<(), ()> {
    match rx {
        Some(rx) => rx.changed().await.map_err(|_| ()),
        None => std::future::pending().await,
    }
}

fn take_change(rx: &mut Option<watch::Receiver<u64>>) -> bool {
    match rx {
        Some(r) if r.has_changed().unwrap_or(false) => {
            r.borrow_and_update();
            true
        }
        _ => false,
    }
}

//! Forgetting the connections of addresses that left this host's workloads
//! ([`FibBackend::forget_connections`]): an endpoint removed, its address or a floating IP
//! gone or given to another workload. The endpoint chains let established connections
//! through before any policy, so without this a workload that takes over an address would
//! inherit the previous owner's connections unjudged, and a removed floating IP would keep
//! translating. Felix removes such conntrack entries when it removes a workload's route.
//!
//! Which addresses moved is read from the routes the pass wants (a workload route per
//! address and floating IP, to its interface) against those of the pass before; at the
//! first pass, against the routes read back from the FIB, so that endpoints removed while
//! the agent was down are forgotten too. A route held back only because its interface is
//! not ready yet does not count as moved.
//!
//! [`FibBackend::forget_connections`]: crate::dataplane::FibBackend::forget_connections

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use tracing::{info, warn};

use super::Engine;
use crate::dataplane::RouteTarget;

/// The workload addresses last seen and the addresses whose connections are still to be
/// forgotten.
#[derive(Debug, Default)]
pub(super) struct Forgetting {
    /// Each workload address (and floating IP) of this host with its interface, as of the
    /// last pass; `None` before the first.
    known: Option<BTreeMap<IpAddr, String>>,
    /// Addresses to forget (kept until the backend has done it).
    pending: BTreeSet<IpAddr>,
    /// The last failure, logged when it changes.
    last_error: Option<String>,
}

/// The single addresses routed to a workload interface among `routes`, with the interface.
pub(super) fn workload_addresses<'a>(
    routes: impl IntoIterator<Item = (&'a IpNet, &'a RouteTarget)>,
) -> BTreeMap<IpAddr, String> {
    routes
        .into_iter()
        .filter(|(dst, _)| dst.prefix_len() == dst.max_prefix_len())
        .filter_map(|(dst, target)| match target {
            RouteTarget::Workload { interface } => Some((dst.addr(), interface.clone())),
            _ => None,
        })
        .collect()
}

impl Forgetting {
    /// Whether the first pass has been noted.
    pub(super) fn started(&self) -> bool {
        self.known.is_some()
    }

    /// Takes the workload addresses a pass wants (`now`) and, before the first pass, those
    /// the FIB held (`before`): an address that was known and is now wanted on another
    /// interface, or not at all, is to be forgotten.
    pub(super) fn note(
        &mut self,
        now: BTreeMap<IpAddr, String>,
        before: Option<BTreeMap<IpAddr, String>>,
    ) {
        let known = self.known.take().or(before).unwrap_or_default();
        for (addr, interface) in known {
            if now.get(&addr) != Some(&interface) {
                self.pending.insert(addr);
            }
        }
        self.known = Some(now);
    }
}

impl Engine {
    /// Asks the FIB backend to forget the connections of the pending addresses. A failure
    /// is logged (when it changes) and retried at the next pass; it does not hold the pass
    /// up: the routes and rules are right, only older connections may linger.
    pub(super) async fn forget_connections(&mut self) {
        if self.forgetting.pending.is_empty() {
            return;
        }
        let addrs: Vec<IpAddr> = self.forgetting.pending.iter().copied().collect();
        match self.fib.forget_connections(&addrs).await {
            Ok(()) => {
                info!(addresses = ?addrs, "forgot the connections of addresses no longer on this host's workloads");
                self.forgetting.pending.clear();
                self.forgetting.last_error = None;
            }
            Err(e) => {
                let error = e.to_string();
                if self.forgetting.last_error.as_ref() != Some(&error) {
                    warn!(addresses = ?addrs, error = %e, "cannot forget the connections of addresses no longer on this host's workloads; will retry");
                }
                self.forgetting.last_error = Some(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[(&str, &str)]) -> BTreeMap<IpAddr, String> {
        list.iter()
            .map(|(a, i)| (a.parse().unwrap(), i.to_string()))
            .collect()
    }

    fn pending(f: &Forgetting) -> Vec<String> {
        f.pending.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn an_address_gone_or_moved_is_forgotten_and_one_that_stays_is_not() {
        let mut f = Forgetting::default();
        f.note(
            addrs(&[("10.65.0.1", "cali1"), ("10.65.0.2", "cali2")]),
            Some(addrs(&[("10.65.0.9", "cali9")])),
        );
        assert_eq!(pending(&f), ["10.65.0.9"], "gone while the agent was down");
        f.pending.clear();
        f.note(
            addrs(&[("10.65.0.2", "cali3"), ("10.65.0.1", "cali1")]),
            None,
        );
        assert_eq!(pending(&f), ["10.65.0.2"], "moved to another workload");
        f.pending.clear();
        f.note(addrs(&[("10.65.0.2", "cali3")]), None);
        assert_eq!(pending(&f), ["10.65.0.1"], "removed");
        f.pending.clear();
        f.note(
            addrs(&[("10.65.0.2", "cali3")]),
            Some(addrs(&[("10.1.1.1", "x")])),
        );
        assert!(
            f.pending.is_empty(),
            "the FIB is only read before the first pass"
        );
    }

    #[test]
    fn only_single_addresses_to_workloads_count() {
        let routes: Vec<(IpNet, RouteTarget)> = vec![
            (
                "10.65.0.1/32".parse().unwrap(),
                RouteTarget::Workload {
                    interface: "cali1".into(),
                },
            ),
            (
                "fd00::1/128".parse().unwrap(),
                RouteTarget::Workload {
                    interface: "cali1".into(),
                },
            ),
            (
                "10.65.1.0/26".parse().unwrap(),
                RouteTarget::Workload {
                    interface: "cali2".into(),
                },
            ),
            ("10.65.0.0/26".parse().unwrap(), RouteTarget::Blackhole),
        ];
        let found = workload_addresses(routes.iter().map(|(d, t)| (d, t)));
        assert_eq!(
            found,
            addrs(&[("10.65.0.1", "cali1"), ("fd00::1", "cali1")])
        );
    }
}

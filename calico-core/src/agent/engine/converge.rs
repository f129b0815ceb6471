//! Keeping the remote routes of a previous run while BGP converges after a restart.

use ipnet::IpNet;
use tracing::{debug, info, warn};

use super::Engine;
use crate::dataplane::{PeerState, RouteTarget};
use crate::routes::DesiredFib;

impl Engine {
    /// After a restart: adds to `desired` the remote routes of the FIB that BGP has not
    /// learned again yet, until it has converged or the time is up.
    pub(super) fn keep_remote_routes_while_converging(&mut self, desired: &mut DesiredFib) {
        let Some(until) = self.keep_remote_until else {
            return;
        };
        let programmed = self
            .programmed_routes
            .as_ref()
            .expect("filled by the caller");
        let kept: Vec<(IpNet, RouteTarget)> = programmed
            .iter()
            .filter(|(dst, target)| {
                matches!(target, RouteTarget::Via(_)) && !desired.contains_key(*dst)
            })
            .map(|(dst, target)| (*dst, target.clone()))
            .collect();
        let converged = self.bgp_converged();
        if converged || tokio::time::Instant::now() >= until {
            self.keep_remote_until = None;
            let took = self.started.elapsed();
            if converged {
                info!(
                    removed = kept.len(),
                    "BGP converged {} ms after the restart (every peer established, \
                     End-of-RIB received): remote routes no peer announced again are removed",
                    took.as_millis()
                );
            } else {
                let waiting: Vec<String> = self.peers_not_converged();
                warn!(
                    removed = kept.len(),
                    waiting_for = ?waiting,
                    "BGP did not converge within {} ms of the restart: remote routes not \
                     learned again are removed; check the sessions of the peers waited for",
                    took.as_millis()
                );
            }
            return;
        }
        if !kept.is_empty() {
            debug!(
                kept = kept.len(),
                "keeping remote routes from before the restart until BGP converges"
            );
        }
        desired.extend(kept);
    }

    /// Whether every configured BGP peer is established and has sent its whole table.
    fn bgp_converged(&self) -> bool {
        match &self.bgp_configured {
            // Not configured yet (or again, in a resync).
            None => false,
            // No BGP for this node: nothing to wait for.
            Some(None) => true,
            Some(Some(_)) => self.peers_not_converged().is_empty(),
        }
    }

    /// The configured peers not established or whose End-of-RIB has not come yet.
    fn peers_not_converged(&self) -> Vec<String> {
        let Some(Some(settings)) = &self.bgp_configured else {
            return Vec::new();
        };
        settings
            .peers
            .iter()
            .filter(|p| {
                !self.peers.iter().any(|s| {
                    s.address == p.address
                        && s.state == PeerState::Established
                        && s.end_of_rib_received
                })
            })
            .map(|p| p.address.to_string())
            .collect()
    }
}

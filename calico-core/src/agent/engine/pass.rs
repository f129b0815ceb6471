//! The bookkeeping of a finished pass: metrics, the repair log line, the retry back-off.

use std::time::Duration;

use tokio::time::Instant;

use tracing::{debug, info};

use super::{Drifted, Engine};

/// Longest retry delay while the only thing left is an interface not there yet (a backend
/// with a drift signal reports the interface's arrival at once anyway).
const WAITING_RETRY_MAX: Duration = Duration::from_secs(1);

/// What one pass changed (repairs, in a resync or drift pass).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Repairs {
    /// ACL changes applied.
    pub(super) acl: u64,
    /// Routes removed or upserted.
    pub(super) routes: u64,
}

impl Repairs {
    pub(super) fn total(&self) -> u64 {
        self.acl + self.routes
    }
}

impl Engine {
    /// Metrics and the log line of a finished pass.
    pub(super) fn count_pass(
        &self,
        started: Instant,
        was_resync: bool,
        repairing: Option<Drifted>,
        repairs: Repairs,
    ) {
        let mut m = self.metrics();
        m.reconciles_total += 1;
        m.apply_latency.observe(started.elapsed());
        if was_resync {
            m.resyncs_total += 1;
            m.resync_repairs_total += repairs.total();
            if repairs.total() > 0 {
                info!(
                    acl_changes = repairs.acl,
                    route_changes = repairs.routes,
                    "resync repaired drift"
                );
            }
        } else if let Some(drifted) = repairing {
            m.drift_passes_total += 1;
            m.drift_repairs_total += repairs.total();
            if repairs.total() > 0 {
                info!(
                    acl_changes = repairs.acl,
                    route_changes = repairs.routes,
                    acl_drift = drifted.acl,
                    fib_drift = drifted.fib,
                    ms = started.elapsed().as_millis() as u64,
                    "repaired drift reported by the kernel"
                );
            } else {
                debug!(?drifted, "drift reported; nothing to repair");
            }
        }
    }

    /// When to try again after a pass that left something undone (`failed`: an error;
    /// `waiting`: an interface not there yet): `retry_initial`, doubled per consecutive
    /// such pass, at most `retry_max` (and at most [`WAITING_RETRY_MAX`] while only
    /// waiting). `None` once everything is done.
    pub(super) fn retry_delay(&mut self, failed: bool, waiting: bool) -> Option<Duration> {
        if !failed && !waiting {
            self.unsettled_passes = 0;
            return None;
        }
        self.unsettled_passes = self.unsettled_passes.saturating_add(1);
        let max = if failed {
            self.timing.retry_max
        } else {
            self.timing.retry_max.min(WAITING_RETRY_MAX)
        };
        let doublings = self.unsettled_passes.min(17) - 1;
        Some(
            self.timing
                .retry_initial
                .saturating_mul(1u32 << doublings)
                .min(max),
        )
    }
}

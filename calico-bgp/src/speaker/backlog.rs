//! A peer whose send queue is full (it reads slower than it is sent to): what changed for
//! it meanwhile, and what it is sent once its queue has drained.
//!
//! While the queue is stalled the peer is left out of every change (so the others' UPDATEs
//! are neither delayed by it nor held in memory for it), and only the prefixes that changed
//! are noted, each once however often it changed. Once the queue has drained the peer is
//! sent the current state of each noted prefix, computed then: its route, or a withdrawal
//! (of a route it may or may not have had: withdrawing a route a speaker does not hold
//! changes nothing there). On the families it is sent every
//! path of (ADD-PATH) its Adj-RIB-Out still holds what it was sent, so the difference is
//! exact there. Whole tables (session up, ROUTE-REFRESH, a change of communities or
//! filters) are queued as they come: they are rare and a peer asked for them.

use std::collections::HashSet;

use ipnet::IpNet;

use super::outbound::{Batch, Delta};
use crate::packet::AfiSafi;
use crate::rib::export::Exporter;
use crate::rib::family_of;
use crate::rib::hash::BuildRibHasher;

/// The prefixes that changed for a stalled peer.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    changed: HashSet<IpNet, BuildRibHasher>,
}

impl Backlog {
    /// Notes the prefixes of a change the peer was left out of: `deltas` (best paths) and
    /// `touched` (multipath sets, for ADD-PATH).
    pub(crate) fn note(&mut self, deltas: &[Delta], touched: &[IpNet]) {
        self.changed.extend(deltas.iter().map(|d| d.0));
        self.changed.extend(touched.iter().copied());
    }

    /// How many prefixes are noted.
    pub(crate) fn len(&self) -> usize {
        self.changed.len()
    }

    /// The noted prefixes of `families`.
    pub(crate) fn prefixes(&self, families: &[AfiSafi]) -> Vec<IpNet> {
        self.changed
            .iter()
            .filter(|p| families.contains(&family_of(p)))
            .copied()
            .collect()
    }
}

/// What brings a peer that was sent one path per prefix up to date for `prefixes`: each
/// one's route now, or its withdrawal.
pub(crate) fn catch_up(exporter: &mut Exporter<'_>, prefixes: &[IpNet]) -> Batch {
    let mut batch = Batch::default();
    for prefix in prefixes {
        match exporter.route(prefix) {
            Some(attrs) => batch.announce(*prefix, 0, attrs),
            None => batch.withdraw(*prefix, 0),
        }
    }
    batch
}

//! Applying a peer's UPDATEs to the RIB: withdrawals, then the announced prefixes with the
//! imported attributes (or as withdrawn when import policy or the peer's filters reject
//! them).
//!
//! A full table is a million prefixes through here, so the work per prefix is kept to the
//! table update: what is the same for every prefix of an UPDATE (the peer, its filters,
//! the attributes) is looked up once per UPDATE, and the peer's count of paths is updated
//! once per UPDATE.

use std::sync::Arc;

use calico_core::model::{evaluate, BgpFilter, Direction, FilterAction, RouteFacts};
use ipnet::IpNet;

use super::import::{admit, import, Imported};
use super::inbound::{Inbound, InboundBatch, Prepared};
use super::{Change, PeerId, Rib, RouteAttrs};
use crate::packet::update::with_ids;
use crate::packet::{AfiSafi, Update};

impl Rib {
    /// Applies an UPDATE from an established peer; returns the prefixes whose entry changed.
    pub fn apply(&mut self, from: PeerId, update: &Update) -> Vec<Change> {
        self.apply_owned(from, update.clone())
    }

    /// [`Rib::apply`] taking the UPDATE by value (its attributes are moved, not copied).
    pub fn apply_owned(&mut self, from: PeerId, update: Update) -> Vec<Change> {
        let mut changes = Vec::new();
        self.apply_into(from, update, &mut changes);
        changes
    }

    /// [`Rib::apply_owned`] adding the prefixes whose entry changed to `changes` (one
    /// vector for a batch of UPDATEs).
    pub fn apply_into(&mut self, from: PeerId, update: Update, changes: &mut Vec<Change>) {
        if self.peers.info(from).is_none() {
            return;
        }
        let mut received = 0isize;
        for (prefix, path_id) in update.withdrawn_paths() {
            received += self.set_path_uncounted((from, path_id), prefix, None, changes);
        }
        if update.announced().next().is_some() {
            received += self.announce_plain(from, update, changes);
        }
        self.count_received(from, received);
    }

    /// Applies a batch of UPDATEs from peer `from`, in order, some of them perhaps
    /// prepared by a peering's task ([`super::Importer::prepare_into`] of this RIB's
    /// [`Rib::importer`]), adding the prefixes whose entry changed to `changes`. After an
    /// End-of-RIB marker (RFC 4724 §2) it calls `end_of_rib` with the marker's family,
    /// before the UPDATEs that follow it.
    pub fn apply_batch(
        &mut self,
        from: PeerId,
        batch: InboundBatch,
        changes: &mut Vec<Change>,
        mut end_of_rib: impl FnMut(&mut Rib, AfiSafi, &mut Vec<Change>),
    ) {
        let InboundBatch { updates, announced } = batch;
        let mut announced = announced.as_slice();
        for inbound in updates {
            let eor = inbound.end_of_rib_family();
            match inbound {
                Inbound::Plain(update) => self.apply_into(from, *update, changes),
                Inbound::Prepared(prepared) => {
                    let (these, rest) =
                        announced.split_at(prepared.announced.0 + prepared.announced.1);
                    announced = rest;
                    self.apply_prepared(from, prepared, these, changes);
                }
            }
            if let Some(family) = eor {
                end_of_rib(self, family, changes);
            }
        }
    }

    /// Applies a prepared UPDATE whose announced prefixes are `announced` (its IPv4 NLRI,
    /// then its MP_REACH_NLRI prefixes).
    fn apply_prepared(
        &mut self,
        from: PeerId,
        prepared: Prepared,
        announced: &[(IpNet, u32)],
        changes: &mut Vec<Change>,
    ) {
        if self.peers.info(from).is_none() {
            return;
        }
        let mut received = 0isize;
        for (prefix, path_id) in prepared.withdrawn_paths() {
            received += self.set_path_uncounted((from, path_id), prefix, None, changes);
        }
        if let Some(info) = self.peers.info(from).filter(|_| !announced.is_empty()) {
            let sets = (prepared.v4, prepared.mp);
            let imported = admit(&self.importer, &self.settings, info, sets);
            let (v4, mp) = announced.split_at(prepared.announced.0);
            let prefixes = (v4.iter().copied(), mp.iter().copied());
            received += self.announce(from, imported, prefixes, changes);
        }
        self.count_received(from, received);
    }

    /// Applies the announced prefixes of an UPDATE not prepared, importing its attributes
    /// here; returns the change in the peer's count of paths.
    fn announce_plain(&mut self, from: PeerId, update: Update, changes: &mut Vec<Change>) -> isize {
        let treat_as_withdraw = update.treat_as_withdraw();
        let Update {
            nlri,
            nlri_path_ids,
            mut attributes,
            ..
        } = update;
        let (mp_nlri, mp_ids) = attributes
            .mp_reach
            .as_mut()
            .map(|mp| {
                (
                    std::mem::take(&mut mp.nlri),
                    std::mem::take(&mut mp.path_ids),
                )
            })
            .unwrap_or_default();
        let Some(info) = self.peers.info(from) else {
            return 0;
        };
        let imported = if treat_as_withdraw {
            None
        } else {
            let announcing = (!nlri.is_empty(), !mp_nlri.is_empty());
            let mut interner = self.importer.lock();
            import(&mut interner, &self.settings, info, attributes, announcing)
        };
        let v4 = with_ids(nlri.into_iter().map(IpNet::V4), &nlri_path_ids);
        let mp = with_ids(mp_nlri.into_iter(), &mp_ids);
        self.announce(from, imported, (v4, mp), changes)
    }

    /// Applies announced prefixes (with their path identifiers) with the attributes import
    /// policy gave the IPv4 NLRI and the MP_REACH_NLRI ones (`None`: handled as
    /// withdrawn); returns the change in the peer's count of paths.
    fn announce(
        &mut self,
        from: PeerId,
        imported: Option<Imported>,
        (v4, mp): (
            impl Iterator<Item = (IpNet, u32)>,
            impl Iterator<Item = (IpNet, u32)>,
        ),
        changes: &mut Vec<Change>,
    ) -> isize {
        let Some(info) = self.peers.info(from) else {
            return 0;
        };
        let (attrs_v4, attrs_mp) = imported.unwrap_or_default();
        // The peer's import filters: a rejected prefix is handled as withdrawn.
        let policy = self.policy.clone();
        let filters = policy.peer_filters(info.address);
        // The interface matters to filters only (a String copied per UPDATE otherwise).
        let interface = (!filters.is_empty())
            .then(|| info.interface.clone())
            .flatten();
        let route = RouteFacts::learned(interface.as_deref());
        let filter = |prefix: &IpNet, attrs: &Option<Arc<RouteAttrs>>| {
            attrs.clone().filter(|_| accepts(filters, prefix, route))
        };
        let mut received = 0;
        for (prefix, path_id) in v4 {
            let attrs = filter(&prefix, &attrs_v4);
            received += self.set_path_uncounted((from, path_id), prefix, attrs, changes);
        }
        for (prefix, path_id) in mp {
            let attrs = filter(&prefix, &attrs_mp);
            received += self.set_path_uncounted((from, path_id), prefix, attrs, changes);
        }
        received
    }

    /// Sets (or with `None` removes) the path `key` (peer, path identifier) to `prefix`
    /// (its host bits cleared).
    pub(super) fn set_path(
        &mut self,
        key: (PeerId, u32),
        prefix: IpNet,
        attrs: Option<Arc<RouteAttrs>>,
        changes: &mut Vec<Change>,
    ) {
        let delta = self.set_path_uncounted(key, prefix, attrs, changes);
        self.count_received(key.0, delta);
    }

    /// [`Rib::set_path`] but for the peer's count of paths: returns its change.
    fn set_path_uncounted(
        &mut self,
        key: (PeerId, u32),
        prefix: IpNet,
        attrs: Option<Arc<RouteAttrs>>,
        changes: &mut Vec<Change>,
    ) -> isize {
        let prefix = prefix.trunc();
        if !self.stale.is_empty() {
            // Announced or withdrawn again: no longer stale.
            if let Some(set) = self.stale.get_mut(&key.0) {
                match prefix {
                    IpNet::V4(p) => set.v4.remove(&(p, key.1)),
                    IpNet::V6(p) => set.v6.remove(&(p, key.1)),
                };
            }
        }
        let (peers, local_as) = (&self.peers, self.settings.local_as);
        let Some((delta, change)) = self.tables.set(&prefix, key, attrs, peers, local_as) else {
            return 0;
        };
        if let Some((best, old_best, new_best)) = change {
            changes.push(Change {
                prefix,
                best,
                old_best,
                new_best,
            });
        }
        delta
    }

    /// Adds `delta` to the count of paths accepted from peer `from`.
    fn count_received(&mut self, from: PeerId, delta: isize) {
        let n = self.received.entry(from).or_insert(0);
        *n = n.saturating_add_signed(delta);
    }
}

/// Whether `filters` (a peer's import filters) accept a route to `prefix`: as
/// [`calico_core::dataplane::RoutePolicy::allows`], with the peer's filters looked up once
/// per UPDATE rather than once per prefix.
fn accepts(filters: &[BgpFilter], prefix: &IpNet, route: RouteFacts<'_>) -> bool {
    filters.is_empty()
        || evaluate(filters, Direction::Import, prefix, route) == FilterAction::Accept
}

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

use super::import::{admit, import};
use super::inbound::Inbound;
use super::{Change, PeerId, Rib, RouteAttrs};
use crate::packet::Update;

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
        self.apply_inbound(from, update.into(), changes);
    }

    /// [`Rib::apply_into`] for an UPDATE a peering's task may have prepared
    /// ([`super::Importer::prepare`] of this RIB's [`Rib::importer`]).
    pub fn apply_inbound(&mut self, from: PeerId, inbound: Inbound, changes: &mut Vec<Change>) {
        if self.peers.info(from).is_none() {
            return;
        }
        let mut received = 0isize;
        for (prefix, path_id) in inbound.update.withdrawn_paths() {
            received += self.set_path_uncounted((from, path_id), prefix, None, changes);
        }
        if inbound.update.announced().next().is_some() {
            received += self.announce(from, inbound, changes);
        }
        self.count_received(from, received);
    }

    /// Applies the announced prefixes of `inbound`; returns the change in the peer's count
    /// of paths.
    fn announce(&mut self, from: PeerId, inbound: Inbound, changes: &mut Vec<Change>) -> isize {
        let Inbound { update, prepared } = inbound;
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
        let imported = match prepared {
            _ if treat_as_withdraw => None,
            Some(prepared) => admit(&self.importer, &self.settings, info, prepared),
            None => {
                let announcing = (!nlri.is_empty(), !mp_nlri.is_empty());
                let mut interner = self.importer.lock();
                import(&mut interner, &self.settings, info, attributes, announcing)
            }
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
        let id_of = |ids: &[u32], i: usize| ids.get(i).copied().unwrap_or(0);
        let mut received = 0;
        for (i, p) in nlri.into_iter().enumerate() {
            let (key, prefix) = ((from, id_of(&nlri_path_ids, i)), IpNet::V4(p));
            let attrs = filter(&prefix, &attrs_v4);
            received += self.set_path_uncounted(key, prefix, attrs, changes);
        }
        for (i, prefix) in mp_nlri.into_iter().enumerate() {
            let key = (from, id_of(&mp_ids, i));
            let attrs = filter(&prefix, &attrs_mp);
            received += self.set_path_uncounted(key, prefix, attrs, changes);
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

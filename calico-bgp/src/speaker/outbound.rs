//! Outbound UPDATE batching: what one peer is to be sent after a change of the Loc-RIB or
//! of our exports, or for a whole table dump, gathered into a [`Batch`] and encoded into as
//! few UPDATE messages as the attribute sets allow.
//!
//! Everything here returns values: the [`state`](super::state) machine decides who gets a
//! batch and hands the encoded bytes out.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::packet::update::{end_of_rib, pack_path_announcements, pack_path_withdrawals};
use crate::packet::{
    AddPathFamilies, AfiSafi, Context, Message, MpNextHop, PathAttributes, Update,
};
use crate::rib::export::Exporter;
use crate::rib::hash::BuildRibHasher;
use crate::rib::{family_of, Change, Path, PeerId, Rib, RouteAttrs};

/// What a peer was sent for a prefix before a change.
#[derive(Clone, Debug)]
pub(crate) enum Old {
    /// Our own route.
    Local,
    /// The learned best path (if any) as it was.
    Learned(Option<Path>),
}

/// What a peer is to be sent for a prefix after a change.
#[derive(Clone, Debug)]
pub(crate) enum Now {
    /// Look it up (exports and Loc-RIB).
    Lookup,
    /// The learned best path (no local export of the prefix).
    Learned(Option<Path>),
}

/// A prefix whose advertisement may have changed: what peers had before (`None`: nothing
/// changed for anyone) and what they are to have now.
pub(crate) type Delta = (IpNet, Option<Old>, Now);

/// A prefix and the path identifier it is sent with (RFC 7911; 0, and not encoded, on a
/// family without ADD-PATH).
pub(crate) type PathKey = (IpNet, u32);

/// Withdrawals, announcements grouped by attribute set, and End-of-RIB markers for one peer.
#[derive(Default)]
pub(crate) struct Batch {
    withdraw_v4: Vec<PathKey>,
    withdraw_v6: Vec<PathKey>,
    announce: HashMap<usize, (Arc<RouteAttrs>, Vec<PathKey>)>,
    /// Families to send End-of-RIB for, after everything else.
    pub(crate) end_of_rib: Vec<AfiSafi>,
}

impl Batch {
    /// A batch of End-of-RIB markers only.
    pub(crate) fn end_of_rib(families: Vec<AfiSafi>) -> Batch {
        Batch {
            end_of_rib: families,
            ..Batch::default()
        }
    }

    /// Withdraws path `id` of `prefix` (0 without ADD-PATH).
    pub(crate) fn withdraw(&mut self, prefix: IpNet, id: u32) {
        match prefix {
            IpNet::V4(_) => self.withdraw_v4.push((prefix, id)),
            IpNet::V6(_) => self.withdraw_v6.push((prefix, id)),
        }
    }

    /// Announces path `id` of `prefix` (0 without ADD-PATH) with `attrs`.
    pub(crate) fn announce(&mut self, prefix: IpNet, id: u32, attrs: Arc<RouteAttrs>) {
        self.announce
            .entry(Arc::as_ptr(&attrs) as usize)
            .or_insert_with(|| (attrs, Vec::new()))
            .1
            .push((prefix, id));
    }

    /// Whether there is nothing to send.
    pub(crate) fn is_empty(&self) -> bool {
        self.withdraw_v4.is_empty()
            && self.withdraw_v6.is_empty()
            && self.announce.is_empty()
            && self.end_of_rib.is_empty()
    }

    /// What the peer behind `exporter` is to be sent for `deltas`, but for prefixes of the
    /// families in `skip` (those it is sent every path of, with ADD-PATH).
    pub(crate) fn for_deltas(
        exporter: &mut Exporter<'_>,
        deltas: &[Delta],
        skip: AddPathFamilies,
    ) -> Batch {
        let mut batch = Batch::default();
        for (prefix, old, now) in deltas {
            let Some(old) = old else { continue };
            if !skip.is_empty() && skip.contains(family_of(prefix)) {
                continue;
            }
            let before = match old {
                Old::Local => exporter.local_route_for(prefix),
                Old::Learned(path) => exporter.route_with(prefix, path.as_ref()),
            };
            let now = match now {
                Now::Lookup => exporter.route(prefix),
                Now::Learned(path) => exporter.route_with(prefix, path.as_ref()),
            };
            match (before, now) {
                (Some(_), None) => batch.withdraw(*prefix, 0),
                (before, Some(now)) if before.as_deref() != Some(&*now) => {
                    batch.announce(*prefix, 0, now)
                }
                _ => {}
            }
        }
        batch
    }

    /// The whole Adj-RIB-Out of the peer behind `exporter` for `families` (without
    /// End-of-RIB).
    pub(crate) fn table(exporter: &mut Exporter<'_>, families: &[AfiSafi]) -> Batch {
        let mut batch = Batch::default();
        let candidates: Vec<IpNet> = exporter.candidates().collect();
        for prefix in candidates {
            if !families.contains(&family_of(&prefix)) {
                continue;
            }
            if let Some(attrs) = exporter.route(&prefix) {
                batch.announce(prefix, 0, attrs);
            }
        }
        batch
    }

    /// The withdrawn and announced paths, each sorted (for tests).
    #[cfg(test)]
    pub(crate) fn paths(&self) -> (Vec<PathKey>, Vec<PathKey>) {
        let mut withdrawn: Vec<PathKey> = self
            .withdraw_v4
            .iter()
            .chain(&self.withdraw_v6)
            .copied()
            .collect();
        let mut announced: Vec<PathKey> = self
            .announce
            .values()
            .flat_map(|(_, p)| p.iter().copied())
            .collect();
        withdrawn.sort();
        announced.sort();
        (withdrawn, announced)
    }

    /// Adds `other`'s withdrawals and announcements to this batch.
    pub(crate) fn merge(&mut self, other: Batch) {
        self.withdraw_v4.extend(other.withdraw_v4);
        self.withdraw_v6.extend(other.withdraw_v6);
        for (key, (attrs, paths)) in other.announce {
            self.announce
                .entry(key)
                .or_insert_with(|| (attrs, Vec::new()))
                .1
                .extend(paths);
        }
        self.end_of_rib.extend(other.end_of_rib);
    }

    /// The batch as UPDATE messages: withdrawals, announcements, then End-of-RIB. `peer`
    /// names the peer in logs.
    pub(crate) fn encode(self, ctx: &Context, peer: IpAddr) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encode = |u: Update| {
            if let Err(e) = Message::Update(u).encode_into(ctx, &mut bytes) {
                tracing::error!(%peer, error = %e, "cannot encode UPDATE; prefixes not sent");
            }
        };
        for paths in [self.withdraw_v4, self.withdraw_v6] {
            let (prefixes, ids) = split(paths, ctx.add_path);
            match pack_path_withdrawals(&prefixes, &ids) {
                Ok(updates) => updates.into_iter().for_each(&mut encode),
                Err(e) => {
                    tracing::error!(%peer, error = %e, "cannot pack withdrawals; prefixes not withdrawn")
                }
            }
        }
        for (attrs, paths) in self.announce.into_values() {
            let (v4, v6): (Vec<PathKey>, Vec<PathKey>) = paths
                .into_iter()
                .partition(|(p, _)| matches!(p, IpNet::V4(_)));
            if !v4.is_empty() {
                let mut path = attrs.path.clone();
                let v4 = split(v4, ctx.add_path);
                match attrs.next_hop {
                    IpAddr::V4(nh) => {
                        path.next_hop = Some(nh);
                        pack(&path, None, v4, &mut encode);
                    }
                    IpAddr::V6(_) => pack(&path, Some(mp_next_hop(&attrs)), v4, &mut encode),
                }
            }
            if !v6.is_empty() {
                let v6 = split(v6, ctx.add_path);
                pack(&attrs.path, Some(mp_next_hop(&attrs)), v6, &mut encode);
            }
        }
        for family in self.end_of_rib {
            encode(end_of_rib(family));
        }
        bytes
    }
}

/// Turns Loc-RIB changes into deltas: only best-path changes matter to peers, and a prefix
/// we export ourselves is advertised as ours whatever was learned.
pub(crate) fn deltas_of<'a>(
    changes: impl Iterator<Item = &'a Change>,
    exports: &std::collections::BTreeSet<IpNet>,
) -> Vec<Delta> {
    changes
        .filter(|c| c.best)
        .map(|c| {
            if exports.contains(&c.prefix) {
                return (c.prefix, None, Now::Lookup);
            }
            let old = Some(Old::Learned(c.old_best.clone()));
            (c.prefix, old, Now::Learned(c.new_best.clone()))
        })
        .collect()
}

/// The peers whose paths `deltas` are about (the paths before and after, and the best
/// path of a prefix to look up): each of them is to be sent the change apart from its
/// update group (never a path back to where it came from).
pub(crate) fn sources_of(deltas: &[Delta], rib: &Rib) -> HashSet<PeerId> {
    let mut sources = HashSet::new();
    for (prefix, old, now) in deltas {
        if let Some(Old::Learned(Some(p))) = old {
            sources.insert(p.peer);
        }
        match now {
            Now::Learned(Some(p)) => {
                sources.insert(p.peer);
            }
            Now::Learned(None) => {}
            Now::Lookup => sources.extend(rib.best(prefix).first().map(|p| p.peer)),
        }
    }
    sources
}

/// Merges repeated changes of one prefix (several UPDATEs in one batch): the first one's
/// previous best path is what peers had.
///
/// Changes in strictly increasing prefix order have no repeats and are returned as they
/// are, without a table of every prefix: peers that walk a trie (FRR, and the feed bench's
/// feeder) send a full table in that order.
pub(crate) fn merge_changes(changes: Vec<Change>) -> Vec<Change> {
    if changes.windows(2).all(|w| w[0].prefix < w[1].prefix) {
        return changes;
    }
    merge_repeats(changes)
}

/// [`merge_changes`] by a table of every prefix seen.
fn merge_repeats(changes: Vec<Change>) -> Vec<Change> {
    let mut at: HashMap<IpNet, usize, BuildRibHasher> = HashMap::default();
    let mut merged: Vec<Change> = Vec::with_capacity(changes.len());
    for c in changes {
        match at.get(&c.prefix).and_then(|&i| merged.get_mut(i)) {
            Some(first) => {
                first.best |= c.best;
                first.new_best = c.new_best;
            }
            None => {
                at.insert(c.prefix, merged.len());
                merged.push(c);
            }
        }
    }
    merged
}

fn mp_next_hop(attrs: &RouteAttrs) -> MpNextHop {
    MpNextHop {
        global: attrs.next_hop,
        link_local: attrs.link_local,
    }
}

/// The prefixes of `paths` (all of one family), and their path identifiers when the session
/// sends them for the family (else none).
fn split(paths: Vec<PathKey>, add_path: AddPathFamilies) -> (Vec<IpNet>, Vec<u32>) {
    let with_ids = paths
        .first()
        .is_some_and(|(p, _)| add_path.contains(family_of(p)));
    if with_ids {
        paths.into_iter().unzip()
    } else {
        (paths.into_iter().map(|(p, _)| p).collect(), Vec::new())
    }
}

fn pack(
    path: &PathAttributes,
    next_hop: Option<MpNextHop>,
    (prefixes, ids): (Vec<IpNet>, Vec<u32>),
    encode: &mut impl FnMut(Update),
) {
    match pack_path_announcements(path, next_hop, &prefixes, &ids) {
        Ok(updates) => updates.into_iter().for_each(encode),
        Err(e) => tracing::error!(error = %e, "cannot pack announcements; prefixes not sent"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ipnet::Ipv4Net;
    use proptest::prelude::*;

    use super::*;
    use crate::rib::Path;

    fn change(prefix: u8, best: bool, old: Option<u32>, new: Option<u32>) -> Change {
        let attrs = Arc::new(RouteAttrs {
            path: PathAttributes::default(),
            next_hop: Ipv4Addr::new(10, 0, 0, 1).into(),
            link_local: None,
        });
        let path = |id| Path {
            peer: PeerId(1),
            path_id: id,
            attrs: attrs.clone(),
        };
        Change {
            prefix: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(10, prefix, 0, 0), 16)),
            best,
            old_best: old.map(path),
            new_best: new.map(path),
        }
    }

    #[test]
    fn repeats_merge_into_the_first_change() {
        let merged = merge_changes(vec![
            change(1, true, None, Some(1)),
            change(2, false, Some(5), Some(5)),
            change(1, false, Some(1), Some(2)),
        ]);
        assert_eq!(
            merged,
            vec![
                change(1, true, None, Some(2)),
                change(2, false, Some(5), Some(5))
            ]
        );
    }

    proptest! {
        /// In prefix order or not, the result is that of merging by a table.
        #[test]
        fn merging_matches_the_table(
            raw in prop::collection::vec(
                (0u8..6, any::<bool>(), prop::option::of(0u32..3), prop::option::of(0u32..3)),
                0..30,
            ),
            sort in any::<bool>(),
        ) {
            let mut changes: Vec<Change> =
                raw.into_iter().map(|(p, b, o, n)| change(p, b, o, n)).collect();
            if sort {
                changes.sort_by_key(|c| c.prefix);
                changes.dedup_by_key(|c| c.prefix);
            }
            prop_assert_eq!(merge_changes(changes.clone()), merge_repeats(changes));
        }
    }
}

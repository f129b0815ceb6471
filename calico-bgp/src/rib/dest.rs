//! The Loc-RIB's entries: each prefix's paths ordered by the decision process, and the
//! updates of one entry (a peer's path set or removed) reporting what changed.

use std::sync::Arc;

use ipnet::IpNet;

use super::prefix_map::{PrefixMap, Slot, Slotted};
use super::{decision, Change, Path, PeerId, PeerTable, RouteAttrs};

/// A prefix's paths, best first, then the rest of the multipath set, then the others. A
/// single path (the common case) is stored inline: no allocation per prefix, and 16 bytes
/// in the table rather than 24 (the other variant's pointer fits beside the path's `Arc`,
/// whose null value tells the two apart): ~8 MB less for a million prefixes.
#[derive(Clone, Debug)]
pub(super) enum Dest {
    One(Path),
    Many(Box<Several>),
}

/// Several paths to a prefix, ordered by the decision process.
#[derive(Clone, Debug)]
pub(super) struct Several {
    paths: Box<[Path]>,
    /// How many of the first paths form the multipath set.
    multipath: u8,
}

impl Dest {
    pub(super) fn paths(&self) -> &[Path] {
        match self {
            Dest::One(p) => std::slice::from_ref(p),
            Dest::Many(several) => &several.paths,
        }
    }

    pub(super) fn multipath(&self) -> usize {
        match self {
            Dest::One(_) => 1,
            Dest::Many(several) => usize::from(several.multipath),
        }
    }

    /// Orders `paths` by the decision process; `None` when there are none.
    pub(super) fn build(mut paths: Vec<Path>, peers: &PeerTable, local_as: u32) -> Option<Dest> {
        match paths.len() {
            0 => None,
            1 => paths.pop().map(Dest::One),
            _ => {
                let multipath = decision::select(&mut paths, peers, local_as).min(255) as u8;
                Some(Dest::Many(Box::new(Several {
                    paths: paths.into_boxed_slice(),
                    multipath,
                })))
            }
        }
    }
}

/// What identifies an entry's selection: multipath size, best path, multipath members.
type Fp = (usize, Option<(PeerId, usize)>, u64);

fn fingerprint(d: &Dest) -> Fp {
    let paths = d.paths();
    let best = paths
        .first()
        .map(|p| (p.peer, Arc::as_ptr(&p.attrs) as usize));
    let mut h = 0u64;
    for p in &paths[..d.multipath()] {
        let who = u64::from(p.peer.0) | (u64::from(p.path_id) << 32);
        h = h.rotate_left(7) ^ (Arc::as_ptr(&p.attrs) as u64) ^ who;
    }
    (d.multipath(), best, h)
}

/// What [`set_in`] reports: the change in the peer's prefix count and, when the entry's
/// selection changed, whether its best path did and what the best path was and is.
pub(super) type SetResult = Option<(isize, Option<(bool, Option<Path>, Option<Path>)>)>;

/// Sets (or removes) the path of peer `from` with path identifier `path_id` for `prefix`.
pub(super) fn set_in<K: Slotted>(
    table: &mut PrefixMap<K>,
    prefix: K,
    (from, path_id): (PeerId, u32),
    attrs: Option<Arc<RouteAttrs>>,
    peers: &PeerTable,
    local_as: u32,
) -> SetResult {
    let mut attrs = attrs;
    let mut added = None;
    let first = || {
        let path = Path {
            peer: from,
            path_id,
            attrs: attrs.take()?,
        };
        added = Some(path.clone());
        Some(Dest::One(path))
    };
    let dest = match table.get_or_insert_with(prefix, first) {
        Slot::Found(dest) => dest,
        Slot::Inserted => return Some((1, Some((true, None, added)))),
        Slot::Absent => return None,
    };
    // Fast path: the only path is replaced.
    if let (Dest::One(only), Some(attrs)) = (&mut *dest, &attrs) {
        if only.peer == from && only.path_id == path_id {
            if Arc::ptr_eq(&only.attrs, attrs) {
                return Some((0, None));
            }
            let old = std::mem::replace(&mut only.attrs, attrs.clone());
            let old = Path {
                peer: from,
                path_id,
                attrs: old,
            };
            return Some((0, Some((true, Some(old), Some(only.clone())))));
        }
    }
    let before = fingerprint(dest);
    let old = dest.paths().first().cloned();
    let mut paths = dest.paths().to_vec();
    let at = paths
        .iter()
        .position(|p| p.peer == from && p.path_id == path_id);
    let delta = match (at, attrs) {
        (Some(i), Some(attrs)) => {
            if Arc::ptr_eq(&paths[i].attrs, &attrs) {
                return Some((0, None));
            }
            paths[i].attrs = attrs;
            0
        }
        (None, Some(attrs)) => {
            paths.push(Path {
                peer: from,
                path_id,
                attrs,
            });
            1
        }
        (Some(i), None) => {
            paths.remove(i);
            -1
        }
        (None, None) => return None,
    };
    let Some(new) = Dest::build(paths, peers, local_as) else {
        table.remove(prefix);
        return Some((delta, Some((true, old, None))));
    };
    *dest = new;
    let after = fingerprint(dest);
    let outcome =
        (before != after).then(|| (before.1 != after.1, old, dest.paths().first().cloned()));
    Some((delta, outcome))
}

/// Removes every path of peer `id` from `table`, noting the prefixes whose entry changed
/// (`wrap` makes a key a prefix).
pub(super) fn remove_peer<K: Slotted>(
    table: &mut PrefixMap<K>,
    id: PeerId,
    peers: &PeerTable,
    local_as: u32,
    wrap: impl Fn(K) -> IpNet,
    changes: &mut Vec<Change>,
) {
    table.retain(|prefix, dest| {
        if !dest.paths().iter().any(|p| p.peer == id) {
            return true;
        }
        let before = fingerprint(dest);
        let old_best = dest.paths().first().cloned();
        let paths: Vec<Path> = dest
            .paths()
            .iter()
            .filter(|p| p.peer != id)
            .cloned()
            .collect();
        let Some(new) = Dest::build(paths, peers, local_as) else {
            changes.push(Change {
                prefix: wrap(prefix),
                best: true,
                old_best,
                new_best: None,
            });
            return false;
        };
        *dest = new;
        let after = fingerprint(dest);
        if before != after {
            changes.push(Change {
                prefix: wrap(prefix),
                best: before.1 != after.1,
                old_best,
                new_best: dest.paths().first().cloned(),
            });
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_takes_sixteen_bytes() {
        // What a million prefixes cost in the table: keep it from growing unnoticed.
        assert_eq!(std::mem::size_of::<Dest>(), 16);
    }
}

//! The BGP decision process (RFC 4271 §9.1.2.2, RFC 4456 §9): which of a prefix's paths is
//! best, and which are equally good for ECMP.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use super::{Path, PeerTable};

/// What the decision process needs to know about the peer a path came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSource {
    /// Learned over eBGP.
    pub ebgp: bool,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's address.
    pub address: IpAddr,
}

/// Orders `paths` best first, followed by the other members of the multipath set, followed by
/// the rest; returns the size of the multipath set (0 when there are no paths).
///
/// Steps, each keeping only the paths best at it: highest LOCAL_PREF; shortest AS_PATH;
/// lowest ORIGIN; lowest MED among paths from the same neighbouring AS; eBGP over iBGP;
/// (IGP cost to the next hop: not known to this speaker, so equal). The survivors are the
/// multipath set; among them the best has the lowest ORIGINATOR_ID or router id, then the
/// shortest CLUSTER_LIST, then the lowest peer address (then, between paths of one peer
/// under ADD-PATH, the lowest path identifier).
pub fn select(paths: &mut [Path], peers: &PeerTable, local_as: u32) -> usize {
    if paths.len() <= 1 {
        return paths.len();
    }
    let n = paths.len();
    let mut alive = vec![true; n];
    let keep_best = |alive: &mut Vec<bool>, key: &dyn Fn(&Path) -> u64| {
        let best = (0..n).filter(|&i| alive[i]).map(|i| key(&paths[i])).min();
        for i in 0..n {
            if alive[i] && Some(key(&paths[i])) != best {
                alive[i] = false;
            }
        }
    };
    keep_best(&mut alive, &|p| u64::from(u32::MAX - p.attrs.local_pref()));
    keep_best(&mut alive, &|p| {
        p.attrs.path.as_path.as_ref().map_or(0, |a| a.length()) as u64
    });
    keep_best(&mut alive, &|p| p.attrs.path.origin.map_or(2, |o| o as u64));
    // MED only compares paths from the same neighbouring AS.
    let neighbour = |p: &Path| {
        p.attrs
            .path
            .as_path
            .as_ref()
            .and_then(|a| a.first_as())
            .unwrap_or(local_as)
    };
    let med = |p: &Path| p.attrs.path.med.unwrap_or(0);
    let beaten: Vec<bool> = (0..n)
        .map(|i| {
            alive[i]
                && (0..n).any(|j| {
                    alive[j]
                        && neighbour(&paths[j]) == neighbour(&paths[i])
                        && med(&paths[j]) < med(&paths[i])
                })
        })
        .collect();
    for i in 0..n {
        alive[i] &= !beaten[i];
    }
    let ebgp = |p: &Path| peers.source(p.peer).is_some_and(|s| s.ebgp);
    if (0..n).any(|i| alive[i] && ebgp(&paths[i])) {
        for i in 0..n {
            alive[i] &= ebgp(&paths[i]);
        }
    }
    let multipath = alive.iter().filter(|a| **a).count();
    let tie_break = |a: &Path, b: &Path| -> Ordering {
        let id = |p: &Path| {
            p.attrs
                .path
                .originator_id
                .or_else(|| peers.source(p.peer).map(|s| s.router_id))
        };
        let addr = |p: &Path| peers.source(p.peer).map(|s| s.address);
        id(a)
            .cmp(&id(b))
            .then(
                a.attrs
                    .path
                    .cluster_list
                    .len()
                    .cmp(&b.attrs.path.cluster_list.len()),
            )
            .then(addr(a).cmp(&addr(b)))
            .then(a.peer.cmp(&b.peer))
            .then(a.path_id.cmp(&b.path_id))
    };
    // Stable order: survivors first (best first), then the others.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| {
        alive[j]
            .cmp(&alive[i])
            .then_with(|| tie_break(&paths[i], &paths[j]))
    });
    let sorted: Vec<Path> = order.iter().map(|&i| paths[i].clone()).collect();
    paths.clone_from_slice(&sorted);
    multipath
}

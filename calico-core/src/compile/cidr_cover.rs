//! [`CidrCover`]: the elements of one selector set, whose members contribute networks that
//! may nest (an endpoint's /32 inside a network set's /24, two network sets sharing a
//! range), kept as the non-overlapping list an interval set needs: the contributed networks
//! no other contributed network contains. Each change costs a few ordered-map look-ups plus
//! the networks it uncovers or covers, never a pass over the whole set.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

/// Contributed networks (with their contributor counts) and the maximal ones among them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct CidrCover {
    counts: BTreeMap<IpNet, usize>,
    exposed: BTreeSet<IpNet>,
}

/// The smallest network (in `IpNet` order) at `net`'s first address.
fn first_at(net: &IpNet) -> IpNet {
    IpNet::new(net.network(), 0).unwrap_or(*net)
}

/// The largest network (in `IpNet` order) at `net`'s last address.
fn last_at(net: &IpNet) -> IpNet {
    let full = match net.broadcast() {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    IpNet::new(net.broadcast(), full).unwrap_or(*net)
}

impl CidrCover {
    /// Whether nothing is contributed.
    pub(super) fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// One more contributor of `net` (host bits clear); calls `change(element, added)` for
    /// each element of the set that appears or disappears.
    pub(super) fn add(&mut self, net: IpNet, mut change: impl FnMut(IpNet, bool)) {
        let n = self.counts.entry(net).or_insert(0);
        *n += 1;
        if *n > 1 || self.covered(&net) {
            return;
        }
        let inside: Vec<IpNet> = self
            .exposed
            .range(first_at(&net)..=last_at(&net))
            .copied()
            .collect();
        for e in inside {
            self.exposed.remove(&e);
            change(e, false);
        }
        self.exposed.insert(net);
        change(net, true);
    }

    /// One contributor fewer of `net`; reports changes as [`CidrCover::add`] does.
    pub(super) fn remove(&mut self, net: IpNet, mut change: impl FnMut(IpNet, bool)) {
        let Some(n) = self.counts.get_mut(&net) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        self.counts.remove(&net);
        if !self.exposed.remove(&net) {
            return;
        }
        change(net, false);
        // Uncover the maximal contributed networks inside it: in `IpNet` order a network
        // comes before the ones it contains.
        let mut last: Option<IpNet> = None;
        let inside: Vec<IpNet> = self
            .counts
            .range(first_at(&net)..=last_at(&net))
            .map(|(n, _)| *n)
            .collect();
        for inner in inside {
            if last.is_some_and(|l| l.contains(&inner)) {
                continue;
            }
            self.exposed.insert(inner);
            change(inner, true);
            last = Some(inner);
        }
    }

    /// Whether an exposed network contains `net`: exposed networks never overlap, so only
    /// the last one starting at or before it can.
    fn covered(&self, net: &IpNet) -> bool {
        self.exposed
            .range(..=*net)
            .next_back()
            .is_some_and(|e| e.contains(net))
    }

    /// The set's elements.
    #[cfg(test)]
    pub(super) fn elements(&self) -> &BTreeSet<IpNet> {
        &self.exposed
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn net() -> impl Strategy<Value = IpNet> {
        // Few distinct values so that nesting, sharing and equality are common.
        (
            0u8..4,
            0u8..8,
            prop_oneof![Just(24u8), Just(28), Just(30), Just(32)],
        )
            .prop_map(|(a, b, len)| {
                IpNet::new(IpAddr::from([10, 0, a, b * 2]), len)
                    .unwrap()
                    .trunc()
            })
    }

    proptest! {
        /// After any sequence, the elements are exactly the maximal contributed networks,
        /// and the reported changes replay to them.
        #[test]
        fn elements_are_the_maximal_contributed_networks(
            ops in prop::collection::vec((any::<bool>(), net()), 1..60)
        ) {
            let mut cover = CidrCover::default();
            let mut counts: BTreeMap<IpNet, usize> = BTreeMap::new();
            let mut replay: BTreeSet<IpNet> = BTreeSet::new();
            for (add, n) in ops {
                let mut apply = |e: IpNet, added: bool| {
                    if added { assert!(replay.insert(e)) } else { assert!(replay.remove(&e)) }
                };
                if add {
                    *counts.entry(n).or_insert(0) += 1;
                    cover.add(n, &mut apply);
                } else if let Some(c) = counts.get_mut(&n) {
                    *c -= 1;
                    if *c == 0 { counts.remove(&n); }
                    cover.remove(n, &mut apply);
                }
                let want: BTreeSet<IpNet> = counts
                    .keys()
                    .filter(|a| !counts.keys().any(|b| b != *a && b.contains(*a)))
                    .copied()
                    .collect();
                prop_assert_eq!(cover.elements(), &want);
                prop_assert_eq!(&replay, &want);
            }
        }
    }
}

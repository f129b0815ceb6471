//! The attributes of a stored route, shared between every prefix that carries them.

use std::collections::HashMap;
use std::hash::BuildHasher;

use super::hash::BuildRibHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use crate::packet::PathAttributes;

/// A route's path attributes with its next hop, as the RIB keeps them. The NLRI-carrying
/// attributes (NEXT_HOP, MP_REACH_NLRI, MP_UNREACH_NLRI) are folded into `next_hop`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// Every other attribute.
    pub path: PathAttributes,
    /// The next hop (IPv4 NEXT_HOP, or the global MP_REACH_NLRI next hop).
    pub next_hop: IpAddr,
    /// The link-local IPv6 next hop, when the peer sent one.
    pub link_local: Option<Ipv6Addr>,
}

impl RouteAttrs {
    /// LOCAL_PREF for the decision process (100 when absent).
    pub fn local_pref(&self) -> u32 {
        self.path.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }
}

/// LOCAL_PREF of routes that carry none (the common default of BIRD, FRR, Cisco).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Interns attribute sets so that prefixes announced with equal attributes (in one UPDATE or
/// many) share one allocation.
///
/// Keyed by the 64-bit hash of the attributes, computed once: growing the table never
/// touches the attribute sets themselves. (A table of the bare pointers, 8 bytes a bucket
/// rather than 16, would save ~4 bytes per prefix of a full table, but it hashes every
/// set again each time it grows: a cache miss or two per set, 10-15% of a feed's ingest
/// time when tried.) Two different sets with one hash (rare; a peer
/// crafting them only loses sharing) are both kept, the second one unshared.
#[derive(Debug, Default)]
pub struct Interner {
    map: HashMap<u64, Arc<RouteAttrs>, BuildRibHasher>,
    pruned_at: usize,
}

impl Interner {
    /// The shared copy of `attrs`.
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        use std::collections::hash_map::Entry;
        let hash = BuildRibHasher::default().hash_one(&attrs);
        if self.map.len() >= 2 * self.pruned_at.max(512) {
            self.prune();
        }
        match self.map.entry(hash) {
            Entry::Occupied(existing) if **existing.get() == attrs => existing.get().clone(),
            Entry::Occupied(_) => Arc::new(attrs),
            Entry::Vacant(slot) => {
                // The set as decoded is kept, its lists without spare capacity (a copy, as
                // before, cost three allocations and two frees per new set, most of the
                // peering task's allocator time in a full table; the decoder's growing
                // AS_PATH segment list, four segments' room for one, had cost 24 B/prefix).
                let mut attrs = attrs;
                attrs.path.shrink_to_fit();
                slot.insert(Arc::new(attrs)).clone()
            }
        }
    }

    /// Forgets attribute sets no route uses any more.
    pub fn prune(&mut self) {
        self.map.retain(|_, a| Arc::strong_count(a) > 1);
        self.pruned_at = self.map.len();
    }

    /// How many distinct attribute sets are held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn attrs(med: u32) -> RouteAttrs {
        RouteAttrs {
            path: PathAttributes {
                med: Some(med),
                ..PathAttributes::default()
            },
            next_hop: Ipv4Addr::new(10, 0, 0, 1).into(),
            link_local: None,
        }
    }

    #[test]
    fn equal_sets_are_shared_and_unused_ones_pruned() {
        let mut i = Interner::default();
        let a = i.intern(attrs(1));
        let b = i.intern(attrs(1));
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.intern(attrs(2));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(i.len(), 2);
        drop(c);
        i.prune();
        assert_eq!(i.len(), 1);
    }

    proptest! {
        /// Against a model keeping every set ever interned (pruning only forgets unused
        /// ones): equal sets come back as one allocation, different ones never do.
        #[test]
        fn interning_shares_exactly_the_equal_sets(
            ops in prop::collection::vec((0u32..40, any::<bool>()), 1..2000)
        ) {
            let mut interner = Interner::default();
            let mut held: HashMap<u32, Arc<RouteAttrs>> = HashMap::new();
            for (med, keep) in ops {
                let shared = interner.intern(attrs(med));
                prop_assert_eq!(shared.path.med, Some(med));
                if let Some(h) = held.get(&med) {
                    prop_assert!(Arc::ptr_eq(h, &shared));
                }
                if keep {
                    held.insert(med, shared);
                } else {
                    held.remove(&med);
                }
                prop_assert!(interner.len() >= held.len());
            }
            interner.prune();
            prop_assert_eq!(interner.len(), held.len());
            let distinct: std::collections::HashSet<*const RouteAttrs> =
                held.values().map(Arc::as_ptr).collect();
            prop_assert_eq!(distinct.len(), held.len());
        }
    }
}

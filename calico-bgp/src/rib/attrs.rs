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
/// touches the attribute sets themselves. Two different sets with one hash (rare; a peer
/// crafting them only loses sharing) are both kept, the second one unshared.
#[derive(Debug, Default)]
pub struct Interner {
    map: HashMap<u64, Arc<RouteAttrs>, BuildRibHasher>,
    pruned_at: usize,
}

impl Interner {
    /// The shared copy of `attrs`.
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        let hash = BuildRibHasher::default().hash_one(&attrs);
        if let Some(existing) = self.map.get(&hash) {
            if **existing == attrs {
                return existing.clone();
            }
            return Arc::new(attrs);
        }
        if self.map.len() >= 2 * self.pruned_at.max(512) {
            self.prune();
        }
        let shared = Arc::new(attrs);
        self.map.insert(hash, shared.clone());
        shared
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

//! Route policy in the RIB: `BGPFilter` verdicts on import and export, communities of
//! `prefixAdvertisements` added to advertised routes, and the well-known communities of
//! RFC 1997 honoured on what is passed on.

use std::collections::HashMap;
use std::sync::Arc;

use super::hash::BuildRibHasher;
use super::RouteAttrs;
use calico_core::model::Community;

/// Whether a route carrying `attrs` (learned from a peer) may go to a peer, by its
/// well-known communities (RFC 1997): never with NO_ADVERTISE; not to another AS with
/// NO_EXPORT or NO_EXPORT_SUBCONFED (there are no confederations here).
pub(super) fn well_known_allow(attrs: &RouteAttrs, to_ebgp: bool) -> bool {
    let has = |c: Community| match c {
        Community::Standard(v) => attrs.path.communities.contains(&v),
        Community::Large(..) => false,
    };
    if has(Community::NO_ADVERTISE) {
        return false;
    }
    !(to_ebgp && (has(Community::NO_EXPORT) || has(Community::NO_EXPORT_SUBCONFED)))
}

/// Original and tagged attribute sets, by the original's address and the communities.
type TagCache =
    HashMap<(usize, Vec<Community>), (Arc<RouteAttrs>, Arc<RouteAttrs>), BuildRibHasher>;

/// Adds communities to outgoing attribute sets, sharing the results (so that prefixes
/// with equal attributes still pack into one UPDATE).
#[derive(Debug, Default)]
pub(super) struct Tagger {
    /// Holding the original keeps its address from being reused while cached.
    cache: TagCache,
}

impl Tagger {
    /// `attrs` with `communities` added (those it lacks, after its own, in order).
    pub(super) fn tag(
        &mut self,
        attrs: Arc<RouteAttrs>,
        communities: Vec<Community>,
    ) -> Arc<RouteAttrs> {
        if communities.is_empty() {
            return attrs;
        }
        let key = (Arc::as_ptr(&attrs) as usize, communities);
        if let Some((_, done)) = self.cache.get(&key) {
            return done.clone();
        }
        let mut out = (*attrs).clone();
        for c in &key.1 {
            match *c {
                Community::Standard(v) if !out.path.communities.contains(&v) => {
                    out.path.communities.push(v)
                }
                Community::Large(a, b, l) if !out.path.large_communities.contains(&[a, b, l]) => {
                    out.path.large_communities.push([a, b, l])
                }
                _ => {}
            }
        }
        let out = Arc::new(out);
        self.cache.insert(key, (attrs, out.clone()));
        out
    }
}

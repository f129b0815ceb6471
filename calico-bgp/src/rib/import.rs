//! Import policy (RFC 4271 §9.1.2, RFC 4456 §8): loop checks and what is kept of a
//! received path's attributes.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Interner, PeerInfo, RibSettings, RouteAttrs};
use crate::packet::PathAttributes;

/// Why an announced path was not accepted (RFC 4271 §9.1.2, RFC 4456 §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Our AS is in the AS_PATH.
    AsLoop,
    /// ORIGINATOR_ID is our router id.
    OriginatorLoop,
    /// Our cluster id is in CLUSTER_LIST.
    ClusterLoop,
    /// No usable next hop.
    NoNextHop,
}

/// Attributes for an UPDATE's IPv4 NLRI and for its MP_REACH_NLRI prefixes.
pub(super) type Imported = (Option<Arc<RouteAttrs>>, Option<Arc<RouteAttrs>>);

/// Which NLRI fields of an UPDATE announce prefixes: the IPv4 one, MP_REACH_NLRI's.
pub(super) type Announcing = (bool, bool);

/// Import policy: loop checks, eBGP LOCAL_PREF removal; the attributes for the IPv4 NLRI
/// and for the MP_REACH_NLRI prefixes (`None`: handle as withdrawn). Only the fields that
/// announce prefixes get attributes: a NEXT_HOP beside MP_REACH_NLRI alone (RFC 4760 §3
/// says to ignore it) would otherwise intern a set no route uses, held until pruned.
pub(super) fn import(
    interner: &mut Interner,
    settings: &RibSettings,
    peer: &PeerInfo,
    mut path: PathAttributes,
    (v4_nlri, mp_nlri): Announcing,
) -> Option<Imported> {
    if let Err(why) = check_loops(settings, peer, &path) {
        tracing::debug!(peer = %peer.address, ?why, "announcement not accepted");
        return None;
    }
    let mp = path.mp_reach.take().filter(|_| mp_nlri);
    path.mp_unreach = None;
    let v4_next_hop = path.next_hop.take().filter(|_| v4_nlri);
    if peer.ebgp {
        // RFC 4271 §5.1.5: LOCAL_PREF from another AS means nothing here.
        path.local_pref = None;
    }
    let mp_next_hop = mp.map(|m| (m.next_hop.global, m.next_hop.link_local));
    Some(intern_sets(interner, path, v4_next_hop, mp_next_hop))
}

/// The attribute sets of an UPDATE's IPv4 NLRI (`path` with NEXT_HOP `v4_next_hop`) and
/// of its MP_REACH_NLRI prefixes (`path` with that attribute's global and link-local next
/// hops, `mp_next_hops`), interned; `None` for a field without a next hop (it announces nothing here).
pub(super) fn intern_sets(
    interner: &mut Interner,
    mut path: PathAttributes,
    v4_next_hop: Option<std::net::Ipv4Addr>,
    mp_next_hops: Option<(IpAddr, Option<std::net::Ipv6Addr>)>,
) -> Imported {
    let v4 = v4_next_hop.map(|nh| {
        interner.intern(RouteAttrs {
            path: if mp_next_hops.is_some() {
                path.clone()
            } else {
                std::mem::take(&mut path)
            },
            next_hop: IpAddr::V4(nh),
            link_local: None,
        })
    });
    let mp = mp_next_hops.map(|(global, link_local)| {
        interner.intern(RouteAttrs {
            path,
            next_hop: mp_next_hop(global, link_local),
            link_local,
        })
    });
    (v4, mp)
}

/// Import policy for attribute sets a peering's task interned already
/// ([`super::Importer::prepare_into`]): the loop checks, and an eBGP peer's LOCAL_PREF removed
/// (the set interned again without it; a conforming peer sends none). As [`import`]
/// otherwise.
pub(super) fn admit(
    interner: &super::Importer,
    settings: &RibSettings,
    peer: &PeerInfo,
    (v4, mp): Imported,
) -> Option<Imported> {
    let path = v4.as_ref().or(mp.as_ref()).map(|a| &a.path);
    if let Some(Err(why)) = path.map(|p| check_loops(settings, peer, p)) {
        tracing::debug!(peer = %peer.address, ?why, "announcement not accepted");
        return None;
    }
    let local_pref =
        |a: &Option<Arc<RouteAttrs>>| a.as_ref().is_some_and(|a| a.path.local_pref.is_some());
    if peer.ebgp && (local_pref(&v4) || local_pref(&mp)) {
        // RFC 4271 §5.1.5: LOCAL_PREF from another AS means nothing here.
        let mut interner = interner.lock();
        let mut strip = |a: Arc<RouteAttrs>| {
            let mut attrs = RouteAttrs::clone(&a);
            attrs.path.local_pref = None;
            interner.intern(attrs)
        };
        return Some((v4.map(&mut strip), mp.map(&mut strip)));
    }
    Some((v4, mp))
}

/// The next hop of MP_REACH_NLRI prefixes: the global address, or the link-local one when
/// the global one is unspecified (`::`).
pub(super) fn mp_next_hop(global: IpAddr, link_local: Option<std::net::Ipv6Addr>) -> IpAddr {
    match (global, link_local) {
        (IpAddr::V6(g), Some(ll)) if g.is_unspecified() => IpAddr::V6(ll),
        (g, _) => g,
    }
}

fn check_loops(
    settings: &RibSettings,
    peer: &PeerInfo,
    path: &PathAttributes,
) -> Result<(), Rejection> {
    // RFC 4271 §9.1.2: our AS in the path is a loop, unless the peer is allowed that many
    // occurrences of it (allowas-in).
    let ours = path
        .as_path
        .as_ref()
        .map_or(0, |p| p.occurrences(settings.local_as));
    if ours > usize::from(peer.allow_local_as) {
        return Err(Rejection::AsLoop);
    }
    if !peer.ebgp {
        if path.originator_id == Some(settings.router_id) {
            return Err(Rejection::OriginatorLoop);
        }
        if path
            .cluster_list
            .contains(&settings.cluster_id.unwrap_or(settings.router_id))
        {
            return Err(Rejection::ClusterLoop);
        }
    }
    Ok(())
}

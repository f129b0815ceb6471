//! Import policy (RFC 4271 §9.1.2, RFC 4456 §8): loop checks and what is kept of a
//! received path's attributes.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Interner, PeerInfo, RibSettings, RouteAttrs};

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
type Imported = (Option<Arc<RouteAttrs>>, Option<Arc<RouteAttrs>>);

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
    mut path: crate::packet::PathAttributes,
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
    let v4 = v4_next_hop.map(|nh| {
        interner.intern(RouteAttrs {
            path: if mp.is_some() {
                path.clone()
            } else {
                std::mem::take(&mut path)
            },
            next_hop: IpAddr::V4(nh),
            link_local: None,
        })
    });
    let mp = mp.map(|mp| {
        let next_hop = match (mp.next_hop.global, mp.next_hop.link_local) {
            (IpAddr::V6(g), Some(ll)) if g.is_unspecified() => IpAddr::V6(ll),
            (g, _) => g,
        };
        interner.intern(RouteAttrs {
            path,
            next_hop,
            link_local: mp.next_hop.link_local,
        })
    });
    Some((v4, mp))
}

fn check_loops(
    settings: &RibSettings,
    peer: &PeerInfo,
    path: &crate::packet::PathAttributes,
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

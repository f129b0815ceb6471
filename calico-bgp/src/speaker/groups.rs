//! Update groups: the established peers that are sent the same UPDATE bytes for a change,
//! so that it is computed and encoded once per group instead of once per peer.
//!
//! Two peers share a group when everything that decides what they are sent is equal: the
//! session's encoding (4-octet AS numbers, path identifiers), the families, eBGP or iBGP,
//! route-reflector client or not, our address on the session (the next hop we set), the
//! next hop mode and the export filters. What the rules of RFC 4271 §9.2 and RFC 4456 then
//! still tell apart is the peer a path came from ("never back to where it came from"):
//! a peer that is the source of any path of the change is given a group of its own for that
//! change. A peer sent several paths per prefix (ADD-PATH) keeps its own Adj-RIB-Out, so it
//! is always alone.
//!
//! Groups are formed for each change from the peers' current state: a change of
//! configuration or of a session can never leave a peer in a stale group.

use std::collections::HashSet;
use std::net::IpAddr;

use calico_core::dataplane::NextHopMode;
use calico_core::model::BgpFilter;

use super::peers::Peers;
use crate::packet::{AfiSafi, Context};
use crate::rib::{PeerId, Rib};

/// What decides the UPDATEs a peer is sent (see the [module docs](self)).
#[derive(Debug, PartialEq, Eq)]
struct OutboundPolicy<'a> {
    encoding: Context,
    families: Vec<AfiSafi>,
    ebgp: bool,
    rr_client: bool,
    local_address: IpAddr,
    next_hop_mode: NextHopMode,
    filters: &'a [BgpFilter],
}

/// Peers that are sent the same bytes; the first is the one whose view computes them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) members: Vec<PeerId>,
}

/// `targets` (established peers, in the order given) in update groups, in the order of
/// their first member. Peers in `alone` (the sources of the change's paths) and those with
/// an ADD-PATH Adj-RIB-Out get a group each; a peer the RIB or the table does not know is
/// left out.
pub(crate) fn partition(
    rib: &Rib,
    peers: &Peers,
    targets: &[PeerId],
    alone: &HashSet<PeerId>,
) -> Vec<Group> {
    let mut shared: Vec<(OutboundPolicy<'_>, usize)> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for &id in targets {
        let (Some(info), Some(peer)) = (rib.peers().info(id), peers.get(id)) else {
            continue;
        };
        let Some((negotiated, _)) = &peer.session else {
            continue;
        };
        if alone.contains(&id) || peer.add_path_out.is_some() {
            groups.push(Group { members: vec![id] });
            continue;
        }
        let mut families = info.families.clone();
        families.sort_unstable();
        let policy = OutboundPolicy {
            encoding: negotiated.send_context(),
            families,
            ebgp: info.ebgp,
            rr_client: info.rr_client,
            local_address: info.local_address,
            next_hop_mode: info.next_hop_mode,
            filters: rib.policy().peer_filters(info.address),
        };
        match shared.iter().find(|(p, _)| *p == policy) {
            Some((_, at)) => groups[*at].members.push(id),
            None => {
                shared.push((policy, groups.len()));
                groups.push(Group { members: vec![id] });
            }
        }
    }
    groups
}

//! Soft reconfiguration: a peering whose `BGPFilter`s change follows them without a new
//! session. What we send is re-judged against the new export rules (what they now keep
//! back is withdrawn, the rest announced again); what the peer sent is asked for again
//! with ROUTE-REFRESH (RFC 2918) and re-judged as it arrives. A peering that cannot do
//! this (an import change with a peer that did not advertise route refresh, an export
//! change under ADD-PATH, stale routes of a restarting peer) starts a new session instead.
//!
//! A filter change usually reaches many peerings at once (one `BGPFilter` on every client
//! of a reflector): what they had and what they are sent again is computed once per update
//! group ([`super::groups`]) and the same bytes are queued for each member, as for
//! incremental changes. A peer that sent us routes is a group of its own (its table lacks
//! them), so sharing never depends on where a path came from.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use calico_core::dataplane::RoutePolicy;
use calico_core::model::{BgpFilterRule, Direction};
use ipnet::IpNet;

use super::groups::{self, Group};
use super::outbound::Batch;
use super::peers::{Peer, Peers};
use crate::packet::{AfiSafi, Message, RouteRefresh};
use crate::rib::export::Exporter;
use crate::rib::{family_of, PeerId, Rib};
use crate::session::Negotiated;

/// The families of a session whose export rules changed and what the peer had from us.
pub(crate) type Export = (Vec<AfiSafi>, Arc<[IpNet]>);

/// A peering that follows new filters in place: what to send it once the new policy is in
/// the RIB.
pub(crate) struct Soft {
    /// The peer's address.
    pub(crate) address: IpAddr,
    /// The peer.
    pub(crate) id: PeerId,
    /// When the export rules changed: the session's families and what the peer had (shared
    /// by the peers of its update group, see [`advertised_by_group`]).
    pub(crate) export: Option<Export>,
    /// When the import rules changed: the ROUTE-REFRESH messages to send.
    pub(crate) refresh: Option<Vec<u8>>,
}

/// How `peer` can follow `new` filters in place, judged against the RIB's current policy
/// (still the old one): `None` when it needs a new session. What the peer had is taken from
/// `had` (by peer, from [`advertised_by_group`]) when it is there.
pub(crate) fn plan(
    rib: &Rib,
    peer: &Peer,
    new: &RoutePolicy,
    had: &HashMap<PeerId, Arc<[IpNet]>>,
) -> Option<Soft> {
    let address = peer.config.address;
    let changed = changed(rib.policy(), new, address);
    let (id, stale) = (peer.id, peer.stale.is_some());
    let Some((negotiated, _)) = &peer.session else {
        // No session: the new filters apply when one comes up.
        let nothing = Soft {
            address,
            id,
            export: None,
            refresh: None,
        };
        return (!stale).then_some(nothing);
    };
    let export_in_place = !changed.export || peer.add_path_out.is_none();
    if stale || (changed.import && !negotiated.route_refresh) || !export_in_place {
        return None;
    }
    let families = negotiated.families.clone();
    let had = match (changed.export, rib.exporter(id)) {
        (true, _) if had.contains_key(&id) => had[&id].clone(),
        (true, Some(mut exporter)) => advertised(&mut exporter, &families).into(),
        _ => Vec::new().into(),
    };
    Some(Soft {
        address,
        id,
        export: changed.export.then_some((families, had)),
        refresh: changed.import.then(|| refresh_requests(negotiated)),
    })
}

/// Which of a peering's rule lists changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Changed {
    /// The import rules.
    pub(crate) import: bool,
    /// The export rules.
    pub(crate) export: bool,
}

/// What changes for `peer` from `old` to `new`.
pub(crate) fn changed(old: &RoutePolicy, new: &RoutePolicy, peer: IpAddr) -> Changed {
    let rules = |p: &RoutePolicy, d: Direction| -> Vec<BgpFilterRule> {
        let filters = p.peer_filters(peer).iter();
        let both = filters.flat_map(|f| [f.rules(d, true), f.rules(d, false)]);
        both.flatten().cloned().collect()
    };
    Changed {
        import: rules(old, Direction::Import) != rules(new, Direction::Import),
        export: rules(old, Direction::Export) != rules(new, Direction::Export),
    }
}

/// The prefixes of `families` the peer behind `exporter` has from us.
pub(crate) fn advertised(exporter: &mut Exporter<'_>, families: &[AfiSafi]) -> Vec<IpNet> {
    let candidates: Vec<IpNet> = exporter.candidates().collect();
    candidates
        .into_iter()
        .filter(|p| families.contains(&family_of(p)) && exporter.route(p).is_some())
        .collect()
}

/// Peers that may share one computation of their whole table: those of `ids` with an
/// established session in update groups ([`groups::partition`]) under the RIB's current
/// policy, each peer that sent us routes in a group of its own.
pub(crate) fn table_groups(rib: &Rib, peers: &Peers, ids: &[PeerId]) -> Vec<Group> {
    let alone: HashSet<PeerId> = ids
        .iter()
        .copied()
        .filter(|id| rib.received(*id) > 0)
        .collect();
    groups::partition(rib, peers, ids, &alone)
}

/// What each established peer of `ids` has from us ([`advertised`]) under the RIB's current
/// policy, computed once per group of [`table_groups`]: its members were sent the same.
pub(crate) fn advertised_by_group(
    rib: &Rib,
    peers: &Peers,
    ids: &[PeerId],
) -> HashMap<PeerId, Arc<[IpNet]>> {
    let mut had = HashMap::new();
    for group in table_groups(rib, peers, ids) {
        let first = group.members[0];
        let families = peers.get(first).and_then(Peer::session_families);
        let (Some(families), Some(mut exporter)) = (families, rib.exporter(first)) else {
            continue;
        };
        let shared: Arc<[IpNet]> = advertised(&mut exporter, families).into();
        for id in group.members {
            had.insert(id, shared.clone());
        }
    }
    had
}

/// What the peer is sent when the exporter's (new) policy replaces the one under which it
/// was sent `had`: the routes the policy now lets through that it did not have, and the
/// withdrawal of those it had that the policy now keeps back.
///
/// A route it had and still may have is not sent again: export filters only let a route
/// through or keep it back, so it would be the same route. (New communities, which change
/// routes, send every peer its whole table: see `SpeakerState::configure`.)
pub(crate) fn readvertise(
    exporter: &mut Exporter<'_>,
    families: &[AfiSafi],
    had: &[IpNet],
) -> Batch {
    let had_set: HashSet<&IpNet> = had.iter().collect();
    let mut batch = Batch::default();
    let candidates: Vec<IpNet> = exporter.candidates().collect();
    for prefix in candidates {
        if !families.contains(&family_of(&prefix)) || had_set.contains(&prefix) {
            continue;
        }
        if let Some(attrs) = exporter.route(&prefix) {
            batch.announce(prefix, 0, attrs);
        }
    }
    for p in had {
        if exporter.route(p).is_none() {
            batch.withdraw(*p, 0);
        }
    }
    batch
}

/// ROUTE-REFRESH messages for every family of the session, encoded.
pub(crate) fn refresh_requests(negotiated: &Negotiated) -> Vec<u8> {
    let ctx = negotiated.send_context();
    let mut bytes = Vec::new();
    for family in &negotiated.families {
        let message = Message::RouteRefresh(RouteRefresh {
            family: *family,
            subtype: 0,
        });
        // A ROUTE-REFRESH is 23 bytes: it always encodes.
        let _ = message.encode_into(&ctx, &mut bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> RoutePolicy {
        let resources = calico_core::model::parse_resources(yaml).unwrap();
        RoutePolicy::from_resources(&resources, &["192.0.2.1".parse().unwrap()])
    }

    #[test]
    fn each_direction_is_compared_on_its_own() {
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let import = policy("kind: BgpFilter\nname: f\nimportV6: [{action: Reject}]\n");
        let export = policy("kind: BgpFilter\nname: g\nexportV4: [{action: Reject}]\n");
        let none = RoutePolicy::default();
        let only = |import, export| Changed { import, export };
        assert_eq!(changed(&none, &import, peer), only(true, false));
        assert_eq!(changed(&import, &export, peer), only(true, true));
        assert_eq!(changed(&export, &none, peer), only(false, true));
        // Another name for the same rules changes nothing.
        let renamed = policy("kind: BgpFilter\nname: h\nexportV4: [{action: Reject}]\n");
        assert_eq!(changed(&export, &renamed, peer), Changed::default());
        // Another peer's filters are not this one's.
        assert_eq!(
            changed(&none, &import, "192.0.2.9".parse().unwrap()),
            Changed::default()
        );
    }

    #[test]
    fn refresh_requests_ask_for_every_family_of_the_session() {
        let negotiated = Negotiated {
            hold_time: 90,
            keepalive: 30,
            four_octet_as: true,
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
            route_refresh: true,
            remote_id: [192, 0, 2, 1].into(),
            remote_as: 65001,
            direction: crate::session::Direction::Outbound,
            graceful_restart: None,
            add_path_send: crate::packet::AddPathFamilies::NONE,
            add_path_receive: crate::packet::AddPathFamilies::NONE,
        };
        let bytes = refresh_requests(&negotiated);
        assert_eq!(bytes.len(), 2 * 23, "two ROUTE-REFRESH messages");
        assert_eq!(bytes[18], 5, "type ROUTE-REFRESH");
        assert_eq!(&bytes[19..23], &[0, 1, 0, 1], "IPv4 unicast first");
        assert_eq!(&bytes[23 + 19..], &[0, 2, 0, 1], "then IPv6 unicast");
    }
}

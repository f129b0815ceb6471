//! What a peer that negotiated ADD-PATH send (RFC 7911) is sent: every path of each
//! prefix's multipath set (the equal-cost best paths of the decision process), each under a
//! path identifier that stays the same while that path is advertised, instead of the best
//! path alone; so that ECMP through several planes survives a route reflector in between.
//!
//! Unlike the single best path (a function of the Loc-RIB), which identifiers a peer holds
//! cannot be recomputed after a change, so what each such peer was sent is kept here (its
//! Adj-RIB-Out), and a change is the difference between that and what it is to have now.

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;

use super::outbound::Batch;
use crate::packet::{AddPathFamilies, AfiSafi};
use crate::rib::export::Exporter;
use crate::rib::hash::BuildRibHasher;
use crate::rib::{family_of, PeerId, Rib, RouteAttrs};

/// Where an advertised path comes from: a peer's path (peer, its path identifier), or our
/// own route (`None`).
type Source = Option<(PeerId, u32)>;

/// One path a peer was sent.
#[derive(Clone, Debug)]
struct Sent {
    source: Source,
    id: u32,
    attrs: Arc<RouteAttrs>,
}

/// The Adj-RIB-Out of a peer on the families it is sent several paths of.
#[derive(Debug, Default)]
pub(crate) struct AddPathOut {
    families: AddPathFamilies,
    sent: HashMap<IpNet, Vec<Sent>, BuildRibHasher>,
}

impl AddPathOut {
    /// Nothing sent yet, on `families`.
    pub(crate) fn new(families: AddPathFamilies) -> AddPathOut {
        AddPathOut {
            families,
            sent: HashMap::default(),
        }
    }

    /// The families the peer is sent several paths of.
    pub(crate) fn families(&self) -> AddPathFamilies {
        self.families
    }

    /// Brings what the peer behind `exporter` holds for `prefixes` (those of other
    /// families are ignored) up to date with `rib`: the batch to send.
    pub(crate) fn update(
        &mut self,
        rib: &Rib,
        exporter: &mut Exporter<'_>,
        prefixes: impl IntoIterator<Item = IpNet>,
    ) -> Batch {
        self.update_with(rib, exporter, prefixes, false)
    }

    fn update_with(
        &mut self,
        rib: &Rib,
        exporter: &mut Exporter<'_>,
        prefixes: impl IntoIterator<Item = IpNet>,
        resend: bool,
    ) -> Batch {
        let mut batch = Batch::default();
        for prefix in prefixes {
            if !self.families.contains(family_of(&prefix)) {
                continue;
            }
            let wanted = wanted(rib, exporter, &prefix);
            let old = self.sent.remove(&prefix).unwrap_or_default();
            let now = diff(prefix, &old, wanted, resend, &mut batch);
            if !now.is_empty() {
                self.sent.insert(prefix, now);
            }
        }
        batch
    }

    /// The whole table of `families` (session up, ROUTE-REFRESH): every path announced
    /// again under the identifier it already has, and any the peer should no longer hold
    /// withdrawn.
    pub(crate) fn table(
        &mut self,
        rib: &Rib,
        exporter: &mut Exporter<'_>,
        families: &[AfiSafi],
    ) -> Batch {
        let mut prefixes: Vec<IpNet> = exporter
            .candidates()
            .filter(|p| families.contains(&family_of(p)))
            .collect();
        // What the peer holds that the RIB no longer has (it is withdrawn as it should).
        let held = self
            .sent
            .keys()
            .filter(|p| families.contains(&family_of(p)));
        let held: Vec<IpNet> = held
            .filter(|p| rib.best(p).is_empty() && !rib.exports().contains(p))
            .copied()
            .collect();
        prefixes.extend(held);
        self.update_with(rib, exporter, prefixes, true)
    }
}

/// What the peer is to have for `prefix`: our own route when we export the prefix, else
/// every member of the multipath set that the export rules let through (once per distinct
/// set of attributes: towards an eBGP peer, with our next hop, they may all look alike).
fn wanted(
    rib: &Rib,
    exporter: &mut Exporter<'_>,
    prefix: &IpNet,
) -> Vec<(Source, Arc<RouteAttrs>)> {
    if rib.exports().contains(prefix) {
        return exporter
            .local_route_for(prefix)
            .map(|attrs| (None, attrs))
            .into_iter()
            .collect();
    }
    let mut wanted: Vec<(Source, Arc<RouteAttrs>)> = Vec::new();
    for p in rib.best(prefix) {
        let Some(attrs) = exporter.route_with(prefix, Some(p)) else {
            continue;
        };
        if !wanted.iter().any(|(_, a)| **a == *attrs) {
            wanted.push((Some((p.peer, p.path_id)), attrs));
        }
    }
    wanted
}

/// Puts into `batch` what turns `old` into `wanted` for `prefix`, and returns what the peer
/// then holds. A path still wanted keeps its identifier (announced again only if its
/// attributes changed, or `resend`); a new one takes the smallest identifier (from 1) that
/// neither an old nor a new path uses, so that no withdrawal and announcement of one batch
/// collide.
fn diff(
    prefix: IpNet,
    old: &[Sent],
    wanted: Vec<(Source, Arc<RouteAttrs>)>,
    resend: bool,
    batch: &mut Batch,
) -> Vec<Sent> {
    let mut now: Vec<Sent> = Vec::with_capacity(wanted.len());
    let mut fresh = Vec::new();
    for (source, attrs) in wanted {
        match old.iter().find(|s| s.source == source) {
            Some(s) => {
                if resend || *s.attrs != *attrs {
                    batch.announce(prefix, s.id, attrs.clone());
                }
                now.push(Sent {
                    source,
                    id: s.id,
                    attrs,
                });
            }
            None => fresh.push((source, attrs)),
        }
    }
    let mut next = 1u32;
    for (source, attrs) in fresh {
        while old.iter().chain(&now).any(|s| s.id == next) {
            next += 1;
        }
        batch.announce(prefix, next, attrs.clone());
        now.push(Sent {
            source,
            id: next,
            attrs,
        });
    }
    for s in old {
        if !now.iter().any(|n| n.source == s.source) {
            batch.withdraw(prefix, s.id);
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PathAttributes;

    fn attrs(next_hop: [u8; 4]) -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs {
            path: PathAttributes::default(),
            next_hop: next_hop.into(),
            link_local: None,
        })
    }

    fn from(peer: u32) -> Source {
        Some((PeerId(peer), 0))
    }

    type Paths = Vec<(IpNet, u32)>;

    /// One change for the prefix: what the peer then holds, and the batch's withdrawn and
    /// announced paths.
    fn step(
        old: &[Sent],
        wanted: &[(Source, &Arc<RouteAttrs>)],
        resend: bool,
    ) -> (Vec<Sent>, (Paths, Paths)) {
        let wanted = wanted.iter().map(|(s, a)| (*s, Arc::clone(a))).collect();
        let mut batch = Batch::default();
        let now = diff(prefix(), old, wanted, resend, &mut batch);
        (now, batch.paths())
    }

    fn prefix() -> IpNet {
        "10.65.0.0/26".parse().unwrap()
    }

    /// A RIB (AS 64512) with two eBGP peers of AS 65001 (1, 2), an eBGP peer of AS 65002
    /// (3) and an iBGP peer (4), both of the last two taking IPv4.
    fn rib_with_peers() -> Rib {
        use crate::rib::{PeerInfo, RibSettings};
        let mut rib = Rib::new(RibSettings {
            local_as: 64512,
            router_id: [10, 0, 0, 100].into(),
            cluster_id: None,
        });
        for (n, remote_as) in [(1u8, 65001), (2, 65001), (3, 65002), (4, 64512)] {
            let info = PeerInfo {
                address: [192, 0, 2, n].into(),
                remote_as,
                router_id: [10, 0, 0, n].into(),
                ebgp: remote_as != 64512,
                rr_client: false,
                local_address: [192, 0, 2, 100].into(),
                interface: None,
                families: vec![AfiSafi::IPV4_UNICAST],
                allow_local_as: 0,
                next_hop_mode: Default::default(),
            };
            rib.peer_up(PeerId(n.into()), info);
        }
        rib
    }

    #[test]
    fn every_multipath_member_is_sent_once_per_distinct_attributes() {
        use crate::packet::{AsPath, Origin, Update};
        let mut rib = rib_with_peers();
        for n in [1u8, 2] {
            let update = Update {
                attributes: PathAttributes {
                    origin: Some(Origin::Igp),
                    as_path: Some(AsPath::sequence(vec![65001])),
                    next_hop: Some([192, 0, 2, n].into()),
                    ..PathAttributes::default()
                },
                nlri: vec!["10.65.0.0/26".parse().unwrap()],
                ..Update::default()
            };
            rib.apply(PeerId(n.into()), &update);
        }
        assert_eq!(rib.best(&prefix()).len(), 2, "an ECMP pair");
        let v4 = AddPathFamilies::of([AfiSafi::IPV4_UNICAST]);
        let sent_to = |to: u32| {
            let mut exporter = rib.exporter(PeerId(to)).unwrap();
            let mut out = AddPathOut::new(v4);
            out.update(&rib, &mut exporter, [prefix()]).paths()
        };
        // iBGP: both paths, next hops unchanged.
        assert_eq!(sent_to(4), (vec![], vec![(prefix(), 1), (prefix(), 2)]));
        // eBGP: our next hop on both, so one path.
        assert_eq!(sent_to(3), (vec![], vec![(prefix(), 1)]));
        // Back to peer 1: only peer 2's path (never a path back to where it came from).
        assert_eq!(sent_to(1), (vec![], vec![(prefix(), 1)]));
    }

    #[test]
    fn paths_keep_their_identifiers_and_new_ones_take_the_smallest_free() {
        let p = prefix();
        let (a, b, c) = (
            attrs([10, 0, 0, 1]),
            attrs([10, 0, 0, 2]),
            attrs([10, 0, 0, 3]),
        );
        let (sent, batch) = step(&[], &[(from(1), &a), (from(2), &b)], false);
        assert_eq!(batch, (vec![], vec![(p, 1), (p, 2)]));
        // Path 1 goes, a third comes: 2 keeps its identifier (not announced again), the
        // newcomer does not reuse 1 in the batch that withdraws it.
        let (sent, batch) = step(&sent, &[(from(2), &b), (from(3), &c)], false);
        assert_eq!(batch, (vec![(p, 1)], vec![(p, 3)]));
        // New attributes for a path: announced again under its identifier.
        let (sent, batch) = step(&sent, &[(from(2), &c), (from(3), &c)], false);
        assert_eq!(batch, (vec![], vec![(p, 2)]));
        // Nothing changed: nothing sent; a resend (ROUTE-REFRESH) announces every path
        // again under the same identifiers.
        let (sent, batch) = step(&sent, &[(from(2), &c), (from(3), &c)], false);
        assert_eq!(batch, (vec![], vec![]));
        let (sent, batch) = step(&sent, &[(from(2), &c), (from(3), &c)], true);
        assert_eq!(batch, (vec![], vec![(p, 2), (p, 3)]));
        // A new path takes the now free 1.
        let (_, batch) = step(&sent, &[(from(2), &c), (from(3), &c), (from(4), &a)], false);
        assert_eq!(batch, (vec![], vec![(p, 1)]));
        // Everything withdrawn.
        let (now, batch) = step(&sent, &[], false);
        assert!(now.is_empty());
        assert_eq!(batch, (vec![(p, 2), (p, 3)], vec![]));
    }
}

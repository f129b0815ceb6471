//! What each peer is sent (the Adj-RIB-Out as a function of the Loc-RIB): locally originated
//! routes with ORIGIN IGP and next hop self, learned routes by the rules of RFC 4271 §9.2
//! (no iBGP-learned route to another iBGP peer), RFC 4456 (route reflection) and RFC 1997
//! (well-known communities), then the peer's export filters and the communities of
//! `prefixAdvertisements` ([`calico_core::dataplane::RoutePolicy`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use calico_core::dataplane::NextHopMode;
use ipnet::IpNet;

use calico_core::model::{Direction, RouteFacts};

use super::hash::BuildRibHasher;
use super::policy::{well_known_allow, Tagger};
use super::{family_of, Path, PeerId, PeerInfo, Rib, RouteAttrs, DEFAULT_LOCAL_PREF};
use crate::packet::attribute::FLAG_PARTIAL;
use crate::packet::{AsPath, Origin, PathAttributes};

/// Computes the advertisements for one peer, sharing transformed attribute sets between
/// prefixes (so that they pack into few UPDATEs).
#[derive(Debug)]
pub struct Exporter<'a> {
    rib: &'a Rib,
    to: PeerId,
    info: &'a PeerInfo,
    local: Option<Arc<RouteAttrs>>,
    cache: HashMap<(usize, PeerId), Option<Arc<RouteAttrs>>, BuildRibHasher>,
    tagger: Tagger,
}

impl Rib {
    /// An exporter for an established peer (`None` when the peer is unknown).
    pub fn exporter(&self, to: PeerId) -> Option<Exporter<'_>> {
        let info = self.peers.info(to)?;
        Some(Exporter {
            rib: self,
            to,
            info,
            local: None,
            cache: HashMap::default(),
            tagger: Tagger::default(),
        })
    }
}

impl Exporter<'_> {
    /// The attributes to announce `prefix` with, or `None` when the peer is not to have it.
    pub fn route(&mut self, prefix: &IpNet) -> Option<Arc<RouteAttrs>> {
        if self.rib.exports.contains(prefix) {
            return self.local_route_for(prefix);
        }
        let rib = self.rib;
        self.route_with(prefix, rib.best(prefix).first())
    }

    /// What the peer is sent for `prefix` when its best learned path is `best`, ignoring
    /// local exports (to know what a peer had before a change).
    pub fn route_with(&mut self, prefix: &IpNet, best: Option<&Path>) -> Option<Arc<RouteAttrs>> {
        if !self.info.families.contains(&family_of(prefix)) {
            return None;
        }
        let best = best?;
        if best.peer == self.to {
            return None; // never back to where it came from
        }
        let rib = self.rib;
        let via = rib
            .peers
            .info(best.peer)
            .and_then(|i| i.interface.as_deref());
        if !self.allows(prefix, RouteFacts::learned(via)) {
            return None;
        }
        let key = (Arc::as_ptr(&best.attrs) as usize, best.peer);
        let out = match self.cache.get(&key) {
            Some(cached) => cached.clone(),
            None => {
                let out = self.transform(best.peer, &best.attrs);
                self.cache.insert(key, out.clone());
                out
            }
        };
        Some(self.tag(prefix, out?))
    }

    /// Whether the peer's export filters let a route to `prefix` through.
    fn allows(&self, prefix: &IpNet, route: RouteFacts<'_>) -> bool {
        let policy = self.rib.policy();
        policy.allows(self.info.address, Direction::Export, prefix, route)
    }

    /// `attrs` with the communities `prefixAdvertisements` gives `prefix`.
    fn tag(&mut self, prefix: &IpNet, attrs: Arc<RouteAttrs>) -> Arc<RouteAttrs> {
        let communities = self.rib.policy().communities_for(prefix);
        self.tagger.tag(attrs, communities)
    }

    /// The prefixes whose advertisement to this peer depends on the RIB: every exported
    /// prefix and every prefix with a best path.
    pub fn candidates(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.rib.exports.iter().copied().chain(
            self.rib
                .prefixes()
                .filter(|p| !self.rib.exports.contains(p)),
        )
    }

    /// Our own route for `prefix` as this peer is sent it (`None` when the peer does not
    /// take the prefix's family).
    pub fn local_route_for(&mut self, prefix: &IpNet) -> Option<Arc<RouteAttrs>> {
        let rib = self.rib;
        let route = RouteFacts::local(rib.export_interface(prefix));
        if !self.info.families.contains(&family_of(prefix)) || !self.allows(prefix, route) {
            return None;
        }
        let local = self.local_route();
        Some(self.tag(prefix, local))
    }

    fn local_route(&mut self) -> Arc<RouteAttrs> {
        if let Some(local) = &self.local {
            return local.clone();
        }
        let settings = &self.rib.settings;
        let path = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if self.info.ebgp {
                AsPath::sequence(vec![settings.local_as])
            } else {
                AsPath::default()
            }),
            local_pref: (!self.info.ebgp).then_some(DEFAULT_LOCAL_PREF),
            ..PathAttributes::default()
        };
        let local = Arc::new(RouteAttrs {
            path,
            next_hop: self.info.local_address,
            link_local: None,
        });
        self.local = Some(local.clone());
        local
    }

    fn transform(&self, from: PeerId, attrs: &RouteAttrs) -> Option<Arc<RouteAttrs>> {
        if from == self.to {
            return None;
        }
        let source = self.rib.peers.info(from)?;
        if !well_known_allow(attrs, self.info.ebgp) {
            return None;
        }
        let settings = &self.rib.settings;
        let mut out = attrs.clone();
        if self.info.ebgp {
            let path = out.path.as_path.take().unwrap_or_default();
            out.path.as_path = Some(path.prepended(settings.local_as));
            out.path.local_pref = None;
            out.path.med = None;
            out.path.originator_id = None;
            out.path.cluster_list.clear();
            out.next_hop = self.info.local_address;
            out.link_local = None;
        } else if source.ebgp {
            out.path.local_pref = Some(attrs.local_pref());
        } else {
            // iBGP to iBGP: only a route reflector passes it on, client routes to everyone
            // and non-client routes to clients.
            if !(source.rr_client || self.info.rr_client) {
                return None;
            }
            out.path.originator_id = Some(attrs.path.originator_id.unwrap_or(source.router_id));
            out.path.cluster_list.insert(0, self.rib.cluster_id());
            out.path.local_pref = Some(attrs.local_pref());
        }
        // RFC 4271 §5: an unrecognised optional transitive attribute passed on to other peers
        // goes with its Partial bit set (some speaker on the way did not understand it).
        for raw in &mut out.path.unknown {
            raw.flags |= FLAG_PARTIAL;
        }
        match self.info.next_hop_mode {
            // BGP's rules above: ours towards eBGP, unchanged towards iBGP.
            NextHopMode::Auto => {}
            // "next hop self": ours, reflected iBGP routes included.
            NextHopMode::SelfAddress => {
                out.next_hop = self.info.local_address;
                out.link_local = None;
            }
            // "next hop keep": the learned next hop, towards eBGP peers too.
            NextHopMode::Keep => {
                out.next_hop = attrs.next_hop;
                out.link_local = attrs.link_local;
            }
        }
        // A next hop of another family than the session's (RFC 8950) is replaced by ours.
        match (out.next_hop, family_of_nh(&self.info.local_address)) {
            (IpAddr::V4(_), true) | (IpAddr::V6(_), false) => {}
            _ => out.next_hop = self.info.local_address,
        }
        Some(Arc::new(out))
    }
}

fn family_of_nh(addr: &IpAddr) -> bool {
    addr.is_ipv4()
}

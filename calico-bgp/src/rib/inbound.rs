//! UPDATEs prepared for the RIB off its thread.
//!
//! The speaker's state machine (the RIB) runs on a thread of its own and, during a full
//! table, is the bottleneck: interning each UPDATE's attribute set (hashing it, probing
//! the set table, copying a new one) was ~44% of its time. So each peering's task, which
//! runs beside it, interns the attributes of the UPDATEs it passes on ([`Importer`]): the
//! RIB receives an [`Inbound`], the UPDATE's prefixes with their attribute sets already
//! shared, and only checks what depends on the peer and our settings (loops, an eBGP
//! peer's LOCAL_PREF, see `import.rs`).
//!
//! The interner is shared between the RIB and every peering's task behind a mutex: a
//! peering holds it once per UPDATE, the RIB only to prune unused sets or to intern what
//! came unprepared. Pruning keeps a set only while something besides the interner holds
//! it; sets are handed out under the lock, so a set the interner alone holds cannot be
//! handed out while it is being pruned.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{Interner, RouteAttrs};
use crate::packet::Update;

/// An UPDATE as the RIB applies it: the message, and when a peering's task prepared it,
/// the attribute sets of its announced prefixes, interned.
#[derive(Debug)]
pub struct Inbound {
    /// The message. When prepared, its attributes but MP_REACH_NLRI and MP_UNREACH_NLRI
    /// (which carry prefixes) are moved into the interned sets.
    pub(super) update: Update,
    /// The interned sets, for the IPv4 NLRI and the MP_REACH_NLRI prefixes, before the
    /// checks that depend on the peer; `None` when not prepared.
    pub(super) prepared: Option<Prepared>,
}

/// The attribute sets an [`Importer`] interned for an UPDATE's IPv4 NLRI and its
/// MP_REACH_NLRI prefixes (`None`: that field announces nothing, or has no next hop).
#[derive(Debug, Default)]
pub(super) struct Prepared {
    /// The set of the IPv4 NLRI (NEXT_HOP folded in).
    pub(super) v4: Option<Arc<RouteAttrs>>,
    /// The set of the MP_REACH_NLRI prefixes (its next hop folded in).
    pub(super) mp: Option<Arc<RouteAttrs>>,
}

impl Inbound {
    /// The message (with, when prepared, only its prefix-carrying attributes left).
    pub fn update(&self) -> &Update {
        &self.update
    }
}

impl From<Update> for Inbound {
    /// An UPDATE not prepared: the RIB imports its attributes itself.
    fn from(update: Update) -> Inbound {
        Inbound {
            update,
            prepared: None,
        }
    }
}

/// Interns the attributes of a peer's UPDATEs for the RIB that handed it out
/// ([`super::Rib::importer`]), wherever the peer's messages are decoded.
#[derive(Clone, Debug, Default)]
pub struct Importer {
    interner: Arc<Mutex<Interner>>,
}

impl Importer {
    /// The interner (a panic while it was held leaves nothing half done: every change to
    /// it is a single insert or retain, so a poisoned lock is taken over).
    pub(super) fn lock(&self) -> MutexGuard<'_, Interner> {
        self.interner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `update` with the attribute sets of its announced prefixes interned; as it is when
    /// it announces nothing or is to be handled as withdrawn (RFC 7606), which the RIB
    /// handles as before.
    ///
    /// The sets are built as `import.rs` builds them (NEXT_HOP for the IPv4 NLRI, the
    /// MP_REACH_NLRI next hop for its prefixes, the other NLRI-carrying attributes left
    /// out, and only for a field that announces prefixes); what depends on the peer and on
    /// our settings is left to the RIB.
    pub fn prepare(&self, mut update: Update) -> Inbound {
        let v4 = !update.nlri.is_empty();
        let mp = update
            .attributes
            .mp_reach
            .as_ref()
            .is_some_and(|m| !m.nlri.is_empty());
        if !(v4 || mp) || update.treat_as_withdraw() {
            return update.into();
        }
        let mut path = std::mem::take(&mut update.attributes);
        update.attributes.mp_reach = path.mp_reach.take();
        update.attributes.mp_unreach = path.mp_unreach.take();
        let v4_next_hop = path.next_hop.take().filter(|_| v4);
        let mp_next_hop = update
            .attributes
            .mp_reach
            .as_ref()
            .filter(|_| mp)
            .map(|m| (m.next_hop.global, m.next_hop.link_local));
        let (v4, mp) = super::import::intern_sets(&mut self.lock(), path, v4_next_hop, mp_next_hop);
        Inbound {
            update,
            prepared: Some(Prepared { v4, mp }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use ipnet::{IpNet, Ipv4Net, Ipv6Net};
    use proptest::prelude::*;

    use super::*;
    use crate::packet::attribute::{MpNextHop, MpReach, MpUnreach};
    use crate::packet::notification::UpdateSubcode;
    use crate::packet::{
        AfiSafi, AsPath, AttributeError, ErrorAction, ErrorCode, Origin, PathAttributes,
    };
    use crate::rib::{Change, PeerId, PeerInfo, Rib, RibSettings};

    const LOCAL_AS: u32 = 64512;

    /// A RIB (AS 64512) with an eBGP peer (1) and an iBGP peer (2), both taking IPv4 and
    /// IPv6.
    fn rib() -> Rib {
        let mut rib = Rib::new(RibSettings {
            local_as: LOCAL_AS,
            router_id: [10, 0, 0, 100].into(),
            cluster_id: None,
        });
        for (n, remote_as) in [(1u8, 65001), (2, LOCAL_AS)] {
            rib.peer_up(
                PeerId(n.into()),
                PeerInfo {
                    address: [192, 0, 2, n].into(),
                    remote_as,
                    router_id: [10, 0, 0, n].into(),
                    ebgp: remote_as != LOCAL_AS,
                    rr_client: false,
                    local_address: [192, 0, 2, 100].into(),
                    interface: None,
                    families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
                    allow_local_as: 0,
                    next_hop_mode: Default::default(),
                },
            );
        }
        rib
    }

    fn v4(i: u8) -> Ipv4Net {
        Ipv4Net::new_assert(Ipv4Addr::new(10, i, 0, 0), 16)
    }

    fn v6(i: u8) -> IpNet {
        IpNet::V6(Ipv6Net::new_assert(
            Ipv6Addr::new(0x2001, 0xdb8, i.into(), 0, 0, 0, 0, 0),
            48,
        ))
    }

    /// An UPDATE from a small space: IPv4 NLRI and withdrawals, MP_REACH_NLRI and
    /// MP_UNREACH_NLRI prefixes, with or without NEXT_HOP, LOCAL_PREF, our AS in the
    /// path, a link-local next hop, an error handled as withdraw.
    fn update() -> impl Strategy<Value = Update> {
        let prefixes = || prop::collection::vec(0u8..6, 0..4);
        (
            (prefixes(), prefixes(), prefixes(), prefixes()),
            (
                any::<bool>(),
                prop::option::of(0u32..3),
                0u32..3,
                any::<bool>(),
            ),
            (0u8..3, any::<bool>()),
        )
            .prop_map(
                |((nlri, withdrawn, mp_nlri, mp_withdrawn), attrs, (mp_nh, error))| {
                    let (next_hop, local_pref, med, looped) = attrs;
                    let mp_reach = (!mp_nlri.is_empty()).then(|| {
                        let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
                        let global = if mp_nh == 0 {
                            Ipv6Addr::UNSPECIFIED
                        } else {
                            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1].into()
                        };
                        Box::new(MpReach {
                            family: AfiSafi::IPV6_UNICAST,
                            next_hop: MpNextHop {
                                global: global.into(),
                                link_local: (mp_nh != 2).then_some(link_local),
                            },
                            nlri: mp_nlri.into_iter().map(v6).collect(),
                            path_ids: Vec::new(),
                        })
                    });
                    let mp_unreach = (!mp_withdrawn.is_empty()).then(|| {
                        Box::new(MpUnreach {
                            family: AfiSafi::IPV6_UNICAST,
                            withdrawn: mp_withdrawn.into_iter().map(v6).collect(),
                            path_ids: Vec::new(),
                        })
                    });
                    let path = if looped {
                        vec![65001, LOCAL_AS]
                    } else {
                        vec![65001, 65003]
                    };
                    let errors = if error {
                        vec![AttributeError {
                            type_code: 1,
                            action: ErrorAction::TreatAsWithdraw,
                            reason: "test".into(),
                            code: ErrorCode::UpdateMessage(UpdateSubcode::InvalidOriginAttribute),
                        }]
                    } else {
                        Vec::new()
                    };
                    Update {
                        withdrawn: withdrawn.into_iter().map(v4).collect(),
                        nlri: nlri.into_iter().map(v4).collect(),
                        attributes: PathAttributes {
                            origin: Some(Origin::Igp),
                            as_path: Some(AsPath::sequence(path)),
                            next_hop: next_hop.then_some(Ipv4Addr::new(192, 0, 2, 9)),
                            med: Some(med),
                            local_pref,
                            mp_reach,
                            mp_unreach,
                            ..PathAttributes::default()
                        },
                        errors,
                        ..Update::default()
                    }
                },
            )
    }

    /// What a change says, attribute sets compared by value.
    fn seen(c: &Change) -> (IpNet, bool, Option<(PeerId, RouteAttrs)>) {
        let path = c
            .new_best
            .as_ref()
            .map(|p| (p.peer, RouteAttrs::clone(&p.attrs)));
        (c.prefix, c.best, path)
    }

    proptest! {
        /// An UPDATE prepared by a peering's task changes the RIB exactly as the same
        /// UPDATE applied unprepared: the same changes, the same paths, the same sharing.
        #[test]
        fn prepared_updates_apply_as_unprepared_ones(
            updates in prop::collection::vec((1u32..3, update()), 1..30)
        ) {
            let (mut plain, mut prepared) = (rib(), rib());
            let importer = prepared.importer();
            for (peer, update) in updates {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                plain.apply_into(PeerId(peer), update.clone(), &mut a);
                prepared.apply_inbound(PeerId(peer), importer.prepare(update), &mut b);
                prop_assert_eq!(a.iter().map(seen).collect::<Vec<_>>(), b.iter().map(seen).collect::<Vec<_>>());
            }
            prop_assert_eq!(plain.len(), prepared.len());
            for prefix in plain.prefixes().collect::<Vec<_>>() {
                let paths = |rib: &Rib| -> Vec<(PeerId, RouteAttrs)> {
                    rib.paths(&prefix).iter().map(|p| (p.peer, RouteAttrs::clone(&p.attrs))).collect()
                };
                prop_assert_eq!(paths(&plain), paths(&prepared));
            }
            for peer in [PeerId(1), PeerId(2)] {
                prop_assert_eq!(plain.received(peer), prepared.received(peer));
            }
            plain.peer_down(PeerId(1));
            prepared.peer_down(PeerId(1));
            prop_assert_eq!(plain.attribute_sets(), prepared.attribute_sets());
        }
    }
}

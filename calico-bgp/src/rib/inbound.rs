//! UPDATEs prepared for the RIB off its thread.
//!
//! The speaker's state machine (the RIB) runs on a thread of its own and, during a full
//! table, is the bottleneck: interning each UPDATE's attribute set (hashing it, probing
//! the set table, copying a new one) was ~44% of its time. So each connection's reader,
//! which runs beside it, interns the attributes of the UPDATEs as it decodes them
//! ([`Importer`]): the RIB receives an [`InboundBatch`], the UPDATEs' prefixes with their
//! attribute sets already shared, and only checks what depends on the peer and our
//! settings (loops, an eBGP peer's LOCAL_PREF, see `import.rs`).
//!
//! The interner is shared between the RIB and every connection's reader behind a mutex:
//! a reader holds it once per UPDATE, the RIB only to prune unused sets or to intern what
//! came unprepared. Pruning keeps a set only while something besides the interner holds
//! it; sets are handed out under the lock, so a set the interner alone holds cannot be
//! handed out while it is being pruned.

use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::{IpNet, Ipv4Net};

use super::{Interner, RouteAttrs};
use crate::packet::attribute::MpUnreach;
use crate::packet::update::with_ids;
use crate::packet::{AfiSafi, Update};

/// A peer's UPDATEs as the RIB applies them, in order: each as it came, or prepared
/// ([`Importer::prepare_into`]).
///
/// The prefixes the prepared UPDATEs announce are kept together, for the whole batch, in
/// one list: the per-message lists the decoder made are freed where they were made (on
/// the connection's reader, whose allocator reuses them for the next messages), not one by one
/// on the RIB's thread, where freeing memory another thread allocated had cost both
/// threads ~15% of a full table's time.
#[derive(Debug, Default)]
pub struct InboundBatch {
    pub(super) updates: Vec<Inbound>,
    /// The prefixes the prepared UPDATEs announce with their path identifiers (0 on a
    /// session without ADD-PATH for the family), in order: of each, the IPv4 NLRI, then
    /// the MP_REACH_NLRI prefixes.
    pub(super) announced: Vec<(IpNet, u32)>,
}

/// One UPDATE of an [`InboundBatch`].
#[derive(Debug)]
pub(super) enum Inbound {
    /// Not prepared: the RIB imports its attributes itself. (Boxed: End-of-RIB markers
    /// and UPDATEs handled as withdrawn are few, and a batch holds thousands of prepared
    /// ones, each a third of an UPDATE's size.)
    Plain(Box<Update>),
    /// Prepared: its announced prefixes are in the batch's list.
    Prepared(Prepared),
}

/// A prepared UPDATE: what it withdraws, and the attribute sets of what it announces,
/// interned; the announced prefixes themselves are in the batch's list.
#[derive(Debug)]
pub(super) struct Prepared {
    /// Withdrawn IPv4 prefixes.
    pub(super) withdrawn: Vec<Ipv4Net>,
    /// Their path identifiers (empty without ADD-PATH for IPv4).
    pub(super) withdrawn_path_ids: Vec<u32>,
    /// MP_UNREACH_NLRI.
    pub(super) mp_unreach: Option<Box<MpUnreach>>,
    /// The set of the IPv4 NLRI (NEXT_HOP folded in), before the checks that depend on
    /// the peer; `None` when that field announces nothing.
    pub(super) v4: Option<Arc<RouteAttrs>>,
    /// The set of the MP_REACH_NLRI prefixes (its next hop folded in), likewise.
    pub(super) mp: Option<Arc<RouteAttrs>>,
    /// How many prefixes the IPv4 NLRI announces, and MP_REACH_NLRI.
    pub(super) announced: (usize, usize),
}

impl Prepared {
    /// Every prefix withdrawn, with its path identifier (0 without ADD-PATH), IPv4 ones
    /// first.
    pub(super) fn withdrawn_paths(&self) -> impl Iterator<Item = (IpNet, u32)> + '_ {
        let v4 = self.withdrawn.iter().map(|p| IpNet::V4(*p));
        let mp = self.mp_unreach.as_deref();
        with_ids(v4, &self.withdrawn_path_ids).chain(
            mp.into_iter()
                .flat_map(|m| with_ids(m.withdrawn.iter().copied(), &m.path_ids)),
        )
    }

    /// How many prefixes it announces or withdraws.
    fn prefixes(&self) -> usize {
        let unreach = self.mp_unreach.as_ref().map_or(0, |m| m.withdrawn.len());
        self.withdrawn.len() + unreach + self.announced.0 + self.announced.1
    }
}

impl InboundBatch {
    /// An empty batch with room for `updates` UPDATEs announcing `prefixes` prefixes.
    pub fn with_capacity(updates: usize, prefixes: usize) -> InboundBatch {
        InboundBatch {
            updates: Vec::with_capacity(updates),
            announced: Vec::with_capacity(prefixes),
        }
    }

    /// Adds an UPDATE as it came: the RIB imports its attributes itself.
    pub fn push(&mut self, update: Update) {
        self.updates.push(Inbound::Plain(Box::new(update)));
    }

    /// How many UPDATEs it holds.
    pub fn len(&self) -> usize {
        self.updates.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    /// How many prefixes its UPDATEs announce or withdraw, all together.
    pub fn prefixes(&self) -> usize {
        let each = |u: &Inbound| match u {
            Inbound::Plain(update) => prefixes_in(update),
            Inbound::Prepared(p) => p.prefixes(),
        };
        self.updates.iter().map(each).sum()
    }

    /// How many prefixes the prepared UPDATEs announce (the room the next batch may want).
    pub fn prepared_prefixes(&self) -> usize {
        self.announced.len()
    }

    /// Adds the UPDATEs of `other` after its own.
    pub fn append(&mut self, mut other: InboundBatch) {
        if self.is_empty() {
            *self = other;
            return;
        }
        self.updates.append(&mut other.updates);
        self.announced.append(&mut other.announced);
    }

    /// Takes its first `n` UPDATEs (all when it holds fewer) out of it.
    pub fn take_front(&mut self, n: usize) -> InboundBatch {
        if n >= self.len() {
            return std::mem::take(self);
        }
        let updates: Vec<Inbound> = self.updates.drain(..n).collect();
        let prefixes = updates.iter().map(Inbound::announced).sum::<usize>();
        InboundBatch {
            updates,
            announced: self.announced.drain(..prefixes).collect(),
        }
    }
}

/// How many prefixes an UPDATE announces or withdraws.
fn prefixes_in(update: &Update) -> usize {
    let attrs = &update.attributes;
    update.nlri.len()
        + update.withdrawn.len()
        + attrs.mp_reach.as_ref().map_or(0, |mp| mp.nlri.len())
        + attrs.mp_unreach.as_ref().map_or(0, |mp| mp.withdrawn.len())
}

impl From<Update> for InboundBatch {
    /// A batch of one UPDATE, not prepared.
    fn from(update: Update) -> InboundBatch {
        let mut batch = InboundBatch::default();
        batch.push(update);
        batch
    }
}

impl Inbound {
    /// How many prefixes of the batch's list are this UPDATE's.
    fn announced(&self) -> usize {
        match self {
            Inbound::Plain(_) => 0,
            Inbound::Prepared(p) => p.announced.0 + p.announced.1,
        }
    }

    /// The family of the End-of-RIB marker this is (RFC 4724 §2), if it is one (a prepared
    /// UPDATE announces prefixes, so it never is).
    pub(super) fn end_of_rib_family(&self) -> Option<AfiSafi> {
        match self {
            Inbound::Plain(update) => update.end_of_rib_family(),
            Inbound::Prepared(_) => None,
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

    /// A batch of `update` alone, prepared as [`Importer::prepare_into`] prepares it.
    pub fn prepare(&self, update: Update) -> InboundBatch {
        let mut batch = InboundBatch::default();
        self.prepare_into(update, &mut batch);
        batch
    }

    /// Adds `update` to `batch` with the attribute sets of its announced prefixes
    /// interned and the prefixes moved into the batch's list; as it is when it is to be
    /// handled as withdrawn (RFC 7606) or neither announces nor withdraws anything (an
    /// End-of-RIB marker, say), which the RIB handles as before.
    ///
    /// The sets are built as `import.rs` builds them (NEXT_HOP for the IPv4 NLRI, the
    /// MP_REACH_NLRI next hop for its prefixes, the other NLRI-carrying attributes left
    /// out, and only for a field that announces prefixes); what depends on the peer and on
    /// our settings is left to the RIB.
    pub fn prepare_into(&self, update: Update, batch: &mut InboundBatch) {
        let v4 = !update.nlri.is_empty();
        let mp = update
            .attributes
            .mp_reach
            .as_ref()
            .is_some_and(|m| !m.nlri.is_empty());
        let withdraws = !update.withdrawn.is_empty()
            || (update.attributes.mp_unreach.as_ref()).is_some_and(|m| !m.withdrawn.is_empty());
        if !(v4 || mp || withdraws) || update.treat_as_withdraw() {
            return batch.push(update);
        }
        let Update {
            withdrawn,
            withdrawn_path_ids,
            mut attributes,
            nlri,
            nlri_path_ids,
            errors: _,
        } = update;
        let mp_reach = attributes.mp_reach.take().filter(|_| mp);
        let mp_unreach = attributes.mp_unreach.take();
        let v4_next_hop = attributes.next_hop.take().filter(|_| v4);
        let mp_next_hop = mp_reach
            .as_ref()
            .map(|m| (m.next_hop.global, m.next_hop.link_local));
        let (v4_set, mp_set) =
            super::import::intern_sets(&mut self.lock(), attributes, v4_next_hop, mp_next_hop);
        let v4_count = nlri.len();
        let v4_prefixes = nlri.into_iter().map(IpNet::V4);
        batch
            .announced
            .extend(with_ids(v4_prefixes, &nlri_path_ids));
        let mp_count = mp_reach.as_ref().map_or(0, |m| m.nlri.len());
        if let Some(m) = &mp_reach {
            batch
                .announced
                .extend(with_ids(m.nlri.iter().copied(), &m.path_ids));
        }
        batch.updates.push(Inbound::Prepared(Prepared {
            withdrawn,
            withdrawn_path_ids,
            mp_unreach,
            v4: v4_set,
            mp: mp_set,
            announced: (v4_count, mp_count),
        }));
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

    /// An UPDATE from [`update`], or an End-of-RIB marker.
    fn update_or_marker() -> impl Strategy<Value = Update> {
        prop_oneof![
            8 => update(),
            1 => Just(crate::packet::update::end_of_rib(AfiSafi::IPV4_UNICAST)),
            1 => Just(crate::packet::update::end_of_rib(AfiSafi::IPV6_UNICAST)),
        ]
    }

    /// A change standing for an End-of-RIB marker of `family` among the changes.
    fn marker(family: AfiSafi) -> Change {
        let prefix = match family {
            AfiSafi::IPV4_UNICAST => IpNet::V4(Ipv4Net::default()),
            _ => IpNet::V6(Ipv6Net::default()),
        };
        Change {
            prefix,
            best: false,
            old_best: None,
            new_best: None,
        }
    }

    proptest! {
        /// UPDATEs prepared by a peering's task, several to a batch, change the RIB exactly
        /// as the same UPDATEs applied unprepared one by one: the same changes, the same
        /// paths, the same sharing, and End-of-RIB markers reported at the same points;
        /// batches joined from single UPDATEs and split in two apply as the whole.
        #[test]
        fn prepared_updates_apply_as_unprepared_ones(
            batches in prop::collection::vec(
                (1u32..3, prop::collection::vec(update_or_marker(), 1..6), 0usize..7),
                1..12,
            )
        ) {
            let (mut plain, mut prepared) = (rib(), rib());
            let importer = prepared.importer();
            for (peer, updates, split) in batches {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                let mut batch = InboundBatch::default();
                for update in updates {
                    plain.apply_into(PeerId(peer), update.clone(), &mut a);
                    if let Some(family) = update.end_of_rib_family() {
                        a.push(marker(family));
                    }
                    batch.append(importer.prepare(update));
                }
                // Split in two, as a peering's task passes on what its FSM delivers.
                let front = batch.take_front(split);
                for part in [front, batch] {
                    let eor = |_: &mut Rib, family, b: &mut Vec<Change>| b.push(marker(family));
                    prepared.apply_batch(PeerId(peer), part, &mut b, eor);
                }
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

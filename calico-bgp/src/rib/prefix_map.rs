//! A map from prefixes to their [`Dest`], in blocks of 256 neighbours.
//!
//! A prefix's significant bits (its address shifted right by its host bits) with its length
//! say where it goes: all but the low eight bits, with the length, name its block; the low
//! eight its slot in the block. A block holds a bitmap of its occupied slots and their
//! entries side by side, in slot order, so that an entry is found by counting the bits
//! below its slot.
//!
//! Why not one hash table of prefixes: a full table is a million inserts, and a hash table
//! grown to that size rehashes every entry each time it doubles (most of an insert's cost
//! when measured, with a page fault per 4 KiB of each new table); its buckets are at most
//! 7/8 full, and half empty after growing. Here a block grows on its own, only the far
//! fewer blocks are hashed, and an entry costs its 16 bytes plus its block's share.
//! Neighbouring prefixes of one length, common in a full table, share blocks (the
//! feed bench's million /24s make 3,907 blocks).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::dest::Dest;
use super::hash::BuildRibHasher;

/// A prefix (its host bits cleared) as a block and a slot in it; see the module docs.
pub(super) trait Slotted: Copy + Eq {
    /// The block: the significant bits but the low eight, and the length.
    type Block: Copy + Eq + Hash;
    /// The prefix's block and slot.
    fn split(self) -> (Self::Block, u8);
    /// The prefix in `slot` of `block`.
    fn join(block: Self::Block, slot: u8) -> Self;
}

impl Slotted for Ipv4Net {
    /// The significant bits, the low eight replaced by the length (at most 32).
    type Block = u32;

    fn split(self) -> (u32, u8) {
        let len = self.prefix_len();
        let bits = u32::from(self.network());
        let significant = bits.checked_shr(32 - u32::from(len)).unwrap_or(0);
        ((significant & !0xff) | u32::from(len), significant as u8)
    }

    fn join(block: u32, slot: u8) -> Ipv4Net {
        let len = block as u8;
        let significant = (block & !0xff) | u32::from(slot);
        let bits = significant.checked_shl(32 - u32::from(len)).unwrap_or(0);
        Ipv4Net::new_assert(Ipv4Addr::from(bits), len)
    }
}

impl Slotted for Ipv6Net {
    /// The significant bits, the low eight replaced by the length (at most 128).
    type Block = u128;

    fn split(self) -> (u128, u8) {
        let len = self.prefix_len();
        let bits = u128::from(self.network());
        let significant = bits.checked_shr(128 - u32::from(len)).unwrap_or(0);
        ((significant & !0xff) | u128::from(len), significant as u8)
    }

    fn join(block: u128, slot: u8) -> Ipv6Net {
        let len = block as u8;
        let significant = (block & !0xff) | u128::from(slot);
        let bits = significant.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Ipv6Net::new_assert(Ipv6Addr::from(bits), len)
    }
}

/// Up to 256 neighbouring prefixes' entries.
#[derive(Debug, Default)]
struct Block {
    /// Bit `s` is set when slot `s` holds an entry.
    occupied: [u64; 4],
    /// The entries of the occupied slots, in slot order.
    dests: Vec<Dest>,
}

impl Block {
    fn has(&self, slot: u8) -> bool {
        self.occupied[usize::from(slot / 64)] & (1 << (slot % 64)) != 0
    }

    /// Where slot `slot`'s entry is (or would be) in `dests`: the occupied slots below it.
    fn rank(&self, slot: u8) -> usize {
        let word = usize::from(slot / 64);
        let below: u32 = self.occupied[..word].iter().map(|w| w.count_ones()).sum();
        let within = self.occupied[word] & ((1 << (slot % 64)) - 1);
        (below + within.count_ones()) as usize
    }

    fn flip(&mut self, slot: u8) {
        self.occupied[usize::from(slot / 64)] ^= 1 << (slot % 64);
    }
}

/// The occupied slots of a bitmap, in order.
struct Slots([u64; 4]);

impl Iterator for Slots {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let word = self.0.iter().position(|w| *w != 0)?;
        let bit = self.0[word].trailing_zeros();
        self.0[word] &= self.0[word] - 1;
        Some((word as u32 * 64 + bit) as u8)
    }
}

/// What [`PrefixMap::get_or_insert_with`] found or did.
pub(super) enum Slot<'a> {
    /// The prefix's entry.
    Found(&'a mut Dest),
    /// There was none; the one given was put there.
    Inserted,
    /// There was none and none was given.
    Absent,
}

/// Prefixes of one family and their entries; see the module docs.
#[derive(Debug)]
pub(super) struct PrefixMap<K: Slotted> {
    blocks: HashMap<K::Block, Block, BuildRibHasher>,
    len: usize,
}

impl<K: Slotted> Default for PrefixMap<K> {
    fn default() -> Self {
        PrefixMap {
            blocks: HashMap::default(),
            len: 0,
        }
    }
}

impl<K: Slotted> PrefixMap<K> {
    /// Number of prefixes held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The entry of `prefix`.
    pub(super) fn get(&self, prefix: K) -> Option<&Dest> {
        let (block, slot) = prefix.split();
        let b = self.blocks.get(&block)?;
        b.has(slot).then(|| &b.dests[b.rank(slot)])
    }

    /// The entry of `prefix`, to change in place.
    #[cfg(test)]
    pub(super) fn get_mut(&mut self, prefix: K) -> Option<&mut Dest> {
        let (block, slot) = prefix.split();
        let b = self.blocks.get_mut(&block)?;
        let at = b.rank(slot);
        b.has(slot).then(|| &mut b.dests[at])
    }

    /// The entry of `prefix` to change in place or, when there is none, the one `vacant`
    /// gives (if any) put there: one lookup of the block either way (a full table is a
    /// million prefixes not there yet).
    pub(super) fn get_or_insert_with(
        &mut self,
        prefix: K,
        vacant: impl FnOnce() -> Option<Dest>,
    ) -> Slot<'_> {
        use std::collections::hash_map::Entry;
        let (block, slot) = prefix.split();
        let b = match self.blocks.entry(block) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => match vacant() {
                Some(dest) => {
                    let b = e.insert(Block::default());
                    b.flip(slot);
                    b.dests.push(dest);
                    self.len += 1;
                    return Slot::Inserted;
                }
                None => return Slot::Absent,
            },
        };
        let at = b.rank(slot);
        if b.has(slot) {
            return Slot::Found(&mut b.dests[at]);
        }
        let Some(dest) = vacant() else {
            return Slot::Absent;
        };
        b.flip(slot);
        b.dests.insert(at, dest);
        self.len += 1;
        Slot::Inserted
    }

    /// Sets the entry of `prefix`; returns the one it replaces.
    #[cfg(test)]
    pub(super) fn insert(&mut self, prefix: K, dest: Dest) -> Option<Dest> {
        let (block, slot) = prefix.split();
        let b = self.blocks.entry(block).or_default();
        let at = b.rank(slot);
        if b.has(slot) {
            return Some(std::mem::replace(&mut b.dests[at], dest));
        }
        b.flip(slot);
        b.dests.insert(at, dest);
        self.len += 1;
        None
    }

    /// Removes the entry of `prefix`.
    pub(super) fn remove(&mut self, prefix: K) -> Option<Dest> {
        let (block, slot) = prefix.split();
        let b = self.blocks.get_mut(&block)?;
        if !b.has(slot) {
            return None;
        }
        let at = b.rank(slot);
        b.flip(slot);
        let dest = b.dests.remove(at);
        self.len -= 1;
        if b.dests.is_empty() {
            self.blocks.remove(&block);
        } else if b.dests.len() <= b.dests.capacity() / 4 {
            b.dests.shrink_to(b.dests.len() * 2);
        }
        Some(dest)
    }

    /// Keeps the entries for which `keep` (which may change them) says so.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(K, &mut Dest) -> bool) {
        let mut len = 0;
        self.blocks.retain(|&block, b| {
            let mut slots = Slots(b.occupied);
            let mut occupied = [0u64; 4];
            b.dests.retain_mut(|dest| {
                let Some(slot) = slots.next() else {
                    return false; // never: one occupied slot per entry
                };
                let kept = keep(K::join(block, slot), dest);
                if kept {
                    occupied[usize::from(slot / 64)] |= 1 << (slot % 64);
                }
                kept
            });
            b.occupied = occupied;
            if b.dests.len() <= b.dests.capacity() / 4 {
                b.dests.shrink_to(b.dests.len() * 2);
            }
            len += b.dests.len();
            !b.dests.is_empty()
        });
        self.len = len;
    }

    /// Every prefix with its entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (K, &Dest)> + '_ {
        self.blocks.iter().flat_map(|(&block, b)| {
            Slots(b.occupied)
                .zip(&b.dests)
                .map(move |(slot, dest)| (K::join(block, slot), dest))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::rib::{Path, PeerId};

    #[test]
    fn every_length_splits_and_joins_back() {
        for s in ["0.0.0.0/0", "128.0.0.0/1", "10.1.2.0/24", "10.1.2.3/32"] {
            let p: Ipv4Net = s.parse().unwrap();
            let (block, slot) = p.split();
            assert_eq!(Ipv4Net::join(block, slot), p, "{s}");
        }
        for s in ["::/0", "8000::/1", "2001:db8::/48", "::1/128", "ffff::/127"] {
            let p: Ipv6Net = s.parse().unwrap();
            let (block, slot) = p.split();
            assert_eq!(Ipv6Net::join(block, slot), p, "{s}");
        }
    }

    #[test]
    fn neighbours_share_a_block_and_lengths_do_not() {
        let split = |s: &str| s.parse::<Ipv4Net>().unwrap().split();
        assert_eq!(split("10.0.0.0/24").0, split("10.0.255.0/24").0);
        assert_eq!(split("10.0.7.0/24").1, 7);
        assert_ne!(split("10.0.0.0/24").0, split("10.1.0.0/24").0);
        assert_ne!(split("10.0.0.0/16").0, split("10.0.0.0/24").0);
    }

    fn dest(n: u32) -> Dest {
        Dest::One(Path {
            peer: PeerId(n),
            path_id: n,
            attrs: std::sync::Arc::new(crate::rib::RouteAttrs {
                path: Default::default(),
                next_hop: Ipv4Addr::UNSPECIFIED.into(),
                link_local: None,
            }),
        })
    }

    fn id(d: &Dest) -> u32 {
        d.paths()[0].peer.0
    }

    /// IPv6 prefixes from a small space (so that operations meet), any length.
    fn prefix() -> impl Strategy<Value = Ipv6Net> {
        (0u128..1024, 0u8..=128).prop_map(|(a, l)| {
            let bits = a << 118 | a << 60 | a;
            Ipv6Net::new_assert(bits.into(), l).trunc()
        })
    }

    proptest! {
        #[test]
        fn the_map_behaves_as_a_map(
            ops in prop::collection::vec((prefix(), 0u32..4, 0u8..5), 1..300)
        ) {
            let mut map = PrefixMap::<Ipv6Net>::default();
            let mut model = BTreeMap::new();
            for (p, n, op) in ops {
                match op {
                    0 => prop_assert_eq!(
                        map.insert(p, dest(n)).as_ref().map(id),
                        model.insert(p, n)
                    ),
                    1 => prop_assert_eq!(map.remove(p).as_ref().map(id), model.remove(&p)),
                    3 | 4 => {
                        // Given an entry (3) or not (4) for a prefix not there.
                        let give = op == 3;
                        match map.get_or_insert_with(p, || give.then(|| dest(n))) {
                            Slot::Found(d) => {
                                prop_assert_eq!(Some(id(d)), model.get(&p).copied());
                                *d = dest(n);
                                model.insert(p, n);
                            }
                            Slot::Inserted => {
                                prop_assert!(give);
                                prop_assert_eq!(model.insert(p, n), None);
                            }
                            Slot::Absent => {
                                prop_assert!(!give);
                                prop_assert!(!model.contains_key(&p));
                            }
                        }
                    }
                    _ => {
                        if let Some(d) = map.get_mut(p) {
                            *d = dest(n);
                        }
                        if let Some(m) = model.get_mut(&p) {
                            *m = n;
                        }
                    }
                }
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.get(p).map(id), model.get(&p).copied());
            }
            let all: BTreeMap<Ipv6Net, u32> = map.iter().map(|(p, d)| (p, id(d))).collect();
            prop_assert_eq!(&all, &model);
            map.retain(|p, d| p.prefix_len() % 2 == 0 && id(d) != 3);
            model.retain(|p, n| p.prefix_len() % 2 == 0 && *n != 3);
            let all: BTreeMap<Ipv6Net, u32> = map.iter().map(|(p, d)| (p, id(d))).collect();
            prop_assert_eq!(&all, &model);
            prop_assert_eq!(map.len(), model.len());
        }
    }
}

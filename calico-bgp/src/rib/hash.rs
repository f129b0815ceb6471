//! A fast hasher for the RIB's own keys (prefixes, interned attribute sets).
//!
//! SipHash (the std default) resists hash flooding by untrusted input; the RIB's keys come
//! from configured BGP neighbours, and a full table is a million lookups per convergence, so
//! a multiply-rotate hash (in the style of rustc's FxHash) with a final mix is used instead.

use std::hash::{BuildHasherDefault, Hasher};

/// The hasher.
#[derive(Clone, Copy, Debug, Default)]
pub struct RibHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl RibHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for RibHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Spread the high bits (where the multiply puts its entropy) into the low ones that
        // pick the bucket.
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (h >> 32)
    }
}

/// Builds [`RibHasher`]s.
pub type BuildRibHasher = BuildHasherDefault<RibHasher>;

/// A hasher for the Loc-RIB's prefix tables that keeps neighbouring prefixes near each
/// other in the table.
///
/// Peers send a table in prefix order (BIRD and FRR walk a trie), so consecutive inserts
/// are consecutive prefixes of one length. With a fully mixing hash each lands somewhere
/// else in a table of tens of megabytes: a cache miss and a TLB miss per prefix, most of an
/// insert's cost. Here a prefix's significant bits (the address shifted right by its host
/// bits) choose the bucket within a block of [`BLOCK`] buckets, and the rest of them, mixed
/// with the length, choose the block: a run of prefixes fills a block in order. The top
/// bits (the table's per-bucket tags) are mixed from everything, so lookups still tell
/// keys apart at a glance. A key that is not an address then a length (however the
/// address hashes itself: as an integer, or as its octets after their count) is hashed as
/// [`RibHasher`] would.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrefixHasher {
    /// A count written first (a slice's length prefix).
    count: Option<usize>,
    /// The address bits and their width, once written.
    addr: Option<(u128, u32)>,
    /// The prefix length, once written after the address.
    len: Option<u8>,
    /// Whether the key was not an address then a length.
    other_key: bool,
    /// Everything written, mixed: the hash of such other keys.
    mixed: RibHasher,
}

/// Buckets per block of [`PrefixHasher`]: 256 buckets of 24-byte entries are 6 KiB, under
/// two pages.
pub const BLOCK: u64 = 256;

/// The hash bits the table keeps per bucket as a tag (hashbrown's top seven).
const TAG: u64 = 0x7f << 57;

impl PrefixHasher {
    #[inline]
    fn address(&mut self, bits: u128, width: u32) {
        if self.addr.is_some() || self.len.is_some() {
            self.other_key = true;
        }
        self.addr = Some((bits, width));
        self.mixed.add(bits as u64);
        self.mixed.add((bits >> 64) as u64);
    }
}

impl Hasher for PrefixHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let counted = self.count.is_none_or(|n| n == bytes.len());
        if matches!(bytes.len(), 4 | 16) && counted && self.addr.is_none() {
            let bits = bytes
                .iter()
                .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
            self.address(bits, 8 * bytes.len() as u32);
        } else {
            self.other_key = true;
            self.mixed.write(bytes);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        if self.addr.is_some() && self.len.is_none() {
            self.len = Some(i);
        } else {
            self.other_key = true;
        }
        self.mixed.write_u8(i);
    }

    // The standard library hashes an address as the integer its octets make in native
    // order (`from_ne_bytes`); back to the octets, then read in network order. Were that
    // to change, only locality would be lost (the unit test would say so).
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.address(u128::from(u32::from_be_bytes(i.to_ne_bytes())), 32);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.address(u128::from_be_bytes(i.to_ne_bytes()), 128);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.other_key = true;
        self.mixed.write_u64(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        if self.count.is_some() || self.addr.is_some() {
            self.other_key = true;
        }
        self.count = Some(i);
        self.mixed.write_usize(i);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let (Some((addr, width)), Some(len), false) = (self.addr, self.len, self.other_key) else {
            return self.mixed.finish();
        };
        let host_bits = width.saturating_sub(u32::from(len));
        let significant = addr.checked_shr(host_bits).unwrap_or(0);
        let low = significant as u64;
        let mix = |word: u64| {
            let mut h = RibHasher::default();
            h.add(word);
            h.add((significant >> 64) as u64);
            h.add(u64::from(len));
            h.finish()
        };
        // The tag from every bit, the block from all but the low ones, the bucket within
        // the block from those.
        (mix(low) & TAG) | (mix(low / BLOCK) & !TAG & !(BLOCK - 1)) | (low % BLOCK)
    }
}

/// Builds [`PrefixHasher`]s.
pub type BuildPrefixHasher = BuildHasherDefault<PrefixHasher>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use ipnet::{Ipv4Net, Ipv6Net};

    use super::*;

    fn hash<T: std::hash::Hash>(t: &T) -> u64 {
        BuildPrefixHasher::default().hash_one(t)
    }

    #[test]
    fn consecutive_prefixes_share_a_block_in_order_and_lengths_differ() {
        // The bucket bits (all but the tag).
        let v4 = |s: &str| hash(&s.parse::<Ipv4Net>().unwrap()) & !TAG;
        let a = v4("10.0.0.0/24");
        assert_eq!(v4("10.0.1.0/24"), a + 1, "the next /24 is the next bucket");
        assert_eq!(a / BLOCK, v4("10.0.255.0/24") / BLOCK, "one block of 256");
        assert_ne!(a / BLOCK, v4("10.1.0.0/24") / BLOCK);
        assert_ne!(v4("10.0.0.0/16") / BLOCK, v4("10.0.0.0/24") / BLOCK);
        let tag = |s: &str| hash(&s.parse::<Ipv4Net>().unwrap()) >> 57;
        let tags: std::collections::HashSet<u64> =
            (0..=255).map(|i| tag(&format!("10.0.{i}.0/24"))).collect();
        assert!(
            tags.len() > 64,
            "a block's tags tell its keys apart: {}",
            tags.len()
        );
        let v6 = |s: &str| hash(&s.parse::<Ipv6Net>().unwrap()) & !TAG;
        assert_eq!(v6("2001:db8:1::/48"), v6("2001:db8::/48") + 1);
        assert_ne!(v6("::/0"), v6("::/128"));
    }

    #[test]
    fn other_keys_still_hash_well() {
        let pairs: std::collections::HashSet<u64> =
            (0..1000u32).map(|i| hash(&(i, 7u8, "x"))).collect();
        assert_eq!(pairs.len(), 1000);
        assert_ne!(hash(&1u64), hash(&2u64));
    }
}

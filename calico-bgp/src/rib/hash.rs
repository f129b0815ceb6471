//! A fast hasher for the RIB's own keys (blocks of prefixes, interned attribute sets).
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

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash<T: std::hash::Hash>(t: &T) -> u64 {
        BuildRibHasher::default().hash_one(t)
    }

    #[test]
    fn keys_hash_apart() {
        let pairs: std::collections::HashSet<u64> =
            (0..1000u32).map(|i| hash(&(i, 7u8, "x"))).collect();
        assert_eq!(pairs.len(), 1000);
        assert_ne!(hash(&1u64), hash(&2u64));
    }
}

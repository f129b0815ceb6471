//! IPv6 prefixes as the Loc-RIB's table keys, in 16 bytes.
//!
//! [`Ipv6Net`] takes 17 bytes (the address, then the length), which the table pads to 24
//! beside an entry's 16-byte [`Dest`](super::dest::Dest): 40 bytes a bucket. A prefix of
//! length 0 to 127 whose host bits are zero needs at most 128 bits plus its length;
//! [`Net6`] keeps the address with one marker bit set just past the prefix (bit
//! `127 - len` counted from the least significant), so the lowest set bit gives the
//! length back: 16 bytes, 32 a bucket. Host routes (/128, common in Calico: one per
//! workload) leave no room for the marker and go in a table of their own keyed by the
//! address alone, [`Host6`], also 16 bytes.
//!
//! Both hash as the address's octets then the length, as [`Ipv6Net`] does, so that
//! [`PrefixHasher`](super::hash::PrefixHasher) keeps neighbouring prefixes together.

use std::hash::{Hash, Hasher};
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

/// An IPv6 prefix shorter than /128 with its host bits cleared (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Net6([u64; 2]);

/// An IPv6 /128 (a host route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Host6(pub(super) Ipv6Addr);

/// Where an IPv6 prefix is kept: the table of shorter prefixes or that of host routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Key6 {
    /// Shorter than /128.
    Net(Net6),
    /// A /128.
    Host(Host6),
}

impl Key6 {
    /// The key of `prefix`, its host bits cleared (they mean nothing, RFC 4271 §4.3).
    pub(super) fn of(prefix: &Ipv6Net) -> Key6 {
        let len = prefix.prefix_len();
        if len == 128 {
            return Key6::Host(Host6(prefix.addr()));
        }
        let addr = u128::from(prefix.trunc().addr());
        let packed = addr | (1u128 << (127 - len));
        Key6::Net(Net6([(packed >> 64) as u64, packed as u64]))
    }
}

impl Net6 {
    fn packed(self) -> u128 {
        (u128::from(self.0[0]) << 64) | u128::from(self.0[1])
    }

    /// The address and the length.
    fn parts(self) -> (Ipv6Addr, u8) {
        let packed = self.packed();
        // Never zero: the marker bit is set.
        let marker = packed.trailing_zeros();
        let addr = packed & !(1u128 << marker);
        (Ipv6Addr::from(addr), (127 - marker) as u8)
    }

    /// The prefix.
    pub(super) fn net(self) -> Ipv6Net {
        let (addr, len) = self.parts();
        Ipv6Net::new_assert(addr, len)
    }
}

impl Host6 {
    /// The prefix.
    pub(super) fn net(self) -> Ipv6Net {
        Ipv6Net::new_assert(self.0, 128)
    }
}

impl super::dest::PrefixKey for Net6 {}
impl super::dest::PrefixKey for Host6 {}

impl Hash for Net6 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (addr, len) = self.parts();
        state.write(&addr.octets());
        state.write_u8(len);
    }
}

impl Hash for Host6 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0.octets());
        state.write_u8(128);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use proptest::prelude::*;

    use super::super::hash::BuildPrefixHasher;
    use super::*;

    fn key(s: &str) -> Key6 {
        Key6::of(&s.parse().unwrap())
    }

    fn back(k: Key6) -> Ipv6Net {
        match k {
            Key6::Net(n) => n.net(),
            Key6::Host(h) => h.net(),
        }
    }

    #[test]
    fn keys_take_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Net6>(), 16);
        assert_eq!(std::mem::size_of::<Host6>(), 16);
    }

    #[test]
    fn every_length_comes_back() {
        for s in [
            "::/0",
            "8000::/1",
            "2001:db8::/32",
            "2001:db8::/127",
            "::1/128",
        ] {
            assert_eq!(back(key(s)), s.parse::<Ipv6Net>().unwrap(), "{s}");
        }
        assert!(matches!(key("::/128"), Key6::Host(_)));
        assert!(matches!(key("ffff::/127"), Key6::Net(_)));
    }

    #[test]
    fn host_bits_are_cleared_and_lengths_kept_apart() {
        assert_eq!(key("2001:db8::1/64"), key("2001:db8::/64"));
        assert_ne!(key("2001:db8::/64"), key("2001:db8::/65"));
        assert_ne!(key("::/0"), key("::/1"));
    }

    #[test]
    fn keys_hash_as_the_prefix_does() {
        // The locality of `PrefixHasher` depends on it.
        let h = |x: &dyn Fn(&mut crate::rib::hash::PrefixHasher)| {
            let mut s = BuildPrefixHasher::default().build_hasher();
            x(&mut s);
            s.finish()
        };
        let net: Ipv6Net = "2001:db8:1::/48".parse().unwrap();
        let Key6::Net(n) = Key6::of(&net) else {
            panic!("a /48 is no host route")
        };
        assert_eq!(h(&|s| n.hash(s)), h(&|s| net.hash(s)));
        let host: Ipv6Net = "2001:db8::7/128".parse().unwrap();
        let Key6::Host(k) = Key6::of(&host) else {
            panic!("a /128 is a host route")
        };
        assert_eq!(h(&|s| k.hash(s)), h(&|s| host.hash(s)));
    }

    proptest! {
        #[test]
        fn a_key_is_the_truncated_prefix(bits in any::<u128>(), len in 0u8..=128, other in any::<u128>(), other_len in 0u8..=128) {
            let a = Ipv6Net::new_assert(Ipv6Addr::from(bits), len);
            let b = Ipv6Net::new_assert(Ipv6Addr::from(other), other_len);
            prop_assert_eq!(back(Key6::of(&a)), a.trunc());
            prop_assert_eq!(Key6::of(&a) == Key6::of(&b), a.trunc() == b.trunc());
        }
    }
}

//! Which decoder reads which keys: the per-prefix dispatch of [`EtcdSource`](crate::EtcdSource).
//!
//! A source reads every key under each registered prefix (one consistent listing at one
//! revision, then one watch on their common prefix) and hands each key and value to the
//! decoder of the longest prefix that holds it. The `projectcalico.org/v3` resources decoder
//! ([`crate::codec::decode_resource`]) is always registered; others (IPAM block affinities
//! under `/calico/ipam/v2/host/`, ...) are added with
//! [`EtcdSource::with_decoder`](crate::EtcdSource::with_decoder).

use std::sync::Arc;

use crate::codec::Decoded;

/// A decoder: a key and its value → what it means for calico-rs.
pub type DecodeFn = Arc<dyn Fn(&str, &[u8]) -> Decoded + Send + Sync>;

/// Decoders by key prefix.
#[derive(Clone, Default)]
pub struct Decoders {
    by_prefix: Vec<(String, DecodeFn)>,
}

impl std::fmt::Debug for Decoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.by_prefix.iter().map(|(p, _)| p))
            .finish()
    }
}

impl Decoders {
    /// Registers `decode` for keys under `prefix` (replacing one registered for the same).
    pub fn add(&mut self, prefix: impl Into<String>, decode: DecodeFn) {
        let prefix = prefix.into();
        self.by_prefix.retain(|(p, _)| *p != prefix);
        self.by_prefix.push((prefix, decode));
        self.by_prefix
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// The registered prefixes, longest first.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.by_prefix.iter().map(|(p, _)| p.as_str())
    }

    /// Decodes `key` with the decoder of the longest prefix holding it.
    pub fn decode(&self, key: &str, value: &[u8]) -> Decoded {
        self.by_prefix
            .iter()
            .find(|(p, _)| key.starts_with(p.as_str()))
            .map_or(Decoded::NotOurs, |(_, d)| d(key, value))
    }

    /// The key range the watch covers: from the smallest registered prefix to the end of
    /// the largest. Narrower than their common prefix: with the resources and the IPAM
    /// affinities registered, `/calico/felix/` (every host's status reports) and
    /// `/calico/ipam/v2/assignment/` (every address assigned) sort outside it, so an agent
    /// is not woken by every other host's status write or address assignment.
    pub fn watch_range(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self
            .prefixes()
            .min()
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        let end = self
            .prefixes()
            .map(|p| crate::source::prefix_end(p.as_bytes()))
            .max()
            .unwrap_or_default();
        (start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_decides_and_the_watch_covers_all() {
        let mut d = Decoders::default();
        d.add(
            "/calico/resources/v3/",
            Arc::new(|_, _| Decoded::Unsupported("r".into())),
        );
        d.add(
            "/calico/ipam/v2/host/",
            Arc::new(|_, _| Decoded::Unsupported("i".into())),
        );
        d.add(
            "/calico/resources/v3/x/",
            Arc::new(|_, _| Decoded::Unsupported("x".into())),
        );
        assert_eq!(
            d.decode("/calico/resources/v3/a", b""),
            Decoded::Unsupported("r".into())
        );
        assert_eq!(
            d.decode("/calico/resources/v3/x/a", b""),
            Decoded::Unsupported("x".into())
        );
        assert_eq!(
            d.decode("/calico/ipam/v2/host/h/ipv4/block/x", b""),
            Decoded::Unsupported("i".into())
        );
        assert_eq!(d.decode("/calico/felix/v2/x", b""), Decoded::NotOurs);
        let (start, end) = d.watch_range();
        let covered = |k: &str| start.as_slice() <= k.as_bytes() && k.as_bytes() < end.as_slice();
        assert!(covered("/calico/resources/v3/projectcalico.org/profiles/a"));
        assert!(covered("/calico/ipam/v2/host/h/ipv4/block/10.0.0.0-26"));
        assert!(!covered("/calico/felix/v2/no-region/host/h/status"));
        assert!(!covered(
            "/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26"
        ));
        assert!(!covered("/calico/ipam/v2/handle/h"));
    }
}

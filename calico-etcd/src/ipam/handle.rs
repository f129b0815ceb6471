//! Handles: `/calico/ipam/v2/handle/<id>` → `{"block":{"10.0.0.64/26":2},"deleted":false}`
//! (libcalico-go's `IPAMHandle`): how many addresses a handle holds in each block, so a
//! release by handle visits only those blocks. A handle holding nothing is deleted.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::IpamError;

/// The value stored under a handle key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    /// Block CIDR (`10.0.0.64/26`) → addresses the handle holds there.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub block: BTreeMap<String, u64>,
    /// Kubernetes-datastore soft deletion marker.
    #[serde(default)]
    pub deleted: bool,
    /// Fields this crate does not interpret, written back as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u64>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

impl Handle {
    /// Reads the handle stored under `key`.
    pub fn parse(key: &str, value: &[u8]) -> Result<Handle, IpamError> {
        let handle: Handle = serde_json::from_slice(value).map_err(|e| IpamError::BadValue {
            key: key.to_string(),
            reason: format!("not an IPAMHandle: {e}"),
        })?;
        if let Some(bad) = handle.block.keys().find(|k| k.parse::<IpNet>().is_err()) {
            return Err(IpamError::BadValue {
                key: key.to_string(),
                reason: format!("field block: {bad:?} is not a CIDR"),
            });
        }
        Ok(handle)
    }

    /// The handle as Calico stores it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a handle serializes")
    }

    /// Counts `n` more addresses in `block`.
    pub fn add(&mut self, block: IpNet, n: u64) {
        *self.block.entry(block.to_string()).or_default() += n;
    }

    /// Counts `n` fewer addresses in `block` (never below zero; the entry goes at zero).
    pub fn remove(&mut self, block: IpNet, n: u64) {
        let name = block.to_string();
        if let Some(count) = self.block.get_mut(&name) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                self.block.remove(&name);
            }
        }
    }

    /// The blocks the handle holds addresses in.
    pub fn blocks(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.block.keys().filter_map(|k| k.parse().ok())
    }

    /// Whether the handle holds no address (and is to be deleted).
    pub fn is_empty(&self) -> bool {
        self.block.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/calico/ipam/v2/handle/k8s-pod-network.abc";

    #[test]
    fn handles_count_per_block_and_empty_out() {
        let b: IpNet = "10.0.0.64/26".parse().unwrap();
        let mut h = Handle::parse(KEY, br#"{"block":null,"deleted":false}"#).unwrap();
        h.add(b, 2);
        assert_eq!(
            h.to_json(),
            r#"{"block":{"10.0.0.64/26":2},"deleted":false}"#
        );
        h.remove(b, 1);
        assert_eq!(h.blocks().collect::<Vec<_>>(), vec![b]);
        h.remove(b, 5);
        assert!(h.is_empty());
    }

    #[test]
    fn a_bad_handle_is_refused_naming_the_key_and_field() {
        for (value, what) in [
            ("[]", "IPAMHandle"),
            (r#"{"block":{"x":1}}"#, "field block"),
        ] {
            let e = Handle::parse(KEY, value.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(KEY) && e.contains(what), "{e}");
        }
    }
}

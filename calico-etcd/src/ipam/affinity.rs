//! Block affinities: `/calico/ipam/v2/host/<host>/ipv4/block/<a.b.c.d-NN>` →
//! `{"state":"confirmed","deleted":false}` (libcalico-go's `BlockAffinity`).
//!
//! A host claims a block in two steps, `pending` then `confirmed` once the block exists
//! with the host's affinity; only a confirmed affinity means the host owns the block
//! (a pending one is treated as absent, as Calico does). An empty value, which older
//! Calico versions wrote, and an empty state count as confirmed.

use std::collections::BTreeMap;

use calico_core::model::BlockAffinity;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::IpamError;
use super::keys::parse_affinity_key;

/// Where a host's claim on a block stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AffinityState {
    /// The host owns the block (also an empty state, from older Calico versions).
    #[default]
    #[serde(rename = "confirmed", alias = "")]
    Confirmed,
    /// The host is claiming the block.
    #[serde(rename = "pending")]
    Pending,
    /// The host is giving the block up.
    #[serde(rename = "pendingDeletion")]
    PendingDeletion,
}

/// The value stored under an affinity key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AffinityValue {
    /// The claim's state.
    #[serde(default)]
    pub state: AffinityState,
    /// Kubernetes-datastore soft deletion marker; a deleted affinity is treated as absent.
    #[serde(default)]
    pub deleted: bool,
    /// Fields this crate does not interpret, written back as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl AffinityValue {
    /// A fresh value in `state`.
    pub fn new(state: AffinityState) -> AffinityValue {
        AffinityValue {
            state,
            ..AffinityValue::default()
        }
    }

    /// Reads the value stored under `key` (an empty value is an old confirmed affinity).
    pub fn parse(key: &str, value: &[u8]) -> Result<AffinityValue, IpamError> {
        if value.is_empty() {
            return Ok(AffinityValue::default());
        }
        serde_json::from_slice(value).map_err(|e| IpamError::BadValue {
            key: key.to_string(),
            reason: format!(
                "not a BlockAffinity (field state: confirmed|pending|pendingDeletion): {e}"
            ),
        })
    }

    /// The value as Calico stores it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an affinity serializes")
    }

    /// Whether the host owns the block.
    pub fn owns(&self) -> bool {
        self.state == AffinityState::Confirmed && !self.deleted
    }
}

/// One stored affinity, read.
#[derive(Clone, Debug, PartialEq)]
pub struct AffinityEntry {
    /// The host claiming the block.
    pub host: String,
    /// The block.
    pub block: IpNet,
    /// The stored value.
    pub value: AffinityValue,
}

impl AffinityEntry {
    /// Reads the affinity stored under `key`.
    pub fn parse(key: &str, value: &[u8]) -> Result<AffinityEntry, IpamError> {
        let (host, block) = parse_affinity_key(key).ok_or_else(|| IpamError::BadValue {
            key: key.to_string(),
            reason:
                "not a block affinity key (/calico/ipam/v2/host/<host>/ipv<4|6>/block/<a.b.c.d-NN>)"
                    .into(),
        })?;
        Ok(AffinityEntry {
            host,
            block,
            value: AffinityValue::parse(key, value)?,
        })
    }
}

/// The [`BlockAffinity`] resource an affinity key and value stand for: `Some` for a
/// confirmed affinity, `None` for one that is pending, being deleted or soft-deleted (the
/// host does not own the block yet, or no more), an error naming the key for a bad one.
/// This is what an agent aggregates its routes by.
pub fn block_affinity(key: &str, value: &[u8]) -> Result<Option<BlockAffinity>, IpamError> {
    let entry = AffinityEntry::parse(key, value)?;
    Ok(entry.value.owns().then_some(BlockAffinity {
        cidr: entry.block,
        node: entry.host,
    }))
}

/// The decoder an [`EtcdSource`](crate::EtcdSource) reads affinities with, under
/// [`HOST_AFFINITY_PREFIX`](super::HOST_AFFINITY_PREFIX): an owned block is a
/// `BlockAffinity` resource, a pending or released one is nothing (and removes what the key
/// held), a bad value is refused with its key and field.
pub fn decoder() -> crate::decode::DecodeFn {
    std::sync::Arc::new(|key, value| match block_affinity(key, value) {
        Ok(Some(a)) => {
            crate::codec::Decoded::Resource(calico_core::model::Resource::BlockAffinity(a))
        }
        Ok(None) => crate::codec::Decoded::NotOurs,
        Err(e) => crate::codec::Decoded::Refused(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/calico/ipam/v2/host/node-1/ipv4/block/10.0.0.64-26";

    #[test]
    fn only_confirmed_affinities_are_block_affinities() {
        let confirmed = block_affinity(KEY, br#"{"state":"confirmed","deleted":false}"#).unwrap();
        assert_eq!(
            confirmed,
            Some(BlockAffinity {
                cidr: "10.0.0.64/26".parse().unwrap(),
                node: "node-1".into()
            })
        );
        assert_eq!(
            block_affinity(KEY, b"").unwrap(),
            confirmed,
            "old empty value"
        );
        assert_eq!(block_affinity(KEY, br#"{"state":""}"#).unwrap(), confirmed);
        for v in [
            r#"{"state":"pending","deleted":false}"#,
            r#"{"state":"pendingDeletion","deleted":false}"#,
            r#"{"state":"confirmed","deleted":true}"#,
        ] {
            assert_eq!(block_affinity(KEY, v.as_bytes()).unwrap(), None, "{v}");
        }
    }

    #[test]
    fn bad_affinities_are_refused_naming_the_key() {
        for (key, value) in [
            (KEY, "{"),
            (KEY, r#"{"state":"mine"}"#),
            ("/calico/ipam/v2/host/node-1/ipv4/block/10.0.0.65-26", "{}"),
        ] {
            let e = block_affinity(key, value.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn values_are_written_as_calico_writes_them() {
        let v = AffinityValue::new(AffinityState::Pending);
        assert_eq!(v.to_json(), r#"{"state":"pending","deleted":false}"#);
        let kept = AffinityValue::parse(KEY, br#"{"state":"confirmed","x":1}"#).unwrap();
        assert_eq!(
            kept.to_json(),
            r#"{"state":"confirmed","deleted":false,"x":1}"#
        );
    }
}

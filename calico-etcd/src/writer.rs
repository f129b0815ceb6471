//! [`EtcdWriter`]: writes calico-rs resources into Calico's etcd layout with optimistic
//! concurrency, as libcalico-go's etcdv3 backend does.
//!
//! * create: one transaction `create_revision(key) == 0 ? put : get`; taken →
//!   [`DatastoreError::AlreadyExists`].
//! * update: `mod_revision(key) == expected ? put : get`; the else-branch's read tells
//!   [`DatastoreError::NotFound`] (no entry) from [`DatastoreError::Conflict`] (its revision).
//! * delete: the same comparison when a revision is expected, none otherwise.
//!
//! The stored value is the `projectcalico.org/v3` JSON Calico stores, encoded by calico-core's
//! [`to_v3`](calico_core::integrations::calico_v3::to_v3): no `resourceVersion`
//! (the entry's mod revision is its resource version), a `uid` and a `creationTimestamp`
//! set at creation and kept by updates (as libcalico-go's client does), and for policies the
//! `projectcalico.org/metadata` name annotation Calico 3.30+ writes. Every returned revision
//! is the etcd revision of the write.

use async_trait::async_trait;
use calico_core::datastore::status::rfc3339_now;
use calico_core::datastore::{DatastoreError, ResourceWriter, Revision, Stored};
use calico_core::integrations::calico_v3::to_v3;
use calico_core::model::Resource;
use etcd_client::{Compare, CompareOp, GetResponse, Txn, TxnOp, TxnOpResponse, TxnResponse};
use serde_json::Value;

use crate::codec::{self, Decoded};
use crate::config::{Connection, EtcdConfig};
use crate::layout;

/// Writes resources into etcd (see the module documentation). Clones share the connection.
#[derive(Clone, Debug)]
pub struct EtcdWriter {
    conn: Connection,
}

impl EtcdWriter {
    /// Validates `config` and connects (within its dial timeout).
    pub async fn connect(config: &EtcdConfig) -> Result<EtcdWriter, DatastoreError> {
        Ok(EtcdWriter {
            conn: Connection::connect(config).await?,
        })
    }

    /// A writer over an existing connection (shared, e.g. with IPAM, so one process dials
    /// etcd once).
    pub fn from_connection(conn: Connection) -> EtcdWriter {
        EtcdWriter { conn }
    }

    fn prefix(&self) -> &str {
        &self.conn.config().prefix
    }

    /// The stored value of `resource`, with `uid` and `creationTimestamp` from `previous`
    /// (an update) or new (a create).
    fn value_of(
        &self,
        resource: &Resource,
        previous: Option<&Value>,
    ) -> Result<String, DatastoreError> {
        let key = self.key_of(resource)?;
        let invalid = |reason: String| DatastoreError::Invalid {
            key: key.clone(),
            reason,
        };
        let mut value = to_v3(resource)
            .map_err(|e| invalid(format!("field {}: {}", e.field, e.reason)))?
            .value;
        let meta = value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| invalid("field metadata: missing".into()))?;
        let kept = |field: &str| {
            previous
                .and_then(|p| p.get("metadata"))
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let uid = kept("uid").unwrap_or_else(new_uid);
        let created = kept("creationTimestamp").unwrap_or_else(rfc3339_now);
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(created));
        if let Resource::Policy(p) = resource {
            let annotation = serde_json::json!({ "name": p.name }).to_string();
            meta.insert(
                "annotations".into(),
                serde_json::json!({ (layout::POLICY_NAME_ANNOTATION): annotation }),
            );
        }
        serde_json::to_string(&value).map_err(|e| invalid(format!("field (value): {e}")))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, DatastoreError> {
        let mut client = self.conn.client();
        self.conn.call("txn", client.txn(txn)).await
    }

    async fn read(&self, key: &str) -> Result<GetResponse, DatastoreError> {
        let mut client = self.conn.client();
        self.conn.call("get", client.get(key, None)).await
    }
}

fn revision_of(response: &TxnResponse) -> Revision {
    response.header().map_or(0, |h| h.revision()) as Revision
}

/// The else-branch read of a failed transaction: the entry's mod revision, if any.
fn else_revision(response: &TxnResponse) -> Option<Revision> {
    response
        .op_responses()
        .into_iter()
        .find_map(|op| match op {
            TxnOpResponse::Get(g) => Some(g.kvs().first().map(|kv| kv.mod_revision() as Revision)),
            _ => None,
        })?
}

/// How many transactions an upsert tries before giving up on a race.
const UPSERT_ATTEMPTS: u32 = 20;

/// A read's entry: its mod revision and its value (as JSON, when it is JSON).
fn entry_of(response: &GetResponse) -> Option<(Revision, Value)> {
    response.kvs().first().map(|kv| {
        let value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
        (kv.mod_revision() as Revision, value)
    })
}

/// A random pause of up to `attempt + 1` × 5 ms.
fn jitter(attempt: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    std::time::Duration::from_micros(r % (5_000 * (u64::from(attempt) + 1)))
}

fn new_uid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut words = [0u64; 2];
    for w in &mut words {
        *w = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
    }
    let b = ((words[0] as u128) << 64 | words[1] as u128).to_be_bytes();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    // RFC 4122 version 4 layout.
    let v = format!("4{}", &h(6..8)[1..]);
    let var = format!("{:x}{}", 0x8 | (b[8] & 0x3), &h(8..10)[1..]);
    format!("{}-{}-{v}-{var}-{}", h(0..4), h(4..6), h(10..16))
}

#[async_trait]
impl ResourceWriter for EtcdWriter {
    fn key_of(&self, resource: &Resource) -> Result<String, DatastoreError> {
        layout::key_of(self.prefix(), resource).map_err(|e| DatastoreError::Invalid {
            key: e.resource.clone(),
            reason: format!("field {}: {}", e.field, e.reason),
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, DatastoreError> {
        let response = self.read(key).await?;
        let Some(kv) = response.kvs().first() else {
            return Ok(None);
        };
        let invalid = |reason: String| DatastoreError::Invalid {
            key: key.to_string(),
            reason,
        };
        match codec::decode_resource(self.prefix(), key, kv.value()) {
            Decoded::Resource(resource) => Ok(Some(Stored {
                key: key.to_string(),
                revision: kv.mod_revision() as Revision,
                resource,
            })),
            Decoded::Refused(why) => Err(invalid(why)),
            Decoded::Unsupported(kind) => {
                Err(invalid(format!("{kind} is not a calico-rs resource")))
            }
            Decoded::NotOurs => Err(invalid("not a resource key".into())),
        }
    }

    async fn create(&self, resource: &Resource) -> Result<Revision, DatastoreError> {
        let key = self.key_of(resource)?;
        let value = self.value_of(resource, None)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), value, None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(DatastoreError::AlreadyExists { key });
        }
        Ok(revision_of(&response))
    }

    async fn update(
        &self,
        resource: &Resource,
        expected: Revision,
    ) -> Result<Revision, DatastoreError> {
        let key = self.key_of(resource)?;
        // The entry's metadata (uid, creationTimestamp) carries over, as Calico's update does.
        let current = self.read(&key).await?;
        let previous = current
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice(kv.value()).ok());
        let value = self.value_of(resource, previous.as_ref())?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                expected as i64,
            )])
            .and_then([TxnOp::put(key.as_str(), value, None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let response = self.txn(txn).await?;
        if response.succeeded() {
            return Ok(revision_of(&response));
        }
        match else_revision(&response) {
            None => Err(DatastoreError::NotFound { key }),
            actual => Err(DatastoreError::Conflict {
                key,
                expected,
                actual,
            }),
        }
    }

    /// Creates or replaces `resource`. Each attempt is one transaction comparing the
    /// revision last seen; a lost race takes the winner's entry from the transaction's
    /// else-branch (no extra read) and retries after a short random pause, so two writers in
    /// lock-step cannot starve one another (the trait's default re-reads and retries at once,
    /// and lost ten races in a row in the race test).
    async fn upsert(&self, resource: &Resource) -> Result<Revision, DatastoreError> {
        let key = self.key_of(resource)?;
        let mut current = entry_of(&self.read(&key).await?);
        for attempt in 0..UPSERT_ATTEMPTS {
            let value = self.value_of(resource, current.as_ref().map(|(_, v)| v))?;
            let compare = match &current {
                None => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                Some((rev, _)) => {
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, *rev as i64)
                }
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key.as_str(), value, None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let response = self.txn(txn).await?;
            if response.succeeded() {
                return Ok(revision_of(&response));
            }
            current = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(g) => Some(entry_of(&g)),
                    _ => None,
                })
                .flatten();
            tokio::time::sleep(jitter(attempt)).await;
        }
        Err(DatastoreError::Conflict {
            actual: current.map(|(r, _)| r),
            key,
            expected: 0,
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<Revision, DatastoreError> {
        let compares: Vec<Compare> = expected
            .map(|e| Compare::mod_revision(key, CompareOp::Equal, e as i64))
            .into_iter()
            .collect();
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(key, None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await?;
        if response.succeeded() {
            let deleted = response
                .op_responses()
                .into_iter()
                .any(|op| matches!(op, TxnOpResponse::Delete(d) if d.deleted() > 0));
            if !deleted {
                return Err(DatastoreError::NotFound {
                    key: key.to_string(),
                });
            }
            return Ok(revision_of(&response));
        }
        match else_revision(&response) {
            None => Err(DatastoreError::NotFound {
                key: key.to_string(),
            }),
            actual => Err(DatastoreError::Conflict {
                key: key.to_string(),
                expected: expected.unwrap_or(0),
                actual,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_version_4_and_timestamps_rfc3339() {
        let u = new_uid();
        assert_eq!(u.len(), 36, "{u}");
        assert_eq!(&u[14..15], "4", "{u}");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(new_uid(), u);
        let t = rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}

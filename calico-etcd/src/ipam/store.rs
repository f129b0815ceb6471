//! IPAM's etcd access: reads, paged prefix listings at one revision, and compare-and-swap
//! transactions over several keys, each call bounded by a timeout and its errors naming
//! the key.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse};

use super::error::IpamError;

/// A stored value and the revision that last wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The value.
    pub value: Vec<u8>,
    /// The key's `mod_revision`.
    pub revision: i64,
}

/// What a transaction does to one key.
#[derive(Clone, Debug)]
pub enum Op {
    /// Write this value.
    Put(String),
    /// Delete the key.
    Delete,
    /// Only compare: the key must be unchanged for the other writes to happen.
    Check,
}

/// One key of a compare-and-swap: it must still be at `expect` (its `mod_revision`; 0 for
/// a key that does not exist).
#[derive(Clone, Debug)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The `mod_revision` the writer last read (0: absent).
    pub expect: i64,
    /// What to do with it.
    pub op: Op,
}

/// How a compare-and-swap went.
#[derive(Clone, Debug)]
pub enum Cas {
    /// Every write was applied at this revision.
    Done(i64),
    /// Some key had moved on: nothing was written; here is each key's current value, in
    /// the order of the writes.
    Lost(Vec<Option<Stored>>),
}

const PAGE: i64 = 256;

/// etcd, as IPAM uses it.
#[derive(Clone)]
pub struct Kv {
    client: KvClient,
    timeout: Duration,
}

impl Kv {
    /// Wraps a client; every call gives up after `timeout`.
    pub fn new(client: KvClient, timeout: Duration) -> Kv {
        Kv { client, timeout }
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        key: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, IpamError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(IpamError::Etcd {
                op,
                key: key.to_string(),
                source,
            }),
            Err(_) => Err(IpamError::Timeout {
                op,
                key: key.to_string(),
                after: self.timeout,
            }),
        }
    }

    /// The value under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, IpamError> {
        let mut c = self.client.clone();
        let resp = self.bounded("get", key, c.get(key, None)).await?;
        Ok(resp.kvs().first().map(|kv| Stored {
            value: kv.value().to_vec(),
            revision: kv.mod_revision(),
        }))
    }

    /// Every key under `prefix` with its value (empty with `keys_only`), read page by page
    /// at the revision of the first page, so the listing is one consistent view.
    pub async fn list(
        &self,
        prefix: &str,
        keys_only: bool,
    ) -> Result<Vec<(String, Stored)>, IpamError> {
        let end = prefix_end(prefix.as_bytes());
        let mut out = Vec::new();
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_revision(revision);
            if keys_only {
                opts = opts.with_keys_only();
            }
            let mut c = self.client.clone();
            let resp = self
                .bounded("list", prefix, c.get(from.clone(), Some(opts)))
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let stored = Stored {
                    value: kv.value().to_vec(),
                    revision: kv.mod_revision(),
                };
                out.push((key, stored));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// Applies every write if every key is still at its expected revision, in one etcd
    /// transaction; otherwise writes nothing and returns the keys' current values.
    pub async fn cas(&self, writes: &[Write]) -> Result<Cas, IpamError> {
        let compares: Vec<Compare> = writes
            .iter()
            .map(|w| Compare::mod_revision(w.key.as_str(), CompareOp::Equal, w.expect))
            .collect();
        let ops: Vec<TxnOp> = writes
            .iter()
            .filter_map(|w| match &w.op {
                Op::Put(v) => Some(TxnOp::put(w.key.as_str(), v.as_str(), None)),
                Op::Delete => Some(TxnOp::delete(w.key.as_str(), None)),
                Op::Check => None,
            })
            .collect();
        let reads: Vec<TxnOp> = writes
            .iter()
            .map(|w| TxnOp::get(w.key.as_str(), None))
            .collect();
        let txn = Txn::new().when(compares).and_then(ops).or_else(reads);
        let first = writes.first().map_or("", |w| w.key.as_str());
        let mut c = self.client.clone();
        let resp = self.bounded("txn", first, c.txn(txn)).await?;
        if resp.succeeded() {
            return Ok(Cas::Done(resp.header().map_or(0, |h| h.revision())));
        }
        let current = resp
            .op_responses()
            .into_iter()
            .map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| Stored {
                    value: kv.value().to_vec(),
                    revision: kv.mod_revision(),
                }),
                _ => None,
            })
            .collect();
        Ok(Cas::Lost(current))
    }
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(super::prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(super::prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(super::prefix_end(b"\xff"), vec![0]);
    }
}

//! [`EtcdSource`]: follows Calico's resources in etcd as a
//! [`ResourceSource`](calico_core::datastore::ResourceSource).
//!
//! * **Snapshot.** The first event is a [`SourceEvent::Snapshot`] read at ONE revision: the
//!   first page of the range fixes the revision, every further page (and every further
//!   decoder prefix) is read at it, so a store larger than a page is still one consistent
//!   cut.
//! * **Changes.** Then a watch from the snapshot's revision + 1; each watch response (one
//!   revision or a few; etcd never splits a revision) becomes one [`SourceEvent::Changes`]
//!   whose revision is that of its last event. Responses that change nothing for calico-rs
//!   (unsupported kinds, other keys) advance the revision silently.
//! * **Outage.** A failed call, a watch stream that ends, or a liveness probe (etcd's status
//!   every `probe_interval`, answered within `request_timeout`) that gets no answer — the
//!   case of a frozen (SIGSTOPped) etcd, whose watch stream just stalls — is announced once
//!   as [`SourceEvent::Unavailable`] naming the endpoints and the error. The source then
//!   reconnects with exponential back-off (100 ms doubling to 5 s, with jitter) and resumes
//!   the watch from the last revision delivered + 1: no update is lost or applied twice. Once
//!   the watch is back, an empty [`SourceEvent::Changes`] at the last revision says so.
//! * **Compaction.** If the history from that revision is compacted (the watch is canceled
//!   with a compact revision, or a read answers "required revision has been compacted"),
//!   the source reads a new snapshot and emits it; the follower diffs it, never flushes.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use calico_core::datastore::{
    Changes, DatastoreError, Ledger, ResourceSource, Revision, SourceEvent,
};
use calico_core::model::Resource;
use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponse, WatchStream, Watcher};
use tracing::{debug, info};

use crate::codec::{self, Decoded};
use crate::config::{is_compacted, Connection, EtcdConfig};
use crate::decode::{DecodeFn, Decoders};
use crate::layout;

/// Keys read per range request while listing.
pub const DEFAULT_PAGE_SIZE: i64 = 500;

/// Why a step did not produce an event.
enum Failure {
    /// Reconnect and resume (the reason, for the operator).
    Unavailable(String),
    /// The history since the last revision is gone: read a new snapshot.
    Compacted,
    /// The source cannot go on (configuration).
    Fatal(DatastoreError),
}

impl From<DatastoreError> for Failure {
    /// Classifies an error from a call.
    fn from(e: DatastoreError) -> Failure {
        if is_compacted(&e) {
            return Failure::Compacted;
        }
        match e {
            DatastoreError::Invalid { .. } | DatastoreError::Closed => Failure::Fatal(e),
            other => Failure::Unavailable(other.to_string()),
        }
    }
}

/// An open watch: the handle that keeps it and the stream of its responses.
struct Watch {
    _watcher: Watcher,
    stream: WatchStream,
}

/// Follows Calico's resources in etcd (see the module documentation).
pub struct EtcdSource {
    config: EtcdConfig,
    decoders: Decoders,
    page_size: i64,
    probe_interval: Duration,
    conn: Option<Connection>,
    watch: Option<Watch>,
    ledger: Ledger,
    last: Option<Revision>,
    need_snapshot: bool,
    /// The outage announced and not yet over.
    outage: Option<String>,
    backoff: Backoff,
    retry: bool,
    unsupported: BTreeMap<String, u64>,
}

impl EtcdSource {
    /// A source following `config`'s etcd. The configuration is checked now (an error names
    /// the option); the connection is made by the first [`ResourceSource::next`], which
    /// reports an unreachable etcd as [`SourceEvent::Unavailable`] and keeps retrying.
    pub fn new(config: EtcdConfig) -> Result<EtcdSource, DatastoreError> {
        config.validate().map_err(|e| DatastoreError::Invalid {
            key: format!("etcd option {}", e.option),
            reason: e.reason,
        })?;
        let mut decoders = Decoders::default();
        let prefix = config.prefix.clone();
        decoders.add(
            layout::resources_root(&config.prefix),
            Arc::new(move |key: &str, value: &[u8]| codec::decode_resource(&prefix, key, value)),
        );
        Ok(EtcdSource {
            probe_interval: config.request_timeout,
            config,
            decoders,
            page_size: DEFAULT_PAGE_SIZE,
            conn: None,
            watch: None,
            ledger: Ledger::new(),
            last: None,
            need_snapshot: true,
            outage: None,
            backoff: Backoff::default(),
            retry: false,
            unsupported: BTreeMap::new(),
        })
    }

    /// Also reads the keys under `prefix` with `decode` (e.g. IPAM block affinities); see
    /// [`crate::decode`]. Call before the first [`ResourceSource::next`].
    pub fn with_decoder(mut self, prefix: impl Into<String>, decode: DecodeFn) -> EtcdSource {
        self.decoders.add(prefix, decode);
        self
    }

    /// Keys read per range request while listing (default [`DEFAULT_PAGE_SIZE`]).
    pub fn with_page_size(mut self, page_size: i64) -> EtcdSource {
        self.page_size = page_size.max(1);
        self
    }

    /// How long a quiet watch waits before probing etcd (default: the request timeout).
    pub fn with_probe_interval(mut self, interval: Duration) -> EtcdSource {
        self.probe_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Values of kinds calico-rs does not implement seen so far, by kind (each value read
    /// counts once).
    pub fn unsupported(&self) -> &BTreeMap<String, u64> {
        &self.unsupported
    }

    /// The last revision delivered, once there is one.
    pub fn revision(&self) -> Option<Revision> {
        self.last
    }

    /// One step: connect, list or watch as needed; `Ok(None)` when there is nothing to say.
    async fn step(&mut self) -> Result<Option<SourceEvent>, Failure> {
        let conn = self.connection().await?;
        if self.need_snapshot || self.last.is_none() {
            self.watch = None;
            return self.read_snapshot(&conn).await.map(Some);
        }
        if self.watch.is_none() {
            self.open_watch(&conn).await?;
            if self.outage.is_some() {
                return Ok(Some(SourceEvent::Changes(Changes {
                    revision: self.last.unwrap_or(0),
                    ..Changes::default()
                })));
            }
        }
        self.read_watch(&conn).await
    }

    /// The connection, made if there is none.
    async fn connection(&mut self) -> Result<Connection, Failure> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let c = Connection::connect(&self.config).await?;
        self.conn = Some(c.clone());
        Ok(c)
    }

    /// Lists every decoder prefix at one revision and resets the ledger to it.
    async fn read_snapshot(&mut self, conn: &Connection) -> Result<SourceEvent, Failure> {
        let mut revision = 0;
        let mut entries = Vec::new();
        let prefixes: Vec<String> = self.decoders.prefixes().map(str::to_string).collect();
        for prefix in prefixes {
            let (at, kvs) = list_prefix(conn, &prefix, revision, self.page_size).await?;
            revision = at;
            for (key, value) in kvs {
                if let Some(decoded) = self.decode(&key, &value) {
                    entries.push((key, decoded));
                }
            }
        }
        let revision = revision as Revision;
        let snapshot = self.ledger.reset(revision, entries);
        info!(
            revision,
            resources = snapshot.resources.len(),
            refused = snapshot.refused.len(),
            "etcd snapshot read"
        );
        self.last = Some(revision);
        self.need_snapshot = false;
        Ok(SourceEvent::Snapshot(snapshot))
    }

    /// Decodes one entry: `None` for keys that mean nothing to calico-rs (counted when of an
    /// unsupported kind).
    fn decode(&mut self, key: &str, value: &[u8]) -> Option<Result<Resource, String>> {
        match self.decoders.decode(key, value) {
            Decoded::Resource(r) => Some(Ok(r)),
            Decoded::Refused(why) => Some(Err(why)),
            Decoded::Unsupported(kind) => {
                debug!(%key, %kind, "kind not implemented by calico-rs; ignored");
                *self.unsupported.entry(kind).or_default() += 1;
                None
            }
            Decoded::NotOurs => None,
        }
    }

    /// Opens the watch from the last revision delivered + 1.
    async fn open_watch(&mut self, conn: &Connection) -> Result<(), Failure> {
        let from = self.last.unwrap_or(0) as i64 + 1;
        let (start, end) = self.decoders.watch_range();
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(from)
            .with_progress_notify();
        let mut client = conn.client();
        // etcd-client asserts that the first answer confirms the watch: run it in a task of
        // its own so that a server answering otherwise costs a retry, not the agent.
        let mut task = tokio::spawn(async move { client.watch(start, Some(options)).await });
        let joined = conn.call("watch", async {
            match (&mut task).await {
                Ok(result) => result,
                Err(e) => Err(etcd_client::Error::WatchError(format!(
                    "the watch could not be created: {e}"
                ))),
            }
        });
        let outcome = joined.await;
        task.abort();
        let (watcher, stream) = outcome?;
        debug!(from, "etcd watch open");
        self.watch = Some(Watch {
            _watcher: watcher,
            stream,
        });
        Ok(())
    }

    /// Waits for the next watch response, probing etcd while the stream is quiet.
    async fn read_watch(&mut self, conn: &Connection) -> Result<Option<SourceEvent>, Failure> {
        let Some(watch) = self.watch.as_mut() else {
            return Ok(None);
        };
        let message = tokio::select! {
            m = watch.stream.message() => m,
            _ = tokio::time::sleep(self.probe_interval) => {
                let mut client = conn.client();
                conn.call("status (liveness probe)", client.status()).await?;
                return Ok(None);
            }
        };
        match message {
            Ok(Some(response)) => self.take_response(response),
            Ok(None) => Err(Failure::Unavailable(format!(
                "{}: the watch stream ended",
                self.config.describe()
            ))),
            Err(e) => Err(Failure::Unavailable(format!(
                "{}: watch: {}",
                self.config.describe(),
                crate::config::describe_error(&e)
            ))),
        }
    }

    /// Applies one watch response to the ledger.
    fn take_response(&mut self, response: WatchResponse) -> Result<Option<SourceEvent>, Failure> {
        if response.canceled() {
            if response.compact_revision() > 0 {
                info!(
                    compacted = response.compact_revision(),
                    last = self.last,
                    "etcd history compacted past the last revision; reading a new snapshot"
                );
                return Err(Failure::Compacted);
            }
            return Err(Failure::Unavailable(format!(
                "{}: watch canceled: {}",
                self.config.describe(),
                response.cancel_reason()
            )));
        }
        let Some(revision) = response
            .events()
            .iter()
            .filter_map(|e| e.kv())
            .map(|kv| kv.mod_revision())
            .max()
        else {
            return Ok(None); // created, or a progress notification
        };
        let mut changes = Changes {
            revision: revision as Revision,
            ..Changes::default()
        };
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            match event.event_type() {
                EventType::Delete => self.ledger.delete(&key, &mut changes),
                EventType::Put => match self.decode(&key, kv.value()) {
                    Some(decoded) => self.ledger.put(&key, decoded, &mut changes),
                    // The key holds nothing of ours any more (an affinity being released,
                    // a kind changed to one not implemented): what it held goes.
                    None => self.ledger.delete(&key, &mut changes),
                },
            }
        }
        self.last = Some(revision as Revision);
        let quiet =
            changes.updates.is_empty() && changes.refused.is_empty() && changes.cleared.is_empty();
        Ok((!quiet).then_some(SourceEvent::Changes(changes)))
    }
}

/// Reads every key under `prefix` in pages of `page`, every page at revision `at` (the
/// current one when 0, fixed by the first page); returns the revision read at and the
/// entries in key order. A compacted `at` is an error that [`crate::config::is_compacted`]
/// recognises.
pub async fn list_prefix(
    conn: &Connection,
    prefix: &str,
    at: i64,
    page: i64,
) -> Result<(i64, Vec<(String, Vec<u8>)>), DatastoreError> {
    let end = prefix_end(prefix.as_bytes());
    let mut start = prefix.as_bytes().to_vec();
    let mut revision = at;
    let mut out = Vec::new();
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(page);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let mut client = conn.client();
        let mut response = conn
            .call("range", client.get(start.clone(), Some(options)))
            .await?;
        if revision == 0 {
            revision = response.header().map_or(0, |h| h.revision());
        }
        let more = response.more();
        let kvs = response.take_kvs();
        let Some(last) = kvs.last() else { break };
        start = last.key().to_vec();
        start.push(0);
        out.extend(kvs.into_iter().map(|kv| {
            let (k, v) = kv.into_key_value();
            (String::from_utf8_lossy(&k).into_owned(), v)
        }));
        if !more {
            break;
        }
    }
    Ok((revision, out))
}

/// The end of the range of keys starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[async_trait]
impl ResourceSource for EtcdSource {
    fn describe(&self) -> String {
        format!("etcd {}", self.config.describe())
    }

    async fn next(&mut self) -> Result<SourceEvent, DatastoreError> {
        loop {
            if self.retry {
                tokio::time::sleep(self.backoff.next_delay()).await;
            }
            match self.step().await {
                Ok(None) => self.retry = false,
                Ok(Some(event)) => {
                    self.retry = false;
                    self.backoff.reset();
                    if let Some(was) = self.outage.take() {
                        info!(source = %self.describe(), outage = %was, "etcd reachable again");
                    }
                    return Ok(event);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Compacted) => self.need_snapshot = true,
                Err(Failure::Unavailable(reason)) => {
                    self.watch = None;
                    self.conn = None;
                    self.retry = true;
                    if self.outage.is_none() {
                        self.outage = Some(reason.clone());
                        return Ok(SourceEvent::Unavailable { reason });
                    }
                    debug!(%reason, "etcd still unavailable");
                }
            }
        }
    }
}

/// Exponential back-off with jitter: 100 ms doubling to 5 s, each delay drawn between half
/// and all of the current step.
#[derive(Debug)]
struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { step: Backoff::MIN }
    }
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(Backoff::MAX);
        let jitter = RandomState::new().build_hasher().finish() % 1000;
        step / 2 + step.mul_f64(jitter as f64 / 2000.0)
    }

    fn reset(&mut self) {
        self.step = Backoff::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(
            first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
            "{first:?}"
        );
        for _ in 0..10 {
            b.next_delay();
        }
        let late = b.next_delay();
        assert!(
            late >= Duration::from_millis(2500) && late <= Duration::from_secs(5),
            "{late:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/calico/"), b"/calico0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }
}

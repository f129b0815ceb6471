//! An in-memory datastore with revisions, compaction and watches.
//!
//! It behaves as etcd does where a follower can tell: every write gets the next revision, a
//! follower resumes from its revision, a follower behind the compaction revision gets a new
//! snapshot, and an outage ([`MemoryStore::set_available`]) stops delivery without losing
//! anything. It serves orchestrator tests on the mock network and the tests of
//! [`follow`](super::follow).
//!
//! ```
//! use calico_core::datastore::memory::MemoryStore;
//! use calico_core::datastore::{ResourceSource, ResourceWriter, SourceEvent};
//! use calico_core::model::{Profile, Resource};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let profile = Resource::Profile(Profile { name: "web".into(), ..Profile::default() });
//! let revision = store.create(&profile).await.unwrap();
//! let mut source = store.source();
//! let SourceEvent::Snapshot(s) = source.next().await.unwrap() else { panic!() };
//! assert_eq!((s.revision, s.resources.len()), (revision, 1));
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::watch;

use super::ledger::describe;
use super::{
    Changes, DatastoreError, Ledger, ResourceSource, ResourceWriter, Revision, SourceEvent, Stored,
};
use crate::model::Resource;

/// A stored value: a resource, or a value that does not decode (for bad-input tests).
type Value = Result<Resource, String>;

#[derive(Debug, Default)]
struct Inner {
    revision: Revision,
    compacted: Revision,
    available: bool,
    entries: BTreeMap<String, (Revision, Value)>,
    /// Every write after `compacted`: revision, key, new value (`None`: deleted).
    history: Vec<(Revision, String, Option<Value>)>,
}

/// A shared in-memory datastore; clones share it.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    tick: watch::Sender<(Revision, bool)>,
    /// Status reports ([`super::status::StatusStore`]), apart from the resources.
    board: Arc<Mutex<super::status::Board>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty, available store.
    pub fn new() -> MemoryStore {
        let inner = Inner {
            available: true,
            ..Inner::default()
        };
        MemoryStore {
            inner: Arc::new(Mutex::new(inner)),
            tick: watch::channel((0, true)).0,
            board: Arc::default(),
        }
    }

    /// A follower of the store from its current content.
    pub fn source(&self) -> MemorySource {
        MemorySource {
            store: self.clone(),
            tick: self.tick.subscribe(),
            last: None,
            ledger: Ledger::new(),
            said_unavailable: false,
        }
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Stores a value that does not decode, as a foreign writer might.
    pub fn put_undecodable(&self, key: &str, reason: &str) -> Revision {
        self.write(key, Some(Err(reason.to_string())))
    }

    /// Drops the history up to `revision`: followers behind it need a new snapshot.
    pub fn compact(&self, revision: Revision) {
        let mut inner = self.lock();
        inner.compacted = revision.min(inner.revision);
        let floor = inner.compacted;
        inner.history.retain(|(r, _, _)| *r > floor);
    }

    /// Takes the store out of reach (`false`) or back (`true`).
    pub fn set_available(&self, available: bool) {
        let revision = {
            let mut inner = self.lock();
            inner.available = available;
            inner.revision
        };
        self.tick.send_replace((revision, available));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn board(&self) -> MutexGuard<'_, super::status::Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn check_reachable(&self) -> Result<(), DatastoreError> {
        self.check_available()
    }

    fn write(&self, key: &str, value: Option<Value>) -> Revision {
        let (revision, available) = {
            let mut inner = self.lock();
            inner.revision += 1;
            let revision = inner.revision;
            match &value {
                Some(v) => {
                    inner.entries.insert(key.to_string(), (revision, v.clone()));
                }
                None => {
                    inner.entries.remove(key);
                }
            }
            inner.history.push((revision, key.to_string(), value));
            (revision, inner.available)
        };
        self.tick.send_replace((revision, available));
        revision
    }

    fn check_available(&self) -> Result<(), DatastoreError> {
        if self.lock().available {
            Ok(())
        } else {
            Err(unavailable())
        }
    }
}

fn unavailable() -> DatastoreError {
    DatastoreError::Unavailable {
        endpoint: "memory".into(),
        reason: "the store is marked unavailable".into(),
    }
}

#[async_trait]
impl ResourceWriter for MemoryStore {
    fn key_of(&self, resource: &Resource) -> Result<String, DatastoreError> {
        Ok(format!(
            "{:?}/{}",
            resource.kind(),
            describe(&resource.key())
        ))
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, DatastoreError> {
        self.check_available()?;
        Ok(match self.lock().entries.get(key) {
            Some((revision, Ok(resource))) => Some(Stored {
                key: key.to_string(),
                revision: *revision,
                resource: resource.clone(),
            }),
            Some((_, Err(reason))) => {
                return Err(DatastoreError::Invalid {
                    key: key.to_string(),
                    reason: reason.clone(),
                })
            }
            None => None,
        })
    }

    async fn create(&self, resource: &Resource) -> Result<Revision, DatastoreError> {
        self.check_available()?;
        let key = self.key_of(resource)?;
        if self.lock().entries.contains_key(&key) {
            return Err(DatastoreError::AlreadyExists { key });
        }
        Ok(self.write(&key, Some(Ok(resource.clone()))))
    }

    async fn update(
        &self,
        resource: &Resource,
        expected: Revision,
    ) -> Result<Revision, DatastoreError> {
        self.check_available()?;
        let key = self.key_of(resource)?;
        let actual = self.lock().entries.get(&key).map(|(r, _)| *r);
        match actual {
            None => Err(DatastoreError::NotFound { key }),
            Some(a) if a != expected => Err(DatastoreError::Conflict {
                key,
                expected,
                actual: Some(a),
            }),
            Some(_) => Ok(self.write(&key, Some(Ok(resource.clone())))),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<Revision, DatastoreError> {
        self.check_available()?;
        let actual = self.lock().entries.get(key).map(|(r, _)| *r);
        match (actual, expected) {
            (None, _) => Err(DatastoreError::NotFound { key: key.into() }),
            (Some(a), Some(e)) if a != e => Err(DatastoreError::Conflict {
                key: key.into(),
                expected: e,
                actual: Some(a),
            }),
            _ => Ok(self.write(key, None)),
        }
    }
}

/// A follower of a [`MemoryStore`].
#[derive(Debug)]
pub struct MemorySource {
    store: MemoryStore,
    tick: watch::Receiver<(Revision, bool)>,
    last: Option<Revision>,
    ledger: Ledger,
    said_unavailable: bool,
}

impl MemorySource {
    /// Waits until the store is available and past `last`.
    async fn wait(&mut self) -> Result<Option<SourceEvent>, DatastoreError> {
        loop {
            let (revision, available) = *self.tick.borrow_and_update();
            if !available {
                if !self.said_unavailable {
                    self.said_unavailable = true;
                    return Ok(Some(SourceEvent::Unavailable {
                        reason: unavailable().to_string(),
                    }));
                }
            } else if self.last.is_none_or(|l| revision > l) {
                self.said_unavailable = false;
                return Ok(None);
            }
            self.tick
                .changed()
                .await
                .map_err(|_| DatastoreError::Closed)?;
        }
    }
}

#[async_trait]
impl ResourceSource for MemorySource {
    fn describe(&self) -> String {
        "memory store".into()
    }

    async fn next(&mut self) -> Result<SourceEvent, DatastoreError> {
        if let Some(event) = self.wait().await? {
            return Ok(event);
        }
        let inner = self.store.lock();
        match self.last {
            Some(last) if last >= inner.compacted => {
                let mut changes = Changes {
                    revision: inner.revision,
                    ..Changes::default()
                };
                for (_, key, value) in inner.history.iter().filter(|(r, _, _)| *r > last) {
                    match value {
                        Some(v) => self.ledger.put(key, v.clone(), &mut changes),
                        None => self.ledger.delete(key, &mut changes),
                    }
                }
                self.last = Some(inner.revision);
                Ok(SourceEvent::Changes(changes))
            }
            _ => {
                let entries = inner
                    .entries
                    .iter()
                    .map(|(k, (_, v))| (k.clone(), v.clone()));
                let snapshot = self.ledger.reset(inner.revision, entries);
                self.last = Some(inner.revision);
                Ok(SourceEvent::Snapshot(snapshot))
            }
        }
    }
}

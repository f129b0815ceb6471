//! Datastores: where an agent's resources come from, and where orchestrators write them.
//!
//! Calico's architecture puts one datastore between the orchestrator plug-ins (Neutron
//! driver, Kubernetes controllers, CNI) and every host's Felix. This module is that seam:
//!
//! * [`ResourceSource`]: what an agent follows. A consistent [`Snapshot`] at a revision
//!   first, then [`Changes`] in revision order, a new snapshot whenever the history between
//!   is lost (an etcd compaction), and word of the datastore being out of reach.
//! * [`ResourceWriter`]: what an orchestrator writes through: create, update and delete with
//!   optimistic concurrency (the revision the writer last read is compared in the same
//!   transaction as the write).
//! * [`follow`]: feeds an [`AgentHandle`](crate::agent::AgentHandle) from any source:
//!   nothing is programmed before the first complete snapshot; a later snapshot is diffed
//!   against what is programmed, never flushed; an unreachable datastore leaves the dataplane
//!   exactly as it is.
//! * [`Ledger`]: the bookkeeping every source shares: one resource per datastore key,
//!   refused one by one (bad value, failed validation, the same resource under two keys)
//!   while everything else proceeds.
//! * [`status`]: status back to the orchestrator ([`status::StatusStore`]): hosts' liveness
//!   and endpoints' states as Felix reports them, and a host's `Node` registration.
//! * [`memory`]: an in-memory datastore with revisions, compaction and watches: the
//!   reference semantics, and the store for orchestrator tests on the mock network.
//!
//! Implementations elsewhere: the resource directory (`calico-agent`, the single-host
//! default) and etcd v3 in Calico's own key layout (`calico-etcd`).
//!
//! ```text
//!  orchestrator ──ResourceWriter──▶ datastore ──ResourceSource──▶ follow ──▶ AgentHandle
//!                (create/update/delete                (snapshot, changes,      (one group
//!                 at an expected revision)             resync, unavailable)     per change)
//! ```

mod error;
pub mod follow;
mod ledger;
pub mod memory;
pub mod status;

use async_trait::async_trait;

use crate::model::{Resource, Update};

pub use error::DatastoreError;
pub use ledger::Ledger;

/// A position in a datastore's history: every write gets a higher one. `0` means "none".
pub type Revision = u64;

/// One datastore entry that could not be taken: its key and why (the field, where known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The datastore key, e.g. `/calico/resources/v3/projectcalico.org/networkpolicies/shop/web`.
    pub key: String,
    /// What is wrong with it, naming the field where there is one.
    pub reason: String,
}

/// The whole content of a source at one revision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The revision the snapshot was read at.
    pub revision: Revision,
    /// Every resource in force.
    pub resources: Vec<Resource>,
    /// Every entry refused, with why.
    pub refused: Vec<Refusal>,
}

/// What changed between two revisions, to apply as one group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// The revision after the changes.
    pub revision: Revision,
    /// The updates, in order.
    pub updates: Vec<Update>,
    /// Entries refused by these changes (their last good value, if any, stays in force).
    pub refused: Vec<Refusal>,
    /// Keys refused before whose refusal these changes ended (fixed or deleted).
    pub cleared: Vec<String>,
}

/// What a source reports next.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SourceEvent {
    /// The whole content: first, and again whenever the history since the last revision
    /// delivered is lost. The consumer converges on it (diffing, never flushing).
    Snapshot(Snapshot),
    /// Changes since the last revision delivered.
    Changes(Changes),
    /// The datastore cannot be read now; the source keeps retrying with back-off. Nothing
    /// changes until it delivers again.
    Unavailable {
        /// Why, for an operator: the endpoint and the error.
        reason: String,
    },
}

/// A source of resources an agent follows.
#[async_trait]
pub trait ResourceSource: Send {
    /// Where the resources come from, for logs and status (`etcd https://10.0.0.1:2379`).
    fn describe(&self) -> String;

    /// The next event. The first [`SourceEvent::Snapshot`] is the first complete one; a
    /// source that cannot read its datastore says [`SourceEvent::Unavailable`] and retries
    /// by itself. An error means the source is gone for good (closed, misconfigured).
    async fn next(&mut self) -> Result<SourceEvent, DatastoreError>;
}

/// A resource as stored: under which key, and at which revision it was last modified.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The datastore key.
    pub key: String,
    /// The revision of its last modification: what an update or delete compares against.
    pub revision: Revision,
    /// The resource.
    pub resource: Resource,
}

/// Writes resources with optimistic concurrency.
///
/// Each write names the revision the writer last read; the datastore compares it and writes
/// in one transaction, so two writers racing on one resource cannot both win.
#[async_trait]
pub trait ResourceWriter: Send + Sync {
    /// The datastore key `resource` is stored under.
    fn key_of(&self, resource: &Resource) -> Result<String, DatastoreError>;

    /// Reads one entry; `None` if absent.
    async fn get(&self, key: &str) -> Result<Option<Stored>, DatastoreError>;

    /// Creates `resource`; [`DatastoreError::AlreadyExists`] if its key is taken.
    async fn create(&self, resource: &Resource) -> Result<Revision, DatastoreError>;

    /// Replaces `resource` if its entry was last modified at `expected`;
    /// [`DatastoreError::Conflict`] otherwise (or [`DatastoreError::NotFound`]).
    async fn update(
        &self,
        resource: &Resource,
        expected: Revision,
    ) -> Result<Revision, DatastoreError>;

    /// Deletes the entry at `key` if it was last modified at `expected` (any revision when
    /// `None`); [`DatastoreError::NotFound`] if absent.
    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<Revision, DatastoreError>;

    /// Creates or replaces `resource`, re-reading and retrying on a race, at most 10 times.
    async fn upsert(&self, resource: &Resource) -> Result<Revision, DatastoreError> {
        let key = self.key_of(resource)?;
        let mut last = None;
        for _ in 0..10 {
            let outcome = match self.get(&key).await? {
                Some(s) => self.update(resource, s.revision).await,
                None => self.create(resource).await,
            };
            match outcome {
                Err(e @ DatastoreError::Conflict { .. })
                | Err(e @ DatastoreError::AlreadyExists { .. })
                | Err(e @ DatastoreError::NotFound { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(DatastoreError::Conflict {
            key,
            expected: 0,
            actual: None,
        }))
    }

    /// Deletes `key` whatever its revision; `Ok(None)` if it was absent.
    async fn remove(&self, key: &str) -> Result<Option<Revision>, DatastoreError> {
        match self.delete(key, None).await {
            Ok(r) => Ok(Some(r)),
            Err(DatastoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl<S: ResourceSource + ?Sized> ResourceSource for Box<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }

    async fn next(&mut self) -> Result<SourceEvent, DatastoreError> {
        (**self).next().await
    }
}

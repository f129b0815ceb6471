//! Feeds an agent from a [`ResourceSource`].
//!
//! * Nothing is sent to the agent before the source's first complete snapshot.
//! * A later snapshot (history lost, a reconnect that could not resume) replaces the desired
//!   state; the agent diffs it against what is programmed: only what differs changes.
//! * Each [`Changes`](super::Changes) is applied as one group (one compile, one dataplane
//!   transaction).
//! * While the source is unavailable nothing is sent: the dataplane stays exactly as it is,
//!   and [`FollowStatus::unavailable`] says why.
//! * Refused entries are logged once each and listed in [`FollowStatus::refused`] until
//!   fixed or deleted.

use std::collections::BTreeMap;

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{DatastoreError, Refusal, ResourceSource, Revision, SourceEvent};
use crate::agent::{AgentError, AgentHandle};

/// How following a source stands, for status pages, readiness and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowStatus {
    /// The source, as it describes itself.
    pub source: String,
    /// Whether the first complete snapshot was handed to the agent.
    pub snapshot_loaded: bool,
    /// The last revision handed to the agent.
    pub revision: Revision,
    /// Why the source cannot deliver now (`None` when it can).
    pub unavailable: Option<String>,
    /// Entries refused now, by key, with why.
    pub refused: BTreeMap<String, String>,
    /// Snapshots handed to the agent (the first one, then one per lost history).
    pub snapshots: u64,
    /// Groups of changes handed to the agent.
    pub change_groups: u64,
    /// Refusals seen (each refused write counts once).
    pub refusals_total: u64,
}

impl FollowStatus {
    /// Whether the agent is following the source: the first snapshot is in and the source
    /// is reachable. An operator's "why not" is [`FollowStatus::not_ready_reason`].
    pub fn ready(&self) -> bool {
        self.snapshot_loaded && self.unavailable.is_none()
    }

    /// Why the agent is not following its source, if it is not.
    pub fn not_ready_reason(&self) -> Option<String> {
        match (&self.unavailable, self.snapshot_loaded) {
            (Some(why), true) => Some(format!(
                "{} is unavailable; the dataplane stays as programmed at revision {}: {why}",
                self.source, self.revision
            )),
            (Some(why), false) => Some(format!(
                "waiting for the first snapshot from {}: {why}",
                self.source
            )),
            (None, false) => Some(format!(
                "waiting for the first snapshot from {}",
                self.source
            )),
            (None, true) => None,
        }
    }
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The source is gone for good.
    #[error("resource source: {0}")]
    Source(#[from] DatastoreError),
    /// The agent stopped.
    #[error("agent: {0}")]
    Agent(#[from] AgentError),
}

/// Follows one source into one agent.
pub struct Follower<S> {
    source: S,
    handle: AgentHandle,
    status: watch::Sender<FollowStatus>,
}

impl<S: ResourceSource> Follower<S> {
    /// A follower of `source` feeding `handle`, and the receiver of its status.
    pub fn new(source: S, handle: AgentHandle) -> (Follower<S>, watch::Receiver<FollowStatus>) {
        let status = FollowStatus {
            source: source.describe(),
            ..FollowStatus::default()
        };
        let (tx, rx) = watch::channel(status);
        (
            Follower {
                source,
                handle,
                status: tx,
            },
            rx,
        )
    }

    /// Follows until the source is gone or the agent stops.
    pub async fn run(mut self) -> Result<(), FollowError> {
        loop {
            self.step().await?;
        }
    }

    /// Takes the source's next event to the agent.
    pub async fn step(&mut self) -> Result<(), FollowError> {
        match self.source.next().await? {
            SourceEvent::Snapshot(s) => {
                self.note_refused(&s.refused, &[], true);
                let count = s.resources.len();
                match self.handle.snapshot(s.resources).await {
                    Err(AgentError::Stopped) => return Err(AgentError::Stopped.into()),
                    Err(e) => {
                        error!(error = %e, revision = s.revision, "the agent refused a snapshot; what is programmed stays")
                    }
                    Ok(()) => {
                        let first = !self.status.borrow().snapshot_loaded;
                        info!(
                            resources = count,
                            revision = s.revision,
                            refused = s.refused.len(),
                            first,
                            "snapshot handed to the agent"
                        );
                    }
                }
                self.status.send_modify(|st| {
                    st.snapshot_loaded = true;
                    st.revision = s.revision;
                    st.unavailable = None;
                    st.snapshots += 1;
                });
            }
            SourceEvent::Changes(c) => {
                self.note_refused(&c.refused, &c.cleared, false);
                if !c.updates.is_empty() {
                    match self.handle.apply(c.updates).await {
                        Err(AgentError::Stopped) => return Err(AgentError::Stopped.into()),
                        Err(e) => {
                            error!(error = %e, revision = c.revision, "the agent refused a group of changes; none of it is applied")
                        }
                        Ok(()) => {}
                    }
                }
                self.status.send_modify(|st| {
                    st.revision = c.revision;
                    st.unavailable = None;
                    st.change_groups += 1;
                });
            }
            SourceEvent::Unavailable { reason } => {
                warn!(source = %self.status.borrow().source, %reason, "datastore unavailable; the dataplane stays as it is");
                self.status.send_modify(|st| st.unavailable = Some(reason));
            }
        }
        Ok(())
    }

    fn note_refused(&self, refused: &[Refusal], cleared: &[String], replace: bool) {
        for r in refused {
            error!(key = %r.key, reason = %r.reason, "datastore entry refused; everything else proceeds");
        }
        self.status.send_modify(|st| {
            if replace {
                st.refused.clear();
            }
            for key in cleared {
                if st.refused.remove(key).is_some() {
                    info!(%key, "datastore entry no longer refused");
                }
            }
            st.refusals_total += refused.len() as u64;
            for r in refused {
                st.refused.insert(r.key.clone(), r.reason.clone());
            }
        });
    }
}

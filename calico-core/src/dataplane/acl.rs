//! The ACL contract: the trait that programs one agent-owned table holding the [IR](super::ir).

use async_trait::async_trait;

use super::{BackendError, ChangeSet, Ruleset};

/// Programs the ACLs: one agent-owned table holding the IR of [`crate::compile`] (see [`super::ir`]).
#[async_trait]
pub trait AclBackend: Send + Sync {
    /// Applies a change set atomically: after an error nothing of it is in effect. A change
    /// set computed against the dataplane's actual state (see [`AclBackend::dump`]) never
    /// fails for reasons of its own content.
    async fn apply(&self, changes: &ChangeSet) -> Result<(), BackendError>;
    /// Reads the agent's table back from the dataplane (an empty ruleset when absent).
    async fn dump(&self) -> Result<Ruleset, BackendError>;
    /// Drift notification (optional): a counter bumped whenever someone other than this
    /// backend changed its table (deleted it, or added, changed or removed anything in it).
    /// The agent repairs on each bump instead of waiting for the next periodic resync, which
    /// stays the backstop. `None` (the default) when the backend cannot tell.
    fn drift(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

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
}

//! [`MockAcl`]: an in-memory ACL table that applies change sets as strictly as nftables.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use calico_core::dataplane::ir::{Hook, Ruleset};
use calico_core::dataplane::validate::check_commit;
use calico_core::dataplane::ChangeSet;
use calico_core::dataplane::{AclBackend, BackendError};

use crate::interpreter::{interpret, Outcome, PacketContext};

#[derive(Debug, Default)]
struct State {
    ruleset: Ruleset,
    fail_next: usize,
    applied: usize,
}

/// An in-memory ACL table implementing [`AclBackend`]. A change set is applied atomically
/// and refused, with nothing applied, wherever nftables would refuse it: adding an existing
/// set, map, chain or element, deleting a missing one, deleting something still referred
/// to, referring to a missing chain, set or map, and whatever the kernel refuses at commit
/// ([`check_commit`]: overlapping intervals, jump loops, too deep nesting, ...). Cloning
/// shares the state.
#[derive(Clone, Debug, Default)]
pub struct MockAcl(Arc<Mutex<State>>);

impl MockAcl {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("MockAcl lock")
    }

    /// The programmed ruleset.
    pub fn ruleset(&self) -> Ruleset {
        self.state().ruleset.clone()
    }

    /// Replaces the ruleset behind the agent's back (drift, a flushed table).
    pub fn set_ruleset(&self, ruleset: Ruleset) {
        self.state().ruleset = ruleset;
    }

    /// Makes the next `n` applies fail (to test retries).
    pub fn fail_next(&self, n: usize) {
        self.state().fail_next = n;
    }

    /// Change sets applied successfully so far.
    pub fn applied(&self) -> usize {
        self.state().applied
    }

    /// Runs a packet through the programmed ruleset at `hook`.
    pub fn judge(&self, hook: Hook, ctx: &PacketContext<'_>) -> Outcome {
        interpret(&self.state().ruleset, hook, ctx)
    }

    /// Runs a forwarded packet through the hooks it crosses: prerouting (pre-DNAT policy),
    /// then forward with the mark prerouting left. The outcome is the forward hook's, or
    /// prerouting's when it dropped the packet.
    pub fn judge_forwarded(&self, ctx: &PacketContext<'_>) -> Outcome {
        let state = self.state();
        let arriving = PacketContext {
            oif: "",
            ..ctx.clone()
        };
        let pre = interpret(&state.ruleset, Hook::Prerouting, &arriving);
        if !pre.accepted {
            return pre;
        }
        crate::interpreter::interpret_marked(&state.ruleset, Hook::Forward, ctx, pre.mark)
    }
}

impl MockAcl {
    /// Applies a change set synchronously: what [`AclBackend::apply`] does, for callers
    /// without an async runtime (the simulated network). All or nothing.
    pub fn apply_now(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        let mut s = self.state();
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return Err(BackendError::Unavailable(
                "injected failure (MockAcl::fail_next)".into(),
            ));
        }
        let refused = |reason: String| BackendError::Dataplane {
            op: "apply ACL change set".into(),
            reason,
        };
        // Build the next state aside and keep it only if the whole transaction commits.
        let mut next = s.ruleset.clone();
        changes
            .apply_to(&mut next)
            .map_err(|e| refused(e.to_string()))?;
        check_commit(&next).map_err(|e| refused(e.to_string()))?;
        s.ruleset = next;
        s.applied += 1;
        Ok(())
    }
}

#[async_trait]
impl AclBackend for MockAcl {
    async fn apply(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        self.apply_now(changes)
    }

    async fn dump(&self) -> Result<Ruleset, BackendError> {
        Ok(self.ruleset())
    }
}

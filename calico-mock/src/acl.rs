//! [`MockAcl`]: an in-memory ACL table that applies change sets as strictly as nftables.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use calico_core::dataplane::ir::{Hook, Ruleset};
use calico_core::dataplane::validate::check_commit;
use calico_core::dataplane::ChangeSet;
use calico_core::dataplane::{AclBackend, BackendError};

use crate::interpreter::{interpret, interpret_marked, Outcome, PacketContext};

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

    /// Runs a packet arriving from `ctx.iif` through the prerouting hook (pre-DNAT policy,
    /// then destination NAT, before the routing decision: `ctx.oif` is not known yet). The
    /// outcome's packet is what routing sees.
    pub fn prerouting(&self, ctx: &PacketContext<'_>) -> Outcome {
        let arriving = PacketContext {
            oif: "",
            ..ctx.clone()
        };
        interpret(&self.state().ruleset, Hook::Prerouting, &arriving)
    }

    /// Runs a routed packet through the forward hook with the mark prerouting left, then,
    /// if it is accepted, the postrouting hook (source NAT). The outcome is the forward
    /// hook's, or postrouting's when forward accepted it; its packet is what leaves.
    pub fn forwarding(&self, ctx: &PacketContext<'_>, mark: u32) -> Outcome {
        let state = self.state();
        let fwd = interpret_marked(&state.ruleset, Hook::Forward, ctx, mark);
        if !fwd.accepted {
            return fwd;
        }
        let leaving = PacketContext {
            packet: &fwd.packet,
            ..ctx.clone()
        };
        let post = interpret_marked(&state.ruleset, Hook::Postrouting, &leaving, fwd.mark);
        Outcome {
            decided_by: post.decided_by.or(fwd.decided_by),
            trace: joined(fwd.trace, post.trace),
            logged: joined(fwd.logged, post.logged),
            flow_logged: joined(fwd.flow_logged, post.flow_logged),
            flow_refs: joined(fwd.flow_refs, post.flow_refs),
            ..post
        }
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

/// `a` then `b`.
fn joined<T>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
    a.extend(b);
    a
}

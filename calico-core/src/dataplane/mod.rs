//! The dataplane contract: everything a backend author needs to read, and nothing else.
//!
//! The agent computes *what* the dataplane should hold; a backend makes it so. Three backends
//! exist, one per job, each a trait of this module:
//!
//! * [`FibBackend`] ([`fib`]): the forwarding table: routes to local workloads, blackholes
//!   for owned address blocks, routes learned from peers ([`Route`], [`FibChangeSet`]);
//! * [`AclBackend`] ([`acl`]): the ACLs: one agent-owned table holding an [`ir::Ruleset`],
//!   changed by ordered [`ChangeSet`]s;
//! * [`BgpBackend`] ([`bgp`]): the BGP speaker: settings and peerings in
//!   ([`BgpSettings`]), exports in, learned routes and peer states out.
//!
//! What the ACL data means:
//!
//! * [`ir`]: the dataplane-neutral IR of one host's ACLs and its exact evaluation rules
//!   (nftables');
//! * [`ChangeSet`]: ordered operations that turn one ruleset into another, with
//!   [`ChangeSet::apply_to`] applying them as strictly as nftables does;
//! * [`diff`]: the minimal change set between two rulesets (what to send after reading the
//!   dataplane back);
//! * [`validate`]: the one validator of a whole ruleset: the checks the kernel makes when a
//!   transaction commits ([`validate::check_commit`]), and those plus the invariants every
//!   compiled ruleset keeps ([`validate::check`]). Every backend, mock and real, can rely on
//!   a ruleset it is asked to reach passing both.
//!
//! # The contract every implementation keeps
//!
//! * **Atomic or per-item.** An ACL change set is applied whole or not at all. FIB changes are
//!   applied route by route (a route replace is atomic in the kernel); a route that cannot be
//!   programmed is reported by key and does not stop the others.
//! * **Idempotent.** Applying a change that is already in effect changes nothing.
//! * **Owned state only.** A backend touches only what it created: routes carrying the agent's
//!   route protocol, the agent's own nftables table(s), its own BGP exports.
//! * **Dump tells the truth.** `dump` reads the dataplane back (not a cache), so that the
//!   reconciler can detect and repair drift.
//! * **Drift is told, if it can be (optional).** `FibBackend::drift` and `AclBackend::drift`
//!   return a [`tokio::sync::watch::Receiver`] of a counter the backend bumps when someone
//!   else changed what it owns (the Linux backends listen to rtnetlink and nf_tables events).
//!   Its own changes must not bump it, or the agent would repair forever. The agent repairs
//!   at each bump within milliseconds; a backend that cannot tell returns `None` (the default)
//!   and drift is repaired by the periodic resync, which runs in any case as the backstop.
//!
//! # Implementing a backend
//!
//! Implement the trait (they are `async_trait`s, `Send + Sync`, shared by the agent behind an
//! `Arc`) and report failures as [`BackendError`]s. An ACL backend translates each [`Change`]
//! into its dataplane's operations in order, inside one transaction, and reads its table back
//! into a [`Ruleset`] for `dump`; it may assume every ruleset it is asked to reach passes
//! [`validate::check`]. calico-mock's `MockAcl` is the smallest complete example: it applies
//! change sets with [`ChangeSet::apply_to`] and refuses a result [`validate::check_commit`]
//! refuses.
//!
//! This module depends on nothing else in calico-core: the compiler and the agent above it
//! produce its data, the backends below consume it.

pub mod acl;
pub mod bgp;
mod bgp_policy;
pub mod bgp_session;
mod change;
mod diff;
mod error;
pub mod fib;
pub mod ir;
mod undo;
pub mod validate;
mod validate_nat;

pub use acl::AclBackend;
pub use bgp::{
    AddPathConfig, AsNumber, BfdAuth, BfdAuthType, BfdConfig, BgpBackend, BgpSettings,
    ExportedRoutes, LearnedRoute, PeerConfig, PeerCounters, PeerState, PeerStatus,
};
pub use bgp_policy::RoutePolicy;
pub use bgp_session::{NextHopMode, SessionOptions};
pub use change::{ApplyError, Change, ChangeSet};
pub use diff::diff;
pub(crate) use diff::{diff_keys, Touched};
pub use error::BackendError;
pub use fib::{
    FibBackend, FibChangeSet, FibReport, InterfaceAddresses, InterfaceSettings, NextHop, Route,
    RouteTarget,
};
pub use ir::Ruleset;
pub use undo::Undo;

//! The rule compiler: policies, profiles and endpoints → the IR of one host's ACLs.
//!
//! Layout (one nftables `inet` table):
//!
//! ```text
//! forward (base chain, hook forward, policy accept)
//!   iifname vmap @from-wl      -> goto wl-eg-<iface>   traffic leaving a local workload
//!   oifname vmap @to-wl        -> goto wl-in-<iface>   traffic arriving at a local workload
//! eg-allowed                   reached when egress policy allowed a packet
//!   oifname vmap @to-wl        -> the destination's ingress policy, if it is local
//!   accept
//! wl-eg-<iface>                egress of one workload
//!   ct state established,related accept; ct state invalid drop
//!   anti-spoofing: source not the endpoint's address (or in the set of its addresses when
//!   it has several) -> drop (with flow logs: goto spoof-drop, which logs and drops); a
//!   family it has no address in: drop all of that family
//!   for each tier with egress policies of the endpoint, in tier order:
//!     [clear the Pass mark]    when one of the tier's policies may Pass
//!     jump pl-eg-<list>        the tier's policies (or the only one directly when it
//!                              cannot Pass, then drop if the tier denies by default)
//!     (nothing after a tier that denies by default and none of whose policies may Pass)
//!   goto prl-eg-<profiles>     every tier passed, or none applies (drop when the endpoint
//!                              has no profile)
//! wl-in-<iface>                the same for ingress (no anti-spoofing)
//! pl-eg-<list>, pl-in-<list>   one tier's policies, shared by every endpoint with the same:
//!   jump pol-eg-<policy>       for each, and after one that may Pass:
//!   mark has Pass -> return    (the rest of the tier skipped: on to the next tier)
//!   drop                       end of the tier, when its defaultAction is Deny
//! prl-eg-<list>, prl-in-<list> shared by every endpoint with the same profiles:
//!   jump pro-eg-<profile> for each; drop
//! pol-eg-<policy>, pol-in-<policy>, pro-eg-<profile>, pro-in-<profile>
//!   the rules: Allow -> accept (ingress) or goto eg-allowed (egress); Deny -> drop;
//!   Pass -> set the Pass mark and return (policies) or return (profiles); Log -> log
//! ```
//!
//! Selector matches are named interval sets of member addresses (as single-address
//! networks) and of the networks of the network sets the selector picks, never overlapping
//! (`cidr_cover`), kept up to date by membership and network changes only; CIDR lists are
//! interval sets; named ports are `addr . proto . port` sets.
//! Every name is a short stable hash of the object's identity, and compiling the same input
//! twice gives identical IR.
//!
//! [`Compiler`] is incremental: told of one update at a time ([`Compiler::apply`], after the
//! caller stored it in its [`Model`] with [`Model::apply_valid`]) it recomputes only the
//! chains and sets the update affects, and [`Compiler::take_changes`] returns exactly the
//! changes since the last call. [`compile`] is the same compiler fed a whole model. The
//! compiler holds no copy of the model: its owner (the agent) keeps the one store and hands
//! it in.
//!
//! A group of updates ([`Compiler::apply_updates`], or the agent's updates of one pass)
//! re-renders each local interface it reaches once, at the end: adding 10,000 policies that
//! all apply to one endpoint rebuilds its policy-list chain once, not 10,000 times, so a
//! change of any size costs about what compiling its result from scratch costs.
//!
//! Its parts, one job each:
//!
//! * `journal`: the ruleset and the record of what changed in it (the change sets);
//! * `set_members`: which endpoints and network sets are in which selector sets, and who
//!   refers to each set; `set_elements`: the elements their contributions make;
//!   `cidr_cover`: a selector set's networks without overlaps;
//! * `local_endpoints`: which policies apply to which local endpoint, and interface owners;
//! * `shared_chains`: the chains endpoints with equal policy or profile lists share, and
//!   their reference counts;
//! * `endpoint_chains`: the pure renderer of one local endpoint's chains;
//! * `rules`: one policy or profile rule → IR rules and the sets they need;
//! * `updates`: what each kind of update recomputes, tying the parts together;
//! * `names`: the names of chains and sets;
//! * `floating_ips`: the 1:1 NAT of local workloads' floating IPs (`ipNATs`);
//! * `flow_log`: the verdicts reported to the agent's flow logs, when on;
//! * `describe`: the way back, from chain names to what the user wrote ([`describe`]).

mod chain_owner;
mod cidr_cover;
mod describe;
mod endpoint_chains;
mod failsafe;
mod floating_ips;
mod flow_log;
mod host_chains;
mod host_config;
mod host_endpoints;
mod journal;
mod local_endpoints;
mod names;
mod rules;
mod set_elements;
mod set_members;
mod shared_chains;
mod staged;
mod updates;

pub use describe::{
    describe, describe_with_interfaces, ChainNames, ChainOwner, RuleRef, DEFAULT_TIER, PROFILE_TIER,
};
pub use failsafe::{
    parse_failsafe_list, FailsafeError, FailsafePort, FailsafeReason, DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
};
pub use floating_ips::{
    FIP_DNAT_CHAIN, FIP_SNAT_CHAIN, NAT_OUTPUT_CHAIN, NAT_POSTROUTING_CHAIN, NAT_PREROUTING_CHAIN,
};
pub use flow_log::{
    first_packet_hook, FlowLogConfig, LogRef, LogRefError, LogRule, LogVerdict,
    FIRST_PACKET_FORWARD_CHAIN, FIRST_PACKET_INPUT_CHAIN, FIRST_PACKET_OUTPUT_CHAIN,
    SPOOF_DROP_CHAIN,
};
pub use host_chains::{
    HostPath, INPUT_CHAIN, OUTPUT_CHAIN, PREROUTING_CHAIN, RAW_OUTPUT_CHAIN, RAW_PREROUTING_CHAIN,
    WORKLOAD_IFACES_MAP, WORKLOAD_TO_HOST_CHAIN, WORKLOAD_TO_HOST_MAP,
};
pub use host_config::{EndpointToHostAction, HostConfig};

use crate::dataplane::ir::{Ruleset, VerdictMap};
use crate::dataplane::ChangeSet;
use std::collections::BTreeSet;

use crate::model::{Applied, Model, PolicyKey, ResourceKey, Update};
use floating_ips::FloatingIps;
use host_endpoints::HostEndpoints;
use journal::Journal;
use local_endpoints::LocalEndpoints;
use set_members::{EndpointKey, SetMembership};
use shared_chains::SharedChains;

#[cfg(test)]
use names::{endpoint_chain, policy_chain};

/// Name of the forward base chain.
pub const FORWARD_CHAIN: &str = "forward";
/// Name of the chain reached after egress policy allowed a packet.
pub const EGRESS_ALLOWED_CHAIN: &str = "eg-allowed";
/// Name of the map dispatching on the input interface to workloads' egress chains.
pub const FROM_WORKLOAD_MAP: &str = "from-wl";
/// Name of the map dispatching on the output interface to workloads' ingress chains.
pub const TO_WORKLOAD_MAP: &str = "to-wl";

/// Settings of the compiler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileConfig {
    /// The node whose local workloads get chains.
    pub node: String,
    /// The packet-mark bit used to carry a policy's `Pass` back to the endpoint chain.
    pub pass_mark: u32,
    /// Priority of the forward base chain.
    pub forward_priority: i32,
    /// Flow logs: verdicts reported to a netlink log group (see [`FlowLogConfig`]); `None`
    /// (the default) compiles exactly the rules without them.
    pub flow_logs: Option<FlowLogConfig>,
    /// The host's own protection: workload → host traffic, failsafe ports, mark bits.
    pub host: HostConfig,
    /// Whether a workload may send from the networks its endpoint lists in
    /// `allowSpoofedSourcePrefixes` (Felix's `WorkloadSourceSpoofing: Any`); when not, the
    /// list is ignored and such sources are dropped as spoofed.
    pub workload_source_spoofing: bool,
    /// Whether workloads' floating IPs (`ipNATs`) are in effect (Felix's `FloatingIPs:
    /// Enabled`); OpenStack's endpoints have theirs in effect either way, as in Felix.
    pub floating_ips: bool,
}

impl CompileConfig {
    /// Defaults for `node`: Pass mark 0x0002_0000, forward priority 0 (`filter`).
    pub fn new(node: impl Into<String>) -> Self {
        CompileConfig {
            node: node.into(),
            pass_mark: 0x0002_0000,
            forward_priority: 0,
            flow_logs: None,
            host: HostConfig::default(),
            workload_source_spoofing: false,
            floating_ips: false,
        }
    }
}

/// Compiles the whole model for `config.node`.
pub fn compile(config: &CompileConfig, model: &Model) -> Ruleset {
    Compiler::from_model(config.clone(), model)
        .journal
        .into_ruleset()
}

/// The incremental rule compiler.
#[derive(Clone, Debug)]
pub struct Compiler {
    config: CompileConfig,
    journal: Journal,
    sets: SetMembership,
    local: LocalEndpoints,
    shared: SharedChains,
    hosts: HostEndpoints,
    floating: FloatingIps,
    /// Local interfaces whose chains updates staged since the last render changed.
    staged: BTreeSet<String>,
    /// Policy-list entries rendered so far (each policy of an interface's lists counts
    /// one): the compiler's work on endpoints, which tests bound.
    #[cfg(test)]
    rendered: usize,
}

impl Compiler {
    /// A compiler for an empty model: base chain and dispatch maps only.
    pub fn new(config: CompileConfig) -> Self {
        let mut c = Compiler {
            config,
            journal: Journal::default(),
            sets: SetMembership::default(),
            local: LocalEndpoints::default(),
            shared: SharedChains::default(),
            hosts: HostEndpoints::default(),
            floating: FloatingIps::default(),
            staged: BTreeSet::new(),
            #[cfg(test)]
            rendered: 0,
        };
        c.install_base();
        c
    }

    fn install_base(&mut self) {
        for map in [
            FROM_WORKLOAD_MAP,
            TO_WORKLOAD_MAP,
            WORKLOAD_IFACES_MAP,
            WORKLOAD_TO_HOST_MAP,
        ] {
            self.journal.put_map(map, Some(VerdictMap::default()));
        }
        for path in HostPath::ALL {
            self.journal
                .put_map(path.map().0, Some(VerdictMap::default()));
        }
        let mut to_host = host_chains::workload_to_host_chain(&self.config.host);
        if let Some(cfg) = &self.config.flow_logs {
            to_host.rules = flow_log::chain_drops(cfg, WORKLOAD_TO_HOST_CHAIN, to_host.rules);
        }
        self.journal
            .put_chain(WORKLOAD_TO_HOST_CHAIN, Some(to_host));
        self.render_hosts(&crate::model::Model::new());
    }

    /// A compiler that has compiled all of `model`: what [`Compiler::new`] followed by
    /// [`Compiler::apply`] for every resource gives (the agent's snapshot path).
    ///
    /// ```
    /// use calico_core::compile::{CompileConfig, Compiler};
    /// use calico_core::model::Model;
    ///
    /// let compiler = Compiler::from_model(CompileConfig::new("host-a"), &Model::new());
    /// assert!(compiler.ruleset().chains.contains_key("forward"));
    /// ```
    pub fn from_model(config: CompileConfig, model: &Model) -> Compiler {
        let mut c = Compiler::new(config);
        // The same steps `apply` takes for each resource, in the same order (profiles,
        // policies, endpoints). Profile labels reach endpoints when the endpoints are
        // indexed, so no endpoint needs re-reading here.
        for name in model.profiles.keys() {
            c.profile_changed(model, name, false);
        }
        for key in model.policies.keys() {
            c.policy_changed(model, key);
        }
        for id in model.workload_endpoints.keys() {
            c.workload_changed(model, id, None);
        }
        for name in model.host_endpoints.keys() {
            c.sets
                .refresh_endpoint(&mut c.journal, model, EndpointKey::Host(name.clone()));
        }
        c.hosts.staged = true;
        for key in model.network_sets.keys() {
            c.sets
                .refresh_endpoint(&mut c.journal, model, EndpointKey::NetworkSet(key.clone()));
        }
        c.render_staged(model);
        c
    }

    /// The current IR.
    pub fn ruleset(&self) -> &Ruleset {
        self.journal.ruleset()
    }

    /// The changes made to the IR since the last call, in dependency order.
    pub fn take_changes(&mut self) -> ChangeSet {
        debug_assert!(
            self.staged.is_empty(),
            "take_changes with staged interfaces: call render_staged first"
        );
        self.journal.take_changes()
    }

    /// Recomputes what one update changed. `model` is the model *after* the update
    /// ([`Model::apply_valid`] stored it and returned `applied`), holding only valid
    /// resources, and is the model every earlier call was given, updated in step.
    pub fn apply(&mut self, model: &Model, applied: &Applied) {
        self.stage(model, applied);
        self.render_staged(model);
    }

    /// Stores each update in `model` ([`Model::apply_valid`]: they must be valid, as
    /// [`Model::apply`] or [`crate::model::Resource::validate`] checks) and compiles the group as
    /// one change: each update's own chains and sets at once, then each local interface the
    /// group reaches re-rendered once. Costs about what the changed part of the result
    /// costs to compile, where [`Compiler::apply`] for each would re-render an interface
    /// (with all of its policies) once per update that reaches it.
    ///
    /// ```
    /// use calico_core::compile::{CompileConfig, Compiler};
    /// use calico_core::model::{Model, Resource, Update};
    /// use calico_core::scale::Scale;
    ///
    /// let scale = Scale { local: 2, remote: 2, policies: 0, ..Scale::default() };
    /// let mut model = scale.model();
    /// let mut compiler = Compiler::from_model(CompileConfig::new("h1"), &model);
    /// compiler.take_changes();
    /// let adds = (0..100).map(|k| Update::Upsert(Resource::Policy(scale.global_policy(k, 80))));
    /// compiler.apply_updates(&mut model, adds);
    /// assert!(!compiler.take_changes().is_empty());
    /// ```
    pub fn apply_updates(&mut self, model: &mut Model, updates: impl IntoIterator<Item = Update>) {
        for update in updates {
            let applied = model.apply_valid(update);
            self.stage(model, &applied);
        }
        self.render_staged(model);
    }

    /// Re-renders the local interfaces staged updates reached, each once. `model` is the
    /// model of the last [`Compiler::stage`].
    pub(crate) fn render_staged(&mut self, model: &Model) {
        for iface in std::mem::take(&mut self.staged) {
            self.render_interface(model, &iface);
            self.floating_ips_changed(model, &iface);
        }
        self.render_floating_ips();
        if self.hosts.staged {
            self.render_hosts(model);
        }
    }

    /// What [`Compiler::apply`] does, except that the local interfaces the update reaches
    /// are only staged, for [`Compiler::render_staged`] to re-render once the group of
    /// updates is in. Until then the ruleset may refer to what the group removed.
    pub(crate) fn stage(&mut self, model: &Model, applied: &Applied) {
        use crate::model::Resource;
        match (&applied.key, &applied.old) {
            (ResourceKey::WorkloadEndpoint(id), old) => {
                let old_iface = match old {
                    Some(Resource::WorkloadEndpoint(o)) => Some(o.interface_name.clone()),
                    _ => None,
                };
                if old_iface.is_some() || model.workload_endpoints.contains_key(id) {
                    self.workload_changed(model, id, old_iface);
                }
            }
            (ResourceKey::HostEndpoint(name), _) => {
                self.sets.refresh_endpoint(
                    &mut self.journal,
                    model,
                    EndpointKey::Host(name.clone()),
                );
                self.hosts.staged = true;
            }
            (ResourceKey::NetworkSet { namespace, name }, _) => {
                let key = EndpointKey::NetworkSet((namespace.clone(), name.clone()));
                self.sets.refresh_endpoint(&mut self.journal, model, key);
            }
            (ResourceKey::Policy { namespace, name }, old) => {
                let key: PolicyKey = (namespace.clone(), name.clone());
                if old.is_some() || model.policies.contains_key(&key) {
                    self.policy_changed(model, &key);
                }
                if self
                    .hosts
                    .policy_reaches(model, &key, model.policies.get(&key))
                {
                    self.hosts.staged = true;
                }
            }
            (ResourceKey::Profile(name), old) => {
                let old = match old {
                    Some(Resource::Profile(o)) => Some(&o.labels_to_apply),
                    _ => None,
                };
                let new = model.profiles.get(name).map(|p| &p.labels_to_apply);
                let labels_changed = match (old, new) {
                    (Some(o), Some(n)) => o != n,
                    (None, Some(_)) => true,
                    (Some(o), None) => !o.is_empty(),
                    (None, None) => return,
                };
                self.profile_changed(model, name, labels_changed);
                if self.hosts.profile_reaches(model, name) {
                    self.hosts.staged = true;
                }
            }
            (ResourceKey::Tier(name), _) => {
                self.tier_changed(model, name);
                self.hosts.staged |= self.hosts.any();
            }
            // Pools, BGP settings and nodes do not affect ACLs.
            _ => {}
        }
    }
}

/// Compiler inputs for tests: the store and the compiler fed in step.
#[cfg(test)]
fn feed(model: &mut Model, compiler: &mut Compiler, update: crate::model::Update) {
    let applied = model.apply_valid(update);
    compiler.apply(model, &applied);
}

#[cfg(test)]
mod bulk_tests;
#[cfg(test)]
mod describe_tests;
#[cfg(test)]
mod floating_ip_tests;
#[cfg(test)]
mod host_endpoint_tests;
#[cfg(test)]
mod network_set_tests;
#[cfg(test)]
mod tests;

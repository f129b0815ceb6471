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
//!   it has several) -> drop; a family it has no address in: drop all of that family
//!   [clear the Pass mark]      when one of its policies may Pass
//!   jump pl-eg-<list>          its egress policies, in order (or the only one directly)
//!   [mark has Pass -> goto prl-eg-<profiles>]
//!   drop                       end of policies; with no policy: goto prl-eg-<profiles>
//!                              (drop when the endpoint has no profile)
//! wl-in-<iface>                the same for ingress (no anti-spoofing)
//! pl-eg-<list>, pl-in-<list>   shared by every endpoint with the same ordered policies:
//!   jump pol-eg-<policy>       for each, and after one that may Pass:
//!   mark has Pass -> return
//! prl-eg-<list>, prl-in-<list> shared by every endpoint with the same profiles:
//!   jump pro-eg-<profile> for each; drop
//! pol-eg-<policy>, pol-in-<policy>, pro-eg-<profile>, pro-in-<profile>
//!   the rules: Allow -> accept (ingress) or goto eg-allowed (egress); Deny -> drop;
//!   Pass -> set the Pass mark and return (policies) or return (profiles); Log -> log
//! ```
//!
//! Selector matches are named sets of member addresses, kept up to date by membership
//! changes only; CIDR lists are interval sets; named ports are `addr . proto . port` sets.
//! Every name is a short stable hash of the object's identity, and compiling the same input
//! twice gives identical IR.
//!
//! [`Compiler`] is incremental: fed one [`Update`] at a time it recomputes only the chains
//! and sets the update affects, and [`Compiler::take_changes`] returns exactly the changes
//! since the last call. [`compile`] is the same compiler fed a whole model.

mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use tracing::warn;

use crate::calc::effective;
use crate::calc::SelectorIndex;
use crate::dataplane::ir::{
    self, BaseChain, Chain, ChainPolicy, CtState, Hook, IfaceKey, Match, Rule, Ruleset, Set,
    SetElement, Statement, Verdict, VerdictMap,
};
use crate::dataplane::{diff_keys, ChangeSet, Touched};
use crate::model::{
    policy_order, Model, NamedPort, Policy, PolicyKey, PolicyType, Resource, ResourceKey, Update,
    WorkloadEndpointId,
};
use crate::naming::hashed;
use crate::selector::Selector;
use rules::{compile_rule, SetSpec, Verdicts};

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
}

impl CompileConfig {
    /// Defaults for `node`: Pass mark 0x0002_0000, forward priority 0 (`filter`).
    pub fn new(node: impl Into<String>) -> Self {
        CompileConfig {
            node: node.into(),
            pass_mark: 0x0002_0000,
            forward_priority: 0,
        }
    }
}

/// Any endpoint, as a member of selector sets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum EndpointKey {
    Workload(WorkloadEndpointId),
    Host(String),
}

/// What an endpoint contributes to the sets it is a member of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Contribution {
    addresses: Vec<IpAddr>,
    ports: Vec<NamedPort>,
}

/// Compiles the whole model for `config.node`.
pub fn compile(config: &CompileConfig, model: &Model) -> Ruleset {
    let mut c = Compiler::new(config.clone());
    c.load(model);
    c.ruleset
}

/// The incremental rule compiler.
#[derive(Clone, Debug)]
pub struct Compiler {
    config: CompileConfig,
    model: Model,
    ruleset: Ruleset,
    /// Old versions of objects touched since the last `take_changes` (`None`: did not exist).
    before_sets: BTreeMap<String, Option<Set>>,
    before_maps: BTreeMap<String, Option<VerdictMap>>,
    before_chains: BTreeMap<String, Option<Chain>>,
    /// Elements added to or removed from sets that are not in `before_sets`, with whether
    /// each was present before: a set's membership change costs the elements it touches,
    /// not a copy of the set.
    before_set_elements: BTreeMap<String, BTreeMap<SetElement, bool>>,
    /// The same for verdict map elements: the old verdict of each touched key.
    before_map_elements: BTreeMap<String, BTreeMap<String, Option<Verdict>>>,
    /// Sets referenced by compiled rules: spec and number of referring policies/profiles.
    set_refs: BTreeMap<String, (SetSpec, usize)>,
    /// Element reference counts of selector-based sets.
    element_refs: BTreeMap<String, BTreeMap<SetElement, usize>>,
    /// Selector-based sets × all endpoints (by interned id: cheap to copy into the index).
    members: SelectorIndex<String, u64>,
    endpoint_ids: BTreeMap<EndpointKey, u64>,
    next_endpoint_id: u64,
    contributions: BTreeMap<u64, Contribution>,
    /// Sets used by each policy and profile.
    used_sets: BTreeMap<SetOwner, Vec<SetSpec>>,
    /// Policies × local workload endpoints.
    applies: SelectorIndex<PolicyKey, WorkloadEndpointId>,
    /// Local workload endpoints by interface (the first id owns the interface).
    by_iface: BTreeMap<String, BTreeSet<WorkloadEndpointId>>,
    /// Shared policy-list and profile-list chains: number of interfaces using each.
    shared_refs: BTreeMap<String, usize>,
    /// The shared chains each local interface's chains jump to.
    iface_shared: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SetOwner {
    Policy(PolicyKey),
    Profile(String),
}

fn chain_name(prefix: &str, parts: &[&str]) -> String {
    hashed(prefix, parts)
}

fn policy_chain(key: &PolicyKey, dir: PolicyType) -> String {
    let ns = key.0.as_deref().unwrap_or("");
    match dir {
        PolicyType::Ingress => chain_name("pol-in", &[ns, &key.1]),
        PolicyType::Egress => chain_name("pol-eg", &[ns, &key.1]),
    }
}

fn profile_chain(name: &str, dir: PolicyType) -> String {
    match dir {
        PolicyType::Ingress => chain_name("pro-in", &[name]),
        PolicyType::Egress => chain_name("pro-eg", &[name]),
    }
}

fn endpoint_chain(iface: &str, dir: PolicyType) -> String {
    match dir {
        PolicyType::Ingress => chain_name("wl-in", &[iface]),
        PolicyType::Egress => chain_name("wl-eg", &[iface]),
    }
}

/// The chain shared by every endpoint whose policies in `dir` are `policies` (chain, can
/// Pass), in order: a jump to each, returning early when one passed. Its name hashes the
/// list, so equal lists share one chain and a different list gets another.
fn policy_list_chain(policies: &[(String, bool)], dir: PolicyType, mark: u32) -> SharedChain {
    let mut parts: Vec<&str> = Vec::with_capacity(policies.len() * 2);
    let mut rules = Vec::with_capacity(policies.len() * 2);
    for (i, (chain, pass)) in policies.iter().enumerate() {
        parts.push(chain);
        parts.push(if *pass { "p" } else { "-" });
        rules.push(Rule::new(vec![], Verdict::Jump(chain.clone())));
        if *pass && i + 1 < policies.len() {
            rules.push(Rule::new(vec![Match::MarkSet(mark)], Verdict::Return));
        }
    }
    let prefix = match dir {
        PolicyType::Ingress => "pl-in",
        PolicyType::Egress => "pl-eg",
    };
    SharedChain {
        prefix,
        name: chain_name(prefix, &parts),
        rules,
    }
}

/// The chain shared by every endpoint whose existing profiles are `profiles` (their chains
/// in `dir`), in order: a jump to each, then drop.
fn profile_list_chain(profiles: &[String], dir: PolicyType) -> SharedChain {
    let parts: Vec<&str> = profiles.iter().map(String::as_str).collect();
    let mut rules: Vec<Rule> = profiles
        .iter()
        .map(|c| Rule::new(vec![], Verdict::Jump(c.clone())))
        .collect();
    rules.push(Rule::new(vec![], Verdict::Drop));
    let prefix = match dir {
        PolicyType::Ingress => "prl-in",
        PolicyType::Egress => "prl-eg",
    };
    SharedChain {
        prefix,
        name: chain_name(prefix, &parts),
        rules,
    }
}

/// Policy chains in order, each with whether its policy may Pass.
type PolicyList = Vec<(String, bool)>;

/// A chain several endpoints' chains may jump to.
struct SharedChain {
    /// What it is (`pl-in`, `prl-eg`, ...).
    prefix: &'static str,
    /// Its name: the prefix and a hash of what it holds.
    name: String,
    /// Its rules.
    rules: Vec<Rule>,
}

fn own_address_set(iface: &str, v4: bool) -> String {
    chain_name(if v4 { "wl-ip4" } else { "wl-ip6" }, &[iface])
}

impl Compiler {
    /// A compiler for an empty model: base chain and dispatch maps only.
    pub fn new(config: CompileConfig) -> Self {
        let mut c = Compiler {
            config,
            model: Model::new(),
            ruleset: Ruleset::default(),
            before_sets: BTreeMap::new(),
            before_maps: BTreeMap::new(),
            before_chains: BTreeMap::new(),
            before_set_elements: BTreeMap::new(),
            before_map_elements: BTreeMap::new(),
            set_refs: BTreeMap::new(),
            element_refs: BTreeMap::new(),
            members: SelectorIndex::new(),
            endpoint_ids: BTreeMap::new(),
            next_endpoint_id: 0,
            contributions: BTreeMap::new(),
            used_sets: BTreeMap::new(),
            applies: SelectorIndex::new(),
            by_iface: BTreeMap::new(),
            shared_refs: BTreeMap::new(),
            iface_shared: BTreeMap::new(),
        };
        c.install_base();
        c
    }

    fn install_base(&mut self) {
        for map in [FROM_WORKLOAD_MAP, TO_WORKLOAD_MAP] {
            self.put_map(map, Some(VerdictMap::default()));
        }
        let dispatch_in = Rule::new(
            vec![],
            Verdict::Dispatch {
                key: IfaceKey::Output,
                map: TO_WORKLOAD_MAP.into(),
            },
        );
        self.put_chain(
            EGRESS_ALLOWED_CHAIN,
            Some(Chain {
                base: None,
                rules: vec![dispatch_in.clone(), Rule::new(vec![], Verdict::Accept)],
            }),
        );
        self.put_chain(
            FORWARD_CHAIN,
            Some(Chain {
                base: Some(BaseChain {
                    hook: Hook::Forward,
                    priority: self.config.forward_priority,
                    policy: ChainPolicy::Accept,
                }),
                rules: vec![
                    Rule::new(
                        vec![],
                        Verdict::Dispatch {
                            key: IfaceKey::Input,
                            map: FROM_WORKLOAD_MAP.into(),
                        },
                    ),
                    dispatch_in,
                ],
            }),
        );
    }

    /// A compiler holding `model`, compiled: what [`Compiler::new`] followed by
    /// [`Compiler::load`] gives, without copying the model (the agent's snapshot path).
    ///
    /// ```
    /// use calico_core::compile::{CompileConfig, Compiler};
    /// use calico_core::model::Model;
    ///
    /// let compiler = Compiler::from_model(CompileConfig::new("host-a"), Model::new());
    /// assert!(compiler.model().workload_endpoints.is_empty());
    /// ```
    pub fn from_model(config: CompileConfig, model: Model) -> Compiler {
        let mut c = Compiler::new(config);
        c.model = model;
        c.index_fresh_model();
        c
    }

    /// Compiles `self.model` into a compiler that has seen nothing yet: the same steps
    /// `apply` takes for each resource, in the same order (profiles, policies, endpoints).
    /// Profile labels reach endpoints when the endpoints are indexed, so no endpoint needs
    /// re-reading here.
    fn index_fresh_model(&mut self) {
        let profiles: Vec<String> = self.model.profiles.keys().cloned().collect();
        for name in &profiles {
            self.profile_changed(name, false);
        }
        let policies: Vec<PolicyKey> = self.model.policies.keys().cloned().collect();
        for key in &policies {
            self.policy_changed(key);
        }
        let workloads: Vec<WorkloadEndpointId> =
            self.model.workload_endpoints.keys().cloned().collect();
        for id in &workloads {
            self.workload_changed(id, None);
        }
        let hosts: Vec<String> = self.model.host_endpoints.keys().cloned().collect();
        for name in hosts {
            self.refresh_endpoint(EndpointKey::Host(name));
        }
    }

    /// Feeds every resource of a model.
    pub fn load(&mut self, model: &Model) {
        let fresh = self.model.workload_endpoints.is_empty()
            && self.model.host_endpoints.is_empty()
            && self.model.policies.is_empty()
            && self.model.profiles.is_empty();
        if fresh {
            self.model = model.clone();
            self.index_fresh_model();
            return;
        }
        // Profiles first, so that endpoints see their inherited labels at once.
        for p in model.profiles.values() {
            self.apply(&Update::Upsert(Resource::Profile(p.clone())));
        }
        for p in model.policies.values() {
            self.apply(&Update::Upsert(Resource::Policy(p.clone())));
        }
        for e in model.workload_endpoints.values() {
            // As `apply` does, without cloning the endpoint twice.
            let old = self
                .model
                .workload_endpoints
                .insert(e.id.clone(), e.clone());
            self.workload_changed(&e.id, old.map(|o| o.interface_name));
        }
        for e in model.host_endpoints.values() {
            self.apply(&Update::Upsert(Resource::HostEndpoint(e.clone())));
        }
    }

    /// The current IR.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// The model as fed so far.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The changes made to the IR since the last call, in dependency order.
    pub fn take_changes(&mut self) -> ChangeSet {
        let (sets_before, sets) = split_before(&mut self.before_sets);
        let (maps_before, maps) = split_before(&mut self.before_maps);
        let (chains_before, chains) = split_before(&mut self.before_chains);
        let before = Ruleset {
            sets: sets_before,
            maps: maps_before,
            chains: chains_before,
        };
        let touched = Touched {
            sets,
            maps,
            chains,
            set_elements: std::mem::take(&mut self.before_set_elements),
            map_elements: std::mem::take(&mut self.before_map_elements),
        };
        diff_keys(&before, &self.ruleset, touched)
    }

    /// Applies one update (it must be valid: see [`Resource::validate`]).
    pub fn apply(&mut self, update: &Update) {
        match update {
            Update::Upsert(Resource::WorkloadEndpoint(ep)) => {
                let old = self
                    .model
                    .workload_endpoints
                    .insert(ep.id.clone(), ep.clone());
                self.workload_changed(&ep.id, old.as_ref().map(|o| o.interface_name.clone()));
            }
            Update::Remove(ResourceKey::WorkloadEndpoint(id)) => {
                if let Some(old) = self.model.workload_endpoints.remove(id) {
                    self.workload_changed(id, Some(old.interface_name));
                }
            }
            Update::Upsert(Resource::HostEndpoint(ep)) => {
                self.model
                    .host_endpoints
                    .insert(ep.name.clone(), ep.clone());
                self.refresh_endpoint(EndpointKey::Host(ep.name.clone()));
            }
            Update::Remove(ResourceKey::HostEndpoint(name)) => {
                self.model.host_endpoints.remove(name);
                self.refresh_endpoint(EndpointKey::Host(name.clone()));
            }
            Update::Upsert(Resource::Policy(p)) => {
                let key = (p.namespace.clone(), p.name.clone());
                self.model.policies.insert(key.clone(), p.clone());
                self.policy_changed(&key);
            }
            Update::Remove(ResourceKey::Policy { namespace, name }) => {
                let key = (namespace.clone(), name.clone());
                if self.model.policies.remove(&key).is_some() {
                    self.policy_changed(&key);
                }
            }
            Update::Upsert(Resource::Profile(p)) => {
                let old = self.model.profiles.insert(p.name.clone(), p.clone());
                let labels_changed =
                    old.as_ref().map(|o| &o.labels_to_apply) != Some(&p.labels_to_apply);
                self.profile_changed(&p.name, labels_changed);
            }
            Update::Remove(ResourceKey::Profile(name)) => {
                if let Some(old) = self.model.profiles.remove(name) {
                    self.profile_changed(name, !old.labels_to_apply.is_empty());
                }
            }
            // Pools, BGP settings and nodes do not affect ACLs.
            Update::Upsert(r) => {
                let _ = self.model.apply(Update::Upsert(r.clone()));
            }
            Update::Remove(k) => {
                let _ = self.model.apply(Update::Remove(k.clone()));
            }
        }
    }

    // ---- change tracking ----

    fn put_set(&mut self, name: &str, set: Option<Set>) {
        if !self.before_sets.contains_key(name) {
            let mut before = self.ruleset.sets.get(name).cloned();
            // Undo this round's element changes, so the copy is the set as it was.
            if let Some(touched) = self.before_set_elements.remove(name) {
                if let Some(b) = before.as_mut() {
                    for (e, was) in touched {
                        if was {
                            b.elements.insert(e);
                        } else {
                            b.elements.remove(&e);
                        }
                    }
                }
            }
            self.before_sets.insert(name.to_string(), before);
        }
        match (set, self.ruleset.sets.get_mut(name)) {
            (Some(s), Some(slot)) => *slot = s,
            (Some(s), None) => {
                self.ruleset.sets.insert(name.to_string(), s);
            }
            (None, _) => {
                self.ruleset.sets.remove(name);
            }
        }
    }

    /// Adds (`present`) or removes one element of an existing set, recording its old state.
    fn set_element(&mut self, name: &str, e: SetElement, present: bool) {
        let Some(set) = self.ruleset.sets.get_mut(name) else {
            return;
        };
        let changed = if present {
            set.elements.insert(e)
        } else {
            set.elements.remove(&e)
        };
        if !changed || self.before_sets.contains_key(name) {
            return;
        }
        if !self.before_set_elements.contains_key(name) {
            self.before_set_elements
                .insert(name.to_string(), BTreeMap::new());
        }
        if let Some(touched) = self.before_set_elements.get_mut(name) {
            touched.entry(e).or_insert(!present);
        }
    }

    fn put_map(&mut self, name: &str, map: Option<VerdictMap>) {
        if !self.before_maps.contains_key(name) {
            let mut before = self.ruleset.maps.get(name).cloned();
            // Undo this round's element changes, so the copy is the map as it was.
            if let Some(touched) = self.before_map_elements.remove(name) {
                if let Some(b) = before.as_mut() {
                    for (key, old) in touched {
                        match old {
                            Some(v) => b.elements.insert(key, v),
                            None => b.elements.remove(&key),
                        };
                    }
                }
            }
            self.before_maps.insert(name.to_string(), before);
        }
        match map {
            Some(m) => self.ruleset.maps.insert(name.to_string(), m),
            None => self.ruleset.maps.remove(name),
        };
    }

    /// Sets (`Some`) or removes one element of an existing map, recording its old verdict.
    fn map_element(&mut self, name: &str, key: &str, verdict: Option<Verdict>) {
        let Some(map) = self.ruleset.maps.get_mut(name) else {
            return;
        };
        if map.elements.get(key) == verdict.as_ref() {
            return;
        }
        let old = match verdict {
            Some(v) => map.elements.insert(key.to_string(), v),
            None => map.elements.remove(key),
        };
        if self.before_maps.contains_key(name) {
            return;
        }
        if !self.before_map_elements.contains_key(name) {
            self.before_map_elements
                .insert(name.to_string(), BTreeMap::new());
        }
        if let Some(touched) = self.before_map_elements.get_mut(name) {
            touched.entry(key.to_string()).or_insert(old);
        }
    }

    fn put_chain(&mut self, name: &str, chain: Option<Chain>) {
        if self.ruleset.chains.get(name) == chain.as_ref() {
            return;
        }
        if !self.before_chains.contains_key(name) {
            let before = self.ruleset.chains.get(name).cloned();
            self.before_chains.insert(name.to_string(), before);
        }
        match (chain, self.ruleset.chains.get_mut(name)) {
            (Some(c), Some(slot)) => *slot = c,
            (Some(c), None) => {
                self.ruleset.chains.insert(name.to_string(), c);
            }
            (None, _) => {
                self.ruleset.chains.remove(name);
            }
        }
    }

    /// One more interface (`iface`) uses the shared `chain`; returns the
    /// name to jump to. The first user creates the chain. Names hash the whole list, so an
    /// existing chain of that name with other rules is a collision of the 64-bit hash:
    /// `iface` then gets a chain of its own (named after the interface too) rather than
    /// another list's policies.
    fn acquire_shared_chain(&mut self, chain: SharedChain, iface: &str) -> String {
        let SharedChain {
            prefix,
            name,
            rules,
        } = chain;
        let name = match self.ruleset.chains.get(&name) {
            Some(c) if self.shared_refs.contains_key(&name) && c.rules != rules => {
                let own = chain_name(prefix, &[&name, iface]);
                warn!(
                    chain = name,
                    interface = iface,
                    fallback = own,
                    "two policy or profile lists hash to one chain name; this interface gets its own"
                );
                own
            }
            _ => name,
        };
        let users = self.shared_refs.entry(name.clone()).or_insert(0);
        *users += 1;
        if *users == 1 {
            self.put_chain(&name, Some(Chain { base: None, rules }));
        }
        name
    }

    /// The interfaces that used `names` no longer do: a shared chain goes with its last user.
    fn release_shared_chains(&mut self, names: Vec<String>) {
        for name in names {
            if let Some(users) = self.shared_refs.get_mut(&name) {
                *users -= 1;
                if *users == 0 {
                    self.shared_refs.remove(&name);
                    self.put_chain(&name, None);
                }
            }
        }
    }

    // ---- endpoints and set membership ----

    fn contribution(&self, key: &EndpointKey) -> Option<(crate::model::Labels, Contribution)> {
        match key {
            EndpointKey::Workload(id) => self.model.workload_endpoints.get(id).map(|ep| {
                (
                    effective::workload_labels(&self.model, ep),
                    Contribution {
                        addresses: ep.ip_networks.iter().map(|n| n.addr()).collect(),
                        ports: ep.ports.clone(),
                    },
                )
            }),
            EndpointKey::Host(name) => self.model.host_endpoints.get(name).map(|ep| {
                (
                    effective::host_labels(&self.model, ep),
                    Contribution {
                        addresses: ep.expected_ips.clone(),
                        ports: ep.ports.clone(),
                    },
                )
            }),
        }
    }

    /// The elements `c` contributes to the set `spec`.
    fn elements_of(spec: &SetSpec, c: &Contribution) -> Vec<SetElement> {
        match spec {
            SetSpec::Selector { v4, .. } => c
                .addresses
                .iter()
                .filter(|a| a.is_ipv4() == *v4)
                .map(|a| SetElement::Addr(*a))
                .collect(),
            SetSpec::NamedPort { port, v4, .. } => c
                .addresses
                .iter()
                .filter(|a| a.is_ipv4() == *v4)
                .flat_map(|a| {
                    c.ports
                        .iter()
                        .filter(|p| &p.name == port)
                        .map(move |p| SetElement::AddrProtoPort(*a, p.protocol.0, p.port))
                })
                .collect(),
            SetSpec::Nets { .. } => Vec::new(),
        }
    }

    fn add_contribution(&mut self, set: &str, c: &Contribution, sign: bool) {
        let Some((spec, _)) = self.set_refs.get(set) else {
            return;
        };
        let elements = Self::elements_of(spec, c);
        if elements.is_empty() {
            return;
        }
        if !self.element_refs.contains_key(set) {
            self.element_refs.insert(set.to_string(), BTreeMap::new());
        }
        for e in elements {
            let Some(counts) = self.element_refs.get_mut(set) else {
                return;
            };
            let n = counts.entry(e).or_insert(0);
            let (was, now) = if sign {
                *n += 1;
                (*n - 1, *n)
            } else {
                *n = n.saturating_sub(1);
                (*n + 1, *n)
            };
            if now == 0 {
                counts.remove(&e);
            }
            if was == 0 && now > 0 {
                self.set_element(set, e, true);
            } else if was > 0 && now == 0 {
                self.set_element(set, e, false);
            }
        }
    }

    /// Re-reads an endpoint (any node) and updates the sets it is a member of.
    fn refresh_endpoint(&mut self, key: EndpointKey) {
        let contribution = self.contribution(&key);
        let id = match (self.endpoint_ids.get(&key), &contribution) {
            (Some(id), _) => *id,
            (None, None) => return,
            (None, Some(_)) => {
                self.next_endpoint_id += 1;
                self.endpoint_ids.insert(key.clone(), self.next_endpoint_id);
                self.next_endpoint_id
            }
        };
        // The index is set aside while its set names are walked (no copies of the names);
        // adding contributions never reads it.
        let mut members = std::mem::take(&mut self.members);
        if let Some(old) = self.contributions.remove(&id) {
            for s in members.matching(&id) {
                self.add_contribution(s, &old, false);
            }
        }
        match contribution {
            Some((labels, contribution)) => {
                members.set_item(id, labels);
                for s in members.matching(&id) {
                    self.add_contribution(s, &contribution, true);
                }
                self.members = members;
                self.contributions.insert(id, contribution);
            }
            None => {
                members.remove_item(&id);
                self.members = members;
                self.endpoint_ids.remove(&key);
            }
        }
    }

    fn workload_changed(&mut self, id: &WorkloadEndpointId, old_iface: Option<String>) {
        self.refresh_endpoint(EndpointKey::Workload(id.clone()));
        // Local endpoints: their labels (for policy selection) and interface.
        let local = self
            .model
            .workload_endpoints
            .get(id)
            .filter(|ep| ep.node == self.config.node)
            .map(|ep| {
                (
                    effective::workload_labels(&self.model, ep),
                    ep.interface_name.clone(),
                )
            });
        if let Some(old) = &old_iface {
            if let Some(ids) = self.by_iface.get_mut(old) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_iface.remove(old);
                }
            }
        }
        let mut ifaces: BTreeSet<String> = old_iface.into_iter().collect();
        match local {
            Some((labels, iface)) => {
                self.applies.set_item(id.clone(), labels);
                self.by_iface
                    .entry(iface.clone())
                    .or_default()
                    .insert(id.clone());
                ifaces.insert(iface);
            }
            None => {
                self.applies.remove_item(id);
            }
        }
        for iface in ifaces {
            self.render_interface(&iface);
        }
    }

    // ---- policies and profiles ----

    /// Drops one reference to each set; sets nobody refers to any more are deleted.
    fn release_specs(&mut self, specs: Vec<SetSpec>) {
        for spec in specs {
            let name = spec.name();
            let Some((_, n)) = self.set_refs.get_mut(&name) else {
                continue;
            };
            *n -= 1;
            if *n == 0 {
                self.set_refs.remove(&name);
                self.members.remove_selector(&name);
                self.element_refs.remove(&name);
                self.put_set(&name, None);
            }
        }
    }

    fn acquire_sets(&mut self, owner: SetOwner, specs: Vec<SetSpec>) {
        for spec in &specs {
            let name = spec.name();
            if let Some((_, n)) = self.set_refs.get_mut(&name) {
                *n += 1;
                continue;
            }
            self.set_refs.insert(name.clone(), (spec.clone(), 1));
            let mut set = Set {
                key: spec.key(),
                elements: BTreeSet::new(),
            };
            if let SetSpec::Nets { nets, .. } = spec {
                set.elements = nets.iter().map(|n| SetElement::Net(*n)).collect();
            }
            self.put_set(&name, Some(set));
            let selector = match spec {
                SetSpec::Selector { selector, .. } | SetSpec::NamedPort { selector, .. } => {
                    selector.clone()
                }
                SetSpec::Nets { .. } => continue,
            };
            let changes = self.members.add_selector(name.clone(), selector);
            for c in changes {
                if c.matches {
                    if let Some(contribution) = self.contributions.get(&c.item).cloned() {
                        self.add_contribution(&name, &contribution, true);
                    }
                }
            }
        }
        self.used_sets.insert(owner, specs);
    }

    /// Compiles a policy's or profile's rules for one direction.
    fn compile_rules(
        &self,
        rules: &[crate::model::Rule],
        namespace: Option<&str>,
        dir: PolicyType,
        is_policy: bool,
        label: &str,
        specs: &mut Vec<SetSpec>,
    ) -> Chain {
        let allow = match dir {
            PolicyType::Ingress => Verdict::Accept,
            PolicyType::Egress => Verdict::Goto(EGRESS_ALLOWED_CHAIN.into()),
        };
        let pass = if is_policy {
            (
                vec![Statement::SetMark(self.config.pass_mark)],
                Verdict::Return,
            )
        } else {
            (vec![], Verdict::Return)
        };
        let verdicts = Verdicts {
            allow,
            pass,
            log_prefix: format!("calico {label} "),
        };
        let mut chain = Chain::default();
        for rule in rules {
            let (ir, sets) = compile_rule(rule, namespace, &verdicts);
            chain.rules.extend(ir);
            specs.extend(sets);
        }
        chain
    }

    fn policy_changed(&mut self, key: &PolicyKey) {
        let owner = SetOwner::Policy(key.clone());
        let before: BTreeSet<WorkloadEndpointId> =
            self.applies.members(key).cloned().unwrap_or_default();
        let policy = self.model.policies.get(key).cloned();
        let mut specs = Vec::new();
        for dir in [PolicyType::Ingress, PolicyType::Egress] {
            let name = policy_chain(key, dir);
            let chain = policy.as_ref().filter(|p| p.governs(dir)).map(|p| {
                self.compile_rules(
                    p.rules(dir),
                    p.namespace.as_deref(),
                    dir,
                    true,
                    &effective::policy_name(p),
                    &mut specs,
                )
            });
            self.put_chain(&name, chain);
        }
        specs.sort();
        specs.dedup();
        // Acquire before releasing, so that sets the new version still uses stay put.
        let old_specs = self.used_sets.remove(&owner).unwrap_or_default();
        match &policy {
            Some(p) => {
                self.acquire_sets(owner, specs);
                self.applies.add_selector(key.clone(), applies_selector(p));
            }
            None => {
                self.applies.remove_selector(key);
            }
        }
        self.release_specs(old_specs);
        let after = self.applies.members(key).cloned().unwrap_or_default();
        let ifaces: BTreeSet<String> = before
            .union(&after)
            .filter_map(|id| self.model.workload_endpoints.get(id))
            .map(|ep| ep.interface_name.clone())
            .collect();
        for iface in ifaces {
            self.render_interface(&iface);
        }
    }

    fn profile_changed(&mut self, name: &str, labels_changed: bool) {
        let owner = SetOwner::Profile(name.to_string());
        let profile = self.model.profiles.get(name).cloned();
        let mut specs = Vec::new();
        for dir in [PolicyType::Ingress, PolicyType::Egress] {
            let chain = profile.as_ref().map(|p| {
                self.compile_rules(
                    p.rules(dir),
                    None,
                    dir,
                    false,
                    &format!("profile {name}"),
                    &mut specs,
                )
            });
            self.put_chain(&profile_chain(name, dir), chain);
        }
        specs.sort();
        specs.dedup();
        let old_specs = self.used_sets.remove(&owner).unwrap_or_default();
        if profile.is_some() {
            self.acquire_sets(owner, specs);
        }
        self.release_specs(old_specs);
        // Endpoints inherit the profile's labels: re-read those that name it.
        if labels_changed {
            let workloads: Vec<WorkloadEndpointId> = self
                .model
                .workload_endpoints
                .values()
                .filter(|ep| ep.profiles.iter().any(|p| p == name))
                .map(|ep| ep.id.clone())
                .collect();
            for id in workloads {
                let iface = self.model.workload_endpoints[&id].interface_name.clone();
                self.workload_changed(&id, Some(iface));
            }
            let hosts: Vec<String> = self
                .model
                .host_endpoints
                .values()
                .filter(|ep| ep.profiles.iter().any(|p| p == name))
                .map(|ep| ep.name.clone())
                .collect();
            for h in hosts {
                self.refresh_endpoint(EndpointKey::Host(h));
            }
        }
        // Endpoint chains jump only to profiles that exist: re-render local users.
        let ifaces: BTreeSet<String> = self
            .model
            .workload_endpoints
            .values()
            .filter(|ep| ep.node == self.config.node && ep.profiles.iter().any(|p| p == name))
            .map(|ep| ep.interface_name.clone())
            .collect();
        for iface in ifaces {
            self.render_interface(&iface);
        }
    }

    // ---- per-interface chains ----

    /// Re-renders the chains, own-address sets and map entries of one local interface.
    fn render_interface(&mut self, iface: &str) {
        let owner = self
            .by_iface
            .get(iface)
            .and_then(|ids| ids.iter().next())
            .and_then(|id| self.model.workload_endpoints.get(id))
            .cloned();
        if let Some(ids) = self.by_iface.get(iface) {
            if ids.len() > 1 {
                warn!(
                    interface = iface,
                    endpoints = ?ids,
                    "several local endpoints claim one interface; only the first is programmed"
                );
            }
        }
        let old_shared = self.iface_shared.remove(iface).unwrap_or_default();
        let Some(ep) = owner else {
            for dir in [PolicyType::Ingress, PolicyType::Egress] {
                self.put_chain(&endpoint_chain(iface, dir), None);
            }
            self.release_shared_chains(old_shared);
            for v4 in [true, false] {
                if self.ruleset.sets.contains_key(&own_address_set(iface, v4)) {
                    self.put_set(&own_address_set(iface, v4), None);
                }
            }
            if self.ruleset.maps[FROM_WORKLOAD_MAP]
                .elements
                .contains_key(iface)
            {
                self.map_element(FROM_WORKLOAD_MAP, iface, None);
                self.map_element(TO_WORKLOAD_MAP, iface, None);
            }
            return;
        };
        // Own addresses, for anti-spoofing: per family, the match a source must fail to be
        // dropped. One address is compared inline and several go in a set; with none, every
        // source of that family is spoofed. Sets are kept for the rare multi-address case
        // only: each named set makes every later set lookup by name in the kernel slower.
        let mut spoof_checks: [Option<Match>; 2] = [None, None];
        for v4 in [true, false] {
            let addrs: BTreeSet<IpAddr> = ep
                .ip_networks
                .iter()
                .map(|n| n.addr())
                .filter(|a| a.is_ipv4() == v4)
                .collect();
            let name = own_address_set(iface, v4);
            if addrs.len() < 2 && self.ruleset.sets.contains_key(&name) {
                self.put_set(&name, None);
            }
            let check = match addrs.len() {
                0 => None,
                1 => addrs.first().map(|&addr| Match::AddrEq {
                    side: ir::Side::Src,
                    addr,
                    negate: true,
                }),
                _ => {
                    let set = Set {
                        key: if v4 {
                            ir::SetKey::Ipv4Addr
                        } else {
                            ir::SetKey::Ipv6Addr
                        },
                        elements: addrs.into_iter().map(SetElement::Addr).collect(),
                    };
                    if self.ruleset.sets.get(&name) != Some(&set) {
                        self.put_set(&name, Some(set));
                    }
                    Some(Match::AddrInSet {
                        side: ir::Side::Src,
                        set: name,
                        negate: true,
                    })
                }
            };
            spoof_checks[usize::from(v4)] = check;
        }
        let mut policies: Vec<&Policy> = self
            .applies
            .matching(&ep.id)
            .filter_map(|k| self.model.policies.get(k))
            .collect();
        policies.sort_by(|a, b| policy_order(a, b));
        // Per direction: (policy chain, whether the policy can Pass) in order, and the
        // chains of the endpoint's profiles that exist.
        let lists: Vec<(PolicyType, PolicyList, Vec<String>)> =
            [PolicyType::Ingress, PolicyType::Egress]
                .into_iter()
                .map(|dir| {
                    let governing = policies
                        .iter()
                        .filter(|p| p.governs(dir))
                        .map(|p| {
                            let key = (p.namespace.clone(), p.name.clone());
                            let pass = p
                                .rules(dir)
                                .iter()
                                .any(|r| r.action == crate::model::Action::Pass);
                            (policy_chain(&key, dir), pass)
                        })
                        .collect();
                    let profiles = ep
                        .profiles
                        .iter()
                        .filter(|name| self.model.profiles.contains_key(*name))
                        .map(|name| profile_chain(name, dir))
                        .collect();
                    (dir, governing, profiles)
                })
                .collect();
        let mark = self.config.pass_mark;
        // Shared chains are taken before the old ones are let go, so that a chain both
        // versions use stays put.
        let mut shared = Vec::new();
        for (dir, governing, profiles) in lists {
            let after_policies = if profiles.is_empty() {
                Verdict::Drop
            } else {
                let name = self.acquire_shared_chain(profile_list_chain(&profiles, dir), iface);
                shared.push(name.clone());
                Verdict::Goto(name)
            };
            let mut rules = vec![
                Rule::new(
                    vec![Match::Ct(CtState::EstablishedOrRelated)],
                    Verdict::Accept,
                ),
                Rule::new(vec![Match::Ct(CtState::Invalid)], Verdict::Drop),
            ];
            if dir == PolicyType::Egress {
                for v4 in [true, false] {
                    let mut matches = vec![Match::Ipv4(v4)];
                    matches.extend(spoof_checks[usize::from(v4)].clone());
                    rules.push(Rule::new(matches, Verdict::Drop));
                }
            }
            if governing.is_empty() {
                rules.push(Rule::new(vec![], after_policies));
            } else {
                let any_pass = governing.iter().any(|(_, pass)| *pass);
                // With nothing to pass to, a Pass ends at the drop below like a miss.
                let pass_matters = any_pass && after_policies != Verdict::Drop;
                if any_pass {
                    // A mark left by an earlier chain (the sender's egress) must not read as
                    // a Pass of this endpoint's policies.
                    rules.push(Rule {
                        matches: vec![],
                        statements: vec![Statement::ClearMark(mark)],
                        verdict: None,
                    });
                }
                let target = if let [(only, _)] = governing.as_slice() {
                    only.clone()
                } else {
                    let list = policy_list_chain(&governing, dir, mark);
                    let name = self.acquire_shared_chain(list, iface);
                    shared.push(name.clone());
                    name
                };
                rules.push(Rule::new(vec![], Verdict::Jump(target)));
                if pass_matters {
                    rules.push(Rule::new(vec![Match::MarkSet(mark)], after_policies));
                }
                rules.push(Rule::new(vec![], Verdict::Drop));
            }
            self.put_chain(
                &endpoint_chain(iface, dir),
                Some(Chain { base: None, rules }),
            );
        }
        self.release_shared_chains(old_shared);
        self.iface_shared.insert(iface.to_string(), shared);
        let from = Verdict::Goto(endpoint_chain(iface, PolicyType::Egress));
        let to = Verdict::Goto(endpoint_chain(iface, PolicyType::Ingress));
        if self.ruleset.maps[FROM_WORKLOAD_MAP].elements.get(iface) != Some(&from) {
            self.map_element(FROM_WORKLOAD_MAP, iface, Some(from));
            self.map_element(TO_WORKLOAD_MAP, iface, Some(to));
        }
    }
}

/// The selector deciding whether a policy applies to a workload endpoint: its own, limited to
/// its namespace for a namespaced policy.
fn applies_selector(p: &Policy) -> Selector {
    match &p.namespace {
        Some(ns) => p
            .selector
            .and(&Selector::label_equals(crate::model::LABEL_NAMESPACE, ns)),
        None => p.selector.clone(),
    }
}

/// Empties a record of touched objects into the old versions that existed and the names of
/// all touched ones (no copies).
fn split_before<T>(
    before: &mut BTreeMap<String, Option<T>>,
) -> (BTreeMap<String, T>, BTreeSet<String>) {
    let mut existing = BTreeMap::new();
    let mut names = BTreeSet::new();
    for (name, old) in std::mem::take(before) {
        if let Some(old) = old {
            existing.insert(name.clone(), old);
        }
        names.insert(name);
    }
    (existing, names)
}

#[cfg(test)]
mod tests;

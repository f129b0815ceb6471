//! The flow record and how one logged packet is named: endpoints by address, the deciding
//! policy and rule through [`calico_core::compile::describe_with_interfaces`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use calico_core::calc::effective;
use calico_core::compile::{
    describe_with_interfaces, first_packet_hook, ChainNames, ChainOwner, LogRef, LogRule,
    LogVerdict, DEFAULT_TIER, PROFILE_TIER,
};
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::InterfaceAddresses;
use calico_core::model::{Model, PolicyType};
use calico_linux::flowlog::{FiveTuple, LogPacket};
use serde::{Deserialize, Serialize};

/// One flow over one aggregation interval, as `/flows`, the flow-log file and the CLI see
/// it (JSON field names in camelCase).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRecord {
    /// First packet logged, Unix time in milliseconds.
    pub first_seen_ms: u64,
    /// Last packet logged, Unix time in milliseconds.
    pub last_seen_ms: u64,
    /// Source address.
    pub src_ip: IpAddr,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...).
    pub proto: u8,
    /// Source port (0 without ports).
    pub src_port: u16,
    /// Destination port (0 without ports).
    pub dst_port: u16,
    /// `ingress` (policy of the destination) or `egress` (of the source).
    pub direction: String,
    /// `allow` or `deny`.
    pub verdict: String,
    /// The source endpoint (`orchestrator/workload/endpoint`), when known.
    pub src_endpoint: Option<String>,
    /// Its labels (effective, profiles' included).
    pub src_labels: BTreeMap<String, String>,
    /// The destination endpoint, when known.
    pub dst_endpoint: Option<String>,
    /// Its labels.
    pub dst_labels: BTreeMap<String, String>,
    /// The tier of the deciding policy (`default`).
    pub tier: String,
    /// What decided: `policy`, `profile`, `endpoint` (default deny, anti-spoofing), `list`
    /// (the profiles' default deny) or `unknown` (a chain the model does not explain).
    pub policy_kind: String,
    /// The deciding policy (`namespace/name` or `name`), profile or endpoint, by name.
    pub policy: String,
    /// The user's rule index in the policy's or profile's direction, when a rule decided.
    pub rule: Option<usize>,
    /// The rule's own name, if it has one.
    pub rule_name: Option<String>,
    /// The whole reason for a person: `policy shop/allow-web ingress rule 1 ("web")`.
    pub reason: String,
    /// Packets logged: an allowed connection's first packet; denied packets, rate-limited.
    pub packets: u64,
    /// Bytes of the packets logged (IP length).
    pub bytes: u64,
}

/// Names what a logged packet's prefix and addresses refer to; rebuilt when the model or
/// the ruleset changes.
#[derive(Clone, Debug, Default)]
pub struct Namer {
    names: ChainNames,
    endpoints: HashMap<IpAddr, (String, BTreeMap<String, String>)>,
    /// The rules, as the agent programs them: a connection's first packet logged after
    /// the policy is replayed through them.
    ruleset: Arc<Ruleset>,
}

/// Why a logged packet names no decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unnamed {
    /// Its prefix or headers could not be read.
    Unreadable,
    /// A connection's first packet the kernel allowed, which the rules replayed do not
    /// allow: they changed since, or the kernel's table drifted from them (`calico-rs
    /// trace` tells which).
    Unattributed,
}

/// The naming part of a record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    pub(super) verdict: LogVerdict,
    pub(super) direction: Option<PolicyType>,
    pub(super) kind: &'static str,
    pub(super) tier: String,
    pub(super) policy: String,
    pub(super) rule: Option<usize>,
    pub(super) rule_name: Option<String>,
    pub(super) reason: String,
}

impl Namer {
    /// The names of `ruleset` (compiled for `node` from `model`) and of every workload
    /// endpoint's addresses. The chains of host endpoints found by their `expectedIPs` are
    /// not named: [`Namer::with_interfaces`] names them.
    pub fn new(model: &Model, node: &str, ruleset: Arc<Ruleset>) -> Namer {
        Namer::with_interfaces(model, node, &InterfaceAddresses::new(), ruleset)
    }

    /// [`Namer::new`] for a ruleset compiled with the interface addresses `addrs` (as the
    /// agent's is, [`calico_core::agent::Compiled`]): the chains of host endpoints found by
    /// their `expectedIPs` are named too.
    pub fn with_interfaces(
        model: &Model,
        node: &str,
        addrs: &InterfaceAddresses,
        ruleset: Arc<Ruleset>,
    ) -> Namer {
        let mut endpoints = HashMap::new();
        for ep in model.workload_endpoints.values() {
            let labels: BTreeMap<String, String> =
                effective::workload_labels(model, ep).into_iter().collect();
            for net in &ep.ip_networks {
                endpoints
                    .entry(net.addr())
                    .or_insert_with(|| (ep.id.to_string(), labels.clone()));
            }
        }
        // Host endpoints by their expected addresses, under their names.
        for ep in model.host_endpoints.values().filter(|ep| ep.node == node) {
            let labels: BTreeMap<String, String> =
                effective::host_labels(model, ep).into_iter().collect();
            for ip in &ep.expected_ips {
                endpoints
                    .entry(*ip)
                    .or_insert_with(|| (format!("host endpoint {}", ep.name), labels.clone()));
            }
        }
        Namer {
            names: describe_with_interfaces(model, node, addrs, &ruleset),
            endpoints,
            ruleset,
        }
    }

    /// What a logged packet reports, as flow-log references: its own prefix for a denial
    /// or a staged policy's report; for a connection's first packet logged after the
    /// policy (`F <hook>`), the references of the rules that allowed it (one per direction
    /// of policy it crossed; none when no policy governs it), found by replaying it
    /// through the rules ([`calico_mock::replay_first_packet`]); `iface` names its
    /// interfaces by index.
    pub fn reports(
        &self,
        p: &LogPacket,
        iface: &dyn Fn(u32) -> Option<String>,
    ) -> Result<Vec<LogRef>, Unnamed> {
        let name = |i: Option<u32>| i.and_then(iface).unwrap_or_default();
        let Some(hook) = first_packet_hook(&p.prefix) else {
            let log: LogRef = p.prefix.parse().map_err(|_| Unnamed::Unreadable)?;
            return Ok(vec![log.attributed_to(Some(&name(p.in_ifindex)))]);
        };
        let packet = p.packet().ok_or(Unnamed::Unreadable)?;
        let (iif, oif) = (name(p.in_ifindex), name(p.out_ifindex));
        let replay = calico_mock::replay_first_packet(&self.ruleset, hook, &packet, &iif, &oif);
        if !replay.allowed {
            return Err(Unnamed::Unattributed);
        }
        replay
            .refs
            .iter()
            .map(|r| r.parse().map_err(|_| Unnamed::Unreadable))
            .collect()
    }

    /// The endpoint owning `ip`, with its labels.
    pub fn endpoint(&self, ip: IpAddr) -> Option<&(String, BTreeMap<String, String>)> {
        self.endpoints.get(&ip)
    }

    /// What a log prefix names.
    pub fn decision(&self, log: &LogRef) -> Decision {
        let owner = self.names.chain(&log.chain);
        let (rule, rule_name, reason) = match log.rule {
            LogRule::Rule(i) => match self.names.user_rule(&log.chain, i) {
                Some(r) => (Some(i), r.rule_name.clone(), r.to_string()),
                None => (Some(i), None, format!("chain {} rule {i}", log.chain)),
            },
            LogRule::End => (None, None, end_reason(owner)),
            LogRule::Spoof => (None, None, spoof_reason(owner)),
        };
        let reason = match (log.verdict, log.rule) {
            (LogVerdict::StagedDeny, LogRule::End) => format!(
                "{}: would deny at the end of its tier (staged: not enforced)",
                owner.map_or_else(|| log.chain.clone(), |o| o.to_string())
            ),
            (LogVerdict::StagedDeny, _) => format!("{reason}: would deny (staged: not enforced)"),
            _ => reason,
        };
        Decision {
            verdict: log.verdict,
            direction: owner.and_then(|o| o.direction()),
            kind: owner.map_or("unknown", |o| o.kind()),
            tier: self.tier(owner, log),
            policy: owner.map_or_else(|| log.chain.clone(), |o| o.name()),
            rule,
            rule_name,
            reason,
        }
    }
}

impl Namer {
    /// The tier a verdict belongs to: a policy's (or, for an end-of-tier drop, the tier's);
    /// Calico's `__PROFILE__` for profiles and for the drop after the last tier when no
    /// profile allowed (or none exists); `default` for anti-spoofing; none (empty) for a
    /// drop of a fixed chain (a workload's packet to the host), which no policy decided.
    fn tier(&self, owner: Option<&ChainOwner>, log: &LogRef) -> String {
        if log.rule == LogRule::Spoof {
            return DEFAULT_TIER.into();
        }
        match owner {
            Some(ChainOwner::Profile { .. } | ChainOwner::ProfileList { .. }) => {
                return PROFILE_TIER.into()
            }
            Some(ChainOwner::Base { .. }) => return String::new(),
            _ => {}
        }
        match (self.names.tier(&log.chain), log.rule) {
            (Some(t), _) => t.into(),
            (None, LogRule::End) => PROFILE_TIER.into(),
            (None, _) => DEFAULT_TIER.into(),
        }
    }
}

fn end_reason(owner: Option<&calico_core::compile::ChainOwner>) -> String {
    use calico_core::compile::{ChainOwner, WORKLOAD_TO_HOST_CHAIN};
    match owner {
        Some(o @ ChainOwner::ProfileList { .. }) => {
            format!("{o}: no profile allowed: default deny")
        }
        Some(ChainOwner::Base { chain }) if chain == WORKLOAD_TO_HOST_CHAIN => {
            "workload to host: dropped (defaultEndpointToHostAction Drop)".into()
        }
        Some(o) => format!("{o}: no policy allowed: default deny (end of tier)"),
        None => "default deny".into(),
    }
}

fn spoof_reason(owner: Option<&ChainOwner>) -> String {
    match owner {
        // The shared drop, its input interface unknown.
        Some(ChainOwner::Base { .. }) | None => {
            "a workload's source address is not its own (anti-spoofing)".into()
        }
        Some(o) => format!("{o}: source address is not the endpoint's (anti-spoofing)"),
    }
}

/// A record of one flow key with its counts.
pub(super) fn record(
    namer: &Namer,
    t: &FiveTuple,
    d: &Decision,
    packets: u64,
    bytes: u64,
    first_seen_ms: u64,
    last_seen_ms: u64,
) -> FlowRecord {
    let (src_endpoint, src_labels) = namer.endpoint(t.src).cloned().unzip();
    let (dst_endpoint, dst_labels) = namer.endpoint(t.dst).cloned().unzip();
    FlowRecord {
        first_seen_ms,
        last_seen_ms,
        src_ip: t.src,
        dst_ip: t.dst,
        proto: t.proto,
        src_port: t.src_port,
        dst_port: t.dst_port,
        direction: match d.direction {
            Some(PolicyType::Egress) => "egress",
            _ => "ingress",
        }
        .into(),
        verdict: match d.verdict {
            LogVerdict::Allow => "allow",
            LogVerdict::Deny => "deny",
            LogVerdict::StagedDeny => "staged-deny",
        }
        .into(),
        src_endpoint,
        src_labels: src_labels.unwrap_or_default(),
        dst_endpoint,
        dst_labels: dst_labels.unwrap_or_default(),
        tier: d.tier.clone(),
        policy_kind: d.kind.into(),
        policy: d.policy.clone(),
        rule: d.rule,
        rule_name: d.rule_name.clone(),
        reason: d.reason.clone(),
        packets,
        bytes,
    }
}

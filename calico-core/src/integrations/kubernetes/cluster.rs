//! Kubernetes `ClusterNetworkPolicy` (`policy.networking.k8s.io/v1alpha2`, the
//! network-policy-api project's successor of AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy), translated as Calico 3.32 does: into global policies of
//! Calico's `kube-admin` tier (order 1,000, before every other tier) or `kube-baseline`
//! tier (order 10,000,000, after the default tier), both with default action `Pass`.
//!
//! Semantics (the API's documentation):
//! * `tier: Admin` applies before NetworkPolicy, `tier: Baseline` after it; in a tier,
//!   `priority` (0–1000, lower first) is the policy's order and its rules are tried in
//!   order, the first that matches deciding: `Accept` and `Deny` are final, `Pass` skips
//!   the rest of the tier (to NetworkPolicy, or, from the baseline, to the default: allowed).
//!   Traffic no rule matches goes on as well.
//! * `subject` and the peers select pods as the v1alpha1 kinds do (`namespaces`, or
//!   `pods` by namespace and pod labels); an egress peer may be `networks` (CIDRs).
//! * `protocols`: `tcp`/`udp`/`sctp` with a `destinationPort` (a `number` or a `range`),
//!   or a `destinationNamedPort` (any protocol); absent, everything.
//!
//! The translation builds the v1alpha1 rule shapes and shares their translation
//! (`super::admin`). Refused by field name: `nodes` and `domainNames` peers (no node
//! endpoints here; no DNS policy), a named port with a `networks` peer (the API refuses
//! it too), out-of-range priorities, ports and list lengths, an unknown tier or action.

use serde::Deserialize;

use super::admin::{
    checked, translate, AdminPeer, AdminPort, AdminPortNumber, AdminPortRange, AdminRule,
    AdminSubject, NamespacedPods,
};
use super::{LabelSelector, ObjectMeta};
use crate::integrations::TranslateError;
use crate::model::{Policy, KUBE_ADMIN_TIER, KUBE_BASELINE_TIER};

/// The API's limit on rules per direction, peers, protocols and networks per rule.
const MAX_ITEMS: usize = 25;

/// A `ClusterNetworkPolicy`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicy {
    /// Metadata (cluster-scoped: no namespace).
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: ClusterNetworkPolicySpec,
}

/// The spec of a [`ClusterNetworkPolicy`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterNetworkPolicySpec {
    /// `Admin` or `Baseline`.
    pub tier: String,
    /// 0–1000; lower applies first within the tier.
    pub priority: i64,
    /// The pods the policy applies to.
    pub subject: AdminSubject,
    /// Rules for traffic to the subject, in order.
    #[serde(default)]
    pub ingress: Vec<ClusterRule>,
    /// Rules for traffic from the subject, in order.
    #[serde(default)]
    pub egress: Vec<ClusterRule>,
}

/// One rule (ingress: `from`; egress: `to`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterRule {
    /// A name for humans (at most 100 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// `Accept`, `Deny` or `Pass`.
    pub action: String,
    /// Ingress peers (1–25).
    #[serde(default)]
    pub from: Vec<ClusterPeer>,
    /// Egress peers (1–25).
    #[serde(default)]
    pub to: Vec<ClusterPeer>,
    /// Protocol-specific matches (1–25); everything when absent.
    #[serde(default)]
    pub protocols: Option<Vec<ClusterProtocol>>,
}

/// A peer: exactly one field set (`nodes`, `networks`, `domainNames` only as egress peers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterPeer {
    /// Every pod of the namespaces selected.
    #[serde(default)]
    pub namespaces: Option<LabelSelector>,
    /// The pods selected in the namespaces selected.
    #[serde(default)]
    pub pods: Option<NamespacedPods>,
    /// Nodes by label (refused: no node endpoints here).
    #[serde(default)]
    pub nodes: Option<LabelSelector>,
    /// CIDRs.
    #[serde(default)]
    pub networks: Option<Vec<String>>,
    /// Domain names (refused: no DNS policy here).
    #[serde(default)]
    pub domain_names: Option<Vec<String>>,
}

/// One protocol match: exactly one field set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterProtocol {
    /// TCP.
    #[serde(default)]
    pub tcp: Option<ClusterPortMatch>,
    /// UDP.
    #[serde(default)]
    pub udp: Option<ClusterPortMatch>,
    /// SCTP.
    #[serde(default)]
    pub sctp: Option<ClusterPortMatch>,
    /// A named container port, whatever its protocol.
    #[serde(default)]
    pub destination_named_port: Option<String>,
}

/// The port of one protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterPortMatch {
    /// The destination port (required by the API).
    #[serde(default)]
    pub destination_port: Option<ClusterPort>,
}

/// A port number or a range: exactly one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterPort {
    /// 1–65535.
    #[serde(default)]
    pub number: Option<i64>,
    /// `start` < `end`, both 1–65535.
    #[serde(default)]
    pub range: Option<ClusterPortRange>,
}

/// `range`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterPortRange {
    /// First port.
    pub start: i64,
    /// Last port.
    pub end: i64,
}

/// The name of a ClusterNetworkPolicy's translation in `tier` (`Admin` or `Baseline`):
/// `kcnp.kube-admin.<name>` or `kcnp.kube-baseline.<name>`; `None` for another tier.
pub fn cluster_policy_name(tier: &str, name: &str) -> Option<String> {
    calico_tier(tier).map(|t| format!("kcnp.{t}.{name}"))
}

fn calico_tier(tier: &str) -> Option<&'static str> {
    match tier {
        "Admin" => Some(KUBE_ADMIN_TIER),
        "Baseline" => Some(KUBE_BASELINE_TIER),
        _ => None,
    }
}

/// A ClusterNetworkPolicy as the global policy `kcnp.<tier>.<name>` of the `kube-admin` or
/// `kube-baseline` tier, ordered by its priority.
pub fn translate_cluster_policy(cnp: &ClusterNetworkPolicy) -> Result<Policy, TranslateError> {
    let obj = format!("ClusterNetworkPolicy {}", cnp.metadata.name);
    let spec = &cnp.spec;
    let Some(tier) = calico_tier(&spec.tier) else {
        let why = format!("{:?} is not Admin or Baseline", spec.tier);
        return Err(TranslateError::new(&obj, "spec.tier", why));
    };
    if !(0..=1000).contains(&spec.priority) {
        let why = format!("{} is outside 0-1000", spec.priority);
        return Err(TranslateError::new(&obj, "spec.priority", why));
    }
    let mut rules = (Vec::new(), Vec::new());
    for (list, field, egress, out) in [
        (&spec.ingress, "spec.ingress", false, &mut rules.0),
        (&spec.egress, "spec.egress", true, &mut rules.1),
    ] {
        too_many(&obj, field, "rules", list.len())?;
        for (i, r) in list.iter().enumerate() {
            out.push(as_admin_rule(&obj, &format!("{field}[{i}]"), r, egress)?);
        }
    }
    let policy = Policy {
        name: format!("kcnp.{tier}.{}", cnp.metadata.name),
        namespace: None,
        tier: tier.into(),
        order: Some(spec.priority as f64),
        ..translate(&obj, &spec.subject, (&rules.0, &rules.1), true)?
    };
    checked(&obj, policy)
}

fn too_many(obj: &str, field: &str, what: &str, n: usize) -> Result<(), TranslateError> {
    if n > MAX_ITEMS {
        let why = format!("{n} {what}: at most {MAX_ITEMS}");
        return Err(TranslateError::new(obj, field, why));
    }
    Ok(())
}

/// One rule in the v1alpha1 shape, after the checks only v1alpha2 has.
fn as_admin_rule(
    obj: &str,
    field: &str,
    r: &ClusterRule,
    egress: bool,
) -> Result<AdminRule, TranslateError> {
    let action = match r.action.as_str() {
        "Accept" => "Allow",
        "Deny" => "Deny",
        "Pass" => "Pass",
        other => {
            let why = format!("{other:?} is not Accept, Deny or Pass");
            return Err(TranslateError::new(obj, format!("{field}.action"), why));
        }
    };
    let (peers, peer_field) = if egress {
        (&r.to, "to")
    } else {
        (&r.from, "from")
    };
    too_many(obj, &format!("{field}.{peer_field}"), "peers", peers.len())?;
    let mut converted = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        converted.push(as_admin_peer(
            obj,
            &format!("{field}.{peer_field}[{i}]"),
            p,
        )?);
    }
    let ports = match &r.protocols {
        None => None,
        Some(list) => {
            let f = format!("{field}.protocols");
            if list.is_empty() {
                return Err(TranslateError::new(obj, &f, "1 to 25 are needed when set"));
            }
            too_many(obj, &f, "protocols", list.len())?;
            let ports = list
                .iter()
                .enumerate()
                .map(|(i, p)| as_admin_port(obj, &format!("{f}[{i}]"), p))
                .collect::<Result<Vec<_>, _>>()?;
            let named = ports.iter().any(|p| p.named_port.is_some());
            if named && peers.iter().any(|p| p.networks.is_some()) {
                let why = "a destinationNamedPort cannot be used with networks peers (they have no named ports)";
                return Err(TranslateError::new(obj, f, why));
            }
            Some(ports)
        }
    };
    let (from, to) = if egress {
        (Vec::new(), converted)
    } else {
        (converted, Vec::new())
    };
    Ok(AdminRule {
        name: r.name.clone(),
        action: action.into(),
        from,
        to,
        ports,
    })
}

fn as_admin_peer(obj: &str, field: &str, p: &ClusterPeer) -> Result<AdminPeer, TranslateError> {
    if p.domain_names.is_some() {
        let why = "domain-name peers are not supported by calico-rs (no DNS policy)";
        return Err(TranslateError::new(
            obj,
            format!("{field}.domainNames"),
            why,
        ));
    }
    if let Some(n) = &p.networks {
        too_many(obj, &format!("{field}.networks"), "CIDRs", n.len())?;
    }
    Ok(AdminPeer {
        namespaces: p.namespaces.clone(),
        pods: p.pods.clone(),
        nodes: p.nodes.clone(),
        networks: p.networks.clone(),
    })
}

fn as_admin_port(obj: &str, field: &str, p: &ClusterProtocol) -> Result<AdminPort, TranslateError> {
    let by_protocol = [("TCP", &p.tcp), ("UDP", &p.udp), ("SCTP", &p.sctp)];
    let set: Vec<_> = by_protocol.iter().filter(|(_, m)| m.is_some()).collect();
    match (set.as_slice(), &p.destination_named_port) {
        ([], Some(name)) => Ok(AdminPort {
            named_port: Some(name.clone()),
            ..AdminPort::default()
        }),
        ([(proto, Some(m))], None) => {
            let key = proto.to_ascii_lowercase();
            let f = format!("{field}.{key}.destinationPort");
            let Some(port) = &m.destination_port else {
                return Err(TranslateError::new(obj, f, "required"));
            };
            let in_range = |v: i64, f: &str| {
                if (1..=65535).contains(&v) {
                    Ok(())
                } else {
                    let why = format!("{v} is outside 1-65535");
                    Err(TranslateError::new(obj, f, why))
                }
            };
            let protocol = Some(proto.to_string());
            match (port.number, &port.range) {
                (Some(n), None) => {
                    in_range(n, &format!("{f}.number"))?;
                    Ok(AdminPort {
                        port_number: Some(AdminPortNumber { protocol, port: n }),
                        ..AdminPort::default()
                    })
                }
                (None, Some(r)) => {
                    in_range(r.start, &format!("{f}.range.start"))?;
                    in_range(r.end, &format!("{f}.range.end"))?;
                    if r.start >= r.end {
                        let why = format!("start {} must be less than end {}", r.start, r.end);
                        return Err(TranslateError::new(obj, format!("{f}.range"), why));
                    }
                    let range = AdminPortRange {
                        protocol,
                        start: r.start,
                        end: r.end,
                    };
                    Ok(AdminPort {
                        port_range: Some(range),
                        ..AdminPort::default()
                    })
                }
                _ => Err(TranslateError::new(
                    obj,
                    f,
                    "exactly one of number or range must be set",
                )),
            }
        }
        _ => Err(TranslateError::new(
            obj,
            field,
            "exactly one of tcp, udp, sctp or destinationNamedPort must be set",
        )),
    }
}

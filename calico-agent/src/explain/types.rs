//! The JSON the agent's API answers with and the `calico-rs` tool reads: serde types shared by
//! both ends, so that they cannot disagree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One workload endpoint on this host (`GET /api/endpoints`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// `orchestrator/workload/endpoint`, as the trace accepts it.
    pub name: String,
    /// The workload's name alone.
    pub workload: String,
    /// Its namespace, if namespaced.
    pub namespace: Option<String>,
    /// Host-side interface.
    pub interface: String,
    /// Its addresses.
    pub addresses: Vec<String>,
    /// Effective labels (own, profiles', implicit).
    pub labels: BTreeMap<String, String>,
    /// Profiles, in order.
    pub profiles: Vec<String>,
    /// Programming state: `programmed`, `pending`, `waiting for interface`, `error`.
    pub state: String,
    /// The programming error, in state `error`.
    pub error: Option<String>,
    /// Policies governing its ingress, in order, as `namespace/name` or `name`.
    pub ingress_policies: Vec<String>,
    /// Policies governing its egress, in order.
    pub egress_policies: Vec<String>,
}

/// `GET /api/endpoints`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointList {
    /// This host's node name.
    pub node: String,
    /// Whether the agent has its first complete snapshot.
    pub in_sync: bool,
    /// The endpoints on this host, by name.
    pub endpoints: Vec<EndpointInfo>,
}

/// A packet as the trace describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketInfo {
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// `tcp`, `udp`, `icmp` or `icmpv6`.
    pub protocol: String,
    /// Source port (TCP, UDP).
    pub src_port: Option<u16>,
    /// Destination port (TCP, UDP).
    pub dst_port: Option<u16>,
}

/// One end of a traced packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// The address used.
    pub address: String,
    /// The workload endpoint owning it, if any (`orchestrator/workload/endpoint`).
    pub endpoint: Option<String>,
    /// The node of that endpoint.
    pub node: Option<String>,
    /// Its interface, when it is on this host (its policy is enforced here).
    pub local_interface: Option<String>,
}

/// One step of the reference evaluator's trace, named as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStep {
    /// `endpoint` (evaluation of an endpoint's direction begins), `rule` (a rule matched),
    /// `no-match` (no rule of a policy or profile decided), or `default` (a default verdict:
    /// end of policies, end of profiles, no policy or profile, missing profile).
    pub kind: String,
    /// The endpoint (kind `endpoint`).
    pub endpoint: Option<String>,
    /// `ingress` or `egress` (kind `endpoint`).
    pub direction: Option<String>,
    /// `policy` or `profile` (kinds `rule` and `no-match`).
    pub source: Option<String>,
    /// The policy (`namespace/name` or `name`) or profile name.
    pub name: Option<String>,
    /// The rule's index in its direction's list (kind `rule`).
    pub rule: Option<usize>,
    /// The rule's own name (its `name` annotation), if it has one.
    pub rule_name: Option<String>,
    /// The rule's action (kind `rule`): `Allow`, `Deny`, `Pass`, `Log`.
    pub action: Option<String>,
    /// The step in words.
    pub text: String,
}

/// The reference evaluator's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVerdict {
    /// `allow` or `deny`.
    pub verdict: String,
    /// The steps, in order.
    pub steps: Vec<ModelStep>,
    /// The rule that decided, in words (`policy default/db ingress rule 0 (Allow)`), or the
    /// default that did.
    pub decided_by: String,
}

/// One rule of the kernel's IR that matched, with the user's name for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelStep {
    /// The IR chain.
    pub chain: String,
    /// The rule's index in the chain.
    pub index: usize,
    /// What the chain and rule are, as the user wrote them (`policy default/db ingress rule
    /// 0`), or the chain's role (`forward`, `workload cali1 egress`).
    pub meaning: String,
}

/// The kernel's answer: the IR read back from the table, run through the interpreter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelVerdict {
    /// `allow` or `deny`; `None` when the table could not be read.
    pub verdict: Option<String>,
    /// Why the table could not be read.
    pub error: Option<String>,
    /// Every rule that matched, in order.
    pub steps: Vec<KernelStep>,
    /// The rule that decided, named (or `the chain's policy`).
    pub decided_by: Option<String>,
}

/// `GET /api/trace`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceReport {
    /// This host's node name.
    pub node: String,
    /// The packet traced.
    pub packet: PacketInfo,
    /// Its source.
    pub from: End,
    /// Its destination.
    pub to: End,
    /// What the agent's model says (policies of the ends on this host only).
    pub model: ModelVerdict,
    /// What the IR compiled from the model now says (tells a compiler bug from drift).
    pub compiled: Option<String>,
    /// What the kernel's table says.
    pub kernel: KernelVerdict,
    /// The kernel's verdict differs from the model's: drift or a bug.
    pub drift: bool,
    /// One line on what a difference means (`None` when they agree).
    pub diagnosis: Option<String>,
    /// Things worth knowing (an end on another host, the agent not in sync).
    pub notes: Vec<String>,
}

/// One probe of a matrix cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// `tcp/80`, `udp/53`, `icmp`.
    pub probe: String,
    /// The model's verdict: `allow` or `deny`.
    pub model: String,
    /// The kernel's verdict, when the table could be read.
    pub kernel: Option<String>,
    /// The deciding rule or default, named.
    pub decided_by: String,
}

/// One ordered pair of endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixCell {
    /// Source endpoint name.
    pub from: String,
    /// Destination endpoint name.
    pub to: String,
    /// Each probe's verdicts.
    pub probes: Vec<ProbeResult>,
}

/// `GET /api/matrix`: what policy predicts between the endpoints on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    /// The endpoints, in order (rows and columns).
    pub endpoints: Vec<String>,
    /// The probes tried for each pair.
    pub probes: Vec<String>,
    /// Every ordered pair of distinct endpoints.
    pub cells: Vec<MatrixCell>,
    /// Endpoints left out to keep the matrix cheap.
    pub omitted: usize,
    /// Why the kernel's verdicts are missing, if they are.
    pub kernel_error: Option<String>,
}

//! The chains that protect the host itself, rendered from the model and the host settings:
//! pure functions, no state ([`super::host_endpoints`] decides when they change).
//!
//! ```text
//! raw-prerouting (hook prerouting, priority -300: before conntrack; only while some host
//! endpoint has untracked policy)
//!   iifname vmap @wl-ifaces  -> accept
//!   iifname vmap @hep-raw-in -> goto hep-ri-<iface>
//!   [goto hep-ri-*]
//! raw-output (hook output, priority -300; the same while some endpoint has untracked policy)
//!   oifname vmap @wl-ifaces  -> accept
//!   oifname vmap @hep-raw-out -> goto hep-ro-<iface>
//!   [goto hep-ro-*]
//! prerouting (hook prerouting, priority -110: before DNAT)
//!   mark has allowed-early   -> accept          untracked policy allowed it
//!   iifname vmap @wl-ifaces  -> accept          workloads have no pre-DNAT policy
//!   iifname vmap @hep-pd     -> goto hep-pd-<iface>
//!   [goto hep-pd-*]                              the all-interfaces host endpoint
//! input (hook input)
//!   mark has allowed-early   -> accept          untracked or pre-DNAT allow skips normal policy
//!   iifname vmap @wl-to-host -> goto wl-to-host
//!   iifname vmap @hep-in     -> goto hep-in-<iface>   (lo -> accept when there is `*`)
//!   [goto hep-in-*]
//! output (hook output)
//!   mark has allowed-early   -> accept          untracked policy allowed it
//!   oifname vmap @wl-ifaces  -> accept          the host may always reach its workloads
//!   oifname vmap @hep-out    -> goto hep-eg-<iface>
//!   [goto hep-eg-*]
//! forward
//!   iifname vmap @from-wl    -> goto wl-eg-<iface>
//!   mark has allowed-early   -> goto eg-allowed (skips the arriving endpoint's policy)
//!   iifname vmap @hep-fwd-in -> goto hep-fi-<iface>  (no such policy: goto eg-allowed)
//!   [goto hep-fi-*]
//!   goto eg-allowed
//! eg-allowed
//!   mark has to-host -> defaultEndpointToHostAction
//!   oifname vmap @to-wl      -> goto wl-in-<iface>
//!   oifname vmap @hep-fwd-out -> goto hep-fo-<iface> (no such policy: accept)
//!   [goto hep-fo-*]
//!   accept
//! wl-to-host
//!   ICMPv6 MLD, router solicitation, neighbour discovery -> accept
//!   [OpenStack: DHCP, DHCPv6, DNS -> accept]
//!   [action Accept/Return: set the to-host mark; iifname vmap @from-wl (the workload's
//!   egress policy)]
//!   drop
//! hep-<path>-<iface>           one host endpoint on one path
//!   ct state established,related -> on; ct state invalid drop (neither untracked nor
//!   pre-DNAT)
//!   failsafe ports -> accept (not forwarded traffic)
//!   for each tier: clear marks (and the staged ones); jump hep-t-<...>; mark has allowed
//!   -> on
//!   profiles (host traffic only): jump hpr-<dir>-<profile>; mark has allowed -> on
//!   drop (untracked, pre-DNAT: accept, on to the next stage; forwarded with only staged
//!   policies: on)
//! on: untracked: notrack, set allowed-early, accept; pre-DNAT: set allowed-early, accept;
//!   arriving forwarded: goto eg-allowed; otherwise accept
//! hep-t-<...>                  one tier of one host endpoint's path
//!   jump hpo-<dir>-<policy>; mark has allowed or passed -> return (for each policy;
//!   a staged policy's chain, with flow logs, only returns)
//!   drop (the tier denies by default), or, when only staged policies bring the tier in,
//!   the staged end of the tier (see `super::staged`)
//! hpo-<dir>-<policy>, hpr-<dir>-<profile>
//!   the rules: Allow -> set the allowed mark, return; Pass -> set the Pass mark, return
//! ```

use crate::dataplane::ir::{
    BaseChain, Chain, ChainType, CtState, Hook, IfaceKey, Match, Rule, Side, Statement, Verdict,
};
use crate::model::{Policy, PolicyType};

use super::failsafe::{failsafe_reply_rules, failsafe_rules};
use super::flow_log::{first_packet_chains, spoof_drop_chain, FlowLogConfig};
use super::host_config::{EndpointToHostAction, HostConfig};
use super::names::chain_name;
use super::shared_chains::Listed;
use super::{EGRESS_ALLOWED_CHAIN, FORWARD_CHAIN, FROM_WORKLOAD_MAP, TO_WORKLOAD_MAP};

/// The prerouting base chain (pre-DNAT policy).
pub const PREROUTING_CHAIN: &str = "prerouting";
/// The prerouting base chain before conntrack (untracked policy).
pub const RAW_PREROUTING_CHAIN: &str = "raw-prerouting";
/// The output base chain before conntrack (untracked policy).
pub const RAW_OUTPUT_CHAIN: &str = "raw-output";
/// The input base chain (traffic to the host).
pub const INPUT_CHAIN: &str = "input";
/// The output base chain (traffic from the host).
pub const OUTPUT_CHAIN: &str = "output";
/// The chain of workload → host traffic.
pub const WORKLOAD_TO_HOST_CHAIN: &str = "wl-to-host";
/// Map: local workload interfaces → accept.
pub const WORKLOAD_IFACES_MAP: &str = "wl-ifaces";
/// Map: local workload interfaces → goto `wl-to-host`.
pub const WORKLOAD_TO_HOST_MAP: &str = "wl-to-host";

/// The seven places a host endpoint's policy applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HostPath {
    /// Arriving for the host itself (normal policy, ingress).
    In,
    /// Sent by the host itself (normal policy, egress).
    Out,
    /// Arriving, before DNAT, whatever its destination (pre-DNAT policy).
    PreDnat,
    /// Arriving and forwarded (`applyOnForward` policy, ingress).
    FwdIn,
    /// Forwarded and leaving (`applyOnForward` policy, egress).
    FwdOut,
    /// Arriving, before conntrack (untracked policy, ingress).
    UntrackedIn,
    /// Sent by the host, before conntrack (untracked policy, egress).
    UntrackedOut,
}

impl HostPath {
    /// Every path.
    pub const ALL: [HostPath; 7] = [
        HostPath::In,
        HostPath::Out,
        HostPath::PreDnat,
        HostPath::FwdIn,
        HostPath::FwdOut,
        HostPath::UntrackedIn,
        HostPath::UntrackedOut,
    ];

    /// The path in words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            HostPath::In => "ingress (to the host)",
            HostPath::Out => "egress (from the host)",
            HostPath::PreDnat => "ingress before DNAT (pre-DNAT)",
            HostPath::FwdIn => "ingress, forwarded (applyOnForward)",
            HostPath::FwdOut => "egress, forwarded (applyOnForward)",
            HostPath::UntrackedIn => "ingress before conntrack (untracked)",
            HostPath::UntrackedOut => "egress before conntrack (untracked)",
        }
    }

    /// The direction relative to the host endpoint.
    pub fn direction(self) -> PolicyType {
        match self {
            HostPath::In | HostPath::PreDnat | HostPath::FwdIn | HostPath::UntrackedIn => {
                PolicyType::Ingress
            }
            HostPath::Out | HostPath::FwdOut | HostPath::UntrackedOut => PolicyType::Egress,
        }
    }

    /// Whether a policy applying to the host endpoint takes part on this path.
    pub fn admits(self, p: &Policy) -> bool {
        match self {
            HostPath::In | HostPath::Out => !p.pre_dnat && !p.do_not_track,
            HostPath::PreDnat => p.pre_dnat,
            HostPath::FwdIn | HostPath::FwdOut => {
                p.apply_on_forward && !p.pre_dnat && !p.do_not_track
            }
            HostPath::UntrackedIn | HostPath::UntrackedOut => p.do_not_track,
        }
    }

    /// Whether the path is the host's own traffic: its chain exists even without a
    /// policy (default deny), consults profiles, and lets the failsafe ports through.
    pub fn is_local(self) -> bool {
        matches!(self, HostPath::In | HostPath::Out)
    }

    /// The dispatch map of the path and the interface it is keyed by.
    pub fn map(self) -> (&'static str, IfaceKey) {
        match self {
            HostPath::In => ("hep-in", IfaceKey::Input),
            HostPath::Out => ("hep-out", IfaceKey::Output),
            HostPath::PreDnat => ("hep-pd", IfaceKey::Input),
            HostPath::FwdIn => ("hep-fwd-in", IfaceKey::Input),
            HostPath::FwdOut => ("hep-fwd-out", IfaceKey::Output),
            HostPath::UntrackedIn => ("hep-raw-in", IfaceKey::Input),
            HostPath::UntrackedOut => ("hep-raw-out", IfaceKey::Output),
        }
    }

    /// The chain of the host endpoint on `iface` (`*` for all interfaces).
    pub fn chain(self, iface: &str) -> String {
        let prefix = match self {
            HostPath::In => "hep-in",
            HostPath::Out => "hep-eg",
            HostPath::PreDnat => "hep-pd",
            HostPath::FwdIn => "hep-fi",
            HostPath::FwdOut => "hep-fo",
            HostPath::UntrackedIn => "hep-ri",
            HostPath::UntrackedOut => "hep-ro",
        };
        chain_name(prefix, &[iface])
    }

    /// The map verdict of a named host endpoint without a chain on this path: what lets
    /// it skip the all-interfaces endpoint's chain (a named endpoint takes precedence).
    pub fn skip(self) -> Verdict {
        match self {
            HostPath::FwdIn => Verdict::Goto(EGRESS_ALLOWED_CHAIN.into()),
            _ => Verdict::Accept,
        }
    }

    /// Whether the path is untracked policy's, before conntrack.
    pub fn is_untracked(self) -> bool {
        matches!(self, HostPath::UntrackedIn | HostPath::UntrackedOut)
    }

    /// Whether the path judges packets before the normal policy, which a packet it does
    /// not decide goes on to: no end-of-tier drop, no default deny.
    pub fn is_early(self) -> bool {
        matches!(
            self,
            HostPath::PreDnat | HostPath::UntrackedIn | HostPath::UntrackedOut
        )
    }

    /// What an allowed packet does next.
    fn allowed(self, config: &HostConfig) -> (Vec<Statement>, Verdict) {
        match self {
            HostPath::PreDnat => (
                vec![Statement::SetMark(config.early_allow_mark)],
                Verdict::Accept,
            ),
            HostPath::UntrackedIn | HostPath::UntrackedOut => (
                vec![
                    Statement::NoTrack,
                    Statement::SetMark(config.early_allow_mark),
                ],
                Verdict::Accept,
            ),
            HostPath::FwdIn => (vec![], Verdict::Goto(EGRESS_ALLOWED_CHAIN.into())),
            _ => (vec![], Verdict::Accept),
        }
    }
}

/// The chain of a policy's rules in one direction as host-endpoint chains call it.
pub fn host_policy_chain(key: &crate::model::PolicyKey, dir: PolicyType) -> String {
    let ns = key.0.as_deref().unwrap_or("");
    match dir {
        PolicyType::Ingress => chain_name("hpo-in", &[ns, &key.1]),
        PolicyType::Egress => chain_name("hpo-eg", &[ns, &key.1]),
    }
}

/// The chain of a profile's rules in one direction as host-endpoint chains call it.
pub fn host_profile_chain(name: &str, dir: PolicyType) -> String {
    match dir {
        PolicyType::Ingress => chain_name("hpr-in", &[name]),
        PolicyType::Egress => chain_name("hpr-eg", &[name]),
    }
}

/// One tier of a host endpoint's path: its policies' chains (each with whether it may
/// Pass and whether it is staged), and how the tier ends.
pub(super) struct HostTier {
    /// The tier's name.
    pub(super) tier: String,
    /// The policies' host chains, in order.
    pub(super) policies: Vec<Listed>,
    /// The tier denies by default and an enforced policy of it applies: a drop ends it.
    pub(super) deny: bool,
    /// The rules that end a tier only staged policies bring in and that denies by default
    /// ([`super::staged::tier_end`]; empty otherwise).
    pub(super) staged_end: Vec<Rule>,
}

fn base(hook: Hook, priority: i32, rules: Vec<Rule>) -> Chain {
    Chain {
        base: Some(BaseChain::accepting(ChainType::Filter, hook, priority)),
        rules,
    }
}

fn dispatch(key: IfaceKey, map: &str) -> Rule {
    Rule::new(
        vec![],
        Verdict::Dispatch {
            key,
            map: map.into(),
        },
    )
}

/// The base chains and `eg-allowed`, for the all-interfaces host endpoint's paths
/// `wildcard` (those it has a chain on); the untracked-policy chains only when `untracked`
/// (some host endpoint has untracked policy: `None` otherwise, every packet spared two
/// base chains); the shared first-packet log chains only with `flow_logs`.
pub fn base_chains(
    config: &HostConfig,
    forward_priority: i32,
    wildcard: &[HostPath],
    untracked: bool,
    flow_logs: Option<&FlowLogConfig>,
) -> Vec<(&'static str, Option<Chain>)> {
    let wild = |path: HostPath| {
        wildcard
            .contains(&path)
            .then(|| Rule::new(vec![], Verdict::Goto(path.chain("*"))))
    };
    let with_paths = |mut rules: Vec<Rule>, paths: &[HostPath]| {
        for &p in paths {
            let (map, key) = p.map();
            rules.push(dispatch(key, map));
            rules.extend(wild(p));
        }
        rules
    };
    let early =
        |verdict: Verdict| Rule::new(vec![Match::MarkSet(config.early_allow_mark)], verdict);
    let prerouting = with_paths(
        vec![
            early(Verdict::Accept),
            dispatch(IfaceKey::Input, WORKLOAD_IFACES_MAP),
        ],
        &[HostPath::PreDnat],
    );
    let raw = |key: IfaceKey, path: HostPath| {
        untracked.then(|| with_paths(vec![dispatch(key, WORKLOAD_IFACES_MAP)], &[path]))
    };
    let raw_prerouting = raw(IfaceKey::Input, HostPath::UntrackedIn);
    let raw_output = raw(IfaceKey::Output, HostPath::UntrackedOut);
    let input = with_paths(
        vec![
            early(Verdict::Accept),
            dispatch(IfaceKey::Input, WORKLOAD_TO_HOST_MAP),
        ],
        &[HostPath::In],
    );
    let output = with_paths(
        vec![
            early(Verdict::Accept),
            dispatch(IfaceKey::Output, WORKLOAD_IFACES_MAP),
        ],
        &[HostPath::Out],
    );
    let mut forward = with_paths(
        vec![
            dispatch(IfaceKey::Input, FROM_WORKLOAD_MAP),
            // Untracked or pre-DNAT policy allowed it: the arriving endpoint's forward
            // policy is skipped.
            early(Verdict::Goto(EGRESS_ALLOWED_CHAIN.into())),
        ],
        &[HostPath::FwdIn],
    );
    forward.push(Rule::new(
        vec![],
        Verdict::Goto(EGRESS_ALLOWED_CHAIN.into()),
    ));
    let to_host = match config.endpoint_to_host {
        EndpointToHostAction::Drop => Verdict::Drop,
        EndpointToHostAction::Accept | EndpointToHostAction::Return => Verdict::Accept,
    };
    let mut allowed = with_paths(
        vec![
            Rule::new(vec![Match::MarkSet(config.to_host_mark)], to_host),
            dispatch(IfaceKey::Output, TO_WORKLOAD_MAP),
        ],
        &[HostPath::FwdOut],
    );
    allowed.push(Rule::new(vec![], Verdict::Accept));
    let untracked_priority = config.untracked_priority;
    let mut chains = vec![
        (
            RAW_PREROUTING_CHAIN,
            raw_prerouting.map(|r| base(Hook::Prerouting, untracked_priority, r)),
        ),
        (
            RAW_OUTPUT_CHAIN,
            raw_output.map(|r| base(Hook::Output, untracked_priority, r)),
        ),
        (
            PREROUTING_CHAIN,
            Some(base(Hook::Prerouting, config.pre_dnat_priority, prerouting)),
        ),
        (
            INPUT_CHAIN,
            Some(base(Hook::Input, forward_priority, input)),
        ),
        (
            OUTPUT_CHAIN,
            Some(base(Hook::Output, forward_priority, output)),
        ),
        (
            FORWARD_CHAIN,
            Some(base(Hook::Forward, forward_priority, forward)),
        ),
        (
            EGRESS_ALLOWED_CHAIN,
            Some(Chain {
                base: None,
                rules: allowed,
            }),
        ),
    ];
    chains.extend(first_packet_chains(flow_logs, forward_priority));
    chains.push(spoof_drop_chain(flow_logs));
    chains
}

/// ICMPv6 types a workload may always send to the host, its router: multicast listener
/// query, report and done (130–132), router solicitation (133), neighbour solicitation and
/// advertisement (135, 136). Without them a policy could cut an IPv6 workload off.
const WORKLOAD_ICMPV6_TO_HOST: [u8; 6] = [130, 131, 132, 133, 135, 136];

fn udp_ports(v4: Option<bool>, sport: Option<u16>, dport: u16) -> Vec<Match> {
    let mut m: Vec<Match> = v4.map(Match::Ipv4).into_iter().collect();
    m.push(Match::L4Proto {
        proto: crate::model::Protocol::UDP.0,
        negate: false,
    });
    if let Some(s) = sport {
        m.push(Match::Port {
            side: Side::Src,
            ranges: vec![(s, s)],
            negate: false,
        });
    }
    m.push(Match::Port {
        side: Side::Dst,
        ranges: vec![(dport, dport)],
        negate: false,
    });
    m
}

/// The chain of workload → host traffic.
pub fn workload_to_host_chain(config: &HostConfig) -> Chain {
    let mut rules: Vec<Rule> = WORKLOAD_ICMPV6_TO_HOST
        .iter()
        .map(|&t| {
            Rule::new(
                vec![
                    Match::Ipv4(false),
                    Match::L4Proto {
                        proto: crate::dataplane::ir::IPPROTO_ICMPV6,
                        negate: false,
                    },
                    Match::Icmp {
                        v6: true,
                        icmp_type: t,
                        code: None,
                        negate: false,
                    },
                ],
                Verdict::Accept,
            )
        })
        .collect();
    if config.openstack_special_cases {
        for m in [
            udp_ports(Some(true), Some(68), 67),
            udp_ports(Some(false), Some(546), 547),
            udp_ports(None, None, 53),
        ] {
            rules.push(Rule::new(m, Verdict::Accept));
        }
    }
    // With the Drop action the egress policy's verdict changes nothing: it is not
    // consulted, and the input hook reaches no workload chain (each base chain that does
    // makes the kernel validate those chains again whenever a jump is added: an endpoint
    // added to a host of 1,000 took 1.7 times as long).
    if config.endpoint_to_host != EndpointToHostAction::Drop {
        rules.push(Rule {
            matches: vec![],
            statements: vec![Statement::SetMark(config.to_host_mark)],
            verdict: Some(Verdict::Dispatch {
                key: IfaceKey::Input,
                map: FROM_WORKLOAD_MAP.into(),
            }),
        });
    }
    rules.push(Rule::new(vec![], Verdict::Drop));
    Chain { base: None, rules }
}

/// The tier chain's name.
pub fn tier_chain(path: HostPath, iface: &str, tier: &str) -> String {
    chain_name("hep-t", &[&format!("{path:?}"), iface, tier])
}

/// One tier's chain: each policy in turn until one allows, passes or denies (a staged
/// policy's chain only returns: nothing follows its jump).
pub(super) fn tier_rules(t: &HostTier, config: &HostConfig, pass_mark: u32) -> Chain {
    let mut rules = Vec::new();
    for p in &t.policies {
        rules.push(Rule::new(vec![], Verdict::Jump(p.chain.clone())));
        if p.staged {
            continue;
        }
        rules.push(Rule::new(
            vec![Match::MarkSet(config.accept_mark)],
            Verdict::Return,
        ));
        if p.may_pass {
            rules.push(Rule::new(vec![Match::MarkSet(pass_mark)], Verdict::Return));
        }
    }
    if t.deny {
        rules.push(Rule::new(vec![], Verdict::Drop));
    }
    rules.extend(t.staged_end.iter().cloned());
    Chain { base: None, rules }
}

/// What a host endpoint's chain on one path jumps to.
pub(super) struct PathTargets<'a> {
    /// The tier chains, in order, each with the mark bits to clear before its jump besides
    /// the allowed and Pass marks (the staged marks, [`super::staged`]).
    pub(super) tiers: &'a [(String, u32)],
    /// The profile chains (host traffic only).
    pub(super) profiles: &'a [String],
    /// Whether an enforced policy applies on the path. Without one a forwarded packet is
    /// allowed (the tiers are staged policies' only).
    pub(super) enforced: bool,
}

/// One host endpoint's chain on `path`, jumping to `targets`.
pub(super) fn endpoint_rules(
    path: HostPath,
    config: &HostConfig,
    pass_mark: u32,
    targets: &PathTargets,
) -> Chain {
    let (allowed_statements, allowed) = path.allowed(config);
    let on = |m: Vec<Match>| Rule {
        matches: m,
        statements: allowed_statements.clone(),
        verdict: Some(allowed.clone()),
    };
    let mut rules = Vec::new();
    if !path.is_untracked() {
        // (Before conntrack a packet has no state yet.)
        rules.push(on(vec![Match::Ct(CtState::EstablishedOrRelated)]));
    }
    if !path.is_early() {
        rules.push(Rule::new(vec![Match::Ct(CtState::Invalid)], Verdict::Drop));
    }
    // A failsafe entry's network is the remote end's: the source of what arrives, the
    // destination of what leaves.
    let (failsafe, remote) = match path {
        HostPath::In | HostPath::PreDnat | HostPath::UntrackedIn => {
            (config.failsafe_inbound.as_slice(), Side::Src)
        }
        HostPath::Out | HostPath::UntrackedOut => (config.failsafe_outbound.as_slice(), Side::Dst),
        HostPath::FwdIn | HostPath::FwdOut => (&[][..], Side::Src),
    };
    rules.extend(failsafe_rules(failsafe, remote));
    // Before conntrack, the replies of the other way's failsafe connections too.
    match path {
        HostPath::UntrackedIn => {
            rules.extend(failsafe_reply_rules(&config.failsafe_outbound, Side::Src));
        }
        HostPath::UntrackedOut => {
            rules.extend(failsafe_reply_rules(&config.failsafe_inbound, Side::Dst));
        }
        _ => {}
    }
    let clear = |extra: u32| Rule {
        matches: vec![],
        statements: vec![Statement::ClearMark(config.accept_mark | pass_mark | extra)],
        verdict: None,
    };
    let profiles = targets.profiles.iter().map(|p| (p, 0));
    for (target, extra) in targets.tiers.iter().map(|(t, x)| (t, *x)).chain(profiles) {
        rules.push(clear(extra));
        rules.push(Rule::new(vec![], Verdict::Jump(target.clone())));
        rules.push(on(vec![Match::MarkSet(config.accept_mark)]));
    }
    if path.is_early() {
        // Untracked and pre-DNAT policy have no default deny: on to the next stage.
        rules.push(Rule::new(vec![], Verdict::Accept));
    } else if !path.is_local() && !targets.enforced {
        // Forwarded, and only staged policies apply: no forward policy governs it.
        rules.push(on(vec![]));
    } else {
        rules.push(Rule::new(vec![], Verdict::Drop));
    }
    Chain { base: None, rules }
}

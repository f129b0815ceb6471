//! Proptest strategies for random *valid* models and for packets between their endpoints:
//! the inputs of the equivalence tests between the reference evaluator, the compiled IR and
//! the dataplanes. Enabled by the `arbitrary` feature.
//!
//! Models use a small vocabulary of labels, addresses and ports so that selectors, nets and
//! named ports actually match something; every rule field appears.

use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use crate::eval::Packet;
use crate::model::{
    Action, EntityRule, HostEndpoint, IcmpMatch, IpNat, IpVersion, Labels, Model, NamedPort,
    NetworkSet, Policy, PolicyType, PortSpec, Profile, Protocol, Resource, Rule,
    ServiceAccountMatch, StagedAction, Tier, TierAction, Update, WorkloadEndpoint,
    WorkloadEndpointId, STAGED_PREFIX,
};
use crate::selector::Selector;

/// Nodes endpoints are spread over; the first is the one tests compile for.
pub const NODES: [&str; 2] = ["h1", "h2"];
/// Addresses used as traffic from or to outside the cluster.
pub const EXTERNAL: [&str; 3] = ["198.51.100.7", "10.0.9.9", "fd00::99"];

const NAMESPACES: [Option<&str>; 3] = [None, Some("a"), Some("b")];
const PROFILES: [&str; 4] = ["p1", "p2", "kns.a", "p3"];
const SELECTORS: [&str; 10] = [
    "all()",
    "app == 'x'",
    "app == 'y'",
    "has(tier)",
    "app in {'x', 'z'} && tier != 'y'",
    "!has(app)",
    "tier == 'z' || app == 'y'",
    "pcns.team == 'x'",
    "projectcalico.org/namespace == 'b'",
    "app not in {'x'}",
];
const NETS: [&str; 7] = [
    "10.0.0.0/24",
    "10.0.0.0/28",
    "10.0.1.0/24",
    "10.0.0.16/29",
    "0.0.0.0/0",
    "fd00::/120",
    "fd00::10/124",
];
/// Networks of network sets: external ranges holding [`EXTERNAL`] addresses, ranges that
/// nest or overlap endpoint addresses (`10.0.x.1y`, `fd00::1y`) and each other.
const NETWORK_SET_NETS: [&str; 8] = [
    "198.51.100.0/24",
    "198.51.100.7/32",
    "10.0.9.8/30",
    "10.0.0.0/27",
    "10.0.0.12/32",
    "10.0.1.0/24",
    "fd00::/120",
    "fd00::99/128",
];

const PORTS: [u16; 5] = [53, 80, 443, 8080, 40000];

/// Tiers policies are put in: the default one, two the model may define (`t1`, `t2`, with
/// random orders and default actions), a built-in `Pass` tier, and one that never exists
/// (its policies are held).
const POLICY_TIERS: [&str; 5] = ["default", "t1", "t2", "adminnetworkpolicy", "ghost"];

fn labels() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(
        prop::sample::select(vec!["app", "tier", "pcns.team"]).prop_map(String::from),
        prop::sample::select(vec!["x", "y", "z"]).prop_map(String::from),
        0..3,
    )
}

fn selector() -> impl Strategy<Value = Selector> {
    prop::sample::select(SELECTORS.to_vec()).prop_map(|s| Selector::parse(s).unwrap())
}

fn nets() -> impl Strategy<Value = Vec<IpNet>> {
    let some = prop::collection::vec(
        prop::sample::select(NETS.to_vec()).prop_map(|n| n.parse::<IpNet>().unwrap()),
        1..3,
    );
    prop_oneof![3 => Just(vec![]), 1 => some]
}

fn ports() -> impl Strategy<Value = Vec<PortSpec>> {
    let some = prop::collection::vec(
        prop_oneof![
            prop::sample::select(PORTS.to_vec()).prop_map(PortSpec::single),
            Just(PortSpec::Range { min: 50, max: 100 }),
            Just(PortSpec::Range {
                min: 440,
                max: 8080
            }),
            Just(PortSpec::Named("http".into())),
            Just(PortSpec::Named("dns".into())),
        ],
        1..3,
    );
    prop_oneof![2 => Just(vec![]), 1 => some]
}

/// A `serviceAccounts` match: names among the label values, a selector over the `pcsa.`
/// labels, either or both.
fn service_accounts() -> impl Strategy<Value = ServiceAccountMatch> {
    (
        prop::sample::subsequence(vec!["x", "y"], 0..=2),
        prop::option::weighted(0.5, selector()),
    )
        .prop_map(|(names, selector)| ServiceAccountMatch {
            names: names.into_iter().map(String::from).collect(),
            selector,
        })
}

fn entity(ported: bool) -> impl Strategy<Value = EntityRule> {
    let selectors = (
        prop::option::weighted(0.25, selector()),
        prop::option::weighted(0.1, selector()),
        prop::option::weighted(0.1, selector()),
        prop::option::weighted(0.1, service_accounts()),
    );
    (nets(), nets(), selectors, ports(), ports()).prop_map(
        move |(nets, not_nets, (sel, not_sel, ns_sel, accounts), ports, not_ports)| EntityRule {
            nets,
            not_nets,
            selector: sel,
            not_selector: not_sel,
            namespace_selector: ns_sel,
            service_accounts: accounts,
            ports: if ported { ports } else { vec![] },
            not_ports: if ported { not_ports } else { vec![] },
        },
    )
}

fn rule() -> impl Strategy<Value = Rule> {
    let action = prop::sample::select(vec![
        Action::Allow,
        Action::Allow,
        Action::Allow,
        Action::Allow,
        Action::Deny,
        Action::Pass,
        Action::Log,
    ]);
    let protocol = prop::sample::select(vec![
        None,
        Some(Protocol::TCP),
        Some(Protocol::UDP),
        Some(Protocol::ICMP),
        Some(Protocol::ICMPV6),
        Some(Protocol(47)),
    ]);
    (
        action,
        protocol,
        0u8..3,
        any::<bool>(),
        0u8..4,
        any::<bool>(),
    )
        .prop_flat_map(
            |(action, protocol, version, not_proto, icmp_kind, icmp_neg)| {
                let ported = protocol.is_some_and(Protocol::has_ports);
                (entity(ported), entity(ported)).prop_map(move |(source, destination)| {
                    let is_icmp = matches!(protocol, Some(Protocol::ICMP | Protocol::ICMPV6));
                    let icmp = match (is_icmp, icmp_kind) {
                        (true, 1) => Some(IcmpMatch {
                            icmp_type: Some(8),
                            code: None,
                        }),
                        (true, 2) => Some(IcmpMatch {
                            icmp_type: Some(3),
                            code: Some(4),
                        }),
                        (true, 3) => Some(IcmpMatch {
                            icmp_type: Some(128),
                            code: None,
                        }),
                        _ => None,
                    };
                    let ip_version = match (protocol, version) {
                        (Some(Protocol::ICMP), 1) => Some(IpVersion::V4),
                        (Some(Protocol::ICMPV6), 1) => Some(IpVersion::V6),
                        (Some(Protocol::ICMP | Protocol::ICMPV6), _) => None,
                        (_, 1) => Some(IpVersion::V4),
                        (_, 2) => Some(IpVersion::V6),
                        _ => None,
                    };
                    let mut r = Rule::new(action);
                    r.ip_version = ip_version;
                    r.protocol = protocol;
                    r.not_protocol = if not_proto && protocol.is_none() {
                        Some(Protocol::UDP)
                    } else {
                        None
                    };
                    if icmp_neg {
                        r.not_icmp = icmp;
                    } else {
                        r.icmp = icmp;
                    }
                    r.source = source;
                    r.destination = destination;
                    if let Some(v) = ip_version {
                        let keep = |n: &IpNet| matches!(n, IpNet::V4(_)) == (v == IpVersion::V4);
                        for e in [&mut r.source, &mut r.destination] {
                            e.nets.retain(keep);
                            e.not_nets.retain(keep);
                        }
                    }
                    r
                })
            },
        )
}

fn rules() -> impl Strategy<Value = Vec<Rule>> {
    prop::collection::vec(rule(), 0..4)
}

fn policy(i: usize) -> impl Strategy<Value = Policy> {
    let tier = prop::sample::select(vec![0usize, 0, 0, 1, 1, 2, 3, 4]);
    (
        (prop::sample::select(NAMESPACES.to_vec()), tier),
        prop::option::of(0u8..4),
        selector(),
        (0u8..4, 0u8..6, 0u8..6),
        rules(),
        rules(),
    )
        .prop_map(
            move |((ns, tier), order, selector, (types, host, staged), mut ingress, mut egress)| {
                // Host-endpoint kinds: 1 applyOnForward, 2 pre-DNAT (global, ingress only),
                // 3 untracked (global).
                let pre_dnat = host == 2 && ns.is_none();
                let do_not_track = host == 3 && ns.is_none();
                if pre_dnat {
                    egress.clear();
                }
                let mut types = match types {
                    1 => vec![PolicyType::Ingress],
                    2 => vec![PolicyType::Egress],
                    3 => vec![PolicyType::Ingress, PolicyType::Egress],
                    _ => vec![],
                };
                if !types.is_empty() {
                    if !ingress.is_empty() && !types.contains(&PolicyType::Ingress) {
                        types.push(PolicyType::Ingress);
                    }
                    if !egress.is_empty() && !types.contains(&PolicyType::Egress) {
                        types.push(PolicyType::Egress);
                    }
                }
                // Staged (workload policies only): 0 Set, 1 Delete (no rules).
                let staged_action = match staged {
                    0 if !pre_dnat && !do_not_track => Some(StagedAction::Set),
                    1 if !pre_dnat && !do_not_track => Some(StagedAction::Delete),
                    _ => None,
                };
                if staged_action == Some(StagedAction::Delete) {
                    ingress.clear();
                    egress.clear();
                }
                let prefix = if staged_action.is_some() {
                    STAGED_PREFIX
                } else {
                    ""
                };
                Policy {
                    name: format!("{prefix}pol{i}"),
                    namespace: ns.map(String::from),
                    tier: POLICY_TIERS[tier].into(),
                    order: order.map(f64::from),
                    selector,
                    types,
                    ingress,
                    egress,
                    apply_on_forward: host == 1 || pre_dnat || do_not_track,
                    pre_dnat,
                    do_not_track,
                    staged_action,
                }
            },
        )
        .prop_map(|mut p| {
            if p.pre_dnat {
                p.types.retain(|t| *t == PolicyType::Ingress);
            }
            p
        })
}

/// Addresses of the host's interfaces ([`interface_addresses`]) and host endpoints'
/// `expectedIPs`.
const HOST_ADDRS: [&str; 4] = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "192.0.2.3"];
/// Interfaces holding them: uplinks, and one the first workload endpoint uses.
const HOST_IFACES: [&str; 4] = ["eth0", "eth1", "eth2", "cali0"];

/// A host endpoint: on one of [`NODES`], one named interface, all of them, or none (found
/// by its expected addresses, some of [`HOST_ADDRS`]).
fn host_endpoint(i: usize) -> impl Strategy<Value = HostEndpoint> {
    // Its addresses follow from `i` (two, the next endpoint's first among them), so that
    // the values drawn after it, and the fixed-seed tests' models, stay what they were.
    let ips = [HOST_ADDRS[i % 4], HOST_ADDRS[(i + 1) % 4]];
    (
        prop::sample::select(NODES.to_vec()),
        prop::sample::select(vec![Some("eth0"), Some("eth1"), Some("*"), None]),
        labels(),
        prop::sample::select(vec![vec![], vec!["p1".to_string()]]),
    )
        .prop_map(move |(node, iface, labels, profiles)| HostEndpoint {
            name: format!("hep{i}"),
            node: node.into(),
            interface_name: iface.map(str::to_string),
            expected_ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            labels,
            profiles,
            ports: vec![],
        })
}

/// The host's interfaces with some of [`HOST_ADDRS`] each (an address may be on two).
pub fn interface_addresses() -> impl Strategy<Value = crate::dataplane::InterfaceAddresses> {
    let one = prop::sample::subsequence(HOST_ADDRS.to_vec(), 0..3);
    prop::collection::vec(one, HOST_IFACES.len()).prop_map(|held| {
        HOST_IFACES
            .iter()
            .zip(held)
            .filter(|(_, ips)| !ips.is_empty())
            .map(|(iface, ips)| {
                let ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
                (iface.to_string(), ips)
            })
            .collect()
    })
}

fn profile(name: &'static str) -> impl Strategy<Value = Profile> {
    (labels(), rules(), rules()).prop_map(move |(labels_to_apply, ingress, egress)| Profile {
        name: name.into(),
        labels_to_apply,
        ingress,
        egress,
    })
}

fn endpoint(i: usize) -> impl Strategy<Value = WorkloadEndpoint> {
    (
        prop::sample::select(NODES.to_vec()),
        prop::sample::select(NAMESPACES.to_vec()),
        labels(),
        any::<bool>(),
        prop::sample::subsequence(PROFILES.to_vec(), 0..3),
        prop::sample::subsequence(vec![0usize, 1], 0..2),
        floating_ips(),
    )
        .prop_map(move |(node, ns, mut labels, v6, profiles, ports, nats)| {
            // Every other endpoint runs as a service account named after its `app`, with
            // that account's labels (as a `ksa.` profile would give them).
            if let Some(app) = labels.get("app").filter(|_| i % 2 == 0).cloned() {
                labels.insert(crate::model::LABEL_SERVICE_ACCOUNT.into(), app.clone());
                labels.insert("pcsa.app".into(), app);
            }
            let mut nets: Vec<IpNet> =
                vec![format!("10.0.{}.{}/32", i % 2, 10 + i).parse().unwrap()];
            if v6 {
                nets.push(format!("fd00::{:x}/128", 0x10 + i).parse().unwrap());
            }
            let named = [
                NamedPort {
                    name: "http".into(),
                    protocol: Protocol::TCP,
                    port: 8080,
                },
                NamedPort {
                    name: "dns".into(),
                    protocol: Protocol::UDP,
                    port: 53,
                },
            ];
            let ip_nats = nats
                .into_iter()
                .filter_map(|(v4, ext)| {
                    let own = nets.iter().find(|n| n.addr().is_ipv4() == v4)?;
                    let external_ip = if v4 {
                        format!("172.16.0.{ext}")
                    } else {
                        format!("2001:db8::{ext}")
                    };
                    Some(IpNat {
                        internal_ip: own.addr(),
                        external_ip: external_ip.parse().ok()?,
                    })
                })
                .collect();
            WorkloadEndpoint {
                id: WorkloadEndpointId {
                    orchestrator: "k8s".into(),
                    workload: format!("w{i}"),
                    endpoint: "eth0".into(),
                },
                namespace: ns.map(String::from),
                node: node.into(),
                interface_name: format!("cali{i}"),
                mac: None,
                ip_networks: nets,
                labels,
                profiles: profiles.into_iter().map(String::from).collect(),
                ports: ports.into_iter().map(|p| named[p].clone()).collect(),
                allow_spoofed_source_prefixes: vec![],
                ip_nats,
            }
        })
}

/// Floating IPs (`ipNATs`) of an endpoint, as (IPv4, the last byte of the external address):
/// few external addresses, so that endpoints clash over them (`10` sorts before `2` as text).
fn floating_ips() -> impl Strategy<Value = Vec<(bool, u8)>> {
    prop::collection::vec(
        (any::<bool>(), prop::sample::select(vec![1u8, 2, 10])),
        0..3,
    )
}

/// Network set `i`: global or namespaced, random labels, 1–4 networks of both families.
fn network_set(i: usize) -> impl Strategy<Value = NetworkSet> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        labels(),
        prop::sample::subsequence(NETWORK_SET_NETS.to_vec(), 1..5),
    )
        .prop_map(move |(ns, labels, nets)| NetworkSet {
            name: format!("set{i}"),
            namespace: ns.map(String::from),
            labels,
            nets: nets.into_iter().map(|n| n.parse().unwrap()).collect(),
        })
}

/// Tier `name` (`t1` or `t2`), when the model defines it: a random order (or none) and
/// default action.
fn tier(name: &'static str) -> impl Strategy<Value = Option<Tier>> {
    let t = (prop::option::of(0u8..3), any::<bool>()).prop_map(move |(order, pass)| Tier {
        name: name.into(),
        order: order.map(|o| f64::from(o) * 1_000_000.0),
        default_action: if pass {
            TierAction::Pass
        } else {
            TierAction::Deny
        },
    });
    prop::option::weighted(0.8, t)
}

/// A random valid model: 2–6 workload endpoints over [`NODES`], up to 5 policies in
/// [`POLICY_TIERS`] (the tiers `t1` and `t2` defined or not: a policy of a tier that does
/// not exist is held), up to 4 network sets and the profiles `p1` and `kns.a` (random
/// rules) and `p2` (allows everything).
pub fn model() -> impl Strategy<Value = Model> {
    let endpoints = (2usize..7).prop_flat_map(|n| (0..n).map(endpoint).collect::<Vec<_>>());
    let policies = (0usize..6).prop_flat_map(|n| (0..n).map(policy).collect::<Vec<_>>());
    let sets = (0usize..5).prop_flat_map(|n| (0..n).map(network_set).collect::<Vec<_>>());
    let profiles = (profile("p1"), profile("kns.a"));
    let tiers = (tier("t1"), tier("t2"));
    let hosts = (0usize..3).prop_flat_map(|n| (0..n).map(host_endpoint).collect::<Vec<_>>());
    let parts = (endpoints, policies, sets, profiles, tiers, hosts);
    parts.prop_filter_map(
        "invalid model",
        |(eps, pols, sets, (p1, kns), (t1, t2), heps)| {
            // p2 allows everything, as a Kubernetes namespace profile does.
            let p2 = Profile {
                name: "p2".into(),
                labels_to_apply: Labels::new(),
                ingress: vec![Rule::new(Action::Allow)],
                egress: vec![Rule::new(Action::Allow)],
            };
            let resources = eps
                .into_iter()
                .map(Resource::WorkloadEndpoint)
                .chain(pols.into_iter().map(Resource::Policy))
                .chain(sets.into_iter().map(Resource::NetworkSet))
                .chain([
                    Resource::Profile(p1),
                    Resource::Profile(kns),
                    Resource::Profile(p2),
                ])
                .chain([t1, t2].into_iter().flatten().map(Resource::Tier))
                .chain(heps.into_iter().map(Resource::HostEndpoint));
            // As the agent stores what a datastore holds: each resource valid on its own, a
            // policy of a missing tier kept (held).
            let mut model = Model::new();
            for r in resources {
                r.validate().ok()?;
                model.apply_valid(Update::Upsert(r));
            }
            Some(model)
        },
    )
}

/// All addresses of a model's workload endpoints.
pub fn endpoint_addresses(model: &Model) -> Vec<IpAddr> {
    model
        .workload_endpoints
        .values()
        .flat_map(|ep| ep.ip_networks.iter().map(|n| n.addr()))
        .collect()
}

/// A random first packet between two addresses of the model (or outside ones), of a protocol
/// consistent with the address family.
pub fn packet(model: &Model) -> impl Strategy<Value = Packet> {
    let mut addrs = endpoint_addresses(model);
    addrs.extend(EXTERNAL.iter().map(|a| a.parse::<IpAddr>().unwrap()));
    let v4: Vec<IpAddr> = addrs.iter().copied().filter(IpAddr::is_ipv4).collect();
    let v6: Vec<IpAddr> = addrs.iter().copied().filter(IpAddr::is_ipv6).collect();
    let pair = prop_oneof![
        (prop::sample::select(v4.clone()), prop::sample::select(v4)),
        (prop::sample::select(v6.clone()), prop::sample::select(v6)),
    ];
    (
        pair,
        0u8..5,
        prop::sample::select(PORTS.to_vec()),
        prop::sample::select(PORTS.to_vec()),
        prop::sample::select(vec![(8u8, 0u8), (0, 0), (3, 4), (3, 1), (128, 0), (129, 0)]),
    )
        .prop_map(|((src, dst), kind, sport, dport, (t, c))| match kind {
            0 => Packet::tcp(src, sport, dst, dport),
            1 => Packet::udp(src, sport, dst, dport),
            2 if src.is_ipv4() => Packet::icmp(src, dst, t, c),
            2 => Packet::icmpv6(src, dst, t, c),
            3 => Packet::other(Protocol(47), src, dst),
            _ => Packet::ported(Protocol::SCTP, src, sport, dst, dport),
        })
}

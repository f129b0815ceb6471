//! Host endpoints, case by case: Calico's documented semantics (normal, pre-DNAT and
//! `applyOnForward` policy, failsafe ports, the all-interfaces endpoint, workload → host
//! traffic, host endpoints found by `expectedIPs`, failsafe entries with a network) as a
//! table. Each case is judged twice and must agree with the table both times:
//! by the reference evaluator (composed along the packet's path through the host, as the
//! kernel's hooks compose), and by the interpreter running the compiled ruleset through
//! the hooks the packet crosses, carrying its mark from one hook to the next.

use std::net::IpAddr;

use calico_core::compile::{
    compile, CompileConfig, Compiler, EndpointToHostAction, HostConfig, HostPath,
};
use calico_core::dataplane::ir::{Hook, Ruleset};
use calico_core::dataplane::InterfaceAddresses;
use calico_core::eval::{
    evaluate, evaluate_host, host_endpoint_on, Direction, EndpointRef, Packet, Verdict,
};
use calico_core::model::{parse_resources, Model};
use calico_mock::{interpret_marked, ConnState, PacketContext};

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: a
endpoint: eth0
node: h1
interfaceName: calia
ipNetworks: [10.65.0.1/32, "fd00:65::1/128"]
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: b
endpoint: eth0
node: h1
interfaceName: calib
ipNetworks: [10.65.0.2/32]
profiles: [closed]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: c
endpoint: eth0
node: h1
interfaceName: calic
ipNetworks: [10.65.0.3/32]
---
kind: Profile
name: closed
egress: [{action: Allow}]
---
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: HostEndpoint
name: h1-eth0
node: h1
interfaceName: eth0
labels: {role: uplink}
---
kind: HostEndpoint
name: h1-all
node: h1
interfaceName: "*"
labels: {role: any}
---
kind: HostEndpoint
name: h1-eth2
node: h1
interfaceName: eth2
labels: {role: backup}
---
kind: HostEndpoint
name: h1-storage
node: h1
expectedIPs: [192.168.254.1]
labels: {role: storage}
---
kind: HostEndpoint
name: h2-eth0
node: h2
interfaceName: eth0
labels: {role: uplink}
---
kind: Policy
name: uplink-in
selector: role == 'uplink'
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]
---
kind: Policy
name: uplink-out
selector: role == 'uplink'
types: [Egress]
egress: [{action: Allow, protocol: UDP, destination: {ports: [5353]}}]
---
kind: Policy
name: uplink-forward
selector: role == 'uplink'
applyOnForward: true
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
---
kind: Policy
name: uplink-pre-dnat
selector: role == 'uplink'
preDNAT: true
applyOnForward: true
ingress:
  - {action: Deny, source: {nets: [203.0.113.7/32]}}
  - {action: Allow, protocol: TCP, destination: {ports: [9443]}}
---
kind: Policy
name: uplink-untracked
selector: role == 'uplink'
doNotTrack: true
applyOnForward: true
ingress:
  - {action: Deny, protocol: UDP, destination: {ports: [5301, 68]}}
  - {action: Allow, protocol: UDP, destination: {ports: [5300]}}
egress:
  - {action: Allow, protocol: UDP, destination: {ports: [5300]}}
---
kind: Policy
name: storage-in
selector: role == 'storage'
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [3260]}}]
---
kind: Policy
name: any-in
selector: role == 'any'
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [7000]}}]
---
kind: Policy
name: any-forward
selector: role == 'any'
applyOnForward: true
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [7001]}}]
"#;

const HOST: &str = "192.168.255.1";
const FABRIC: &str = "192.168.255.2";
const BLOCKED: &str = "203.0.113.7";
const WL: &str = "10.65.0.1";
const CLOSED_WL: &str = "10.65.0.2";
/// The host's address on `eth3`, the storage network (found by `h1-storage`'s expectedIPs).
const STORAGE_HOST: &str = "192.168.254.1";
const STORAGE_PEER: &str = "192.168.254.2";
const OUTSIDE: &str = "198.51.100.9";

/// The host's interfaces and their addresses.
fn interfaces() -> InterfaceAddresses {
    [("eth0", HOST), ("eth3", STORAGE_HOST), ("lo", "127.0.0.1")]
        .into_iter()
        .map(|(iface, ip)| (iface.to_string(), [self::ip(ip)].into()))
        .collect()
}

/// Where a packet goes through the host.
#[derive(Clone, Copy, Debug)]
enum Route {
    /// Arrives on the interface for the host itself.
    ToHost(&'static str),
    /// Sent by the host out of the interface.
    FromHost(&'static str),
    /// Arrives on the first interface, leaves by the second.
    Forward(&'static str, &'static str),
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, port: u16) -> Packet {
    Packet::tcp(ip(src), 40000, ip(dst), port)
}

fn udp(src: &str, dst: &str, port: u16) -> Packet {
    Packet::udp(ip(src), 40000, ip(dst), port)
}

/// The host endpoint governing `iface`, as the reference evaluator resolves it: the one
/// naming it or expecting one of its addresses, else the all-interfaces one (not on
/// workload interfaces and loopback).
fn host_endpoint(model: &Model, iface: &str) -> Option<String> {
    let ep = host_endpoint_on(model, "h1", iface, &interfaces());
    ep.map(|ep| ep.name.clone())
}

fn is_workload(iface: &str) -> bool {
    iface.starts_with("cali")
}

/// The workload endpoint on a workload interface.
fn workload(iface: &str) -> EndpointRef {
    EndpointRef::Workload(calico_core::model::WorkloadEndpointId {
        orchestrator: "k8s".into(),
        workload: iface.trim_start_matches("cali").into(),
        endpoint: "eth0".into(),
    })
}

/// What the reference evaluator says, along the packet's path.
fn reference(model: &Model, config: &HostConfig, p: &Packet, route: Route) -> bool {
    let host = |name: &str, path| evaluate_host(model, name, path, p, config).unwrap().verdict;
    let wl =
        |iface, dir| evaluate(model, &workload(iface), dir, p).unwrap().verdict == Verdict::Allow;
    match route {
        Route::FromHost(out) => match host_endpoint(model, out) {
            _ if is_workload(out) => true, // the host may always reach its workloads
            Some(h) => match host(&h, HostPath::UntrackedOut) {
                Some(v) => v == Verdict::Allow,
                None => host(&h, HostPath::Out) == Some(Verdict::Allow),
            },
            None => true,
        },
        Route::ToHost(iface) if is_workload(iface) => {
            let ndp = p.protocol == calico_core::model::Protocol::ICMPV6
                && matches!(p.icmp_type, Some(130..=133 | 135 | 136));
            ndp || (wl(iface, Direction::Egress)
                && config.endpoint_to_host != EndpointToHostAction::Drop)
        }
        Route::ToHost(iface) => {
            let Some(h) = host_endpoint(model, iface) else {
                return true;
            };
            // The first stage that decides: untracked, pre-DNAT, normal policy.
            let stages = [HostPath::UntrackedIn, HostPath::PreDnat, HostPath::In];
            stages.iter().find_map(|&s| host(&h, s)) == Some(Verdict::Allow)
        }
        Route::Forward(i, o) => {
            if is_workload(i) && !wl(i, Direction::Egress) {
                return false;
            }
            if let Some(h) = host_endpoint(model, i).filter(|_| !is_workload(i)) {
                let stages = [HostPath::UntrackedIn, HostPath::PreDnat, HostPath::FwdIn];
                if stages.iter().find_map(|&s| host(&h, s)) != Some(Verdict::Allow) {
                    return false;
                }
            }
            if is_workload(o) {
                return wl(o, Direction::Ingress);
            }
            host_endpoint(model, o)
                .is_none_or(|h| host(&h, HostPath::FwdOut) == Some(Verdict::Allow))
        }
    }
}

/// What the compiled ruleset does, hook by hook.
fn kernel(r: &Ruleset, p: &Packet, route: Route) -> bool {
    let run = |hook, iif, oif, mark| {
        let ctx = PacketContext {
            packet: p,
            iif,
            oif,
            ct: ConnState::New,
        };
        interpret_marked(r, hook, &ctx, mark)
    };
    match route {
        Route::FromHost(oif) => run(Hook::Output, "", oif, 0).accepted,
        Route::ToHost(iif) => {
            let pre = run(Hook::Prerouting, iif, "", 0);
            pre.accepted && run(Hook::Input, iif, "", pre.mark).accepted
        }
        Route::Forward(iif, oif) => {
            let pre = run(Hook::Prerouting, iif, "", 0);
            pre.accepted && run(Hook::Forward, iif, oif, pre.mark).accepted
        }
    }
}

struct Case {
    what: &'static str,
    packet: Packet,
    route: Route,
    allowed: bool,
}

fn case(what: &'static str, packet: Packet, route: Route, allowed: bool) -> Case {
    Case {
        what,
        packet,
        route,
        allowed,
    }
}

fn cases() -> Vec<Case> {
    use Route::*;
    vec![
        // To the host through the named endpoint.
        case(
            "normal policy allows",
            tcp(FABRIC, HOST, 8080),
            ToHost("eth0"),
            true,
        ),
        case(
            "no rule allows: default deny",
            tcp(FABRIC, HOST, 9090),
            ToHost("eth0"),
            false,
        ),
        case(
            "failsafe port (SSH)",
            tcp(FABRIC, HOST, 22),
            ToHost("eth0"),
            true,
        ),
        case(
            "failsafe before pre-DNAT deny",
            tcp(BLOCKED, HOST, 22),
            ToHost("eth0"),
            true,
        ),
        case(
            "applyOnForward policy also applies to host traffic",
            tcp(FABRIC, HOST, 80),
            ToHost("eth0"),
            true,
        ),
        case(
            "pre-DNAT allow skips normal policy",
            tcp(FABRIC, HOST, 9443),
            ToHost("eth0"),
            true,
        ),
        case(
            "pre-DNAT deny",
            tcp(BLOCKED, HOST, 8080),
            ToHost("eth0"),
            false,
        ),
        // The all-interfaces endpoint covers the other interfaces, not loopback.
        case(
            "wildcard endpoint's policy",
            tcp(FABRIC, HOST, 7000),
            ToHost("eth1"),
            true,
        ),
        case(
            "wildcard endpoint: the named one's policy does not apply",
            tcp(FABRIC, HOST, 8080),
            ToHost("eth1"),
            false,
        ),
        case(
            "named endpoint: the wildcard's policy does not apply",
            tcp(FABRIC, HOST, 7000),
            ToHost("eth0"),
            false,
        ),
        case(
            "loopback is left alone",
            tcp("127.0.0.1", "127.0.0.1", 9090),
            ToHost("lo"),
            true,
        ),
        // Untracked policy, before conntrack.
        case(
            "untracked allow skips normal policy",
            udp(FABRIC, HOST, 5300),
            ToHost("eth0"),
            true,
        ),
        case(
            "untracked deny",
            udp(FABRIC, HOST, 5301),
            ToHost("eth0"),
            false,
        ),
        case(
            "untracked deny, forwarded",
            udp(FABRIC, WL, 5301),
            Forward("eth0", "calia"),
            false,
        ),
        case(
            "untracked allow skips forward policy",
            udp(FABRIC, WL, 5300),
            Forward("eth0", "calia"),
            true,
        ),
        case(
            "untracked egress allow",
            udp(HOST, FABRIC, 5300),
            FromHost("eth0"),
            true,
        ),
        case(
            "untracked policy does not decide: normal policy",
            udp(FABRIC, HOST, 5302),
            ToHost("eth0"),
            false,
        ),
        case(
            "failsafe port not closed by untracked deny",
            udp(FABRIC, HOST, 68),
            ToHost("eth0"),
            true,
        ),
        // From the host.
        case(
            "egress policy allows",
            udp(HOST, FABRIC, 5353),
            FromHost("eth0"),
            true,
        ),
        case(
            "outbound failsafe (DNS)",
            udp(HOST, FABRIC, 53),
            FromHost("eth0"),
            true,
        ),
        case(
            "egress default deny",
            tcp(HOST, FABRIC, 9000),
            FromHost("eth0"),
            false,
        ),
        case(
            "host to its workload",
            tcp(HOST, WL, 81),
            FromHost("calia"),
            true,
        ),
        // Forwarded between the uplink and a workload.
        case(
            "applyOnForward policy allows",
            tcp(FABRIC, WL, 80),
            Forward("eth0", "calia"),
            true,
        ),
        case(
            "applyOnForward policy allows, then the workload's ingress denies",
            tcp(FABRIC, CLOSED_WL, 80),
            Forward("eth0", "calib"),
            false,
        ),
        case(
            "applyOnForward policy applies: nothing allows",
            tcp(FABRIC, WL, 81),
            Forward("eth0", "calia"),
            false,
        ),
        case(
            "pre-DNAT deny applies to forwarded traffic",
            tcp(BLOCKED, WL, 80),
            Forward("eth0", "calia"),
            false,
        ),
        case(
            "pre-DNAT allow skips the arriving endpoint's forward policy",
            tcp(FABRIC, WL, 9443),
            Forward("eth0", "calia"),
            true,
        ),
        case(
            "no applyOnForward egress policy: forwarded out allowed",
            tcp(WL, FABRIC, 81),
            Forward("calia", "eth0"),
            true,
        ),
        case(
            "wildcard's forward policy allows",
            tcp(FABRIC, WL, 7001),
            Forward("eth1", "calia"),
            true,
        ),
        case(
            "wildcard's forward policy applies",
            tcp(FABRIC, WL, 81),
            Forward("eth1", "calia"),
            false,
        ),
        case(
            "named endpoint without forward policy: not the wildcard's",
            tcp(FABRIC, WL, 81),
            Forward("eth2", "calia"),
            true,
        ),
        case(
            "then the workload's ingress policy",
            tcp(FABRIC, CLOSED_WL, 7001),
            Forward("eth2", "calib"),
            false,
        ),
        case(
            "named endpoint without policy: closed to the host",
            tcp(FABRIC, HOST, 7000),
            ToHost("eth2"),
            false,
        ),
        // Found by expectedIPs: h1-storage governs eth3, which holds its address.
        case(
            "endpoint found by expectedIPs: its policy allows",
            tcp(STORAGE_PEER, STORAGE_HOST, 3260),
            ToHost("eth3"),
            true,
        ),
        case(
            "endpoint found by expectedIPs: default deny",
            tcp(STORAGE_PEER, STORAGE_HOST, 3261),
            ToHost("eth3"),
            false,
        ),
        case(
            "endpoint found by expectedIPs: not the wildcard's policy",
            tcp(STORAGE_PEER, STORAGE_HOST, 7000),
            ToHost("eth3"),
            false,
        ),
        case(
            "endpoint found by expectedIPs: failsafe ports stay open",
            tcp(STORAGE_PEER, STORAGE_HOST, 22),
            ToHost("eth3"),
            true,
        ),
        // Workloads to the host.
        case(
            "workload to host: defaultEndpointToHostAction Drop",
            tcp(WL, HOST, 8080),
            ToHost("calia"),
            false,
        ),
        case(
            "workload to host: neighbour solicitation is always allowed",
            Packet::icmpv6(ip("fd00:65::1"), ip("ff02::1:ff00:1"), 135, 0),
            ToHost("calia"),
            true,
        ),
    ]
}

fn check(config: HostConfig, cases: Vec<Case>) {
    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let compile_config = CompileConfig {
        host: config.clone(),
        ..CompileConfig::new("h1")
    };
    let mut compiler = Compiler::from_model(compile_config, &model);
    compiler.set_interface_addresses(&model, interfaces());
    let ruleset = compiler.ruleset();
    for c in cases {
        let by_reference = reference(&model, &config, &c.packet, c.route);
        let by_kernel = kernel(ruleset, &c.packet, c.route);
        assert_eq!(by_reference, c.allowed, "reference evaluator: {}", c.what);
        assert_eq!(by_kernel, c.allowed, "compiled ruleset: {}", c.what);
    }
}

#[test]
fn host_endpoint_semantics_as_calico_documents_them() {
    check(HostConfig::default(), cases());
}

#[test]
fn default_endpoint_to_host_action_accept_lets_workloads_reach_the_host() {
    let config = HostConfig {
        endpoint_to_host: EndpointToHostAction::Accept,
        ..HostConfig::default()
    };
    let cases = vec![
        case("Accept", tcp(WL, HOST, 8080), Route::ToHost("calia"), true),
        // The host-endpoint policy of the uplink does not apply to a workload's traffic.
        case(
            "not the uplink's policy",
            tcp(WL, HOST, 9090),
            Route::ToHost("calia"),
            true,
        ),
        // The workload's egress policy does (calic has no policy and no profile).
        case(
            "egress policy first",
            tcp("10.65.0.3", HOST, 8080),
            Route::ToHost("calic"),
            false,
        ),
    ];
    check(config, cases);
}

#[test]
fn failsafe_entries_with_a_network_open_their_port_to_it_only() {
    let entry = |s: &str| s.parse::<calico_core::compile::FailsafePort>().unwrap();
    let config = HostConfig {
        failsafe_inbound: vec![
            entry("tcp:192.168.255.0/24:2222"),
            entry("tcp:[fd00:255::/64]:2223"),
        ],
        failsafe_outbound: vec![entry("udp:192.168.255.0/24:5454")],
        ..HostConfig::default()
    };
    let v6 = |src: &str, port| Packet::tcp(ip(src), 40000, ip("fd00:255::1"), port);
    let cases = vec![
        case(
            "inbound, from its network",
            tcp(FABRIC, HOST, 2222),
            Route::ToHost("eth0"),
            true,
        ),
        case(
            "inbound, from outside it",
            tcp(OUTSIDE, HOST, 2222),
            Route::ToHost("eth0"),
            false,
        ),
        case(
            "inbound, IPv6 network",
            v6("fd00:255::2", 2223),
            Route::ToHost("eth0"),
            true,
        ),
        case(
            "inbound, IPv6 outside it",
            v6("fd00:256::2", 2223),
            Route::ToHost("eth0"),
            false,
        ),
        case(
            "an IPv4 network opens nothing to IPv6",
            v6("fd00:255::2", 2222),
            Route::ToHost("eth0"),
            false,
        ),
        case(
            "outbound, to its network",
            udp(HOST, FABRIC, 5454),
            Route::FromHost("eth0"),
            true,
        ),
        case(
            "outbound, to outside it",
            udp(HOST, OUTSIDE, 5454),
            Route::FromHost("eth0"),
            false,
        ),
        case(
            "the outbound network is the destination's",
            udp(HOST, OUTSIDE, 5454),
            Route::FromHost("eth3"),
            false,
        ),
        // The default SSH entry is not in this list: closed.
        case(
            "entries replace the defaults",
            tcp(FABRIC, HOST, 22),
            Route::ToHost("eth0"),
            false,
        ),
    ];
    check(config, cases);
}

#[test]
fn another_nodes_host_endpoints_compile_to_nothing_here() {
    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let h3 = compile(&CompileConfig::new("h3"), &model);
    assert!(
        !h3.chains.keys().any(|c| c.starts_with("hep-")),
        "{:?}",
        h3.chains.keys()
    );
    assert!(kernel(&h3, &tcp(FABRIC, HOST, 9090), Route::ToHost("eth0")));
}

#[test]
fn flow_logs_name_host_endpoint_verdicts() {
    use calico_core::compile::{
        describe, first_packet_hook, FlowLogConfig, LogRef, LogRule, LogVerdict,
    };
    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig::default()),
        ..CompileConfig::new("h1")
    };
    let ruleset = compile(&config, &model);
    let names = describe(&model, "h1", &ruleset);
    let logged = |p: &Packet| {
        let ctx = PacketContext {
            packet: p,
            iif: "eth0",
            oif: "",
            ct: ConnState::New,
        };
        let pre = interpret_marked(&ruleset, Hook::Prerouting, &ctx, 0);
        // The references of the rules that allowed (what the agent finds replaying the
        // first packet logged after the policy), then what the kernel logged itself.
        let mut refs = pre.flow_refs.clone();
        let mut logs = pre.flow_logged.clone();
        let mut accepted = pre.accepted;
        if accepted {
            let out = interpret_marked(&ruleset, Hook::Input, &ctx, pre.mark);
            refs.extend(out.flow_refs);
            logs.extend(out.flow_logged);
            accepted = out.accepted;
        }
        let first_packet = logs
            .iter()
            .any(|(_, x)| first_packet_hook(x) == Some(Hook::Input));
        assert_eq!(first_packet, accepted, "logged for replay iff allowed");
        let logs = logs
            .iter()
            .map(|(_, x)| x)
            .filter(|x| first_packet_hook(x).is_none());
        let logs: Vec<LogRef> = refs
            .iter()
            .chain(logs)
            .map(|x| x.parse().unwrap())
            .collect();
        (accepted, logs)
    };
    // Allowed by a policy rule: the log names the policy and the rule.
    let (accepted, logs) = logged(&tcp(FABRIC, HOST, 8080));
    assert!(accepted);
    let [log] = logs.as_slice() else {
        panic!("{logs:?}")
    };
    assert_eq!(
        (log.verdict, log.rule),
        (LogVerdict::Allow, LogRule::Rule(0))
    );
    let rule = names.user_rule(&log.chain, 0).unwrap();
    assert_eq!(rule.to_string(), "policy uplink-in ingress rule 0");
    // Denied at the end of the tier whose policies apply (as for workloads).
    let (accepted, logs) = logged(&tcp(FABRIC, HOST, 9090));
    assert!(!accepted);
    let [log] = logs.as_slice() else {
        panic!("{logs:?}")
    };
    assert_eq!((log.verdict, log.rule), (LogVerdict::Deny, LogRule::End));
    assert_eq!(
        names.chain(&log.chain).unwrap().to_string(),
        "tier default ingress policies [uplink-forward, uplink-in]"
    );
    assert_eq!(names.tier(&log.chain), Some("default"));
    // A host endpoint no policy applies to: its own default deny, named.
    let (accepted, logs) = {
        let p = tcp(FABRIC, HOST, 9090);
        let ctx = PacketContext {
            packet: &p,
            iif: "eth2",
            oif: "",
            ct: ConnState::New,
        };
        let out = interpret_marked(&ruleset, Hook::Input, &ctx, 0);
        let logs: Vec<LogRef> = out
            .flow_logged
            .iter()
            .map(|(_, x)| x.parse().unwrap())
            .collect();
        (out.accepted, logs)
    };
    assert!(!accepted);
    assert_eq!(
        names.chain(&logs[0].chain).unwrap().to_string(),
        "host endpoint h1-eth2 (eth2) ingress (to the host)"
    );
    // Denied by pre-DNAT policy: its rule.
    let (_, logs) = logged(&tcp(BLOCKED, HOST, 8080));
    let rules: Vec<String> = logs
        .iter()
        .filter_map(|l| match l.rule {
            LogRule::Rule(i) => names.user_rule(&l.chain, i).map(|r| r.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(rules, ["policy uplink-pre-dnat ingress rule 0"]);
    // A workload's packet to the host, dropped by defaultEndpointToHostAction.
    let p = tcp(WL, HOST, 8080);
    let ctx = PacketContext {
        packet: &p,
        iif: "calia",
        oif: "",
        ct: ConnState::New,
    };
    let out = interpret_marked(&ruleset, Hook::Input, &ctx, 0);
    let logs: Vec<LogRef> = out
        .flow_logged
        .iter()
        .map(|(_, x)| x.parse().unwrap())
        .collect();
    assert!(!out.accepted);
    assert_eq!(
        logs,
        [LogRef {
            verdict: LogVerdict::Deny,
            chain: "wl-to-host".into(),
            rule: LogRule::End
        }]
    );
    // Untracked policy logs nothing: no first packet of an untracked flow.
    let (accepted, logs) = logged(&udp(FABRIC, HOST, 5300));
    assert!(accepted && logs.is_empty(), "{logs:?}");
}

//! Flow logs from the kernel (issue 20): with flow logs compiled in, the kernel logs an
//! allowed connection's first packet once (one-way UDP too), and a denied one rate-limited,
//! to the netlink log group; `flowlog::FlowLogReader` reads them with their 5-tuple and
//! interfaces. A denial's prefix resolves to the policy and rule by name; the first packet,
//! replayed through the rules programmed, meets the references of the rules that allowed
//! it, once per policy direction, which resolve the same way.

mod support;

use std::time::{Duration, Instant};

use calico_core::compile::{
    compile, describe, first_packet_hook, CompileConfig, FlowLogConfig, LogRef, LogRule, LogVerdict,
};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::AclBackend;
use calico_core::model::{parse_resources, Model};
use calico_linux::acl::LinuxAcl;
use calico_linux::flowlog::{FlowLogReader, LogPacket};
use calico_mock::replay_first_packet;
use calico_netns::fixtures::privileged;
use support::{connects, listen_all, ProgrammedHost, Topology};

const GROUP: u16 = 7;
const DENY_RATE: u32 = 10;

const MODEL: &str = r#"
kind: Profile
name: kns.shop
egress: [{action: Allow}]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.client
endpoint: eth0
namespace: shop
node: h1
interfaceName: calia
ipNetworks: [10.65.0.10/32]
labels: {app: client}
profiles: [kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.server
endpoint: eth0
namespace: shop
node: h1
interfaceName: calib
ipNetworks: [10.65.0.20/32]
labels: {app: server}
profiles: [kns.shop]
---
kind: Policy
name: allow-web
namespace: shop
selector: app == 'server'
ingress:
  - {action: Allow, protocol: UDP, destination: {ports: [5454]}, metadata: {annotations: {name: udp-in}}}
  - {action: Deny, protocol: UDP, metadata: {annotations: {name: no-udp}}}
  - {action: Allow, protocol: TCP, destination: {ports: [8080]}, metadata: {annotations: {name: web}}}
"#;

/// Every packet logged until the group is quiet for a while.
fn drain(reader: &mut FlowLogReader) -> Vec<LogPacket> {
    let mut out = Vec::new();
    let mut quiet = 0;
    while quiet < 3 {
        let (packets, errors) = reader.recv().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        if packets.is_empty() {
            quiet += 1;
        }
        out.extend(packets);
    }
    out
}

/// What a logged packet reports: its own prefix (a denial, a staged report), or, for a
/// connection's first packet logged after the policy, the references of the rules that
/// allowed it, found by replaying it through `ruleset` (what the agent does).
fn reports(p: &LogPacket, reader: &FlowLogReader, ruleset: &Ruleset) -> Vec<String> {
    let name = |i: Option<u32>| i.and_then(|i| reader.interface_name(i));
    let (iif, oif) = (name(p.in_ifindex), name(p.out_ifindex));
    let Some(hook) = first_packet_hook(&p.prefix) else {
        let log: LogRef = p.prefix.parse().unwrap();
        return vec![log.attributed_to(iif.as_deref()).to_string()];
    };
    let packet = p.packet().expect("headers copied");
    let iif = iif.as_deref().unwrap_or("");
    let oif = oif.as_deref().unwrap_or("");
    let r = replay_first_packet(ruleset, hook, &packet, iif, oif);
    assert!(
        r.allowed,
        "{packet:?} from {iif:?} to {oif:?} replays as denied"
    );
    r.refs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_and_denied_flows_are_logged_by_name() {
    if !privileged("allowed_and_denied_flows_are_logged_by_name") {
        return;
    }
    let topo = Topology::new(&[("calia", "10.65.0.10"), ("calib", "10.65.0.20")]);
    let [client, server] = &topo.workloads[..] else {
        unreachable!()
    };
    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig {
            group: GROUP,
            deny_rate: DENY_RATE,
            ..FlowLogConfig::default()
        }),
        ..CompileConfig::new("h1")
    };
    let ruleset = compile(&config, &model);
    let names = describe(&model, "h1", &ruleset);
    let acl = LinuxAcl::in_netns(topo.host.path().as_ref(), "calico").unwrap();
    acl.apply(&diff(&Ruleset::default(), &ruleset))
        .await
        .unwrap();
    let mut reader = topo
        .host
        .enter(|| FlowLogReader::open(GROUP, Duration::from_millis(300)))
        .unwrap()
        .unwrap();

    // Allowed: one connection with some traffic; denied: a connect to another port.
    let listener = server.listen_tcp(8080);
    let mut c = client.connect_tcp(server.ip, 8080).expect("allowed");
    let (mut s, _) = listener.accept().unwrap();
    assert!(support::tcp_round_trip(&mut c, &mut s));
    assert!(support::tcp_round_trip(&mut c, &mut s));
    let _closed = server.listen_tcp(9090);
    assert!(client.connect_tcp(server.ip, 9090).is_none(), "denied");
    let logged = drain(&mut reader);

    let named = |reader: &FlowLogReader, logged: &[LogPacket]| -> Vec<(LogVerdict, String, u16)> {
        let mut out = Vec::new();
        for p in logged {
            for prefix in reports(p, reader, &ruleset) {
                let log: LogRef = prefix.parse().unwrap();
                let name = match log.rule {
                    LogRule::Rule(i) => names.user_rule(&log.chain, i).unwrap().to_string(),
                    _ => format!("{} ({:?})", names.chain(&log.chain).unwrap(), log.rule),
                };
                out.push((log.verdict, name, p.tuple.unwrap().dst_port));
            }
        }
        out
    };
    let got = named(&reader, &logged);
    assert_eq!(
        got,
        [
            (
                LogVerdict::Allow,
                "profile kns.shop egress rule 0".into(),
                8080
            ),
            (
                LogVerdict::Allow,
                r#"policy shop/allow-web ingress rule 2 ("web")"#.into(),
                8080
            ),
            (
                LogVerdict::Deny,
                "endpoint k8s/shop.server/eth0 (calib) ingress (End)".into(),
                9090
            ),
        ],
        "one reference per policy decision of an allowed connection, none for its later packets; the denial"
    );
    let first = &logged[0];
    assert_eq!(first.prefix, "F forward");
    let t = first.tuple.unwrap();
    assert_eq!(t.src, client.ip);
    assert_eq!(t.dst, server.ip);
    assert_eq!(t.proto, 6);
    let name = |i: Option<u32>| i.and_then(|i| reader.interface_name(i));
    assert_eq!(name(first.in_ifindex).as_deref(), Some("calia"));
    assert_eq!(name(first.out_ifindex).as_deref(), Some("calib"));

    // A one-way UDP flow stays `ct state new` (no reply is ever seen), yet it is logged
    // once per policy direction, not once per datagram.
    let _bound = server.udp(server.ip, 5454);
    let to = std::net::SocketAddr::new(server.ip, 5454);
    let sock = client.udp(client.ip, 0);
    for _ in 0..1_000 {
        sock.send_to(b"x", to).unwrap();
    }
    let logged = drain(&mut reader);
    assert_eq!(logged.len(), 1, "{logged:?}");
    let got = named(&reader, &logged);
    assert_eq!(
        got,
        [
            (
                LogVerdict::Allow,
                "profile kns.shop egress rule 0".into(),
                5454
            ),
            (
                LogVerdict::Allow,
                r#"policy shop/allow-web ingress rule 0 ("udp-in")"#.into(),
                5454
            ),
        ],
        "one log per policy decision of a one-way flow"
    );

    // A flood of denied datagrams: the deny rule logs at most its rate (plus the burst).
    let sock = client.udp(client.ip, 0);
    let to = std::net::SocketAddr::new(server.ip, 5353);
    let start = Instant::now();
    for _ in 0..10_000 {
        let _ = sock.send_to(b"x", to);
    }
    let logged = drain(&mut reader);
    let secs = start.elapsed().as_secs_f64();
    let denied_udp: Vec<_> = named(&reader, &logged)
        .into_iter()
        .filter(|(_, name, _)| name == r#"policy shop/allow-web ingress rule 1 ("no-udp")"#)
        .collect();
    let bound = f64::from(DENY_RATE) * (1.0 + secs) + 1.0;
    println!(
        "10,000 denied datagrams in {secs:.2} s: {} logged (bound {bound:.0})",
        denied_udp.len()
    );
    assert!(!denied_udp.is_empty(), "the deny is logged");
    assert!(denied_udp.len() as f64 <= bound, "rate-limited");
    assert!(denied_udp
        .iter()
        .all(|(v, _, port)| *v == LogVerdict::Deny && *port == 5353));

    // Spoofed sources: logged by the shared drop, rate-limited, named after the endpoint
    // whose interface they came in by.
    let spoofed_ip = "10.65.0.99".parse().unwrap();
    client
        .ns
        .run(&["ip", "addr", "add", "10.65.0.99/32", "dev", "eth0"])
        .unwrap();
    let sock = client.udp(spoofed_ip, 0);
    let start = Instant::now();
    for _ in 0..10_000 {
        let _ = sock.send_to(b"x", to);
    }
    let logged = drain(&mut reader);
    let secs = start.elapsed().as_secs_f64();
    assert!(
        logged.iter().all(|p| p.prefix == "D spoof-drop spoof"),
        "{logged:?}"
    );
    let bound = f64::from(DENY_RATE) * (1.0 + secs) + 1.0;
    assert!(
        !logged.is_empty() && logged.len() as f64 <= bound,
        "{} logged",
        logged.len()
    );
    assert!(logged.iter().all(|p| p.tuple.unwrap().src == spoofed_ip));
    let spoofed = named(&reader, &logged);
    assert!(
        spoofed.iter().all(|(v, name, port)| *v == LogVerdict::Deny
            && name == "endpoint k8s/shop.client/eth0 (calia) egress (Spoof)"
            && *port == 5353),
        "{spoofed:?}"
    );
}

/// Staged policies (issue 17) in the kernel: a staged policy's `Deny` and the end of a tier
/// only a staged policy brings in are reported to the log group, named, while the
/// connection they would have denied goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_policies_report_what_they_would_deny_and_deny_nothing() {
    if !privileged("staged_policies_report_what_they_would_deny_and_deny_nothing") {
        return;
    }
    let topo = Topology::new(&[("calia", "10.65.0.10"), ("calib", "10.65.0.20")]);
    let [client, server] = &topo.workloads[..] else {
        unreachable!()
    };
    let lockdown = r#"
---
kind: Policy
name: staged:lockdown
namespace: shop
order: 1
stagedAction: Set
selector: app == 'server'
ingress:
  - {action: Deny, protocol: TCP, destination: {ports: [8080]}, metadata: {annotations: {name: no-web}}}
"#;
    let ssh_only = r#"
---
kind: Tier
name: security
order: 10
---
kind: Policy
name: staged:ssh-only
tier: security
stagedAction: Set
selector: app == 'server'
ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]
"#;
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig {
            group: GROUP,
            deny_rate: DENY_RATE,
            ..FlowLogConfig::default()
        }),
        ..CompileConfig::new("h1")
    };
    let acl = LinuxAcl::in_netns(topo.host.path().as_ref(), "calico").unwrap();
    let mut reader = topo
        .host
        .enter(|| FlowLogReader::open(GROUP, Duration::from_millis(300)))
        .unwrap()
        .unwrap();
    let mut programmed = Ruleset::default();
    let _listener = server.listen_tcp(8080);
    for (extra, want) in [
        (
            lockdown,
            r#"S policy shop/staged:lockdown ingress rule 0 ("no-web")"#,
        ),
        (
            ssh_only,
            "S policy staged:ssh-only (tier security) ingress (End)",
        ),
    ] {
        let text = format!(
            "{MODEL}{lockdown}{}",
            if extra == ssh_only { ssh_only } else { "" }
        );
        let model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
        let ruleset = compile(&config, &model);
        let names = describe(&model, "h1", &ruleset);
        acl.apply(&diff(&programmed, &ruleset)).await.unwrap();
        programmed = ruleset;
        assert_eq!(acl.dump().await.unwrap(), programmed);

        let c = client.connect_tcp(server.ip, 8080);
        assert!(c.is_some(), "a staged policy denies nothing");
        let logged = drain(&mut reader);
        let got: Vec<String> = logged
            .iter()
            .filter(|p| p.tuple.unwrap().dst_port == 8080)
            .flat_map(|p| reports(p, &reader, &programmed))
            .map(|prefix| {
                let log: LogRef = prefix.parse().unwrap();
                let name = match log.rule {
                    LogRule::Rule(i) => names.user_rule(&log.chain, i).unwrap().to_string(),
                    _ => format!("{} ({:?})", names.chain(&log.chain).unwrap(), log.rule),
                };
                let v = match log.verdict {
                    LogVerdict::Allow => "A",
                    LogVerdict::Deny => "D",
                    LogVerdict::StagedDeny => "S",
                };
                format!("{v} {name}")
            })
            .collect();
        assert_eq!(
            got,
            [
                want.to_string(),
                "A profile kns.shop egress rule 0".to_string(),
                r#"A policy shop/allow-web ingress rule 2 ("web")"#.to_string(),
            ],
            "the staged report, once, then the rules that allowed"
        );
    }
}

/// The uplink `eth0` as a host endpoint: normal policy allows TCP 8080 to the host; a staged
/// policy before it would deny that, and a staged `applyOnForward` policy, alone on the
/// forwarded path, would end its tier in a deny.
const STAGED_HOST: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: a
endpoint: eth0
node: h1
interfaceName: calia
ipNetworks: [10.65.0.1/32]
profiles: [open]
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
kind: Policy
name: uplink-in
order: 2
selector: role == 'uplink'
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]
---
kind: Policy
name: staged:uplink-lockdown
order: 1
stagedAction: Set
selector: role == 'uplink'
types: [Ingress]
ingress:
  - {action: Deny, protocol: TCP, destination: {ports: [8080]}, metadata: {annotations: {name: no-web}}}
---
kind: Policy
name: staged:uplink-forward
stagedAction: Set
applyOnForward: true
selector: role == 'uplink'
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]
"#;

/// Staged global policies preview host endpoints too (Calico applies them to host
/// endpoints): on real connections through the uplink, to the host and forwarded to a
/// workload, what they would deny is reported, named, and nothing is denied; the failsafe
/// ports reach no policy, staged or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_policies_preview_host_endpoints() {
    if !privileged("staged_policies_preview_host_endpoints") {
        return;
    }
    let topo = Topology::with_outside(&[("calia", vec!["10.65.0.1"])], &[]);
    let _host = listen_all(&topo.host, &[22, 8080]);
    let _workload = listen_all(&topo.workloads[0].ns, &[80]);
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig {
            group: GROUP,
            deny_rate: DENY_RATE,
            ..FlowLogConfig::default()
        }),
        ..CompileConfig::new("h1")
    };
    let model = Model::from_resources(parse_resources(STAGED_HOST).unwrap()).unwrap();
    let h = ProgrammedHost::new(&topo.host, config, model).await;
    let names = describe(&h.model, "h1", h.compiler.ruleset());
    let mut reader = topo
        .host
        .enter(|| FlowLogReader::open(GROUP, Duration::from_millis(300)))
        .unwrap()
        .unwrap();
    let staged_reports = |reader: &mut FlowLogReader, port: u16| -> Vec<String> {
        drain(reader)
            .iter()
            .filter(|p| p.tuple.unwrap().dst_port == port)
            .filter(|p| first_packet_hook(&p.prefix).is_none())
            .filter_map(|p| {
                let log: LogRef = p.prefix.parse().unwrap();
                (log.verdict == LogVerdict::StagedDeny).then(|| match log.rule {
                    LogRule::Rule(i) => names.user_rule(&log.chain, i).unwrap().to_string(),
                    _ => format!("{} ({:?})", names.chain(&log.chain).unwrap(), log.rule),
                })
            })
            .collect()
    };
    let fabric = &topo.fabric;
    assert!(connects(fabric, None, "192.168.255.1", 8080), "to the host");
    assert_eq!(
        staged_reports(&mut reader, 8080),
        [r#"policy staged:uplink-lockdown ingress rule 0 ("no-web")"#]
    );
    assert!(connects(fabric, None, "10.65.0.1", 80), "forwarded");
    assert_eq!(
        staged_reports(&mut reader, 80),
        ["policy staged:uplink-forward ingress (End)"]
    );
    assert!(connects(fabric, None, "192.168.255.1", 22), "failsafe");
    assert_eq!(staged_reports(&mut reader, 22), Vec::<String>::new());
}

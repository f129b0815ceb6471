use std::net::IpAddr;

use std::sync::Arc;

use calico_core::compile::{
    compile, first_packet_hook, CompileConfig, FlowLogConfig, LogRef, LogVerdict,
};
use calico_core::dataplane::ir::{Ruleset, Statement};
use calico_core::model::{parse_resources, Model};
use calico_linux::flowlog::{FiveTuple, LogPacket};

use super::*;

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.server
endpoint: eth0
namespace: shop
node: h1
interfaceName: calib
ipNetworks: [10.65.0.20/32]
labels: {app: server}
---
kind: Policy
name: allow-web
namespace: shop
selector: app == 'server'
ingress:
  - {action: Allow, protocol: TCP, metadata: {annotations: {name: web}}}
"#;

fn setup() -> (Namer, Vec<String>) {
    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig::default()),
        ..CompileConfig::new("h1")
    };
    let ruleset = compile(&config, &model);
    let prefixes = references(&ruleset);
    (Namer::new(&model, "h1", Arc::new(ruleset)), prefixes)
}

/// The flow-log references of `ruleset`'s rules: their log prefixes (but the shared
/// first-packet logs') and, for a rule carrying its user rule's index, `A <chain> <index>`.
fn references(ruleset: &Ruleset) -> Vec<String> {
    let mut out = Vec::new();
    for (chain, rule) in ruleset
        .chains
        .iter()
        .flat_map(|(name, c)| c.rules.iter().map(move |r| (name, r)))
    {
        for s in &rule.statements {
            match s {
                Statement::NfLog { prefix, .. } if first_packet_hook(prefix).is_none() => {
                    out.push(prefix.clone())
                }
                Statement::FlowRef(index) => out.push(format!("A {chain} {index}")),
                _ => {}
            }
        }
    }
    out
}

fn packet(prefix: &str, src: &str, sport: u16) -> LogPacket {
    LogPacket {
        prefix: prefix.into(),
        in_ifindex: Some(3),
        out_ifindex: Some(4),
        tuple: Some(FiveTuple {
            src: src.parse().unwrap(),
            dst: "10.65.0.20".parse().unwrap(),
            proto: 6,
            src_port: sport,
            dst_port: 80,
        }),
        bytes: 60,
        icmp: None,
    }
}

/// Names no interface.
fn no_ifaces(_: u32) -> Option<String> {
    None
}

fn allow_prefix(prefixes: &[String]) -> String {
    prefixes
        .iter()
        .find(|p| p.parse::<LogRef>().unwrap().verdict == LogVerdict::Allow)
        .unwrap()
        .clone()
}

#[test]
fn packets_aggregate_into_named_records() {
    let (namer, prefixes) = setup();
    let allow = allow_prefix(&prefixes);
    let mut agg = Aggregator::new(100);
    for t in [1000, 1500] {
        let decisions = agg.add(&namer, &packet(&allow, "10.9.9.9", 40000), &no_ifaces, t);
        assert_eq!(decisions.len(), 1);
    }
    let decisions = agg.add(&namer, &packet(&allow, "10.9.9.9", 40001), &no_ifaces, 1200);
    assert_eq!(decisions.len(), 1);
    assert!(agg
        .add(&namer, &packet("junk", "10.9.9.9", 1), &no_ifaces, 1)
        .is_empty());
    assert_eq!(agg.unreadable, 1);
    let records = agg.flush(&namer);
    assert!(agg.is_empty());
    assert_eq!(records.len(), 2);
    let r = &records[0];
    assert_eq!(
        (r.packets, r.bytes, r.first_seen_ms, r.last_seen_ms),
        (2, 120, 1000, 1500)
    );
    assert_eq!(r.policy, "shop/allow-web");
    assert_eq!(r.rule_name.as_deref(), Some("web"));
    assert_eq!(r.reason, r#"policy shop/allow-web ingress rule 0 ("web")"#);
    assert_eq!(r.dst_endpoint.as_deref(), Some("k8s/shop.server/eth0"));
    assert_eq!(r.dst_labels.get("app").map(String::as_str), Some("server"));
    assert_eq!(r.src_endpoint, None);
    let json: serde_json::Value =
        serde_json::from_str(json_lines(records.iter()).lines().next().unwrap()).unwrap();
    for field in [
        "firstSeenMs",
        "lastSeenMs",
        "srcIp",
        "dstIp",
        "proto",
        "srcPort",
        "dstPort",
        "direction",
        "verdict",
        "srcEndpoint",
        "srcLabels",
        "dstEndpoint",
        "dstLabels",
        "tier",
        "policyKind",
        "policy",
        "rule",
        "ruleName",
        "reason",
        "packets",
        "bytes",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    assert_eq!(json["verdict"], "allow");
    assert_eq!(json["direction"], "ingress");
    let back: FlowRecord = serde_json::from_value(json).unwrap();
    assert_eq!(&back, r);
}

#[test]
fn a_flood_of_distinct_flows_stays_within_the_cap() {
    let (namer, prefixes) = setup();
    let allow = allow_prefix(&prefixes);
    let cap = 10_000;
    let mut agg = Aggregator::new(cap);
    let flood = 200_000u32;
    for i in 0..flood {
        let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let mut p = packet(&allow, "10.0.0.1", 1);
        p.tuple.as_mut().unwrap().src = src;
        agg.add(&namer, &p, &no_ifaces, 1);
    }
    assert_eq!(agg.len(), cap);
    assert_eq!(agg.dropped_packets, u64::from(flood) - cap as u64);
    println!(
        "{flood} distinct flows, cap {cap}: {} kept, {} dropped, about {} KiB",
        agg.len(),
        agg.dropped_packets,
        agg.memory_bytes() / 1024
    );
    assert_eq!(agg.flush(&namer).len(), cap);
}

#[test]
fn recent_flows_keep_the_newest() {
    let (namer, prefixes) = setup();
    let allow = allow_prefix(&prefixes);
    let mut agg = Aggregator::new(10);
    for port in 0..5 {
        agg.add(
            &namer,
            &packet(&allow, "10.0.0.1", port),
            &no_ifaces,
            u64::from(port),
        );
    }
    let mut recent = RecentFlows::new(3);
    recent.extend(&agg.flush(&namer));
    let lines: Vec<FlowRecord> = recent
        .json_lines()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.iter().map(|r| r.src_port).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let dir = std::env::temp_dir().join(format!("flows-{}", std::process::id()));
    append_to_file(&dir, &agg_records(&namer, &allow)).unwrap();
    append_to_file(&dir, &agg_records(&namer, &allow)).unwrap();
    let text = std::fs::read_to_string(&dir).unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(text.lines().count(), 2, "appended, one line per record");
}

fn agg_records(namer: &Namer, prefix: &str) -> Vec<FlowRecord> {
    let mut agg = Aggregator::new(10);
    agg.add(namer, &packet(prefix, "10.0.0.1", 7), &no_ifaces, 1);
    agg.flush(namer)
}

/// A verdict names its tier: the policy's rule and the tier's end-of-tier drop (in the
/// endpoint chain, right after the jump to the tier's only policy).
#[test]
fn verdicts_name_their_tier() {
    let text = MODEL.replace(
        "namespace: shop\nselector",
        "namespace: shop\ntier: security\nselector",
    ) + "---\nkind: Tier\nname: security\norder: 10\n";
    let model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig::default()),
        ..CompileConfig::new("h1")
    };
    let ruleset = compile(&config, &model);
    let namer = Namer::new(&model, "h1", Arc::new(ruleset.clone()));
    let mut seen = Vec::new();
    for prefix in references(&ruleset) {
        let log: LogRef = prefix.parse().unwrap();
        let d = namer.decision(&log);
        seen.push(format!(
            "{:?} {:?} {} {}",
            log.verdict, log.rule, d.kind, d.tier
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            // One IR rule per family.
            "Allow Rule(0) policy security",
            "Allow Rule(0) policy security",
            // A workload's packet to the host (defaultEndpointToHostAction Drop): no tier.
            "Deny End base ",
            // The server's egress: no policy, no profile.
            "Deny End endpoint __PROFILE__",
            "Deny End endpoint security",
            // The shared anti-spoofing drop, its interface unknown here.
            "Deny Spoof base default",
        ],
        "{seen:#?}"
    );
}

#[test]
fn host_endpoints_are_named_by_their_expected_addresses() {
    let yaml = format!(
        "{MODEL}---\nkind: HostEndpoint\nname: h1-eth0\nnode: h1\ninterfaceName: eth0\nexpectedIPs: [192.168.0.1]\nlabels: {{role: uplink}}\n---\nkind: HostEndpoint\nname: h2-eth0\nnode: h2\ninterfaceName: eth0\nexpectedIPs: [192.168.0.2]\n"
    );
    let model = Model::from_resources(parse_resources(&yaml).unwrap()).unwrap();
    let ruleset = compile(&CompileConfig::new("h1"), &model);
    let namer = Namer::new(&model, "h1", Arc::new(ruleset));
    let (name, labels) = namer.endpoint("192.168.0.1".parse().unwrap()).unwrap();
    assert_eq!(name, "host endpoint h1-eth0");
    assert_eq!(labels.get("role").map(String::as_str), Some("uplink"));
    assert!(
        namer.endpoint("192.168.0.2".parse().unwrap()).is_none(),
        "another node's"
    );
}

#[test]
fn a_workload_to_host_drop_says_so() {
    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig::default()),
        ..CompileConfig::new("h1")
    };
    let namer = Namer::new(&model, "h1", Arc::new(compile(&config, &model)));
    let log: LogRef = "D wl-to-host end".parse().unwrap();
    let d = namer.decision(&log);
    assert_eq!(
        d.reason,
        "workload to host: dropped (defaultEndpointToHostAction Drop)"
    );
    assert_eq!((d.kind, d.tier.as_str()), ("base", ""));
}

/// A staged policy's reports (issue 17): counted per staged policy, never as a verdict, and
/// recorded as `staged-deny` flows naming the policy and why.
#[test]
fn staged_denials_are_counted_per_staged_policy_not_as_verdicts() {
    let text = format!(
        "{MODEL}---\nkind: Tier\nname: security\norder: 10\n---\nkind: Policy\nname: staged:lockdown\nnamespace: shop\norder: 1\nstagedAction: Set\nselector: app == 'server'\ningress: [{{action: Deny, protocol: TCP, metadata: {{annotations: {{name: no-tcp}}}}}}]\n---\nkind: Policy\nname: staged:ssh-only\ntier: security\nstagedAction: Set\nselector: app == 'server'\ningress: [{{action: Allow, protocol: TCP, destination: {{ports: [22]}}}}]\n"
    );
    let model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig::default()),
        ..CompileConfig::new("h1")
    };
    let ruleset = compile(&config, &model);
    let namer = Namer::new(&model, "h1", Arc::new(ruleset.clone()));
    // One prefix per rule (the IPv4 and IPv6 rules of one user rule share it).
    let staged: std::collections::BTreeSet<String> = ruleset
        .chains
        .values()
        .flat_map(|c| &c.rules)
        .flat_map(|r| &r.statements)
        .filter_map(|s| match s {
            Statement::NfLog { prefix, .. } if prefix.starts_with("S ") => Some(prefix.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(staged.len(), 2, "{staged:?}");
    let metrics = FlowMetrics::default();
    let mut agg = Aggregator::new(100);
    for (i, prefix) in staged.iter().enumerate() {
        for k in 0..=i {
            let p = packet(prefix, "10.9.9.9", 40000 + k as u16);
            let [d] = &agg.add(&namer, &p, &no_ifaces, 1000)[..] else {
                panic!("one decision")
            };
            metrics.count(d);
        }
    }
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("calico_agent_staged_policy_denied_packets_total"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#"policy="shop/staged:lockdown",tier="default"} "#)),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#"policy="staged:ssh-only",tier="security"} "#)),
        "{text}"
    );
    assert!(
        !text.contains("calico_agent_flow_log_packets_total{"),
        "no verdict counted: {text}"
    );
    let records = agg.flush(&namer);
    assert_eq!(records.len(), 3);
    assert!(
        records.iter().all(|r| r.verdict == "staged-deny"),
        "{records:?}"
    );
    let reasons: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons.contains(r#"policy shop/staged:lockdown ingress rule 0 ("no-tcp"): would deny (staged: not enforced)"#),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("staged:ssh-only") && r.contains("end of its tier")),
        "{reasons:?}"
    );
}

/// A connection's first packet, logged after the policy, is replayed through the rules:
/// the rule that allowed it names the record; one the rules do not allow (they changed, or
/// the kernel drifted) is counted, not recorded.
#[test]
fn first_packets_are_named_by_replaying_them() {
    let (namer, _) = setup();
    let ifaces = |i: u32| match i {
        3 => Some("eth0".to_string()),
        4 => Some("calib".to_string()),
        _ => None,
    };
    let mut agg = Aggregator::new(10);
    let first = packet("F forward", "10.9.9.9", 40000);
    let decisions = agg.add(&namer, &first, &ifaces, 1000);
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let mut udp = packet("F forward", "10.9.9.9", 40001);
    udp.tuple.as_mut().unwrap().proto = 17;
    assert!(agg.add(&namer, &udp, &ifaces, 1000).is_empty());
    assert_eq!((agg.unattributed, agg.unreadable), (1, 0));
    let records = agg.flush(&namer);
    let [r] = &records[..] else {
        panic!("{records:#?}")
    };
    assert_eq!(r.verdict, "allow");
    assert_eq!(r.direction, "ingress");
    assert_eq!(r.reason, r#"policy shop/allow-web ingress rule 0 ("web")"#);
    assert_eq!(r.dst_endpoint.as_deref(), Some("k8s/shop.server/eth0"));
    // Without its headers it names nothing.
    let mut bare = packet("F forward", "10.9.9.9", 1);
    bare.tuple = None;
    assert!(agg.add(&namer, &bare, &ifaces, 1).is_empty());
    assert_eq!(agg.unreadable, 1);
}

/// A spoofed packet is logged by the chain every endpoint's anti-spoofing shares; the
/// interface it came in by names the endpoint that sent it, as if that endpoint's chain had
/// logged it.
#[test]
fn spoofed_packets_are_named_by_their_input_interface() {
    let (namer, _) = setup();
    let ifaces = |i: u32| (i == 4).then(|| "calib".to_string());
    let mut agg = Aggregator::new(10);
    let mut spoofed = packet("D spoof-drop spoof", "10.9.9.9", 40000);
    spoofed.in_ifindex = Some(4);
    let [d] = &agg.add(&namer, &spoofed, &ifaces, 1000)[..] else {
        panic!("one decision")
    };
    assert_eq!(d.verdict, LogVerdict::Deny);
    assert_eq!((d.kind, d.tier.as_str()), ("endpoint", "default"));
    assert_eq!(
        d.reason,
        "endpoint k8s/shop.server/eth0 (calib) egress: source address is not the endpoint's (anti-spoofing)"
    );
    // Its interface unknown, it is still a spoofing drop.
    let d = namer.decision(&"D spoof-drop spoof".parse().unwrap());
    assert_eq!(
        (d.kind, d.reason.as_str()),
        (
            "base",
            "a workload's source address is not its own (anti-spoofing)"
        )
    );
}

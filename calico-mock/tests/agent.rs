//! The agent driving the mock backends: programming order, adoption on restart, drift repair,
//! error handling, and routes learned over BGP. (Kernel behaviour itself is tested in
//! calico-linux against the real kernel.)

use std::sync::Arc;
use std::time::Duration;

use calico_core::agent::{Agent, EndpointState, Timing};
use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::Hook;
use calico_core::dataplane::RouteTarget;
use calico_core::eval::Packet;
use calico_core::model::{parse_resources, Resource, Update};
use calico_mock::{ConnState, MockAcl, MockBgpFabric, MockFib, PacketContext};

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: web
endpoint: eth0
node: h1
interfaceName: cali-web
ipNetworks: [10.65.0.1/32]
labels: {app: web}
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: db
endpoint: eth0
node: h1
interfaceName: cali-db
ipNetworks: [10.65.0.2/32]
labels: {app: db}
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: far
endpoint: eth0
node: h2
interfaceName: cali-far
ipNetworks: [10.65.1.1/32]
labels: {app: web}
profiles: [open]
---
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: Policy
name: db
selector: app == 'db'
ingress: [{action: Allow, protocol: TCP, source: {selector: app == 'web'}, destination: {ports: [5432]}}]
"#;

fn resources() -> Vec<Resource> {
    parse_resources(MODEL).unwrap()
}

fn timing() -> Timing {
    Timing {
        batch_window: Duration::from_millis(1),
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        resync_interval: Duration::from_secs(3600),
        ..Timing::default()
    }
}

fn backends() -> (MockFib, MockAcl) {
    let fib = MockFib::new();
    fib.add_interface("cali-web");
    fib.add_interface("cali-db");
    (fib, MockAcl::new())
}

fn start(node: &str, fib: &MockFib, acl: &MockAcl) -> Agent {
    Agent::builder()
        .node(node)
        .fib(Arc::new(fib.clone()))
        .acl(Arc::new(acl.clone()))
        .timing(timing())
        .start()
        .unwrap()
}

fn allowed(acl: &MockAcl, src: &str, iif: &str, dst: &str, oif: &str, port: u16) -> bool {
    let p = Packet::tcp(src.parse().unwrap(), 40000, dst.parse().unwrap(), port);
    acl.judge(
        Hook::Forward,
        &PacketContext {
            packet: &p,
            iif,
            oif,
            ct: ConnState::New,
        },
    )
    .accepted
}

#[tokio::test]
async fn a_snapshot_programs_the_compiled_acls_and_the_routes() {
    let (fib, acl) = backends();
    let agent = start("h1", &fib, &acl);
    let h = agent.handle();
    h.snapshot(resources()).await.unwrap();
    h.flush().await;
    let model = calico_core::model::Model::from_resources(resources()).unwrap();
    assert_eq!(acl.ruleset(), compile(&CompileConfig::new("h1"), &model));
    assert_eq!(fib.routes().len(), 2);
    assert!(allowed(
        &acl,
        "10.65.0.1",
        "cali-web",
        "10.65.0.2",
        "cali-db",
        5432
    ));
    assert!(!allowed(
        &acl,
        "10.65.0.1",
        "cali-web",
        "10.65.0.2",
        "cali-db",
        22
    ));
    assert!(h
        .status()
        .endpoints
        .values()
        .all(|e| e.state == EndpointState::Programmed));

    // A policy change is applied incrementally.
    let mut open_db = resources()
        .into_iter()
        .find_map(|r| match r {
            Resource::Policy(p) => Some(p),
            _ => None,
        })
        .unwrap();
    open_db.ingress[0].destination.ports.clear();
    let before = acl.applied();
    h.update(Update::Upsert(Resource::Policy(open_db)))
        .await
        .unwrap();
    h.flush().await;
    assert_eq!(acl.applied(), before + 1);
    assert!(allowed(
        &acl,
        "10.65.0.1",
        "cali-web",
        "10.65.0.2",
        "cali-db",
        22
    ));
    agent.shutdown().await;
}

#[tokio::test]
async fn a_restarted_agent_adopts_the_programmed_host_without_changes() {
    let (fib, acl) = backends();
    let first = start("h1", &fib, &acl);
    first.handle().snapshot(resources()).await.unwrap();
    first.handle().flush().await;
    first.shutdown().await;
    let (applied, routes, ruleset) = (acl.applied(), fib.routes(), acl.ruleset());

    let second = start("h1", &fib, &acl);
    second.handle().snapshot(resources()).await.unwrap();
    second.handle().flush().await;
    assert_eq!(acl.applied(), applied, "no ACL change set on adoption");
    assert_eq!(fib.routes(), routes);
    assert_eq!(acl.ruleset(), ruleset);
    second.shutdown().await;
}

#[tokio::test]
async fn resync_repairs_a_flushed_table_and_a_deleted_route() {
    let (fib, acl) = backends();
    let agent = start("h1", &fib, &acl);
    let h = agent.handle();
    h.snapshot(resources()).await.unwrap();
    h.flush().await;
    let good = acl.ruleset();
    acl.set_ruleset(Default::default());
    fib.delete_route(&"10.65.0.2/32".parse().unwrap());
    h.resync().await.unwrap();
    h.flush().await;
    assert_eq!(acl.ruleset(), good);
    assert!(fib.routes().contains_key(&"10.65.0.2/32".parse().unwrap()));
    assert!(h.metrics().resync_repairs_total > 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn an_acl_failure_holds_back_routes_and_is_retried() {
    let (fib, acl) = backends();
    acl.fail_next(2);
    let agent = start("h1", &fib, &acl);
    let mut h = agent.handle();
    h.snapshot(resources()).await.unwrap();
    h.flush().await;
    let status = h.status();
    assert!(status
        .acl
        .last_error
        .as_deref()
        .unwrap()
        .contains("injected failure"));
    assert!(
        fib.routes().is_empty(),
        "no route before the workload's policy is in place"
    );
    assert!(status
        .endpoints
        .values()
        .all(|e| matches!(e.state, EndpointState::Error(_))));
    tokio::time::timeout(Duration::from_secs(5), async {
        while fib.routes().len() < 2 {
            h.status_changed().await.unwrap();
        }
    })
    .await
    .expect("retried and converged");
    assert!(h.status().acl.last_error.is_none());
    agent.shutdown().await;
}

#[tokio::test]
async fn routes_learned_over_bgp_reach_the_fib_and_follow_withdrawals() {
    let fabric = MockBgpFabric::new();
    let (fib1, acl1) = backends();
    let (fib2, acl2) = (MockFib::new(), MockAcl::new());
    fib2.add_interface("cali-far");
    let a1 = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib1.clone()))
        .acl(Arc::new(acl1))
        .bgp(Arc::new(fabric.speaker("192.0.2.1".parse().unwrap())))
        .timing(timing())
        .start()
        .unwrap();
    let a2 = Agent::builder()
        .node("h2")
        .fib(Arc::new(fib2.clone()))
        .acl(Arc::new(acl2))
        .bgp(Arc::new(fabric.speaker("192.0.2.2".parse().unwrap())))
        .timing(timing())
        .start()
        .unwrap();
    a1.handle().snapshot(resources()).await.unwrap();
    a2.handle().snapshot(resources()).await.unwrap();
    let far: ipnet::IpNet = "10.65.1.1/32".parse().unwrap();
    let learned = |fib: &MockFib| fib.routes().get(&far).cloned();
    tokio::time::timeout(Duration::from_secs(5), async {
        while learned(&fib1).is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("h1 learned h2's workload route");
    match learned(&fib1).unwrap() {
        RouteTarget::Via(hops) => {
            assert_eq!(
                hops.iter().next().unwrap().gateway,
                "192.0.2.2".parse::<std::net::IpAddr>().unwrap()
            )
        }
        other => panic!("{other:?}"),
    }
    fabric.set_down("192.0.2.2".parse().unwrap(), true);
    tokio::time::timeout(Duration::from_secs(5), async {
        while learned(&fib1).is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("withdrawn when the peer went down");
    a1.shutdown().await;
    a2.shutdown().await;
}

/// `allowSpoofedSourcePrefixes` reaches both dataplanes only with workload source spoofing
/// allowed: the ACLs let the listed sources out, and the workload's interface loses its
/// strict reverse-path filter (IPv4 prefixes only: IPv6 has none); removing the list puts
/// both back.
#[tokio::test]
async fn allowed_spoofed_prefixes_reach_the_acls_and_the_interface_when_allowed() {
    use calico_core::dataplane::InterfaceSettings;
    let spoofing_web = |prefixes: &str| {
        let mut r = resources();
        for res in &mut r {
            if let Resource::WorkloadEndpoint(ep) = res {
                if ep.interface_name == "cali-web" {
                    ep.allow_spoofed_source_prefixes = serde_json::from_str(prefixes).unwrap();
                }
            }
        }
        r
    };
    let strict = InterfaceSettings::default();
    let loose = InterfaceSettings {
        strict_source_check: false,
    };
    for allow in [false, true] {
        let (fib, acl) = backends();
        let agent = Agent::builder()
            .node("h1")
            .fib(Arc::new(fib.clone()))
            .acl(Arc::new(acl.clone()))
            .timing(timing())
            .workload_source_spoofing(allow)
            .start()
            .unwrap();
        let h = agent.handle();
        h.snapshot(spoofing_web(r#"["10.99.0.0/24"]"#))
            .await
            .unwrap();
        h.flush().await;
        let spoofed = allowed(&acl, "10.99.0.9", "cali-web", "198.51.100.1", "eth0", 80);
        assert_eq!(spoofed, allow, "spoofing allowed: {allow}");
        let want = if allow { loose } else { strict };
        assert_eq!(fib.interface_settings("cali-web"), Some(want));
        assert_eq!(fib.interface_settings("cali-db"), Some(strict));
        // An IPv6 prefix alone needs no change of the IPv4 filter.
        h.snapshot(spoofing_web(r#"["fd00:99::/64"]"#))
            .await
            .unwrap();
        h.flush().await;
        assert_eq!(fib.interface_settings("cali-web"), Some(strict));
        assert!(!allowed(
            &acl,
            "10.99.0.9",
            "cali-web",
            "10.65.0.2",
            "cali-db",
            5432
        ));
        agent.shutdown().await;
    }
}

/// Floating IPs reach all three dataplanes only where they are in effect
/// (`AgentBuilder::floating_ips`, Felix's `FloatingIPs`): the NAT chains, the route to the
/// workload's interface, the BGP export.
#[tokio::test]
async fn floating_ips_reach_the_acls_the_fib_and_bgp_when_enabled() {
    let with_nat = || {
        let mut r = resources();
        for res in &mut r {
            if let Resource::WorkloadEndpoint(ep) = res {
                if ep.interface_name == "cali-web" {
                    ep.ip_nats = serde_json::from_str(
                        r#"[{"internalIP": "10.65.0.1", "externalIP": "172.16.0.7"}]"#,
                    )
                    .unwrap();
                }
            }
        }
        r
    };
    let floating: ipnet::IpNet = "172.16.0.7/32".parse().unwrap();
    for enabled in [false, true] {
        let fabric = MockBgpFabric::new();
        let (fib, acl) = backends();
        let peer = "192.0.2.2".parse().unwrap();
        let _peer_speaker = fabric.speaker(peer);
        let agent = Agent::builder()
            .node("h1")
            .fib(Arc::new(fib.clone()))
            .acl(Arc::new(acl.clone()))
            .bgp(Arc::new(fabric.speaker("192.0.2.1".parse().unwrap())))
            .timing(timing())
            .floating_ips(enabled)
            .start()
            .unwrap();
        let h = agent.handle();
        h.snapshot(with_nat()).await.unwrap();
        h.flush().await;
        let nat = acl
            .ruleset()
            .chains
            .contains_key(calico_core::compile::FIP_DNAT_CHAIN);
        assert_eq!(nat, enabled, "NAT chains, floating IPs enabled: {enabled}");
        let route = fib.routes().get(&floating).cloned();
        let to_web = RouteTarget::Workload {
            interface: "cali-web".into(),
        };
        assert_eq!(route, enabled.then_some(to_web), "enabled: {enabled}");
        let announced = fabric.learned_by(peer).iter().any(|r| r.prefix == floating);
        assert_eq!(announced, enabled, "exported, enabled: {enabled}");
        agent.shutdown().await;
    }
}

//! `calico-agent --datastore etcd` on the real kernel, following a real etcd (run in the
//! fabric namespace the hosts are plugged into). Resources are written as `calicoctl`
//! writes them: `projectcalico.org/v3` JSON under Calico's keys.
//!
//! * etcd frozen (SIGSTOP) and then killed (SIGKILL), 30 s each: the dataplane stays exactly
//!   as it was, `/readiness` says why, and once etcd is back the agent converges on what
//!   was written meanwhile;
//! * a write storm of 1,000 updates/s for 30 s while three agents follow: afterwards every
//!   host's kernel holds exactly what the final model compiles to for that host.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_core::compile::{compile, CompileConfig};
use calico_core::integrations::calico_v3::parse_v3;
use calico_core::model::Model;
use calico_linux::acl::LinuxAcl;
use support::etcd::{
    policy, profile, programmed, ready, start_agent, wep, Datastore, ETCD_IP, PREFIX,
};
use support::{http_get, wait_until, Host};

/// Status back: the host's `Node` is registered with its address, and each endpoint is
/// reported up where Felix reports it (networking-calico reads these keys).
fn status_is_back(ds: &Datastore, host: &Host) {
    let reported = || {
        ds.with(|mut c| async move {
            let opts = etcd_client::GetOptions::new().with_prefix();
            let r = c
                .get("/calico/felix/v2/no-region/host/eo-h1/", Some(opts))
                .await
                .unwrap();
            r.kvs()
                .iter()
                .map(|kv| format!("{} {}", kv.key_str().unwrap(), kv.value_str().unwrap()))
                .collect::<Vec<_>>()
        })
    };
    let up = |ep: &str, r: &[String]| r.iter().any(|l| l.contains(ep) && l.contains("\"up\""));
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = reported();
            up("workload/k8s/a/endpoint/eth0", &r) && up("workload/k8s/b/endpoint/eth0", &r)
        })
        .is_some(),
        "{:?}\n{}",
        reported(),
        host.log()
    );
    let node = ds.with(|mut c| async move {
        let r = c.get(format!("{PREFIX}/nodes/eo-h1"), None).await.unwrap();
        r.kvs()
            .first()
            .map(|kv| kv.value_str().unwrap().to_string())
    });
    assert!(
        node.as_deref().is_some_and(|n| n.contains("10.88.0.1")),
        "Node not registered: {node:?}"
    );
}

/// Samples the host's routes and ruleset every 2 s for `d`: each must equal `(routes,
/// ruleset)`. Whether `/readiness` said why it is not ready, naming etcd, at some point.
fn hold_still(host: &Host, before: &(String, String), d: Duration) -> Option<String> {
    let start = Instant::now();
    let mut said = None;
    while start.elapsed() < d {
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(host.routes(), before.0, "routes changed during the outage");
        assert_eq!(
            host.ruleset(),
            before.1,
            "the ruleset changed during the outage"
        );
        let r = http_get(host, "/readiness");
        if r.starts_with("HTTP/1.1 503") && r.contains("unavailable") {
            said = Some(r);
        }
    }
    said
}

#[test]
fn an_etcd_outage_leaves_the_dataplane_exactly_as_it_was() {
    let test = "an_etcd_outage_leaves_the_dataplane_exactly_as_it_was";
    let Some(mut ds) = Datastore::start(test, "etcdout") else {
        return;
    };
    let wl = [("caleo0", "10.68.0.10"), ("caleo1", "10.68.0.11")];
    let mut host = Host::new("eo-h1", Some(&ds.fabric), "10.88.0.1", &wl);
    ds.put(vec![
        profile(),
        wep("eo-h1", "a", "caleo0", "10.68.0.10", "a"),
        wep("eo-h1", "b", "caleo1", "10.68.0.11", "b"),
        policy("a-from-b", "a", "b", 80),
    ]);
    start_agent(&mut host, &ds.etcd.endpoint());
    let both = |h: &Host| {
        let r = h.routes();
        r.contains("10.68.0.10 dev") && r.contains("10.68.0.11 dev")
    };
    assert!(
        wait_until(Duration::from_secs(20), || both(&host) && ready(&host)).is_some(),
        "{}",
        host.log()
    );
    let before = (host.routes(), host.ruleset());
    assert!(before.1.contains("chain"), "{}", before.1);
    status_is_back(&ds, &host);

    // Frozen: connections stay open and nothing answers.
    ds.etcd.pause();
    let said = hold_still(&host, &before, Duration::from_secs(30));
    ds.etcd.resume();
    let said =
        said.unwrap_or_else(|| panic!("/readiness never said etcd is unavailable\n{}", host.log()));
    assert!(said.contains(ETCD_IP), "{said}");
    let revision = ds.delete(wep("eo-h1", "b", "caleo1", "10.68.0.11", "b").0);
    assert!(
        wait_until(Duration::from_secs(20), || !host
            .routes()
            .contains("10.68.0.11")
            && programmed(&host) >= revision
            && ready(&host))
        .is_some(),
        "after SIGCONT the agent converges\n{}",
        host.log()
    );

    // Killed: connections refused, then etcd comes back with its data.
    let before = (host.routes(), host.ruleset());
    ds.etcd.kill();
    let said = hold_still(&host, &before, Duration::from_secs(30));
    assert!(
        said.is_some(),
        "/readiness never said etcd is unavailable\n{}",
        host.log()
    );
    ds.etcd.restart().unwrap();
    let revision = ds.put(vec![wep("eo-h1", "b", "caleo1", "10.68.0.11", "b")]);
    assert!(
        wait_until(Duration::from_secs(30), || both(&host)
            && programmed(&host) >= revision
            && ready(&host))
        .is_some(),
        "after a restart of etcd the agent converges\n{}",
        host.log()
    );
}

/// The storm's writer: `rate` puts a second for `d`, relabelling `remote` endpoints on
/// other nodes and rewriting `policies` policies' ports. The final value of every key, and
/// the puts done.
async fn storm(
    c: etcd_client::Client,
    mut last: BTreeMap<String, String>,
    remote: usize,
    policies: usize,
    rate: usize,
    d: Duration,
) -> (BTreeMap<String, String>, usize, Duration, i64) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let (mut sent, mut revision) = (0usize, 0);
    while start.elapsed() < d {
        tick.tick().await;
        let mut batch = Vec::new();
        for _ in 0..rate / 100 {
            let (k, v) = if sent % 5 == 4 {
                let p = sent / 5 % policies;
                policy(
                    &format!("p{p}"),
                    &format!("r{}", sent % 7),
                    "r0",
                    1000 + (sent % 50) as u16,
                )
            } else {
                let i = sent * 7919 % remote;
                let ip = format!("10.69.{}.{}", i / 250, i % 250 + 1);
                let role = format!("r{}", sent % 7);
                wep(
                    &format!("storm-other{}", i % 5),
                    &format!("w{i}"),
                    "caliother",
                    &ip,
                    &role,
                )
            };
            last.insert(k.clone(), v.clone());
            let mut c = c.clone();
            batch.push(async move { c.put(k, v, None).await });
            sent += 1;
        }
        // The tick's puts in flight at once: a writer that waited for each would measure
        // the round trip, not the rate.
        for r in futures::future::join_all(batch).await {
            revision = revision.max(r.unwrap().header().unwrap().revision());
        }
    }
    (last, sent, start.elapsed(), revision)
}

#[test]
fn three_agents_follow_a_write_storm_and_end_equal_to_the_model() {
    let test = "three_agents_follow_a_write_storm_and_end_equal_to_the_model";
    let Some(ds) = Datastore::start(test, "etcdstorm") else {
        return;
    };
    let mut hosts: Vec<Host> = (1..=3)
        .map(|i| {
            let wl = [(format!("calst{i}"), format!("10.70.{i}.10"))];
            let wl: Vec<(&str, &str)> = wl.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            Host::new(
                &format!("st-h{i}"),
                Some(&ds.fabric),
                &format!("10.88.0.{i}"),
                &wl,
            )
        })
        .collect();
    let mut initial = vec![profile()];
    for i in 1..=3 {
        initial.push(wep(
            &format!("st-h{i}"),
            &format!("local{i}"),
            &format!("calst{i}"),
            &format!("10.70.{i}.10"),
            "r0",
        ));
    }
    ds.put(initial.clone());
    for h in &mut hosts {
        start_agent(h, &ds.etcd.endpoint());
    }
    for h in &hosts {
        assert!(
            wait_until(Duration::from_secs(20), || ready(h)).is_some(),
            "{}",
            h.log()
        );
    }
    // The revision of the last put, not etcd's: the agents' own status reports (not
    // watched) move etcd's revision on.
    let (last, sent, took, final_revision) = ds.with(|c| {
        storm(
            c,
            initial.into_iter().collect(),
            300,
            20,
            1000,
            Duration::from_secs(30),
        )
    });
    let rate = sent as f64 / took.as_secs_f64();
    eprintln!("{sent} puts in {took:?}: {rate:.0}/s");
    assert!(
        rate > 800.0,
        "the writer itself must reach the storm's rate: {rate:.0}/s"
    );
    let model = Model::from_resources(
        last.values()
            .flat_map(|v| parse_v3(v).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for h in &hosts {
        assert!(
            wait_until(Duration::from_secs(60), || programmed(h) >= final_revision).is_some(),
            "{} did not program revision {final_revision}: {}\n{}",
            h.name,
            programmed(h),
            h.log()
        );
        let status = http_get(h, "/status");
        assert!(
            status.contains("\"refused\": {}"),
            "{}: entries refused: {status}",
            h.name
        );
        let acl = LinuxAcl::in_netns(Path::new(&h.ns.path()), "calico").unwrap();
        let want = compile(&CompileConfig::new(h.name.clone()), &model);
        assert!(
            acl.dump_blocking().unwrap() == want,
            "{}: the kernel's ruleset differs from the model's",
            h.name
        );
        assert!(
            h.routes()
                .contains(&format!("10.70.{}.10 dev", &h.name[4..])),
            "{}",
            h.routes()
        );
    }
}

/// The orchestrator path: Neutron's ports and security groups (the captured API JSON in
/// examples/data/neutron) written into etcd by the Neutron driver; the agent on the port's
/// host programs it and reports it up; the driver then reads the port as ACTIVE, as
/// networking-calico does. A port on a host with no agent reads as an error saying so.
#[test]
fn a_neutron_port_written_to_etcd_is_programmed_and_reads_active() {
    let test = "a_neutron_port_written_to_etcd_is_programmed_and_reads_active";
    let Some(ds) = Datastore::start(test, "etcdneutron") else {
        return;
    };
    let ports = calico_core::integrations::neutron::parse_ports(include_str!(
        "../../examples/data/neutron/ports.json"
    ))
    .unwrap();
    let groups = calico_core::integrations::neutron::parse_security_groups(include_str!(
        "../../examples/data/neutron/security_groups.json"
    ))
    .unwrap();
    // Port 0 is bound to compute1 with 10.1.0.5 on tap + the id's first 11 characters.
    let port = ports[0].clone();
    let tap = format!("tap{}", &port.id[..11]);
    let mut host = Host::new(
        "compute1",
        Some(&ds.fabric),
        "10.88.0.1",
        &[(&tap, "10.1.0.5")],
    );
    start_agent(&mut host, &ds.etcd.endpoint());
    let endpoint = ds.etcd.endpoint();
    let (status, elsewhere) = ds.with(|_| async move {
        use calico_core::integrations::neutron_driver::{NeutronDriver, PortStatus};
        let config = calico_etcd::EtcdConfig::new([endpoint.clone()]);
        let writer = calico_etcd::EtcdWriter::connect(&config).await.unwrap();
        let status = calico_etcd::EtcdStatus::connect(&[endpoint], Default::default())
            .await
            .unwrap();
        let driver = NeutronDriver::new(Arc::new(writer), Arc::new(status));
        for g in &groups {
            driver.security_group_updated(g).await.unwrap();
        }
        assert!(driver.port_updated(&port).await.unwrap());
        let other = ports
            .iter()
            .find(|p| p.host_id.as_deref() == Some("compute2"));
        let other = other.expect("a port on compute2").clone();
        driver.port_updated(&other).await.unwrap();
        let start = Instant::now();
        let mut last = driver.port_status(&port).await.unwrap();
        while last != PortStatus::Active && start.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            last = driver.port_status(&port).await.unwrap();
        }
        (last, driver.port_status(&other).await.unwrap())
    });
    assert_eq!(
        status,
        calico_core::integrations::neutron_driver::PortStatus::Active,
        "{}",
        host.log()
    );
    assert!(
        host.routes().contains("10.1.0.5 dev tap"),
        "{}",
        host.routes()
    );
    let calico_core::integrations::neutron_driver::PortStatus::Error(why) = elsewhere else {
        panic!("a port on a host with no agent: {elsewhere:?}")
    };
    assert!(why.contains("compute2"), "{why}");
}

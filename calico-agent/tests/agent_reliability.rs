//! The daemon under trouble, on the real kernel: killed mid-apply and restarted, restarted
//! while traffic flows, its routes and table damaged by hand, a peer host gone and back.

mod support;

use std::time::Duration;

use calico_netns::fixtures::privileged;
use support::{endpoints_yaml, fabric, http_get, peered_pair_yaml, wait_until, Host};

/// 40 workload endpoints, of which the first two exist as namespaces (the others' interfaces
/// never appear: the agent must program what it can and keep going).
fn many(prefix: &str) -> Vec<(String, String)> {
    (0..40)
        .map(|i| {
            (
                format!("cali{prefix}{i:02}"),
                format!("10.66.{}.{}", prefix.len(), 10 + i),
            )
        })
        .collect()
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

#[test]
fn kill_9_mid_apply_then_restart_converges_and_a_restart_loses_no_ping() {
    if !privileged("kill_9_mid_apply_then_restart_converges_and_a_restart_loses_no_ping") {
        return;
    }
    let all = many("a");
    let refs = as_refs(&all);
    let mut host = Host::new("rel-a", None, "192.168.77.1", &refs[..2]);
    host.write("endpoints.yaml", &endpoints_yaml("rel-a", &refs));
    host.start_agent(&["--no-bgp", "--http", "127.0.0.1:0", "--resync-secs", "2"]);
    std::thread::sleep(Duration::from_millis(150));
    host.signal_agent(libc::SIGKILL);
    host.start_agent(&["--no-bgp", "--http", "127.0.0.1:0", "--resync-secs", "2"]);
    let (a, b) = (refs[0].1, refs[1].1);
    assert!(
        wait_until(Duration::from_secs(20), || host.ping(0, b)
            && host.ping(1, a))
        .is_some(),
        "workloads reach each other after the restart\n{}",
        host.log()
    );
    // A graceful restart changes nothing and loses no packet of a flow in progress.
    let (routes, rules) = (host.routes(), host.ruleset());
    let ns_name = host.workloads[0].0.name().to_string();
    let ping = std::thread::spawn({
        let b = b.to_string();
        move || {
            std::process::Command::new("ip")
                .args([
                    "netns", "exec", &ns_name, "ping", "-q", "-i", "0.01", "-c", "300", "-W", "1",
                    &b,
                ])
                .output()
                .unwrap()
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    host.signal_agent(libc::SIGTERM);
    host.start_agent(&["--no-bgp", "--http", "127.0.0.1:0", "--resync-secs", "2"]);
    let out = ping.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "ping across the restart: {text}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        host.routes(),
        routes,
        "the restarted agent adopts the routes as they are"
    );
    assert_eq!(host.ruleset(), rules, "and the table");
}

#[test]
fn damage_by_hand_is_repaired_within_the_resync_interval() {
    if !privileged("damage_by_hand_is_repaired_within_the_resync_interval") {
        return;
    }
    let all = many("b");
    let refs = as_refs(&all);
    let mut host = Host::new("rel-b", None, "192.168.78.1", &refs[..2]);
    host.write("endpoints.yaml", &endpoints_yaml("rel-b", &refs));
    host.start_agent(&["--no-bgp", "--http", "127.0.0.1:0", "--resync-secs", "2"]);
    let (a, b) = (refs[0].1, refs[1].1);
    assert!(
        wait_until(Duration::from_secs(20), || host.ping(0, b)).is_some(),
        "{}",
        host.log()
    );
    let (routes, rules) = (host.routes(), host.ruleset());
    host.ns
        .run(&["ip", "route", "del", &format!("{b}/32")])
        .unwrap();
    host.ns
        .run(&["nft", "flush", "table", "inet", "calico"])
        .unwrap();
    // (No check that the damage is real: the kernel's events have the agent repair it within
    // milliseconds, see the tests below; the resync is the backstop for what no event
    // reports, tested in calico-core's `resync_repairs_a_route_deleted_by_hand`.)
    let took = wait_until(Duration::from_secs(6), || {
        host.routes() == routes && host.ruleset() == rules
    });
    assert!(
        took.is_some(),
        "repaired within the 2 s resync (+ slack)\n{}",
        host.log()
    );
    assert!(host.ping(0, b) && host.ping(1, a));
}

#[test]
fn a_peer_host_that_disappears_is_withdrawn_and_returns() {
    if !privileged("a_peer_host_that_disappears_is_withdrawn_and_returns") {
        return;
    }
    // One after the other: both runs use the same fabric namespace.
    peer_host_disappears_and_returns("bird");
    peer_host_disappears_and_returns("frr");
    peer_host_disappears_and_returns("native");
}

/// Hosts A and B peer with BGP implementation `bgp`; B vanishes (its uplink goes dark, then
/// every process of its namespace dies), A withdraws B's routes within the hold time; B
/// comes back and A learns them again.
fn peer_host_disappears_and_returns(bgp: &str) {
    let f = fabric("rel-fabric");
    let wa = [("calipa0", "10.67.1.10")];
    let wb = [("calipb0", "10.67.2.10")];
    let mut ha = Host::new("rel-pa", Some(&f), "192.168.79.1", &wa);
    let mut hb = Host::new("rel-pb", Some(&f), "192.168.79.2", &wb);
    let cluster = peered_pair_yaml(
        ("rel-pa", "192.168.79.1", &wa),
        ("rel-pb", "192.168.79.2", &wb),
        3,
    );
    for h in [&ha, &hb] {
        h.write("cluster.yaml", &cluster);
    }
    let args = [
        "--bgp",
        bgp,
        "--http",
        "127.0.0.1:9091",
        "--resync-secs",
        "2",
    ];
    ha.start_agent(&args);
    hb.start_agent(&args);
    let b_route = |h: &Host| h.routes().contains("10.67.2.10 via 192.168.79.2");
    assert!(
        wait_until(Duration::from_secs(30), || b_route(&ha)
            && ha.ping(0, "10.67.2.10"))
        .is_some(),
        "{bgp}: A learns B's workload and reaches it\n{}\n{}",
        ha.log(),
        hb.log()
    );
    // A's per-peer metrics show the session with B, from whatever the backend reports.
    let metric = |m: &str| format!("calico_agent_bgp_peer_{m}{{peer=\"192.168.79.2\"}}");
    let mut wanted = vec![format!("{} 1\n", metric("up"))];
    if bgp == "frr" {
        wanted.push(metric("updates_received_total"));
        wanted.push(metric("prefixes_advertised"));
    }
    let scraped = wait_until(Duration::from_secs(10), || {
        let text = http_get(&ha, "/metrics");
        wanted.iter().all(|w| text.contains(w))
    });
    assert!(
        scraped.is_some(),
        "{bgp}: {wanted:?} in A's metrics:\n{}",
        http_get(&ha, "/metrics")
    );
    // B disappears: its uplink goes dark first (nothing it sends reaches A any more, as when
    // a host loses power), then its agent and BGP daemon die.
    f.run(&["ip", "link", "set", "up-2", "down"]).unwrap();
    hb.signal_agent(libc::SIGKILL);
    for pid in hb
        .ns
        .run(&["ip", "netns", "pids", hb.ns.name()])
        .unwrap_or_default()
        .split_whitespace()
    {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .output();
    }
    let gone = wait_until(Duration::from_secs(10), || !b_route(&ha));
    assert!(
        gone.is_some_and(|t| t < Duration::from_secs(8)),
        "{bgp}: withdrawn within hold time 3 s + poll: {gone:?}\n{}",
        ha.log()
    );
    // B comes back.
    f.run(&["ip", "link", "set", "up-2", "up"]).unwrap();
    hb.start_agent(&args);
    assert!(
        wait_until(Duration::from_secs(30), || b_route(&ha)
            && ha.ping(0, "10.67.2.10"))
        .is_some(),
        "{bgp}: B's routes return\n{}",
        hb.log()
    );
}

/// A host with two workloads whose agent resyncs only once an hour (so any repair seen
/// within seconds comes from the kernel's events) and a policy that denies ICMP to the
/// second workload: a ping from the second to the first passes, one the other way is
/// dropped. Returns the host once the agent has programmed both.
fn host_with_hourly_resync(name: &str, prefix: &str) -> (Host, [(String, String); 2]) {
    let wls = [
        (
            format!("cali{prefix}0"),
            format!("10.68.{}.10", prefix.len()),
        ),
        (
            format!("cali{prefix}1"),
            format!("10.68.{}.11", prefix.len()),
        ),
    ];
    let refs: Vec<(&str, &str)> = wls.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut host = Host::new(name, None, "192.168.76.1", &refs);
    let policy = "---\nkind: Policy\nname: no-ping-to-w1\nselector: app == 'w1'\n\
                  ingress: [{action: Deny, protocol: ICMP}]\n";
    host.write("endpoints.yaml", &(endpoints_yaml(name, &refs) + policy));
    host.start_agent(&["--no-bgp", "--http", "127.0.0.1:0", "--resync-secs", "3600"]);
    let (a, b) = (wls[0].1.clone(), wls[1].1.clone());
    assert!(
        wait_until(Duration::from_secs(20), || host.ping(1, &a)).is_some(),
        "w1 reaches w0\n{}",
        host.log()
    );
    assert!(!host.ping(0, &b), "the policy drops pings to w1");
    (host, wls)
}

#[test]
fn a_table_deleted_by_hand_is_back_and_enforced_within_seconds() {
    if !privileged("a_table_deleted_by_hand_is_back_and_enforced_within_seconds") {
        return;
    }
    let (host, wls) = host_with_hourly_resync("rel-dt", "dt");
    let (a, b) = (&wls[0].1, &wls[1].1);
    let rules = host.ruleset();
    host.ns
        .run(&["nft", "delete", "table", "inet", "calico"])
        .unwrap();
    let took = wait_until(Duration::from_secs(5), || host.ruleset() == rules);
    assert!(
        took.is_some(),
        "table back within 5 s (resync is hourly)\n{}",
        host.log()
    );
    assert!(!host.ping(0, b), "the denied ping is denied again");
    assert!(host.ping(1, a), "the allowed ping passes");
}

#[test]
fn a_route_deleted_by_hand_is_back_within_seconds() {
    if !privileged("a_route_deleted_by_hand_is_back_within_seconds") {
        return;
    }
    let (host, wls) = host_with_hourly_resync("rel-dr", "dr");
    let a = &wls[0].1;
    let routes = host.routes();
    host.ns
        .run(&["ip", "route", "del", &format!("{a}/32")])
        .unwrap();
    let took = wait_until(Duration::from_secs(5), || host.routes() == routes);
    assert!(
        took.is_some(),
        "route back within 5 s (resync is hourly)\n{}",
        host.log()
    );
    assert!(host.ping(1, a));
}

#[test]
fn a_recreated_workload_interface_is_routed_again_within_seconds() {
    if !privileged("a_recreated_workload_interface_is_routed_again_within_seconds") {
        return;
    }
    let (host, wls) = host_with_hourly_resync("rel-dl", "dl");
    let (iface, a) = (&wls[0].0, &wls[0].1);
    let routes = host.routes();
    // As a CNI plugin re-creating the workload's interface: the old veth goes (both ends,
    // and with it the kernel's route to the workload), a new one with the same names and
    // address comes.
    host.ns.run(&["ip", "link", "del", iface]).unwrap();
    assert_ne!(host.routes(), routes, "the route went with the interface");
    let wl = &host.workloads[0].0;
    calico_netns::fixtures::veth(&host.ns, iface, wl, "eth0").unwrap();
    wl.run(&["ip", "addr", "add", &format!("{a}/32"), "dev", "eth0"])
        .unwrap();
    wl.run(&[
        "ip",
        "route",
        "add",
        "169.254.1.1",
        "dev",
        "eth0",
        "scope",
        "link",
    ])
    .unwrap();
    wl.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])
    .unwrap();
    let took = wait_until(Duration::from_secs(5), || {
        host.routes() == routes && host.ping(1, a)
    });
    assert!(
        took.is_some(),
        "routed again within 5 s (resync is hourly)\n{}",
        host.log()
    );
}

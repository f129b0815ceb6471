//! Restarting `calico-agent --bgp native` does not interrupt traffic between hosts (graceful
//! restart, RFC 4724): two hosts in namespaces (`cgra*`) on a bridged fabric, peering with
//! each other, a workload on each, a ping every 50 ms from A's workload to B's while B's
//! agent is stopped (SIGTERM) and started again 2 s later. A's route to B's workload and
//! B's route back to A's are watched every 50 ms throughout: neither may disappear, and no
//! ping may be lost. Then the contrast: with `--no-graceful-restart`, B stopping withdraws
//! its route from A at once.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use calico_netns::fixtures::{privileged, Netns};
use support::{fabric, http_get, peered_pair_yaml, wait_until, Host};

const A_UPLINK: &str = "192.168.80.1";
const B_UPLINK: &str = "192.168.80.2";
const A_WL: &str = "10.68.1.10";
const B_WL: &str = "10.68.2.10";

/// Watches one route of a namespace's FIB every 50 ms until stopped.
struct RouteWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Absence>,
}

/// What a [`RouteWatch`] saw.
#[derive(Debug)]
struct Absence {
    samples: usize,
    /// Samples in which the route was missing.
    missing: usize,
    /// The longest time between the last sample with the route and the next one with it.
    longest: Duration,
}

impl RouteWatch {
    /// Watches for a line containing `route` in the agent's routes of `ns`.
    fn start(ns: &Netns, route: String) -> RouteWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let name = ns.name().to_string();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut seen = Absence {
                    samples: 0,
                    missing: 0,
                    longest: Duration::ZERO,
                };
                let mut last_present = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let out = Command::new("ip")
                        .args(["-n", &name, "route", "show", "proto", "80"])
                        .output()
                        .expect("ip route runs");
                    let now = Instant::now();
                    seen.samples += 1;
                    if String::from_utf8_lossy(&out.stdout).contains(&route) {
                        seen.longest = seen.longest.max(now - last_present);
                        last_present = now;
                    } else {
                        seen.missing += 1;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                seen.longest = seen.longest.max(Instant::now() - last_present);
                seen
            }
        });
        RouteWatch { stop, thread }
    }

    fn finish(self) -> Absence {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Refuses (TCP reset) or allows again BGP connections into and out of `ns`.
fn block_bgp(ns: &Netns, block: bool) {
    let commands: &[&[&str]] = if block {
        &[
            &["nft", "add", "table", "inet", "cgra_block"],
            &[
                "nft",
                "add",
                "chain",
                "inet",
                "cgra_block",
                "in",
                "{ type filter hook input priority 0; }",
            ],
            &[
                "nft",
                "add",
                "chain",
                "inet",
                "cgra_block",
                "out",
                "{ type filter hook output priority 0; }",
            ],
            &[
                "nft",
                "add",
                "rule",
                "inet",
                "cgra_block",
                "in",
                "tcp",
                "dport",
                "179",
                "reject",
                "with",
                "tcp",
                "reset",
            ],
            &[
                "nft",
                "add",
                "rule",
                "inet",
                "cgra_block",
                "out",
                "tcp",
                "dport",
                "179",
                "reject",
                "with",
                "tcp",
                "reset",
            ],
        ]
    } else {
        &[&["nft", "delete", "table", "inet", "cgra_block"]]
    };
    for c in commands {
        ns.run(c).unwrap();
    }
}

/// `(transmitted, received)` from ping's summary line.
fn ping_counts(summary: &str) -> (u32, u32) {
    let line = summary
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no summary in ping's output: {summary}"));
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<u32>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[test]
fn a_native_bgp_agent_restart_keeps_traffic_between_hosts_flowing() {
    if !privileged("a_native_bgp_agent_restart_keeps_traffic_between_hosts_flowing") {
        return;
    }
    let started = Instant::now();
    let f = fabric("cgra-fab");
    let wa = [("cgraa0", A_WL)];
    let wb = [("cgrab0", B_WL)];
    let mut ha = Host::new("cgra-a", Some(&f), A_UPLINK, &wa);
    let mut hb = Host::new("cgra-b", Some(&f), B_UPLINK, &wb);
    let cluster = peered_pair_yaml(("cgra-a", A_UPLINK, &wa), ("cgra-b", B_UPLINK, &wb), 9);
    for h in [&ha, &hb] {
        h.write("cluster.yaml", &cluster);
    }
    let args = [
        "--bgp",
        "native",
        "--http",
        "127.0.0.1:9091",
        "--resync-secs",
        "2",
    ];
    ha.start_agent(&args);
    hb.start_agent(&args);
    let to_b = format!("{B_WL} via {B_UPLINK}");
    let to_a = format!("{A_WL} via {A_UPLINK}");
    assert!(
        wait_until(Duration::from_secs(20), || ha.routes().contains(&to_b)
            && hb.routes().contains(&to_a)
            && ha.ping(0, B_WL))
        .is_some(),
        "A and B learn each other's workload and reach it\nA:\n{}\nB:\n{}",
        ha.log(),
        hb.log()
    );

    // A ping every 50 ms for 7 s; B's agent stops 0.5 s in and is back 2 s later.
    let watch_a = RouteWatch::start(&ha.ns, to_b.clone());
    let watch_b = RouteWatch::start(&hb.ns, to_a.clone());
    let wl_a = ha.workloads[0].0.name().to_string();
    let ping = std::thread::spawn(move || {
        Command::new("ip")
            .args([
                "netns", "exec", &wl_a, "ping", "-q", "-i", "0.05", "-c", "140", "-W", "1", B_WL,
            ])
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    hb.signal_agent(libc::SIGTERM);
    std::thread::sleep(Duration::from_secs(2));
    // On an idle fabric the new session would be up within milliseconds, before the new
    // agent's first pass could drop anything; a peer's connect-retry timer usually makes it
    // seconds. Refusing BGP connections for the new agent's first 1.5 s shows that B keeps
    // its route back to A until its session is back.
    block_bgp(&hb.ns, true);
    hb.start_agent(&args);
    std::thread::sleep(Duration::from_millis(1500));
    block_bgp(&hb.ns, false);
    let out = ping.join().unwrap();
    let (a_seen, b_seen) = (watch_a.finish(), watch_b.finish());
    let summary = String::from_utf8_lossy(&out.stdout);
    let (sent, received) = ping_counts(&summary);
    eprintln!(
        "graceful restart of B's agent: {} of {sent} pings lost; A's route to B's workload \
         missing in {} of {} samples (longest gap between samples with it {:?}); B's route \
         back missing in {} of {} (longest gap {:?})",
        sent - received,
        a_seen.missing,
        a_seen.samples,
        a_seen.longest,
        b_seen.missing,
        b_seen.samples,
        b_seen.longest,
    );
    let b_log = hb.log();
    let converged = b_log
        .lines()
        .find_map(|l| l.split("BGP converged ").nth(1))
        .and_then(|v| v.split(" ms after the restart").next())
        .unwrap_or("?")
        .to_string();
    eprintln!("B's BGP converged {converged} ms after its agent started again");
    assert!(
        b_log.contains("restarting with forwarding state preserved")
            && b_log.contains("ms after the restart (every peer established"),
        "B's agent restarted gracefully and its BGP converged:\n{b_log}"
    );
    assert_eq!(
        a_seen.missing,
        0,
        "A kept its route to B's workload throughout ({a_seen:?})\nA:\n{}\nB:\n{b_log}",
        ha.log()
    );
    assert_eq!(
        b_seen.missing, 0,
        "B kept its route back to A's workload throughout ({b_seen:?})\nB:\n{b_log}"
    );
    assert_eq!(
        received,
        sent,
        "no ping lost across B's restart: {summary}\nA:\n{}\nB:\n{b_log}",
        ha.log()
    );

    // A's per-peer metrics saw B's session end once and come back, with UPDATEs both ways.
    let metric = |m: &str| format!("calico_agent_bgp_peer_{m}{{peer=\"{B_UPLINK}\"}}");
    let scraped = wait_until(Duration::from_secs(15), || {
        let text = http_get(&ha, "/metrics");
        text.contains(&format!("{} 1", metric("up")))
            && text.contains(&format!("{} 1", metric("flaps_total")))
    });
    let text = http_get(&ha, "/metrics");
    assert!(
        scraped.is_some(),
        "A's metrics show B up after one flap:\n{text}"
    );
    for m in [
        "updates_received_total",
        "updates_sent_total",
        "uptime_seconds",
    ] {
        assert!(text.contains(&metric(m)), "{m} in A's metrics:\n{text}");
    }
    assert!(
        !text.contains(&format!("{} 0\n", metric("updates_received_total"))),
        "{text}"
    );

    // The contrast, without graceful restart: B stopping withdraws its route from A at once
    // (a Cease, not the 9 s hold time).
    hb.signal_agent(libc::SIGTERM);
    hb.start_agent(&[&args[..], &["--no-graceful-restart"]].concat());
    // Its session must be up again before it stops, or there is nothing to withdraw.
    assert!(
        wait_until(Duration::from_secs(10), || ha.routes().contains(&to_b)
            && hb.routes().contains(&to_a)
            && ha.ping(0, B_WL))
        .is_some(),
        "B back without graceful restart\nA:\n{}\nB:\n{}",
        ha.log(),
        hb.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    hb.signal_agent(libc::SIGTERM);
    let gone = wait_until(Duration::from_secs(5), || !ha.routes().contains(&to_b));
    assert!(
        gone.is_some_and(|t| t < Duration::from_secs(2)),
        "without graceful restart A withdraws B's route as B stops: {gone:?}\nA:\n{}\nB:\n{}",
        ha.log(),
        hb.log()
    );
    eprintln!(
        "without graceful restart: A's route to B's workload gone {gone:?} after B's agent \
         stopped; whole test {:?}",
        started.elapsed()
    );
}

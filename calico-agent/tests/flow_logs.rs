//! Flow logs end to end: an agent with `--flow-logs` in a network namespace, two workloads
//! and a policy allowing one port and denying the rest by a named rule; an allowed and a
//! denied TCP connect show in `GET /flows` named by policy, rule and verdict, and in the
//! per-policy counters of `/metrics` and the `/status` section; `/flows?follow=1` streams the
//! records of a connection made while it is open (read by `calico-rs flows --follow`).

mod support;

use std::time::Duration;

use calico_netns::fixtures::privileged;
use serde_json::Value;
use support::{endpoints_yaml, http_get, wait_until, Host};

const POLICY: &str = "
---
kind: Policy
name: w1-web
namespace: default
selector: app == 'w1'
types: [Ingress]
ingress:
- action: Allow
  protocol: TCP
  source: {selector: app == 'w0'}
  destination: {ports: [8080]}
- action: Deny
  metadata: {annotations: {name: rest}}
";

/// The body of a response (after the blank line).
fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The records `/flows` serves.
fn flows(host: &Host) -> Vec<Value> {
    body(&http_get(host, "/flows"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn allowed_and_denied_connects_show_in_flows_metrics_and_status_by_policy() {
    if !privileged("allowed_and_denied_connects_show_in_flows_metrics_and_status_by_policy") {
        return;
    }
    let wls = [("califl0", "10.71.0.10"), ("califl1", "10.71.0.11")];
    let mut host = Host::new("flw-a", None, "192.168.81.1", &wls);
    host.write("all.yaml", &(endpoints_yaml("flw-a", &wls) + POLICY));
    host.start_agent(&["--no-bgp", "--flow-logs", "--flow-log-interval-secs", "1"]);
    host.wait_programmed(2, Duration::from_secs(30));
    // The records are named after the model the agent last saw; it is looked at every second.
    std::thread::sleep(Duration::from_millis(1500));

    let web = "10.71.0.11:8080".parse().unwrap();
    let ssh = "10.71.0.11:2222".parse().unwrap();
    let (_web, _ssh) = (host.listen(1, web), host.listen(1, ssh));
    assert!(host.connect(0, web), "allowed");
    assert!(!host.connect(0, ssh), "denied");

    let ingress = |f: &Value, port: u64| f["direction"] == "ingress" && f["dstPort"] == port;
    let mut records = vec![];
    let both = wait_until(Duration::from_secs(10), || {
        records = flows(&host);
        records.iter().any(|f| ingress(f, 8080)) && records.iter().any(|f| ingress(f, 2222))
    });
    assert!(both.is_some(), "{records:#?}\n{}", host.log());
    let allowed = records.iter().find(|f| ingress(f, 8080)).unwrap();
    assert_eq!(allowed["verdict"], "allow", "{allowed:#}");
    assert_eq!(allowed["policy"], "default/w1-web", "{allowed:#}");
    assert_eq!(allowed["policyKind"], "policy", "{allowed:#}");
    assert_eq!(allowed["rule"], 0, "{allowed:#}");
    assert_eq!(allowed["srcIp"], "10.71.0.10", "{allowed:#}");
    assert_eq!(allowed["proto"], 6, "{allowed:#}");
    assert_eq!(
        allowed["dstEndpoint"], "k8s/default.flw-a-w1/eth0",
        "{allowed:#}"
    );
    let denied = records.iter().find(|f| ingress(f, 2222)).unwrap();
    assert_eq!(denied["verdict"], "deny", "{denied:#}");
    assert_eq!(denied["policy"], "default/w1-web", "{denied:#}");
    assert_eq!(denied["rule"], 1, "{denied:#}");
    assert_eq!(denied["ruleName"], "rest", "{denied:#}");
    // w0's egress is allowed by its profile.
    assert!(
        records.iter().any(|f| f["direction"] == "egress"
            && f["dstPort"] == 8080
            && f["policy"] == "kns.default"
            && f["verdict"] == "allow"),
        "{records:#?}"
    );

    let metrics = http_get(&host, "/metrics");
    for verdict in ["allow", "deny"] {
        let line = format!(
            "calico_agent_flow_log_packets_total{{policy=\"default/w1-web\",verdict=\"{verdict}\"}}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    one_request_streams_a_new_connection(&host, web);
    follow_shows_a_new_connection(&host, web);

    let status: Value = serde_json::from_str(body(&http_get(&host, "/status"))).unwrap();
    assert_eq!(status["flow_logs"]["enabled"], true, "{status:#}");
    assert!(
        status["flow_logs"]["records"].as_u64() >= Some(3),
        "{status:#}"
    );
    assert_eq!(status["flow_logs"]["dropped"], 0, "{status:#}");
}

/// `calico-rs flows --follow --json` (which reads `GET /flows?follow=1`) goes on after the
/// recent records: a connection made while it runs shows up, by its source port, without
/// another request.
fn follow_shows_a_new_connection(host: &Host, web: std::net::SocketAddr) {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let mut tool = std::process::Command::new("ip")
        .args(["netns", "exec", host.ns.name()])
        .arg(env!("CARGO_BIN_EXE_calico-rs"))
        .args(["flows", "--follow", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tool.stdout.take().unwrap()).lines();
    // The recent records come first: once one is printed, the stream is open.
    assert!(lines.next().is_some_and(|l| l.is_ok()), "no recent record");
    let src_port = connect_from_w0(host, web);
    // Killed after 15 s if the record never comes, which ends the loop below.
    let pid = tool.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = done.clone();
    let watchdog = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !watch.load(std::sync::atomic::Ordering::SeqCst) {
            if start.elapsed() > Duration::from_secs(15) {
                // SAFETY: kill(2) on our child, not reaped before `done` is set.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let seen = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| is_web_record(&l, src_port));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watchdog.join().unwrap();
    // The reader goes away first, as with `calico-rs flows --follow | head`: the tool ends
    // on the broken pipe, quietly (killed by SIGPIPE, not a panic's exit code 101).
    assert!(
        seen,
        "no record of port {src_port} followed\n{}",
        host.log()
    );
    drop(lines);
    let _ = connect_from_w0(host, web);
    let end = wait_until(Duration::from_secs(10), || {
        tool.try_wait().ok().flatten().is_some()
    });
    let _ = tool.kill();
    let end = end.and(tool.wait().ok());
    assert_eq!(end.and_then(|e| e.signal()), Some(libc::SIGPIPE), "{end:?}");
}

/// A TCP connect from workload 0 to `web`; its source port.
fn connect_from_w0(host: &Host, web: std::net::SocketAddr) -> u16 {
    host.workloads[0]
        .0
        .enter(move || {
            let s = std::net::TcpStream::connect_timeout(&web, Duration::from_secs(1)).unwrap();
            s.local_addr().unwrap().port()
        })
        .unwrap()
}

/// Whether `line` is the allowed record of the connection from `src_port` to port 8080.
fn is_web_record(line: &str, src_port: u16) -> bool {
    serde_json::from_str::<Value>(line)
        .is_ok_and(|f| f["srcPort"] == src_port && f["dstPort"] == 8080 && f["verdict"] == "allow")
}

/// One `GET /flows?follow=1` stays open: a connection made after the request shows up on
/// it (a response that ended with the recent records would not have it).
fn one_request_streams_a_new_connection(host: &Host, web: std::net::SocketAddr) {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = host
        .ns
        .enter(|| std::net::TcpStream::connect("127.0.0.1:9091"))
        .unwrap()
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /flows?follow=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next().unwrap().unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let src_port = connect_from_w0(host, web);
    // Chunk sizes and records, as they come; the record is made within the 1 s interval.
    let seen = lines
        .map_while(Result::ok)
        .any(|l| is_web_record(&l, src_port));
    assert!(
        seen,
        "no record of port {src_port} on the stream\n{}",
        host.log()
    );
}

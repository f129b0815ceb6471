//! The daemon under an operator's mistakes and a hostile directory, on the real kernel:
//! files rewritten in place, a directory emptied, a FIFO and a `/dev/zero` link, a bad file
//! beside good ones, a second agent, SIGTERM in the middle of a large change.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_netns::fixtures::privileged;
use support::{endpoints_yaml, wait_until, Host};

const AGENT: [&str; 6] = [
    "--no-bgp",
    "--http",
    "127.0.0.1:9091",
    "--resync-secs",
    "3600",
    "--rescan-secs",
];

fn start(host: &mut Host) {
    let mut args = AGENT.to_vec();
    args.extend(["2", "--lock-dir"]);
    let lock_dir = host.dir.join("lock");
    let lock_dir = lock_dir.to_str().unwrap().to_string();
    args.push(&lock_dir);
    host.start_agent(&args);
}

fn has_routes(host: &Host, ips: &[&str]) -> bool {
    let routes = host.routes();
    ips.iter().all(|ip| routes.contains(&format!("{ip} dev")))
}

/// A host `name` with the workloads `wl` described in `file`, its agent started and their
/// routes programmed.
fn running(name: &str, uplink: &str, file: &str, wl: &[(&str, &str)]) -> Host {
    let mut host = Host::new(name, None, uplink, &WL);
    host.write(file, &endpoints_yaml(name, wl));
    start(&mut host);
    let ips: Vec<&str> = wl.iter().map(|w| w.1).collect();
    assert!(
        wait_until(Duration::from_secs(20), || has_routes(&host, &ips)).is_some(),
        "{}",
        host.log()
    );
    host
}

fn get(host: &Host, path: &str) -> String {
    support::http_get(host, path)
}

const WL: [(&str, &str); 2] = [("caldf0", "10.67.0.10"), ("caldf1", "10.67.0.11")];

#[test]
fn a_file_rewritten_in_place_never_loses_its_routes() {
    if !privileged("a_file_rewritten_in_place_never_loses_its_routes") {
        return;
    }
    let host = running("df-rw", "192.168.78.1", "endpoints.yaml", &WL);
    let yaml = endpoints_yaml("df-rw", &WL);
    let ips = [WL[0].1, WL[1].1];

    // Watch the routes every 20 ms while the file is rewritten as `cat > file` does:
    // truncated, half written, a pause, the rest.
    let lost = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let ns = host.ns.name().to_string();
    let watcher = std::thread::spawn({
        let (lost, done) = (lost.clone(), done.clone());
        move || {
            while !done.load(Ordering::Relaxed) {
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &ns, "ip", "route", "show", "proto", "80"])
                    .output()
                    .unwrap();
                let routes = String::from_utf8_lossy(&out.stdout);
                if !ips.iter().all(|ip| routes.contains(&format!("{ip} dev"))) {
                    lost.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    let path = host.dir.join("resources/endpoints.yaml");
    for _ in 0..2 {
        let mut f = std::fs::File::create(&path).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let cut = yaml.find("---\nkind: WorkloadEndpoint").unwrap();
        f.write_all(&yaml.as_bytes()[..cut]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(&yaml.as_bytes()[cut..]).unwrap();
        drop(f);
        std::thread::sleep(Duration::from_millis(1500));
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(
        !lost.load(Ordering::Relaxed),
        "a route went missing during the rewrite\n{}",
        host.log()
    );
    assert!(
        !host.log().contains('\u{1b}'),
        "no colour codes in a log file"
    );
}

#[test]
fn an_emptied_directory_removes_nothing_until_confirmed() {
    if !privileged("an_emptied_directory_removes_nothing_until_confirmed") {
        return;
    }
    let host = running("df-empty", "192.168.79.1", "endpoints.yaml", &WL);
    let ips = [WL[0].1, WL[1].1];

    // The directory is replaced by an empty one.
    let resources = host.dir.join("resources");
    std::fs::rename(&resources, host.dir.join("resources.old")).unwrap();
    std::fs::create_dir(&resources).unwrap();
    assert!(
        wait_until(Duration::from_secs(8), || host
            .log()
            .contains("the removal is held"))
        .is_some(),
        "the agent says it holds the removal\n{}",
        host.log()
    );
    assert!(has_routes(&host, &ips), "routes stay\n{}", host.log());
    let status = get(&host, "/status");
    assert!(status.contains("\"held_deletion\""), "{status}");
    assert!(
        get(&host, "/readiness").starts_with("HTTP/1.1 503"),
        "not ready while held"
    );

    // Confirmed: removed, and the confirmation is taken.
    std::fs::write(resources.join(".calico-confirm-deletions"), "").unwrap();
    assert!(
        wait_until(Duration::from_secs(8), || host.routes().is_empty()).is_some(),
        "routes removed once confirmed\n{}",
        host.log()
    );
    assert!(wait_until(Duration::from_secs(3), || !resources
        .join(".calico-confirm-deletions")
        .exists())
    .is_some());
}

#[test]
fn a_fifo_a_dev_zero_link_and_a_bad_file_block_nothing_else() {
    if !privileged("a_fifo_a_dev_zero_link_and_a_bad_file_block_nothing_else") {
        return;
    }
    let host = running("df-bad", "192.168.80.1", "a.yaml", &WL[..1]);

    let dir = host.dir.join("resources");
    let fifo =
        std::ffi::CString::new(dir.join("pipe.yaml").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).unwrap();
    let huge_label = "v".repeat(1 << 20);
    // Valid YAML whose label value is invalid: the error must not echo the 1 MB value.
    host.write(
        "bad.yaml",
        &format!("kind: Profile\nname: big\nlabels: {{a: {huge_label}}}\n"),
    );
    // A valid change in another file goes through.
    let second = endpoints_yaml("df-bad", &WL);
    let second = second
        .split("---\n")
        .skip(2)
        .collect::<Vec<_>>()
        .join("---\n");
    host.write("b.yaml", &second);
    assert!(
        wait_until(Duration::from_secs(10), || has_routes(&host, &[WL[1].1])).is_some(),
        "the valid file's endpoint is programmed\n{}",
        host.log()
    );
    let log = host.log();
    assert!(
        log.contains("a FIFO") && log.contains("a character device"),
        "{log}"
    );
    assert!(
        log.lines().all(|l| l.len() < 4096),
        "no line echoes the 1 MB label"
    );
    let metrics = get(&host, "/metrics");
    assert!(
        metrics.contains("calico_agent_resource_files_rejected 3"),
        "{metrics}"
    );
    let status = get(&host, "/status");
    assert!(
        status.contains("\"rejected\"") && status.contains("bad.yaml"),
        "{status}"
    );
}

#[test]
fn a_second_agent_on_the_same_table_is_refused() {
    if !privileged("a_second_agent_on_the_same_table_is_refused") {
        return;
    }
    let host = running("df-two", "192.168.81.1", "endpoints.yaml", &WL);
    let lock_dir = host.dir.join("lock");
    let out = host
        .ns
        .output(&[
            env!("CARGO_BIN_EXE_calico-agent"),
            "--node",
            "df-two",
            "--no-bgp",
            "--http",
            "127.0.0.1:0",
            "--resources",
            host.dir.join("resources").to_str().unwrap(),
            "--lock-dir",
            lock_dir.to_str().unwrap(),
        ])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second agent must not run");
    assert!(err.contains("another calico-agent"), "{err}");
}

/// `n` policies selecting the workloads, each with one rule.
fn policies(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "kind: Policy\nname: p{i}\norder: {i}\nselector: app == 'w{}'\ningress:\n  - action: Allow\n    protocol: TCP\n    destination: {{ports: [{}]}}\n",
                i % 2,
                1000 + i % 50_000
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn sigterm_in_the_middle_of_a_large_change_is_acted_on() {
    if !privileged("sigterm_in_the_middle_of_a_large_change_is_acted_on") {
        return;
    }
    let mut host = running("df-term", "192.168.82.1", "endpoints.yaml", &WL);
    host.write("policies.yaml", &policies(10_000));
    // Into the read, parse or compile of the change.
    std::thread::sleep(Duration::from_millis(900));
    let mut agent = host.agent.take().unwrap();
    let started = Instant::now();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let exited = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = agent.kill();
            let _ = agent.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exited.is_some(),
        "SIGTERM not acted on within 20 s\n{}",
        host.log()
    );
    assert!(
        host.log()
            .contains("stopping; the dataplane stays as programmed"),
        "{}",
        host.log()
    );
}

#[test]
fn a_resync_that_finds_nothing_to_repair_logs_nothing() {
    if !privileged("a_resync_that_finds_nothing_to_repair_logs_nothing") {
        return;
    }
    let mut host = Host::new("df-quiet", None, "192.168.83.1", &WL);
    host.write("endpoints.yaml", &endpoints_yaml("df-quiet", &WL));
    let lock_dir = host.dir.join("lock");
    host.start_agent(&[
        "--no-bgp",
        "--http",
        "127.0.0.1:0",
        "--resync-secs",
        "1",
        "--lock-dir",
        lock_dir.to_str().unwrap(),
    ]);
    let ips = [WL[0].1, WL[1].1];
    assert!(
        wait_until(Duration::from_secs(20), || has_routes(&host, &ips)).is_some(),
        "{}",
        host.log()
    );
    // Three resyncs or more.
    std::thread::sleep(Duration::from_millis(3500));
    let log = host.log();
    let configured = log.matches("workload interface configured").count();
    assert_eq!(configured, 2, "once per interface, not per resync:\n{log}");
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime
    // the 13th of them.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[test]
fn http_connections_cannot_starve_the_agent() {
    if !privileged("http_connections_cannot_starve_the_agent") {
        return;
    }
    let mut host = Host::new("df-http", None, "192.168.84.1", &WL);
    host.write("a.yaml", &endpoints_yaml("df-http", &WL[..1]));
    let lock_dir = host.dir.join("lock");
    host.start_agent(&[
        "--no-bgp",
        "--http",
        "127.0.0.1:9091",
        "--http-max-connections",
        "8",
        "--lock-dir",
        lock_dir.to_str().unwrap(),
    ]);
    assert!(
        wait_until(Duration::from_secs(20), || has_routes(&host, &[WL[0].1])).is_some(),
        "{}",
        host.log()
    );
    let pid = host.agent.as_ref().unwrap().id();
    // Few file descriptors, as on a host where they run out.
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=64:64"])
        .status()
        .unwrap();
    assert!(limited.success());
    let second = endpoints_yaml("df-http", &WL);
    let second = second
        .split("---\n")
        .skip(2)
        .collect::<Vec<_>>()
        .join("---\n");
    std::thread::scope(|s| {
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let ns = &host.ns;
        s.spawn(move || {
            ns.enter(move || {
                // Idle clients, far more than the agent has descriptors for.
                let held: Vec<std::net::TcpStream> = (0..200)
                    .filter_map(|_| {
                        std::net::TcpStream::connect_timeout(
                            &"127.0.0.1:9091".parse().unwrap(),
                            Duration::from_millis(100),
                        )
                        .ok()
                    })
                    .collect();
                opened_tx.send(held.len()).unwrap();
                let _ = done_rx.recv_timeout(Duration::from_secs(30));
                drop(held);
            })
            .unwrap();
        });
        let opened = opened_rx.recv().unwrap();
        let cpu_before = cpu_seconds(pid);
        let t = Instant::now();
        host.write("b.yaml", &second);
        let applied = wait_until(Duration::from_secs(10), || has_routes(&host, &[WL[1].1]));
        std::thread::sleep(Duration::from_secs(2).saturating_sub(t.elapsed()));
        let cpu = (cpu_seconds(pid) - cpu_before) / t.elapsed().as_secs_f64();
        done_tx.send(()).unwrap();
        assert!(
            applied.is_some(),
            "with {opened} idle connections open the agent still reads its directory\n{}",
            host.log()
        );
        assert!(
            cpu < 0.5,
            "the agent used {cpu:.2} cores while clients held connections"
        );
    });
    // And it serves again once they are gone.
    assert!(
        wait_until(Duration::from_secs(10), || get(&host, "/liveness")
            .contains("200 OK"))
        .is_some()
    );
}

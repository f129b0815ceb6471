//! Fan-out of one write to many watching clients, on a real etcd this bench starts:
//!
//! * `direct`: N clients in this process, each its own etcd-client connection, watching
//!   `/calico/resources/v3/`; one write, time until it has reached all N (median, p99 and
//!   max over the writes), and etcd's RSS before and with the watchers;
//! * `proxy`: the same N clients through etcd's watch-coalescing `grpc-proxy` (part of the
//!   etcd binary), with etcd's and the proxy's RSS.
//!
//! Each round starts a fresh etcd (and proxy), so memory figures are not inherited; rounds
//! alternate direct and proxy so the machine's noise hits both. A plain `cargo test` does not
//! build or run it; run it by name:
//!
//! ```text
//! cargo test -p calico-etcd --bench fanout   # test profile; or: cargo bench -p calico-etcd --bench fanout
//! FANOUT_CLIENTS=500 FANOUT_WRITES=200 FANOUT_ROUNDS=3 (defaults; about a minute)
//! ```

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_etcd::testing::{etcd_binary, EtcdServer};
use etcd_client::{Client, WatchOptions};
use tokio::sync::mpsc;

const PREFIX: &str = "/calico/resources/v3/";

struct Settings {
    clients: usize,
    writes: usize,
    rounds: usize,
}

/// What one round measured.
struct Round {
    mode: &'static str,
    /// Per write: time from the write until the last client saw it.
    all: Vec<Duration>,
    /// Per write: time until the first client saw it.
    first: Vec<Duration>,
    etcd_idle_kib: u64,
    etcd_watching_kib: u64,
    proxy_kib: Option<(u64, u64)>,
    connect: Duration,
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let settings = Settings {
        clients: env("FANOUT_CLIENTS", 500),
        writes: env("FANOUT_WRITES", 200),
        rounds: env("FANOUT_ROUNDS", 3),
    };
    if Command::new(etcd_binary())
        .arg("--version")
        .output()
        .is_err()
    {
        println!("fanout: SKIPPED: no etcd binary");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rounds = Vec::new();
    for r in 0..settings.rounds {
        for proxied in [false, true] {
            let round = rt.block_on(run_round(&settings, proxied));
            eprintln!("round {} {} done", r + 1, round.mode);
            rounds.push(round);
        }
    }
    print_table(&settings, &rounds);
}

async fn run_round(s: &Settings, proxied: bool) -> Round {
    let etcd = EtcdServer::start(&[]).expect("etcd starts");
    let etcd_pid = etcd.pid().expect("etcd runs");
    let mut proxy = proxied.then(|| Proxy::start(&etcd.endpoint()));
    let target = proxy
        .as_ref()
        .map_or(etcd.endpoint(), |p| p.endpoint.clone());
    if let Some(p) = proxy.as_mut() {
        p.wait_ready().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let etcd_idle_kib = rss_kib(etcd_pid);
    let proxy_idle = proxy.as_ref().map(|p| rss_kib(p.child.id()));

    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for _ in 0..s.clients {
        tasks.push(watch(&target, tx.clone()).await);
    }
    let connect = started.elapsed();
    drop(tx);

    let mut writer = Client::connect([etcd.endpoint()], None)
        .await
        .expect("writer connects");
    let mut all = Vec::new();
    let mut first = Vec::new();
    for i in 0..s.writes {
        let key = format!(
            "{PREFIX}projectcalico.org/networkpolicies/default/p{}",
            i % 10
        );
        let t0 = Instant::now();
        writer.put(key, i.to_string(), None).await.expect("write");
        let (f, a) = arrivals(&mut rx, i, s.clients, t0).await;
        first.push(f);
        all.push(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let etcd_watching_kib = rss_kib(etcd_pid);
    let proxy_kib = proxy
        .as_ref()
        .zip(proxy_idle)
        .map(|(p, idle)| (idle, rss_kib(p.child.id())));
    for t in tasks {
        t.abort();
    }
    Round {
        mode: if proxied { "proxy" } else { "direct" },
        all,
        first,
        etcd_idle_kib,
        etcd_watching_kib,
        proxy_kib,
        connect,
    }
}

/// One client: its own connection and watch; reports (write index, arrival) per event.
async fn watch(
    endpoint: &str,
    tx: mpsc::UnboundedSender<(usize, Instant)>,
) -> tokio::task::JoinHandle<()> {
    let mut client = Client::connect([endpoint], None)
        .await
        .expect("client connects");
    let (watcher, mut stream) = client
        .watch(PREFIX, Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch created");
    tokio::spawn(async move {
        let _keep = (client, watcher);
        while let Ok(Some(resp)) = stream.message().await {
            let now = Instant::now();
            for ev in resp.events() {
                let index = ev
                    .kv()
                    .and_then(|kv| kv.value_str().ok())
                    .and_then(|v| v.parse().ok());
                if let Some(i) = index {
                    if tx.send((i, now)).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Waits until `n` clients saw write `i`: (first arrival, last arrival) after `t0`.
async fn arrivals(
    rx: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
    i: usize,
    n: usize,
    t0: Instant,
) -> (Duration, Duration) {
    let mut seen = 0;
    let (mut first, mut last) = (None, t0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen < n {
        let got = tokio::time::timeout_at(deadline, rx.recv()).await;
        let (index, at) = got
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("write {i}: only {seen} of {n} clients saw it in 30 s"));
        if index == i {
            seen += 1;
            first.get_or_insert(at);
            last = last.max(at);
        }
    }
    (first.unwrap_or(t0) - t0, last - t0)
}

/// etcd's `grpc-proxy`, on a free loopback port.
struct Proxy {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start(etcd: &str) -> Proxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(etcd_binary())
            .args(["grpc-proxy", "start"])
            .arg(format!(
                "--endpoints={}",
                etcd.trim_start_matches("http://")
            ))
            .arg(format!("--listen-addr=127.0.0.1:{port}"))
            .arg(format!("--data-dir={}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("grpc-proxy starts");
        Proxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let opts = etcd_client::ConnectOptions::new().with_timeout(Duration::from_millis(500));
        while Instant::now() < deadline {
            if let Ok(mut c) = Client::connect([self.endpoint.as_str()], Some(opts.clone())).await {
                if c.get("/", None).await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("grpc-proxy at {} not ready in 20 s", self.endpoint);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident memory (VmRSS) in KiB; 0 if unreadable.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn print_table(s: &Settings, rounds: &[Round]) {
    println!(
        "\nfan-out: {} watching clients (one connection each) on {PREFIX}, {} writes per round, etcd {}",
        s.clients,
        s.writes,
        etcd_version()
    );
    println!(
        "{:<5} {:<7} {:>9} {:>12} {:>12} {:>11} {:>11} {:>10} {:>10} {:>10} {:>10}",
        "round",
        "mode",
        "connect",
        "first p50",
        "all p50",
        "all p99",
        "all max",
        "etcd idle",
        "etcd watch",
        "proxy idle",
        "proxy watch"
    );
    for (i, r) in rounds.iter().enumerate() {
        let mut all = r.all.clone();
        all.sort();
        let mut first = r.first.clone();
        first.sort();
        let (pi, pw) = r
            .proxy_kib
            .map_or(("-".into(), "-".into()), |(a, b)| (mib(a), mib(b)));
        println!(
            "{:<5} {:<7} {:>8.1}s {:>10}ms {:>10}ms {:>9}ms {:>9}ms {:>10} {:>10} {:>10} {:>10}",
            i / 2 + 1,
            r.mode,
            r.connect.as_secs_f64(),
            ms(pct(&first, 0.5)),
            ms(pct(&all, 0.5)),
            ms(pct(&all, 0.99)),
            ms(*all.last().unwrap_or(&Duration::ZERO)),
            mib(r.etcd_idle_kib),
            mib(r.etcd_watching_kib),
            pi,
            pw
        );
    }
    print_ratios(rounds);
}

fn print_ratios(rounds: &[Round]) {
    let median = |r: &Round| {
        let mut v = r.all.clone();
        v.sort();
        pct(&v, 0.5).as_secs_f64()
    };
    let ratios: Vec<f64> = rounds
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| median(&c[1]) / median(&c[0]))
        .collect();
    let growth = |r: &Round| r.etcd_watching_kib as f64 - r.etcd_idle_kib as f64;
    let mem: Vec<String> = rounds
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| {
            format!(
                "{:.1} vs {:.1}",
                growth(&c[0]) / 1024.0,
                growth(&c[1]) / 1024.0
            )
        })
        .collect();
    let fmt: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!(
        "proxy/direct ratio of the all-clients median latency per round: {} (spread {:.2}..{:.2})",
        fmt.join(", "),
        ratios.iter().cloned().fold(f64::INFINITY, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "etcd RSS growth with the watchers, direct vs proxy (MiB) per round: {}",
        mem.join("; ")
    );
}

fn mib(kib: u64) -> String {
    format!("{:.1}MiB", kib as f64 / 1024.0)
}

fn etcd_version() -> String {
    Command::new(etcd_binary())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.replace("etcd Version: ", "")))
        .unwrap_or_default()
}

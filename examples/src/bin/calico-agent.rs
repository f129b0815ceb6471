//! `calico-agent`: the example daemon. Runs the agent for one host with the Linux backends
//! (routes over rtnetlink, ACLs in nftables) and BGP by the native speaker or through BIRD 2,
//! fed from a directory of YAML resource files that it watches for changes.
//!
//! ```sh
//! calico-agent --node host-a --resources /etc/calico-rs/resources \
//!     [--bgp native|bird|none] [--http 127.0.0.1:9091] [--bird-dir /run/calico-rs/bird] \
//!     [--nft-table calico] [--resync-secs 30] \
//!     [--graceful-restart-secs 120 | --no-graceful-restart]
//! ```
//!
//! * `--bgp` picks the BGP backend, the one line that switches a host between them:
//!   `native` (calico-bgp's own speaker, in this process), `bird` (the default: a BIRD 2
//!   daemon driven through `--bird-dir`) or `none`. `--no-bgp` is `--bgp none`.
//!
//! * Every `*.yaml`/`*.yml` file of the directory is read (in name order); a change to the
//!   directory is applied as per-resource updates, so only what changed is recompiled. A file
//!   that does not parse is reported (file, document, field, reason) and nothing of the
//!   reload is applied.
//! * `GET /metrics` on the HTTP address gives Prometheus metrics, `GET /status` the
//!   endpoints' and peers' state.
//! * SIGTERM or SIGINT stops the agent without flushing anything: routes, ACLs and BIRD's
//!   sessions stay, and the next agent adopts them.
//! * With `--bgp native`, a restart is graceful (RFC 4724) both ways. On SIGTERM/SIGINT the
//!   speaker closes its sessions without a NOTIFICATION, so peers keep our routes (stale)
//!   for the restart time (`--graceful-restart-secs`, 120 s by default). On start, routes
//!   of ours already in the kernel (route protocol 80) show that a previous run left its
//!   forwarding state in place: the speaker then tells its peers it is restarting with the
//!   forwarding state preserved, and the routes to other hosts found in the kernel are
//!   kept until every peer is established and has sent its End-of-RIB (at most the restart
//!   time), so traffic between hosts goes on throughout. `--no-graceful-restart` turns all
//!   of this off: sessions end with a Cease and peers withdraw our routes at once.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use calico_bgp::bird::BirdConfig;
use calico_bgp::speaker::{GracefulRestartOptions, Speaker, SpeakerError, SpeakerOptions};
use calico_core::agent::{Agent, AgentHandle, EndpointState, Timing};
use calico_core::dataplane::{BgpBackend, FibBackend};
use calico_core::model::{load_file, Resource, ResourceKey, Update};
use calico_examples::bird_on_linux::bird_bgp;
use calico_linux::acl::LinuxAcl;
use calico_linux::fib::{FibConfig, LinuxFib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// Which BGP backend the agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BgpChoice {
    /// calico-bgp's native speaker.
    Native,
    /// A BIRD 2 daemon driven by calico-bgp's BIRD driver.
    Bird,
    /// No BGP: routes to other hosts come from elsewhere.
    None,
}

impl std::str::FromStr for BgpChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<BgpChoice, String> {
        match s {
            "native" => Ok(BgpChoice::Native),
            "bird" => Ok(BgpChoice::Bird),
            "none" => Ok(BgpChoice::None),
            other => Err(format!("--bgp {other:?}: expected native, bird or none")),
        }
    }
}

struct Options {
    node: String,
    resources: PathBuf,
    http: String,
    bird_dir: PathBuf,
    bgp: BgpChoice,
    nft_table: String,
    resync: Duration,
    /// Restart time of the native speaker's graceful restart; `None`: off.
    graceful_restart: Option<Duration>,
}

fn usage() -> &'static str {
    "usage: calico-agent --node NAME --resources DIR [--bgp native|bird|none] \
     [--http ADDR:PORT] [--bird-dir DIR] [--no-bgp] [--nft-table NAME] [--resync-secs N] \
     [--graceful-restart-secs N | --no-graceful-restart]"
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mut node, mut resources) = (None, None);
    let mut o = Options {
        node: String::new(),
        resources: PathBuf::new(),
        http: "127.0.0.1:9091".into(),
        bird_dir: "/run/calico-rs/bird".into(),
        bgp: BgpChoice::Bird,
        nft_table: "calico".into(),
        resync: Duration::from_secs(30),
        graceful_restart: Some(GracefulRestartOptions::default().restart_time),
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--node" => node = Some(value("--node")?),
            "--resources" => resources = Some(PathBuf::from(value("--resources")?)),
            "--http" => o.http = value("--http")?,
            "--bird-dir" => o.bird_dir = value("--bird-dir")?.into(),
            "--bgp" => o.bgp = value("--bgp")?.parse()?,
            "--no-bgp" => o.bgp = BgpChoice::None,
            "--nft-table" => o.nft_table = value("--nft-table")?,
            "--resync-secs" => {
                let v = value("--resync-secs")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--resync-secs {v:?}: not a number of seconds"))?;
                o.resync = Duration::from_secs(secs.max(1));
            }
            "--graceful-restart-secs" => {
                let v = value("--graceful-restart-secs")?;
                let secs: u64 = v.parse().map_err(|_| {
                    format!("--graceful-restart-secs {v:?}: not a number of seconds")
                })?;
                let gr = GracefulRestartOptions {
                    restart_time: Duration::from_secs(secs),
                    ..GracefulRestartOptions::default()
                };
                gr.validate()
                    .map_err(|e| format!("--graceful-restart-secs {v}: {e}"))?;
                o.graceful_restart = Some(gr.restart_time);
            }
            "--no-graceful-restart" => o.graceful_restart = None,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    o.node = node.ok_or_else(|| format!("--node is required\n{}", usage()))?;
    o.resources = resources.ok_or_else(|| format!("--resources is required\n{}", usage()))?;
    Ok(o)
}

/// The resource files of `dir`, in name order, with a fingerprint of their metadata.
fn listing(dir: &Path) -> Result<Vec<(PathBuf, SystemTime, u64)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if let (true, Ok(meta)) = (yaml, entry.metadata()) {
            files.push((
                path,
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            ));
        }
    }
    files.sort();
    Ok(files)
}

/// Every resource of the directory, keyed; the first error names file, document and field.
fn load_dir(dir: &Path) -> Result<BTreeMap<ResourceKey, Resource>, String> {
    let mut out = BTreeMap::new();
    for (path, _, _) in listing(dir)? {
        for r in load_file(&path).map_err(|e| e.to_string())? {
            out.insert(r.key(), r);
        }
    }
    Ok(out)
}

async fn serve_http(listener: TcpListener, handle: AgentHandle) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (code, body) = match path {
                "/metrics" => ("200 OK", handle.metrics().to_prometheus()),
                "/status" => ("200 OK", status_text(&handle)),
                _ => ("404 Not Found", "try /metrics or /status\n".to_string()),
            };
            let response = format!(
                "HTTP/1.0 {code}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

fn status_text(handle: &AgentHandle) -> String {
    let s = handle.status();
    let mut out = String::new();
    let _ = writeln!(out, "in_sync: {}", s.in_sync);
    for (name, h) in [("fib", &s.fib), ("acl", &s.acl), ("bgp", &s.bgp)] {
        let _ = writeln!(
            out,
            "backend {name}: {}",
            h.last_error.as_deref().unwrap_or("ok")
        );
    }
    for (id, ep) in &s.endpoints {
        let state = match &ep.state {
            EndpointState::Pending => "pending".to_string(),
            EndpointState::WaitingForInterface => "waiting for interface".to_string(),
            EndpointState::Programmed => "programmed".to_string(),
            EndpointState::Error(e) => format!("error: {e}"),
            other => format!("{other:?}"),
        };
        let _ = writeln!(
            out,
            "endpoint {}/{}/{} {}: {state}",
            id.orchestrator, id.workload, id.endpoint, ep.interface
        );
    }
    for p in &s.peers {
        let _ = writeln!(
            out,
            "peer {}: {:?}, {} prefixes{}",
            p.address,
            p.state,
            p.prefixes_received,
            p.last_error
                .as_ref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    out
}

/// Whether a previous run left its forwarding state in the kernel: the number of routes
/// with our route protocol number there (0 if they cannot be read).
async fn routes_of_ours(fib: &LinuxFib) -> usize {
    match fib.dump().await {
        Ok(routes) => routes.len(),
        Err(e) => {
            warn!(
                error = %e,
                "cannot read the kernel's routes to tell whether this is a restart; \
                 starting as if fresh (peers drop our old routes when we connect)"
            );
            0
        }
    }
}

/// The native speaker, graceful restart as the options and the kernel's routes say; also
/// whether it is restarting.
async fn native_speaker(o: &Options, fib: &LinuxFib) -> Result<(Speaker, bool), SpeakerError> {
    let Some(restart_time) = o.graceful_restart else {
        info!("graceful restart off: peers withdraw our routes as soon as we stop");
        return Ok((
            Speaker::with_options(SpeakerOptions {
                graceful_restart: None,
                ..SpeakerOptions::default()
            })?,
            false,
        ));
    };
    let ours = routes_of_ours(fib).await;
    let restarting = ours > 0;
    if restarting {
        info!(
            routes = ours,
            protocol = fib.config().protocol,
            "restarting with forwarding state preserved: {ours} routes of ours in the kernel; \
             peers asked to keep our routes"
        );
    } else {
        info!("no routes of ours in the kernel: a fresh start, not a graceful restart");
    }
    let speaker = Speaker::with_options(SpeakerOptions {
        graceful_restart: Some(GracefulRestartOptions {
            restart_time,
            restarting,
            ..GracefulRestartOptions::default()
        }),
        ..SpeakerOptions::default()
    })?;
    Ok((speaker, restarting))
}

async fn run(o: Options) -> Result<(), String> {
    let mut resources = load_dir(&o.resources)?;
    let fib = Arc::new(LinuxFib::new(FibConfig::default()).map_err(|e| e.to_string())?);
    let acl = LinuxAcl::new(&o.nft_table).map_err(|e| e.to_string())?;
    let mut builder = Agent::builder()
        .node(o.node.clone())
        .fib(fib.clone())
        .acl(Arc::new(acl))
        .timing(Timing {
            resync_interval: o.resync,
            ..Timing::default()
        });
    // Kept to close its sessions gracefully when we stop.
    let mut native: Option<Arc<Speaker>> = None;
    let bgp: Option<Arc<dyn BgpBackend>> = match o.bgp {
        BgpChoice::Native => {
            let (speaker, restarting) =
                native_speaker(&o, &fib).await.map_err(|e| e.to_string())?;
            if let (true, Some(restart_time)) = (restarting, o.graceful_restart) {
                // Our routes to other hosts stay in the kernel until the peers have sent
                // theirs again: the new speaker has learned nothing yet.
                builder = builder.keep_remote_routes_until_bgp_converged(restart_time);
            }
            let speaker = Arc::new(speaker);
            native = Some(speaker.clone());
            Some(speaker)
        }
        BgpChoice::Bird => {
            let mut config = BirdConfig::new(&o.bird_dir);
            config.stop_on_drop = false;
            Some(Arc::new(bird_bgp(config).map_err(|e| e.to_string())?))
        }
        BgpChoice::None => None,
    };
    info!(bgp = ?o.bgp, "BGP backend");
    if let Some(bgp) = bgp {
        builder = builder.bgp(bgp);
    }
    let agent = builder.start().map_err(|e| e.to_string())?;
    let handle = agent.handle();
    handle
        .snapshot(resources.values().cloned().collect())
        .await
        .map_err(|e| e.to_string())?;
    info!(node = %o.node, resources = resources.len(), dir = %o.resources.display(), "snapshot loaded");

    let listener = TcpListener::bind(&o.http)
        .await
        .map_err(|e| format!("--http {}: {e}", o.http))?;
    info!(address = %o.http, "serving /metrics and /status");
    tokio::spawn(serve_http(listener, handle.clone()));

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut seen = listing(&o.resources)?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {}
        }
        let now = match listing(&o.resources) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot list the resource directory");
                continue;
            }
        };
        if now == seen {
            continue;
        }
        seen = now;
        let fresh = match load_dir(&o.resources) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "resource files rejected; keeping the previous state");
                continue;
            }
        };
        let mut updates = Vec::new();
        for (k, r) in &fresh {
            if resources.get(k) != Some(r) {
                updates.push(Update::Upsert(r.clone()));
            }
        }
        for k in resources.keys().filter(|k| !fresh.contains_key(*k)) {
            updates.push(Update::Remove(k.clone()));
        }
        // Removals of things others refer to go last, additions they need first.
        updates.sort_by_key(|u| matches!(u, Update::Remove(_)));
        let count = updates.len();
        let mut rejected = false;
        for u in updates {
            if let Err(e) = handle.update(u).await {
                error!(error = %e, "update rejected");
                rejected = true;
            }
        }
        info!(changes = count, rejected, "resource directory changed");
        resources = fresh;
    }
    info!("stopping; the dataplane stays as programmed");
    agent.shutdown().await;
    if let Some(speaker) = native {
        stop_speaker(speaker, o.graceful_restart).await;
    }
    Ok(())
}

/// Ends the native speaker's sessions: without a NOTIFICATION when graceful restart is on
/// (peers keep our routes for the restart time, and a restarted agent takes over), else
/// with a Cease (peers withdraw our routes).
async fn stop_speaker(speaker: Arc<Speaker>, graceful_restart: Option<Duration>) {
    let speaker = match Arc::try_unwrap(speaker) {
        Ok(s) => s,
        Err(_) => {
            // The agent has stopped and holds it no more; should that ever change, the
            // sessions end with the process, as when it is killed.
            warn!("BGP speaker still in use at exit: sessions end without a graceful restart");
            return;
        }
    };
    match graceful_restart {
        Some(restart_time) => {
            speaker.stop_for_restart().await;
            info!(
                restart_time_s = restart_time.as_secs(),
                "BGP sessions closed for a graceful restart: peers keep our routes for up to \
                 {} s; start the agent again before then",
                restart_time.as_secs()
            );
        }
        None => {
            drop(speaker);
            // The Cease goes out from the speaker's task: give it a moment.
            tokio::time::sleep(Duration::from_millis(200)).await;
            info!("BGP sessions closed (Cease): peers withdraw our routes");
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("calico-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calico-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("calico-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

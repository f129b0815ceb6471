//! The daemon: the agent with the Linux backends and BGP, following the resource directory,
//! serving HTTP, until SIGTERM or SIGINT.
//!
//! ```text
//!   resource dir (DirSource) ─┐
//!   etcd (EtcdSource) ────────┴─ResourceSource─▶ Follower ──snapshot, apply(group)──▶ Agent
//!                                                   │ FollowStatus          fib, acl, bgp │
//!   HTTP (hyper) ◀── DaemonPages ◀──────────────────┴── Shared (files, held)             ▼
//!   /metrics /status /liveness /readiness /flows               kernel (rtnetlink, nftables), BGP
//! ```
//!
//! At SIGTERM or SIGINT the agent stops without flushing anything: routes, ACLs and BGP
//! sessions (BIRD's, or the native speaker's peers' stale routes under graceful restart)
//! stay, and the next agent adopts them. The pass in progress gets `--shutdown-timeout-secs`;
//! after that the process exits anyway (nftables changes are atomic, so the table is
//! consistent; a route half-way is repaired by the next agent).

pub mod api;
mod backends;
mod flowlogs;
mod follow;
pub mod status;
mod status_back;

use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;

use calico_bgp::speaker::GracefulRestartOptions;
use calico_core::agent::{Agent, Timing};
use calico_core::dataplane::AclBackend;
use calico_core::datastore::follow::Follower;
use calico_ebpf::adopt::FlowTable;
use calico_ebpf::backend::{EbpfBackend, EbpfConfig};
use calico_linux::acl::LinuxAcl;
use calico_linux::fib::{FibConfig, LinuxFib};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use crate::bpf_metrics::BpfMetrics;
use crate::cli::{DataplaneChoice, Options};
use crate::http::{self, Limits};
use crate::lock::AgentLock;
use crate::metrics::{registry, DaemonMetrics};
use crate::peer_metrics::PeerMetrics;
use status::{DaemonPages, Shared};

/// Checks what clap cannot: ranges that depend on the protocol.
pub fn check(o: &Options) -> Result<(), String> {
    if let Some(restart_time) = o.graceful_restart() {
        let gr = GracefulRestartOptions {
            restart_time,
            ..GracefulRestartOptions::default()
        };
        gr.validate()
            .map_err(|e| format!("--graceful-restart-secs {}: {e}", o.graceful_restart_secs))?;
    }
    if o.datastore == crate::cli::DatastoreChoice::Etcd {
        follow::etcd_config(o)?;
    }
    check_dataplane(o)
}

/// The eBPF dataplane's options, and the features it does not have yet.
fn check_dataplane(o: &Options) -> Result<(), String> {
    if o.dataplane == DataplaneChoice::Nft {
        if o.bpf_license.is_some() || !o.bpf_host_interfaces.is_empty() || o.bpf_tc_blocks.is_some()
        {
            return Err(
                "--bpf-license, --bpf-host-interfaces and --bpf-tc-blocks need --dataplane bpf"
                    .into(),
            );
        }
        return Ok(());
    }
    let license = o.bpf_license.as_deref().ok_or(
        "--dataplane bpf needs --bpf-license: the license the generated programs declare (the kernel lets only GPL-compatible ones use the route lookup)",
    )?;
    if license.is_empty() || license.contains('\0') {
        return Err(format!("--bpf-license {license:?}: not a license name"));
    }
    if o.flow_logs {
        return Err(
            "--flow-logs needs --dataplane nft: the eBPF dataplane has no flow logs yet".into(),
        );
    }
    if o.floating_ips == crate::cli::FloatingIps::Enabled {
        return Err(
            "--floating-ips Enabled needs --dataplane nft: the eBPF dataplane has no NAT yet"
                .into(),
        );
    }
    Ok(())
}

/// The ACL backend of `--dataplane`, and the one `calico-rs trace` reads back (for bpf the
/// same: what it programmed).
struct AclBackends {
    programs: Arc<dyn AclBackend>,
    readback: Arc<dyn AclBackend>,
    /// The eBPF backend, whose per-interface counters become metrics.
    ebpf: Option<Arc<EbpfBackend>>,
}

fn acl_backends(o: &Options) -> Result<AclBackends, String> {
    match o.dataplane {
        DataplaneChoice::Nft => {
            // A host leaving the eBPF dataplane: its filters, which outlive the agent, would
            // go on enforcing their last policy beside the nftables one.
            let left = calico_ebpf::backend::remove_leftovers().map_err(|e| {
                format!("removing the filters an earlier --dataplane bpf left: {e}")
            })?;
            if left > 0 {
                info!(
                    interfaces = left,
                    "removed the eBPF filters an earlier --dataplane bpf left"
                );
            }
            let acl = LinuxAcl::new(&o.nft_table).map_err(|e| e.to_string())?;
            let readback: Arc<dyn AclBackend> = Arc::new(acl.clone());
            Ok(AclBackends {
                programs: backends::acl_backend(acl, o.no_acl_drift_watch),
                readback,
                ebpf: None,
            })
        }
        DataplaneChoice::Bpf => {
            let license = o.bpf_license.clone().unwrap_or_default();
            let config = EbpfConfig {
                netns: None,
                host_interfaces: o.bpf_host_interfaces.clone(),
                set_capacity: 1 << 20,
                license: CString::new(license).map_err(|e| format!("--bpf-license: {e}"))?,
                // The shared tc blocks every workload's clsact qdisc is bound to.
                blocks: o.bpf_tc_blocks.unwrap_or(calico_ebpf::tc::Blocks::DEFAULT),
            };
            let ebpf = Arc::new(EbpfBackend::new(config).map_err(|e| e.to_string())?);
            let acl: Arc<dyn AclBackend> = ebpf.clone();
            info!("dataplane: eBPF programs on the interfaces");
            match ebpf.flow_table() {
                FlowTable::New => {}
                FlowTable::Adopted => info!(
                    "took over the flow table of the programs already attached: open connections go on"
                ),
                FlowTable::NotAdopted(why) => warn!(
                    reason = %why,
                    "programs of an earlier agent are attached but their flow table is not taken over: \
                     replies of connections open now are judged as new until their next packet the other way"
                ),
            }
            Ok(AclBackends {
                programs: acl.clone(),
                readback: acl,
                ebpf: Some(ebpf),
            })
        }
    }
}

/// How often the eBPF programs' per-interface counters are read for the metrics.
const BPF_METRICS_EVERY: Duration = Duration::from_secs(5);

/// How often the BGP backend's peer status is read for the per-peer metrics.
const PEER_METRICS_EVERY: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM or SIGINT; an error says what stopped it.
pub async fn run(o: Options) -> Result<(), String> {
    check(&o)?;
    // Before anything is programmed: a second agent on this table would undo our work.
    let lock = AgentLock::acquire(&o.lock_dir, &o.nft_table).map_err(|e| e.to_string())?;
    info!(lock = %lock.path().display(), "agent lock taken");
    let fib = Arc::new(LinuxFib::new(FibConfig::default()).map_err(|e| e.to_string())?);
    let AclBackends {
        programs: acl,
        readback,
        ebpf,
    } = acl_backends(&o)?;
    let flow_settings = o.flow_settings();
    let mut builder = Agent::builder()
        .node(o.node.clone())
        .fib(fib.clone())
        .acl(acl)
        .timing(Timing {
            resync_interval: Duration::from_secs(o.resync_secs),
            ..Timing::default()
        })
        .host_protection(o.host_config())
        .workload_source_spoofing(o.workload_source_spoofing == crate::cli::SourceSpoofing::Any)
        .floating_ips(o.floating_ips == crate::cli::FloatingIps::Enabled);
    if let Some(f) = &flow_settings {
        builder = builder.flow_logs(flowlogs::compile_config(f));
    }
    // Read once: it tells the native speaker whether this is a graceful restart and the
    // directory follower whether an empty directory may program an empty state.
    let ours = backends::routes_of_ours(&fib).await;
    let (builder, bgp) = backends::with_bgp(&o, &fib, ours, builder)?;
    let native = bgp.native;
    let peer_metrics = PeerMetrics::default();
    let peer_poll = bgp.backend.map(|b| {
        tokio::spawn(
            peer_metrics
                .clone()
                .poll(Arc::downgrade(&b), PEER_METRICS_EVERY),
        )
    });
    let bpf_metrics = BpfMetrics::default();
    let bpf_poll = ebpf.map(|b| tokio::spawn(bpf_metrics.clone().poll(b, BPF_METRICS_EVERY)));
    let agent = builder.start().map_err(|e| e.to_string())?;
    let handle = agent.handle();
    let flow_logs = match flow_settings {
        Some(f) => Some(flowlogs::FlowLogs::start(
            f,
            handle.clone(),
            o.node.clone(),
        )?),
        None => None,
    };
    let shared = Shared::new();
    let metrics = DaemonMetrics::default();
    let source = follow::open_source(&o, shared.dir.clone(), metrics.clone(), ours > 0).await?;
    info!(source = %source.describe(), "following");
    let (follower, follow_status) = Follower::new(source, handle.clone());

    // HTTP first: /liveness and /status answer while the datastore is read.
    let listener = TcpListener::bind(o.http)
        .await
        .map_err(|e| format!("--http {}: {e}", o.http))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    info!(%address, "serving /metrics, /status, /liveness and /readiness");
    let mut registry = registry(
        handle.clone(),
        &metrics,
        follow_status.clone(),
        shared.programmed_revision.clone(),
    );
    if let Some(f) = &flow_logs {
        f.metrics.register(&mut registry);
    }
    registry.register_collector(Box::new(peer_metrics));
    if bpf_poll.is_some() {
        registry.register_collector(Box::new(bpf_metrics.clone()));
    }
    let pages = DaemonPages {
        handle: handle.clone(),
        shared: shared.clone(),
        follow: follow_status.clone(),
        registry,
        flows: flow_logs
            .as_ref()
            .map(|f| (f.state.clone(), f.metrics.clone())),
        bpf: bpf_poll.as_ref().map(|_| bpf_metrics.clone()),
        liveness_limit: Duration::from_secs(o.rescan_secs.saturating_mul(3).max(60)),
        api: api::Api {
            handle: handle.clone(),
            node: o.node.clone(),
            readback: Some(readback),
        },
    };
    let limits = Limits {
        max_connections: o.http_max_connections as usize,
        ..Limits::default()
    };
    let dropped = metrics.http_connections_dropped.clone();
    let server = tokio::spawn(http::serve(listener, Arc::new(pages), limits, dropped));

    let reporter = (o.datastore == crate::cli::DatastoreChoice::Etcd).then(|| {
        let config = follow::etcd_config(&o).expect("checked at start");
        let ttl = Duration::from_secs(o.status_ttl_secs);
        tokio::spawn(status_back::run(
            config,
            status_back::node_of(&o),
            ttl,
            handle.clone(),
        ))
    });
    let beat = tokio::spawn(follow::heartbeat(handle, shared, follow_status));
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let outcome = tokio::select! {
        r = follower.run() => r.map_err(|e| e.to_string()),
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
    };
    match o.dataplane {
        DataplaneChoice::Nft => info!("stopping; the dataplane stays as programmed"),
        // The tc qdiscs and filters outlive the process, with the programs they reach
        // (the dispatcher's program arrays pinned).
        DataplaneChoice::Bpf => {
            info!("stopping; the dataplane stays as programmed (the eBPF programs stay attached)")
        }
    }
    server.abort();
    beat.abort();
    if let Some(p) = bpf_poll {
        p.abort();
        let _ = p.await;
    }
    if let Some(p) = peer_poll {
        // Wait until the poller is gone: the native speaker closes its sessions gracefully
        // only once nothing else holds it.
        p.abort();
        let _ = p.await;
    }
    if let Some(f) = flow_logs {
        f.stop();
    }
    if let Some(r) = reporter {
        // The reports stay under their lease: a restarted agent takes over, a dead one's
        // expire after --status-ttl-secs.
        r.abort();
    }
    let wait = Duration::from_secs(o.shutdown_timeout_secs);
    if tokio::time::timeout(wait, agent.shutdown()).await.is_err() {
        warn!(
            timeout_s = wait.as_secs(),
            "the reconciliation pass in progress did not end in time; exiting anyway (the \
             next agent completes it)"
        );
    }
    if let Some(speaker) = native {
        backends::stop_speaker(speaker, o.graceful_restart()).await;
    }
    drop(lock);
    outcome
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::check;
    use crate::cli::Options;

    fn check_args(args: &[&str]) -> Result<(), String> {
        let base = ["calico-agent", "--node", "a", "--datastore", "etcd"];
        check(&Options::try_parse_from(base.iter().chain(args)).unwrap())
    }

    #[test]
    fn etcd_options_are_checked_before_anything_starts() {
        let e = check_args(&["--etcd-endpoints", "10.0.0.1:2379"]).unwrap_err();
        assert!(
            e.starts_with("--etcd-endpoints:") && e.contains("http"),
            "{e}"
        );
        let e = check_args(&[
            "--etcd-endpoints=https://10.0.0.1:2379",
            "--etcd-ca-cert-file=/nonexistent/ca.pem",
        ])
        .unwrap_err();
        assert!(e.starts_with("--etcd-ca-cert-file:"), "{e}");
        assert!(check_args(&["--etcd-endpoints", "http://10.0.0.1:2379"]).is_ok());
    }

    #[test]
    fn the_bpf_dataplane_needs_a_license_and_refuses_what_it_lacks() {
        let check_dir = |args: &[&str]| {
            let base = ["calico-agent", "--node", "a"];
            check(&Options::try_parse_from(base.iter().chain(args)).unwrap())
        };
        assert!(check_dir(&[]).is_ok(), "nft by default");
        let e = check_dir(&["--dataplane", "bpf"]).unwrap_err();
        assert!(e.contains("--bpf-license"), "{e}");
        assert!(check_dir(&["--dataplane", "bpf", "--bpf-license", "GPL"]).is_ok());
        let e =
            check_dir(&["--dataplane", "bpf", "--bpf-license", "GPL", "--flow-logs"]).unwrap_err();
        assert!(e.starts_with("--flow-logs needs --dataplane nft"), "{e}");
        let e = check_dir(&[
            "--dataplane",
            "bpf",
            "--bpf-license",
            "GPL",
            "--floating-ips",
            "Enabled",
        ])
        .unwrap_err();
        assert!(
            e.starts_with("--floating-ips Enabled needs --dataplane nft"),
            "{e}"
        );
        let e = check_dir(&["--bpf-host-interfaces", "eth0"]).unwrap_err();
        assert!(e.contains("need --dataplane bpf"), "{e}");
        let e = check_dir(&["--bpf-tc-blocks", "1,2"]).unwrap_err();
        assert!(e.contains("need --dataplane bpf"), "{e}");
    }
}

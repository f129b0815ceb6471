//! Where the daemon's resources come from (`--datastore`), and the heartbeat that shows the
//! agent's loop is alive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::sync::atomic::Ordering;

use calico_core::agent::AgentHandle;
use calico_core::datastore::follow::FollowStatus;
use calico_core::datastore::ResourceSource;
use tokio::sync::watch;

use super::status::{DirView, Shared};
use crate::cli::{DatastoreChoice, Options};
use crate::metrics::DaemonMetrics;
use crate::resource_dir::source::{DirOptions, DirSource};
use crate::resource_dir::Settings;

/// The source `o` chooses. `kernel_has_state`: routes of a previous run are programmed (an
/// empty directory at start then waits for confirmation).
pub async fn open_source(
    o: &Options,
    view: Arc<Mutex<DirView>>,
    metrics: DaemonMetrics,
    kernel_has_state: bool,
) -> Result<Box<dyn ResourceSource>, String> {
    match o.datastore {
        DatastoreChoice::Dir => {
            let dir = o
                .resources
                .clone()
                .ok_or("--datastore dir needs --resources")?;
            let options = DirOptions {
                dir,
                max_file_bytes: o.max_file_bytes,
                rescan: Duration::from_secs(o.rescan_secs),
                settings: Settings {
                    settle: Duration::from_millis(o.settle_ms),
                    max_delete_fraction: o.max_delete_fraction,
                    delete_guard_min: o.delete_guard_min,
                },
                kernel_has_state,
            };
            Ok(Box::new(DirSource::new(options, view, metrics)))
        }
        DatastoreChoice::Etcd => {
            // Resources, and the IPAM block affinities the agent aggregates routes by.
            let source = calico_etcd::EtcdSource::new(etcd_config(o)?)
                .map_err(|e| format!("--datastore etcd: {e}"))?
                .with_decoder(
                    calico_etcd::ipam::HOST_AFFINITY_PREFIX,
                    calico_etcd::ipam::affinity_decoder(),
                )
                .with_probe_interval(Duration::from_secs(o.etcd_probe_secs));
            Ok(Box::new(source))
        }
    }
}

/// The etcd client configuration of `o`, checked; an error names the option.
pub fn etcd_config(o: &Options) -> Result<calico_etcd::EtcdConfig, String> {
    let config = calico_etcd::EtcdConfig {
        ca: o.etcd_ca_cert_file.clone(),
        cert: o.etcd_cert_file.clone(),
        key: o.etcd_key_file.clone(),
        ..calico_etcd::EtcdConfig::new(o.etcd_endpoints.iter().cloned())
    };
    config.validate().map_err(|e| {
        let flag = match e.option {
            "etcdEndpoints" => "--etcd-endpoints",
            "etcdCACertFile" => "--etcd-ca-cert-file",
            "etcdCertFile" => "--etcd-cert-file",
            "etcdKeyFile" => "--etcd-key-file",
            other => other,
        };
        format!("{flag}: {}", e.reason)
    })?;
    Ok(config)
}

/// Beats while the agent's engine answers, and records which datastore revision is
/// programmed: each round takes the revision handed to the agent, waits for the engine to
/// reconcile everything sent so far (a flush), then publishes that revision as programmed.
/// A round starts at each new revision, or every second. `/liveness` fails when the beats
/// stop (a reconciliation pass that hangs).
pub async fn heartbeat(
    handle: AgentHandle,
    shared: Arc<Shared>,
    mut follow: watch::Receiver<FollowStatus>,
) {
    loop {
        let revision = {
            let st = follow.borrow_and_update();
            st.snapshot_loaded.then_some(st.revision)
        };
        handle.flush().await;
        shared.beat();
        if let Some(r) = revision {
            shared.programmed_revision.store(r, Ordering::Relaxed);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), follow.changed()).await;
    }
}

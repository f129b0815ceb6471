//! Status back to the orchestrator on etcd, in Felix's key layout:
//! [`StatusStore`](calico_core::datastore::status::StatusStore) for [`EtcdStatus`].
//!
//! * `<prefix>/felix/v2/<region>/host/<hostname>/status`: the host's liveness, JSON
//!   `{"time": RFC 3339, "uptime": seconds, "first_update": bool}`, rewritten every third of
//!   the TTL;
//! * `<prefix>/felix/v2/<region>/host/<hostname>/workload/<orchestrator>/<workload>/endpoint/
//!   <endpoint>`: an endpoint's state, JSON `{"status": "up" | "down" | "error"}` (plus
//!   `"reason"` for an error, which Calico's readers ignore); the three id parts escaped as
//!   libcalico-go does (`%` → `%25`, `/` → `%2f`);
//! * `<prefix>/resources/v3/projectcalico.org/nodes/<name>`: the host's `Node`, registered by
//!   compare-and-swap and merged into the stored JSON, so fields an operator (or Calico) set
//!   that calico-rs does not model survive.
//!
//! Every status key is written under one etcd lease (TTL 30 s by default) that a background
//! task keeps alive: when the host dies, or the [`EtcdStatus`] is dropped without
//! [`EtcdStatus::close`], its reports expire by themselves and networking-calico sees the
//! agent dead and the ports' status gone. If the lease is lost anyway (etcd unreachable for
//! longer than the TTL, or revoked), the task grants a new one and writes every report again.
//!
//! Where this differs from Felix: Felix writes endpoint statuses without a TTL and names the
//! workload `<namespace>/<workload>` in their keys; here they live and die with the host's
//! lease and the key holds the model's workload id. networking-calico reads only the host and
//! endpoint parts of the key, so a Neutron port's status is found either way.

mod keeper;
mod node;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use calico_core::datastore::status::{
    rfc3339_now, EndpointReport, HostReport, StatusStore, NO_REGION,
};
use calico_core::datastore::DatastoreError;
use calico_core::model::{Node, WorkloadEndpointId};
use etcd_client::{Client, ConnectOptions, GetOptions, PutOptions};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// How [`EtcdStatus`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdStatusOptions {
    /// The key prefix Calico's data lives under (`/calico`).
    pub prefix: String,
    /// The region string (`no-region`, or `region-<name>`; see
    /// [`region_string`](calico_core::datastore::status::region_string)).
    pub region: String,
    /// The lease's time to live: how long a dead host's reports outlive it. Whole seconds,
    /// at least 2 (etcd's minimum).
    pub ttl: Duration,
    /// How long one etcd request may take.
    pub request_timeout: Duration,
}

impl Default for EtcdStatusOptions {
    fn default() -> Self {
        EtcdStatusOptions {
            prefix: "/calico".into(),
            region: NO_REGION.into(),
            ttl: Duration::from_secs(30),
            request_timeout: Duration::from_secs(2),
        }
    }
}

/// What is written under the lease, to write again under a new one.
#[derive(Debug)]
struct Held {
    /// The lease every status key is attached to.
    lease: i64,
    /// Endpoint status keys and their values.
    endpoints: BTreeMap<String, String>,
    /// Registered hosts: when each started reporting, and whether it reported yet.
    hosts: BTreeMap<String, (Instant, bool)>,
}

/// The parts the keep-alive task shares with the store.
struct Shared {
    client: Client,
    options: EtcdStatusOptions,
    endpoint: String,
    held: Mutex<Held>,
}

/// Status reports on etcd under a lease kept alive in the background; see the module docs.
pub struct EtcdStatus {
    shared: Arc<Shared>,
    keeper: JoinHandle<()>,
}

impl std::fmt::Debug for EtcdStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStatus")
            .field("endpoint", &self.shared.endpoint)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Drop for EtcdStatus {
    fn drop(&mut self) {
        // Without the keep-alive the lease, and every report under it, expires after the TTL.
        self.keeper.abort();
    }
}

fn unavailable(endpoint: &str, what: String) -> DatastoreError {
    DatastoreError::Unavailable {
        endpoint: endpoint.to_string(),
        reason: what,
    }
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> DatastoreError {
    DatastoreError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A key part as libcalico-go escapes it.
fn escape(part: &str) -> String {
    part.replace('%', "%25").replace('/', "%2f")
}

fn unescape(part: &str) -> String {
    part.replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%25", "%")
}

impl Shared {
    /// Runs one etcd request with the request timeout.
    async fn timed<T>(
        &self,
        what: impl FnOnce() -> String,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, DatastoreError> {
        match tokio::time::timeout(self.options.request_timeout, request).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(unavailable(&self.endpoint, format!("{}: {e}", what()))),
            Err(_) => Err(unavailable(
                &self.endpoint,
                format!(
                    "{}: no answer within {:?}",
                    what(),
                    self.options.request_timeout
                ),
            )),
        }
    }

    fn host_dir(&self, node: &str) -> Result<String, DatastoreError> {
        if node.is_empty() || node.contains('/') {
            return Err(invalid(
                format!("host {node:?}"),
                "a host name must be non-empty and without '/' to be part of a status key",
            ));
        }
        Ok(format!(
            "{}/felix/v2/{}/host/{node}",
            self.options.prefix, self.options.region
        ))
    }

    fn endpoint_key(&self, node: &str, id: &WorkloadEndpointId) -> Result<String, DatastoreError> {
        if [&id.orchestrator, &id.workload, &id.endpoint]
            .iter()
            .any(|p| p.is_empty())
        {
            return Err(invalid(
                format!("endpoint {id}"),
                "orchestrator, workload and endpoint must be non-empty",
            ));
        }
        Ok(format!(
            "{}/workload/{}/{}/endpoint/{}",
            self.host_dir(node)?,
            escape(&id.orchestrator),
            escape(&id.workload),
            escape(&id.endpoint)
        ))
    }

    /// Puts `value` at `key` under the current lease; a lost lease is replaced once.
    async fn put_leased(&self, key: &str, value: &str) -> Result<(), DatastoreError> {
        let lease = self.held.lock().await.lease;
        let mut client = self.client.clone();
        let options = PutOptions::new().with_lease(lease);
        let first = self
            .timed(
                || format!("put {key}"),
                client.put(key, value, Some(options)),
            )
            .await;
        match first {
            Err(DatastoreError::Unavailable { reason, .. })
                if reason.contains("lease not found") =>
            {
                self.renew(lease).await?;
                let lease = self.held.lock().await.lease;
                let options = PutOptions::new().with_lease(lease);
                self.timed(
                    || format!("put {key}"),
                    client.put(key, value, Some(options)),
                )
                .await
                .map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// The host's liveness report, and marks it reported.
    fn host_report(hosts: &mut BTreeMap<String, (Instant, bool)>, node: &str) -> String {
        let (started, reported) = hosts
            .entry(node.to_string())
            .or_insert((Instant::now(), false));
        let value = json!({
            "time": rfc3339_now(),
            "uptime": started.elapsed().as_secs_f64(),
            "first_update": !*reported,
        });
        *reported = true;
        value.to_string()
    }

    /// Writes host `node`'s liveness report under the lease.
    async fn report_host(&self, node: &str) -> Result<(), DatastoreError> {
        let key = format!("{}/status", self.host_dir(node)?);
        let value = Self::host_report(&mut self.held.lock().await.hosts, node);
        self.put_leased(&key, &value).await
    }
}

impl EtcdStatus {
    /// Connects to `endpoints` (each `http://host:port`) and starts reporting; see
    /// [`EtcdStatus::new`].
    pub async fn connect(
        endpoints: &[String],
        options: EtcdStatusOptions,
    ) -> Result<EtcdStatus, DatastoreError> {
        let described = endpoints.join(",");
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.request_timeout)
            .with_timeout(options.request_timeout);
        let client = match tokio::time::timeout(
            options.request_timeout,
            Client::connect(endpoints, Some(connect)),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unavailable(&described, format!("connect: {e}"))),
            Err(_) => return Err(unavailable(&described, "connect: timed out".into())),
        };
        EtcdStatus::new(client, described, options).await
    }

    /// Starts reporting through `client` (`endpoint` names it in errors): grants the lease
    /// and starts the task that keeps it alive and refreshes the hosts' liveness.
    pub async fn new(
        client: Client,
        endpoint: impl Into<String>,
        options: EtcdStatusOptions,
    ) -> Result<EtcdStatus, DatastoreError> {
        let ttl = options.ttl.as_secs();
        if ttl < 2 || options.ttl.subsec_nanos() != 0 || options.request_timeout.is_zero() {
            return Err(invalid(
                "status options",
                format!(
                    "ttl must be whole seconds, at least 2 (not {:?}), and the request timeout \
                     above zero",
                    options.ttl
                ),
            ));
        }
        let shared = Arc::new(Shared {
            client,
            options,
            endpoint: endpoint.into(),
            held: Mutex::new(Held {
                lease: 0,
                endpoints: BTreeMap::new(),
                hosts: BTreeMap::new(),
            }),
        });
        shared.renew(0).await?;
        let keeper = tokio::spawn(keeper::run(Arc::clone(&shared)));
        Ok(EtcdStatus { shared, keeper })
    }

    /// The lease the reports are under (changes if it is lost and replaced).
    pub async fn lease(&self) -> i64 {
        self.shared.held.lock().await.lease
    }

    /// Stops reporting and revokes the lease: every report of this store goes at once, as
    /// when Felix shuts down cleanly.
    pub async fn close(self) -> Result<(), DatastoreError> {
        self.keeper.abort();
        let lease = self.shared.held.lock().await.lease;
        let mut client = self.shared.client.clone();
        self.shared
            .timed(
                || format!("revoke lease {lease:x}"),
                client.lease_revoke(lease),
            )
            .await
            .map(|_| ())
    }
}

/// Reads `{"status": word, "reason"?}`; a value Calico would not write reads as an error, as
/// networking-calico treats it.
fn parse_report(raw: &[u8]) -> EndpointReport {
    let parsed: Option<Value> = serde_json::from_slice(raw).ok();
    let word = parsed.as_ref().and_then(|v| v["status"].as_str());
    let reason = parsed
        .as_ref()
        .and_then(|v| v["reason"].as_str())
        .map(String::from);
    word.and_then(|w| EndpointReport::from_status_word(w, reason))
        .unwrap_or_else(|| {
            EndpointReport::error(format!(
                "unreadable status {:?}",
                String::from_utf8_lossy(raw)
            ))
        })
}

fn report_value(report: &EndpointReport) -> String {
    let mut v = json!({"status": report.status_word()});
    if let calico_core::datastore::status::EndpointState::Error(reason) = &report.state {
        v["reason"] = json!(reason);
    }
    v.to_string()
}

#[async_trait]
impl StatusStore for EtcdStatus {
    async fn register_node(&self, node: &Node) -> Result<Node, DatastoreError> {
        let stored = node::register(&self.shared, node).await?;
        self.shared.report_host(&node.name).await?;
        Ok(stored)
    }

    async fn report_endpoint(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
        report: &EndpointReport,
    ) -> Result<(), DatastoreError> {
        let key = self.shared.endpoint_key(node, id)?;
        let value = report_value(report);
        self.shared.put_leased(&key, &value).await?;
        self.shared.held.lock().await.endpoints.insert(key, value);
        Ok(())
    }

    async fn clear_endpoint(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
    ) -> Result<(), DatastoreError> {
        let key = self.shared.endpoint_key(node, id)?;
        self.shared.held.lock().await.endpoints.remove(&key);
        let mut client = self.shared.client.clone();
        self.shared
            .timed(
                || format!("delete {key}"),
                client.delete(key.as_str(), None),
            )
            .await
            .map(|_| ())
    }

    async fn endpoint_status(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
    ) -> Result<Option<EndpointReport>, DatastoreError> {
        let key = self.shared.endpoint_key(node, id)?;
        let mut client = self.shared.client.clone();
        let got = self
            .shared
            .timed(|| format!("get {key}"), client.get(key.as_str(), None))
            .await?;
        Ok(got.kvs().first().map(|kv| parse_report(kv.value())))
    }

    async fn endpoints(
        &self,
        node: &str,
    ) -> Result<Vec<(WorkloadEndpointId, EndpointReport)>, DatastoreError> {
        let dir = format!("{}/workload/", self.shared.host_dir(node)?);
        let mut client = self.shared.client.clone();
        let got = self
            .shared
            .timed(
                || format!("list {dir}"),
                client.get(dir.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let mut out = Vec::new();
        for kv in got.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let parts: Vec<&str> = key[dir.len()..].split('/').collect();
            let [orchestrator, workload, "endpoint", endpoint] = parts[..] else {
                tracing::debug!(%key, "not an endpoint status key; skipped");
                continue;
            };
            let id = WorkloadEndpointId {
                orchestrator: unescape(orchestrator),
                workload: unescape(workload),
                endpoint: unescape(endpoint),
            };
            out.push((id, parse_report(kv.value())));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn host_status(&self, node: &str) -> Result<Option<HostReport>, DatastoreError> {
        let key = format!("{}/status", self.shared.host_dir(node)?);
        let mut client = self.shared.client.clone();
        let got = self
            .shared
            .timed(|| format!("get {key}"), client.get(key.as_str(), None))
            .await?;
        let Some(kv) = got.kvs().first() else {
            return Ok(None);
        };
        let v: Value = serde_json::from_slice(kv.value())
            .map_err(|e| invalid(key.as_str(), format!("not JSON: {e}")))?;
        Ok(Some(HostReport {
            time: v["time"].as_str().unwrap_or_default().to_string(),
            uptime_secs: v["uptime"].as_f64().unwrap_or_default(),
            first_update: v["first_update"].as_bool().unwrap_or_default(),
        }))
    }
}

//! The lease: granted, kept alive, and replaced (with every report written again) when lost.

use std::sync::Arc;

use calico_core::datastore::DatastoreError;
use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, PutOptions};

use super::Shared;

/// An open keep-alive stream, for one lease.
type Stream = (i64, LeaseKeeper, LeaseKeepAliveStream);

/// Every third of the TTL: keeps the lease alive (replacing it if it is gone) and refreshes
/// the registered hosts' liveness reports. Errors are logged and retried next time; the task
/// ends when the [`EtcdStatus`](super::EtcdStatus) is dropped or closed (aborted).
pub(super) async fn run(shared: Arc<Shared>) {
    let period = shared.options.ttl / 3;
    let mut stream = None;
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = tick(&shared, &mut stream).await {
            tracing::warn!(error = %e, "status lease keep-alive failed; retrying");
            stream = None;
        }
    }
}

/// Whether an error says the lease is gone (etcd-client turns a keep-alive answer with TTL
/// 0 into this error).
fn lease_gone(e: &DatastoreError) -> bool {
    e.to_string().contains("lease not found")
}

async fn tick(shared: &Shared, stream: &mut Option<Stream>) -> Result<(), DatastoreError> {
    let lease = shared.held.lock().await.lease;
    match keep_alive(shared, stream, lease).await {
        Ok(true) => {}
        Ok(false) => {
            *stream = None;
            shared.renew(lease).await?;
        }
        Err(e) if lease_gone(&e) => {
            *stream = None;
            shared.renew(lease).await?;
        }
        Err(e) => return Err(e),
    }
    let hosts: Vec<String> = shared.held.lock().await.hosts.keys().cloned().collect();
    for host in hosts {
        shared.report_host(&host).await?;
    }
    Ok(())
}

/// One keep-alive of `lease` (opening the stream if needed); whether the lease lives.
async fn keep_alive(
    shared: &Shared,
    stream: &mut Option<Stream>,
    lease: i64,
) -> Result<bool, DatastoreError> {
    let what = || format!("keep lease {lease:x} alive");
    if stream.as_ref().is_none_or(|(id, _, _)| *id != lease) {
        let mut client = shared.client.clone();
        let (keeper, responses) = shared.timed(what, client.lease_keep_alive(lease)).await?;
        *stream = Some((lease, keeper, responses));
    }
    let Some((_, keeper, responses)) = stream.as_mut() else {
        return Ok(true);
    };
    shared.timed(what, keeper.keep_alive()).await?;
    let answer = shared.timed(what, responses.message()).await?;
    Ok(answer.is_some_and(|r| r.ttl() > 0))
}

impl Shared {
    /// Replaces lease `old` (`0`: none yet) with a new one and writes every report under it;
    /// nothing if another caller replaced it already. The new lease is kept only once every
    /// report is written, so a failure leaves the old one to be replaced again.
    pub(super) async fn renew(&self, old: i64) -> Result<(), DatastoreError> {
        let mut held = self.held.lock().await;
        if held.lease != old {
            return Ok(());
        }
        let mut client = self.client.clone();
        let ttl = i64::try_from(self.options.ttl.as_secs()).unwrap_or(i64::MAX);
        let granted = self
            .timed(
                || "grant a lease".to_string(),
                client.lease_grant(ttl, None),
            )
            .await?;
        let lease = granted.id();
        let mut writes: Vec<(String, String)> = held
            .endpoints
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let hosts: Vec<String> = held.hosts.keys().cloned().collect();
        for host in hosts {
            let key = format!("{}/status", self.host_dir(&host)?);
            writes.push((key, Self::host_report(&mut held.hosts, &host)));
        }
        for (key, value) in &writes {
            let options = PutOptions::new().with_lease(lease);
            self.timed(
                || format!("put {key}"),
                client.put(key.as_str(), value.as_str(), Some(options)),
            )
            .await?;
        }
        if old != 0 {
            tracing::warn!(
                old = format!("{old:x}"),
                new = format!("{lease:x}"),
                reports = writes.len(),
                "the status lease was lost (etcd away longer than its TTL, or revoked): \
                 reports written again under a new one"
            );
        }
        held.lease = lease;
        Ok(())
    }
}

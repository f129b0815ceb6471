//! Addresses from Calico IPAM in etcd ([`calico_etcd::ipam::Ipam`]): block affinity,
//! borrowing and compare-and-swap writes are its; this module picks the pools, names the
//! handle and turns IPAM's errors into CNI's.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use calico_core::model::{IpPool, Resource};
use calico_etcd::codec::{decode_resource, Decoded};
use calico_etcd::ipam::{AssignRequest, Assignment, Family, Ipam, IpamError};
use calico_etcd::layout::{kind_by_name, resources_root};
use etcd_client::GetOptions;

use crate::spec::{CniError, Code, NetConf};

/// The IPAM handle a container's addresses are held under: `<network>.<container id>`, as
/// Calico's CNI plugin names it.
pub fn handle_id(network: &str, container_id: &str) -> String {
    format!("{network}.{container_id}")
}

/// An IPAM failure as a CNI error: etcd unreachable or slow is [`Code::TryAgainLater`],
/// anything else [`Code::Ipam`].
pub fn ipam_error(what: &str, e: IpamError) -> CniError {
    let code = match e {
        IpamError::Etcd { .. } | IpamError::Timeout { .. } | IpamError::Conflict { .. } => {
            Code::TryAgainLater
        }
        _ => Code::Ipam,
    };
    CniError::new(code, format!("IPAM {what}: {e}"), "")
}

/// Every `IPPool` stored under `prefix` (as `calicoctl` writes them); a pool that cannot be
/// read is an error naming its key.
pub async fn stored_pools(
    client: &etcd_client::Client,
    prefix: &str,
    timeout: Duration,
) -> Result<Vec<IpPool>, CniError> {
    let plural = kind_by_name("IPPool").map_or("ippools", |k| k.plural);
    let dir = format!("{}{plural}/", resources_root(prefix));
    let unavailable = |reason: String| {
        CniError::new(
            Code::TryAgainLater,
            format!("etcd: list {dir}: {reason}"),
            "",
        )
    };
    let mut kv = client.kv_client();
    let list = kv.get(dir.as_str(), Some(GetOptions::new().with_prefix()));
    let response = tokio::time::timeout(timeout, list)
        .await
        .map_err(|_| unavailable(format!("no answer within {timeout:?}")))?
        .map_err(|e| unavailable(e.to_string()))?;
    let mut pools = Vec::new();
    for kv in response.kvs() {
        let key = String::from_utf8_lossy(kv.key()).to_string();
        match decode_resource(prefix, &key, kv.value()) {
            Decoded::Resource(Resource::IpPool(p)) => pools.push(p),
            Decoded::Refused(why) => {
                return Err(CniError::new(Code::Datastore, format!("{key}: {why}"), ""))
            }
            _ => {}
        }
    }
    Ok(pools)
}

/// Assigns one address per family the configuration asks for, under `handle`, with
/// `attrs` stored beside each. On a failure the addresses already assigned stay held: the
/// caller releases the handle ([`release`]).
pub async fn assign(
    ipam: &Ipam,
    conf: &NetConf,
    handle: &str,
    attrs: &BTreeMap<String, String>,
) -> Result<Vec<Assignment>, CniError> {
    let mut out = Vec::new();
    for (wanted, family, pools) in [
        (conf.assign_ipv4(), Family::V4, &conf.ipam.ipv4_pools),
        (conf.assign_ipv6(), Family::V6, &conf.ipam.ipv6_pools),
    ] {
        if !wanted {
            continue;
        }
        let mut req = AssignRequest::new(handle, family);
        req.attrs = attrs.clone();
        req.pools = pools.clone();
        let what = format!("assign IPv{} for {handle}", family.number());
        out.push(ipam.assign(&req).await.map_err(|e| ipam_error(&what, e))?);
    }
    Ok(out)
}

/// Releases every address held under `handle` (none is not an error); the addresses freed.
pub async fn release(ipam: &Ipam, handle: &str) -> Result<Vec<IpAddr>, CniError> {
    ipam.release_by_handle(handle)
        .await
        .map_err(|e| ipam_error(&format!("release {handle}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_network_dot_container() {
        assert_eq!(handle_id("k8s-pod-network", "4f2a"), "k8s-pod-network.4f2a");
    }
}

//! A host's `Node` registration: compare-and-swap on the stored v3 JSON, merged field by
//! field so what calico-rs does not model (tunnel addresses, `orchRefs`, annotations, ...)
//! and what an operator set survive.

use std::net::IpAddr;

use calico_core::datastore::status::rfc3339_now;
use calico_core::datastore::DatastoreError;
use calico_core::integrations::calico_v3::{parse_v3, to_v3};
use calico_core::model::{Node, Resource};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde_json::{json, Map, Value};

use super::{invalid, Shared};

/// The object at `v[key]`, made one if it is anything else.
fn object<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    if !v[key].is_object() {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("made an object above")
}

/// Sets `field` to `addr/len` unless it already holds `addr` (with whatever prefix length:
/// calico/node writes the interface's).
fn set_address(bgp: &mut Map<String, Value>, field: &str, addr: IpAddr, len: u8) {
    let held = bgp
        .get(field)
        .and_then(Value::as_str)
        .and_then(|s| s.split('/').next())
        .and_then(|a| a.parse::<IpAddr>().ok());
    if held != Some(addr) {
        bgp.insert(field.into(), json!(format!("{addr}/{len}")));
    }
}

/// `ours` merged into the stored JSON: its labels set, each BGP field it gives set, all else
/// kept (see [`calico_core::datastore::status::merge_node`]).
fn merge(stored: &mut Value, ours: &Node) {
    if !ours.labels.is_empty() {
        let labels = object(&mut stored["metadata"], "labels");
        for (k, v) in &ours.labels {
            labels.insert(k.clone(), json!(v));
        }
    }
    let Some(b) = &ours.bgp else {
        return;
    };
    let bgp = object(&mut stored["spec"], "bgp");
    if let Some(a) = b.ipv4_address {
        set_address(bgp, "ipv4Address", a.into(), 32);
    }
    if let Some(a) = b.ipv6_address {
        set_address(bgp, "ipv6Address", a.into(), 128);
    }
    if let Some(asn) = b.as_number {
        let held = bgp
            .get("asNumber")
            .and_then(|v| serde_json::from_value::<calico_core::model::AsNumber>(v.clone()).ok());
        if held != Some(asn) {
            bgp.insert("asNumber".into(), json!(asn));
        }
    }
    if let Some(id) = b.route_reflector_cluster_id {
        bgp.insert("routeReflectorClusterID".into(), json!(id.to_string()));
    }
}

/// The node as stored, read back; `ours` if the stored object holds fields the v3 reader
/// does not take (a Calico-managed node's tunnel addresses, say).
fn read_back(value: &Value, ours: &Node) -> Node {
    match parse_v3(&value.to_string()).as_deref() {
        Ok([Resource::Node(n)]) => n.clone(),
        other => {
            tracing::debug!(node = %ours.name, ?other, "the stored Node does not read back whole");
            ours.clone()
        }
    }
}

/// Registers `node`: created if absent, else merged and written at the revision read, again
/// on a race, at most 10 times; nothing is written when the merge changes nothing.
pub(super) async fn register(shared: &Shared, node: &Node) -> Result<Node, DatastoreError> {
    let key = format!(
        "{}/resources/v3/projectcalico.org/nodes/{}",
        shared.options.prefix, node.name
    );
    if node.name.is_empty() || node.name.contains('/') {
        return Err(invalid(
            key,
            "a node name must be non-empty and without '/'",
        ));
    }
    let ours = to_v3(&Resource::Node(node.clone()))
        .map_err(|e| invalid(key.as_str(), e.to_string()))?
        .value;
    let mut client = shared.client.clone();
    for _ in 0..10 {
        let got = shared
            .timed(|| format!("get {key}"), client.get(key.as_str(), None))
            .await?;
        let (compare, value) = match got.kvs().first() {
            None => {
                let mut v = ours.clone();
                v["metadata"]["creationTimestamp"] = json!(rfc3339_now());
                (
                    Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                    v,
                )
            }
            Some(kv) => {
                let mut stored: Value = serde_json::from_slice(kv.value()).map_err(|e| {
                    invalid(
                        key.as_str(),
                        format!("the stored Node is not JSON ({e}); not overwritten"),
                    )
                })?;
                if stored["kind"] != "Node" || !stored.is_object() {
                    return Err(invalid(
                        key.as_str(),
                        format!(
                            "holds a {} object, not a Node; not overwritten",
                            stored["kind"]
                        ),
                    ));
                }
                let before = stored.clone();
                merge(&mut stored, node);
                if stored == before {
                    return Ok(read_back(&stored, node));
                }
                let revision = kv.mod_revision();
                (
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, revision),
                    stored,
                )
            }
        };
        let txn = Txn::new().when([compare]).and_then([TxnOp::put(
            key.as_str(),
            value.to_string(),
            None,
        )]);
        let done = shared
            .timed(|| format!("write {key}"), client.txn(txn))
            .await?;
        if done.succeeded() {
            return Ok(read_back(&value, node));
        }
        tracing::debug!(%key, "the Node changed under the registration; merging again");
    }
    Err(DatastoreError::Conflict {
        key,
        expected: 0,
        actual: None,
    })
}

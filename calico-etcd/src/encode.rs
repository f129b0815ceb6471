//! calico-rs resources → the `projectcalico.org/v3` JSON Calico stores, for the writer.
//!
//! A minimal encoder kept inside calico-etcd (calico-core's own `to_v3` was not available
//! when the writer was written): calico-rs's model serialises with the v3 field names
//! (`camelCase`, `peerIP`, `expectedIPs`, rules as Calico writes them), so each resource's
//! fields are split into `metadata` (name, namespace, labels) and `spec`. What the v3 form
//! cannot hold is refused with its field (a BGP peer's `password` and `holdTime`: Calico
//! keeps passwords in secrets, and has no hold time). Every encoding is checked by a
//! round trip through [`crate::codec`] in the tests.

use calico_core::integrations::calico_v3::API_VERSION;
use calico_core::model::Resource;
use serde_json::{Map, Value};

use crate::layout;

/// Why a resource cannot be encoded: the field and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct EncodeError {
    /// The field.
    pub field: String,
    /// Why.
    pub reason: String,
}

fn err(field: &str, reason: impl Into<String>) -> EncodeError {
    EncodeError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The v3 value of `resource` (without `uid` and `creationTimestamp`, which the writer adds).
pub fn to_v3_value(resource: &Resource) -> Result<Value, EncodeError> {
    let (kind, namespace, name) = layout::place_of(resource).map_err(|e| err(e.field, e.reason))?;
    let inner = match resource {
        Resource::Policy(p) => serde_json::to_value(p),
        Resource::Profile(p) => serde_json::to_value(p),
        Resource::HostEndpoint(h) => serde_json::to_value(h),
        Resource::IpPool(p) => serde_json::to_value(p),
        Resource::BgpConfiguration(b) => serde_json::to_value(b),
        Resource::BgpPeer(b) => {
            if b.password.is_some() {
                return Err(err(
                    "spec.password",
                    "Calico keeps BGP passwords in secrets, which calico-rs cannot write",
                ));
            }
            if b.hold_time.is_some() {
                return Err(err(
                    "spec.holdTime",
                    "projectcalico.org/v3 BGPPeer has no hold time",
                ));
            }
            serde_json::to_value(b)
        }
        Resource::Node(n) => serde_json::to_value(n),
        Resource::WorkloadEndpoint(w) => serde_json::to_value(w),
        _ => return Err(err("kind", "not stored under the resources path")),
    }
    .map_err(|e| err("(value)", e.to_string()))?;
    let Value::Object(mut spec) = inner else {
        return Err(err("(value)", "did not serialise to an object"));
    };
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(name));
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), Value::String(ns));
    }
    for field in ["name", "namespace", "kind"] {
        spec.remove(field);
    }
    if let Some(labels) = spec
        .remove("labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
    {
        metadata.insert("labels".into(), labels);
    }
    if kind.kind == "WorkloadEndpoint"
        && spec.get("orchestrator").and_then(Value::as_str) == Some("k8s")
    {
        // Calico's Kubernetes endpoints name their pod in `pod`.
        if let Some(pod) = spec.remove("workload") {
            spec.insert("pod".into(), pod);
        }
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(API_VERSION.into()));
    out.insert("kind".into(), Value::String(kind.kind.into()));
    out.insert("metadata".into(), Value::Object(metadata));
    out.insert("spec".into(), Value::Object(spec));
    Ok(Value::Object(out))
}

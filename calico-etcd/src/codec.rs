//! Stored values → calico-rs resources: the `projectcalico.org/v3` JSON that `calicoctl`
//! and libcalico-go write under the resources path.
//!
//! Each value is read by calico-core's `projectcalico.org/v3` reader
//! ([`calico_core::integrations::calico_v3`]; JSON is YAML), after checks against its key
//! and a few adjustments for what libcalico-go stores but a person never writes:
//!
//! * refused, with the key and the field: a value that is not JSON (`(value)`), a `kind`
//!   that is not the key's (`kind`), a `metadata.name` / `metadata.namespace` that is not the
//!   key's, a workload endpoint whose name does not match its `spec`
//!   (`metadata.name`), and anything the reader or validation refuses (its field);
//! * dropped: the top-level `status` (reported state, e.g. a Node's, never desired state);
//!   an IPPool's `spec.assignmentMode: Automatic` (libcalico-go's default since 3.30). (A
//!   port's `hostPort: 0` and `hostIP: ""`, which Go writes on every port, the reader itself
//!   takes as the defaults they are.)
//! * a policy's name is the one Calico reads ([`layout::policy_name`]): the
//!   `projectcalico.org/metadata` annotation's, else the stored name without `default.`.
//!
//! Kinds calico-rs does not implement ([`layout::KINDS`] with `supported: false`:
//! ClusterInformation, FelixConfiguration, KubeControllersConfiguration,
//! IPReservation, CalicoNodeStatus, IPAM
//! configuration, BlockAffinity under the resources path, LiveMigration and the
//! Kubernetes-backed kinds) and unknown plurals are [`Decoded::Unsupported`]: ignored with a
//! debug log and counted, never a refusal.

use calico_core::integrations::calico_v3::{parse_v3, API_VERSION};
use calico_core::model::Resource;
use serde_json::{Map, Value};

use crate::layout::{self, KeyError, ResourcePath};

/// What one stored entry means for calico-rs.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // built once per value and moved straight on
pub enum Decoded {
    /// A resource to put in force.
    Resource(Resource),
    /// A value that cannot be taken; why, naming the field.
    Refused(String),
    /// A kind calico-rs does not implement: ignored (debug log, counted by kind).
    Unsupported(String),
    /// A key this decoder does not cover (no resource, no refusal).
    NotOurs,
}

/// Decodes the value stored at `key` under the resources path of `prefix`.
pub fn decode_resource(prefix: &str, key: &str, value: &[u8]) -> Decoded {
    let path = match layout::parse_key(prefix, key) {
        Ok(p) => p,
        Err(KeyError::NotResource { .. }) => return Decoded::NotOurs,
        Err(KeyError::UnknownKind { plural, .. }) => return Decoded::Unsupported(plural),
        Err(e) => return Decoded::Refused(format!("field (key): {e}")),
    };
    if !path.kind.supported {
        return Decoded::Unsupported(path.kind.kind.to_string());
    }
    match decode_value(&path, value) {
        Ok(r) => Decoded::Resource(r),
        Err(reason) => Decoded::Refused(reason),
    }
}

/// Decodes a value of a supported kind whose key parsed as `path`.
fn decode_value(path: &ResourcePath, value: &[u8]) -> Result<Resource, String> {
    let mut v: Value =
        serde_json::from_slice(value).map_err(|e| format!("field (value): not JSON: {e}"))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| "field (value): not a JSON object".to_string())?;
    check_identity(path, obj)?;
    normalise(path.kind.kind, obj);
    let text = serde_json::to_string(&v).map_err(|e| format!("field (value): {e}"))?;
    let mut resources = parse_v3(&text).map_err(|e| format!("field {}: {}", e.field, e.reason))?;
    let resource = match (resources.pop(), resources.is_empty()) {
        (Some(r), true) => r,
        _ => return Err("field kind: expected exactly one resource".into()),
    };
    if let Resource::WorkloadEndpoint(w) = &resource {
        check_workload_endpoint_name(&path.name, &w.node, &w.id)?;
    }
    Ok(resource)
}

/// The value's `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` against the key.
fn check_identity(path: &ResourcePath, obj: &Map<String, Value>) -> Result<(), String> {
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        other => {
            return Err(format!(
                "field apiVersion: {other:?} is not {API_VERSION:?}"
            ))
        }
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != path.kind.kind {
        return Err(format!(
            "field kind: {kind:?} is stored under {:?}, which holds {}",
            path.kind.plural, path.kind.kind
        ));
    }
    let meta = obj.get("metadata").and_then(Value::as_object);
    let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);
    let name = field("name").unwrap_or("");
    if name != path.name {
        return Err(format!(
            "field metadata.name: {name:?} does not match the key's name {:?}",
            path.name
        ));
    }
    let ns = field("namespace").filter(|n| !n.is_empty());
    if ns != path.namespace.as_deref() {
        return Err(match &path.namespace {
            Some(want) => format!(
                "field metadata.namespace: {ns:?} does not match the key's namespace {want:?}"
            ),
            None => format!(
                "field metadata.namespace: {ns:?} set on a {}, which has no namespace",
                path.kind.kind
            ),
        });
    }
    Ok(())
}

/// Drops what libcalico-go stores but calico-rs's reader does not take (see the module
/// documentation), and resolves a policy's name.
fn normalise(kind: &str, obj: &mut Map<String, Value>) {
    obj.remove("status");
    let spec = obj.get_mut("spec").and_then(Value::as_object_mut);
    match (kind, spec) {
        ("IPPool", Some(spec))
            if spec.get("assignmentMode").and_then(Value::as_str) == Some("Automatic") =>
        {
            spec.remove("assignmentMode");
        }
        (
            "NetworkPolicy"
            | "GlobalNetworkPolicy"
            | "StagedNetworkPolicy"
            | "StagedGlobalNetworkPolicy",
            _,
        ) => resolve_policy_name(obj),
        _ => {}
    }
}

/// Sets `metadata.name` to the policy's name as Calico reads it, and removes the annotation
/// that carried it.
fn resolve_policy_name(obj: &mut Map<String, Value>) {
    let tier = obj
        .get("spec")
        .and_then(|s| s.get("tier"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotated = meta
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(layout::POLICY_NAME_ANNOTATION))
        .and_then(|v| v.as_str().map(str::to_string))
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|m| m.get("name").and_then(Value::as_str).map(str::to_string));
    let stored = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let name = layout::policy_name(stored, tier.as_deref(), annotated.as_deref());
    meta.insert("name".into(), Value::String(name));
}

/// A workload endpoint's stored name against its `spec` (node, orchestrator, workload,
/// endpoint), as Calico's validation requires.
fn check_workload_endpoint_name(
    name: &str,
    node: &str,
    id: &calico_core::model::WorkloadEndpointId,
) -> Result<(), String> {
    let parts = layout::split_workload_endpoint_name(name);
    let third_checked = !matches!(id.orchestrator.as_str(), "cni" | "libnetwork");
    let ok = parts.len() == 4
        && parts[0] == node
        && parts[1] == id.orchestrator
        && (!third_checked || parts[2] == id.workload)
        && parts[3] == id.endpoint;
    if ok {
        return Ok(());
    }
    let expected = layout::workload_endpoint_name(node, id)
        .unwrap_or_else(|(field, reason)| format!("(none: {field} {reason})"));
    Err(format!(
        "field metadata.name: {name:?} does not match the spec's node, orchestrator, workload \
         and endpoint (expected {expected:?})"
    ))
}

#[cfg(test)]
mod tests;

//! Calico's etcd v3 key layout for `projectcalico.org/v3` resources, both ways.
//!
//! ```text
//! <prefix>/resources/v3/projectcalico.org/<plural>/<name>               (global kinds)
//! <prefix>/resources/v3/projectcalico.org/<plural>/<namespace>/<name>   (namespaced kinds)
//! ```
//!
//! `<prefix>` is `/calico` unless configured otherwise; `<plural>` is the lower-case plural of
//! the kind as libcalico-go registers it (`libcalico-go/lib/backend/model/resource.go`), and
//! the namespaced kinds are those of `libcalico-go/lib/namespace/resource.go`
//! (WorkloadEndpoint, NetworkPolicy, StagedNetworkPolicy, StagedKubernetesNetworkPolicy,
//! NetworkSet, LiveMigration and the Kubernetes-backed kinds).
//!
//! **Names are not escaped**: Calico writes the resource's name as the last key segment
//! as it is (its validation allows only DNS-style names, never a `/`). A name that is empty
//! or holds a `/` therefore has no key; [`key_of`] refuses it.
//!
//! **Workload endpoints** are named `<node>-<orchestrator>-<workload>-<endpoint>`, each part
//! with its `-` doubled (`felix-host-1` → `felix--host--1`); for `k8s` the workload part is
//! the pod, for `cni` the container id, for `libnetwork` the orchestrator again
//! (`libcalico-go/lib/names/workloadendpoint.go`). [`workload_endpoint_name`] forms it,
//! [`split_workload_endpoint_name`] takes it apart.
//!
//! **Policies of the default tier.** Calico up to 3.29 stored a default-tier policy `web` as
//! `default.web` (key and `metadata.name`); since 3.30 it stores `web`, with the annotation
//! `projectcalico.org/metadata: {"name":"web"}`, and when reading takes the annotation's name
//! if present, else strips a `default.` prefix from a default-tier policy. calico-rs reads
//! both the same way ([`policy_name`]) and writes the 3.30 form (plain name and the
//! annotation), so either Calico version and calico-rs see one name.
//!
//! **Tiers** are global (`tiers/<name>`). A policy of another tier is stored under its own
//! name, which up to Calico 3.31 had to be `<tier>.<name>` (`globalnetworkpolicies/
//! security.block`) and since 3.32 may be any name; its tier is the value's `spec.tier`,
//! never read from the name.

use calico_core::model::{Resource, WorkloadEndpointId};

/// The path under the prefix that holds `projectcalico.org/v3` resources.
pub const RESOURCES: &str = "/resources/v3/projectcalico.org/";

/// The annotation in which Calico (3.30 and later) keeps a policy's name as the v3 API saw it.
pub const POLICY_NAME_ANNOTATION: &str = "projectcalico.org/metadata";

/// One kind Calico stores under the resources path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// The kind, as in the value's `kind` (`NetworkPolicy`).
    pub kind: &'static str,
    /// The key's plural segment (`networkpolicies`).
    pub plural: &'static str,
    /// Whether keys carry a namespace segment.
    pub namespaced: bool,
    /// Whether calico-rs reads the kind (the others are reported as unsupported, ignored).
    pub supported: bool,
}

const fn k(
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    supported: bool,
) -> KindInfo {
    KindInfo {
        kind,
        plural,
        namespaced,
        supported,
    }
}

/// Every kind libcalico-go registers under the resources path.
pub const KINDS: &[KindInfo] = &[
    k("NetworkPolicy", "networkpolicies", true, true),
    k("GlobalNetworkPolicy", "globalnetworkpolicies", false, true),
    k("Profile", "profiles", false, true),
    k("HostEndpoint", "hostendpoints", false, true),
    k("IPPool", "ippools", false, true),
    k("BGPConfiguration", "bgpconfigurations", false, true),
    k("BGPPeer", "bgppeers", false, true),
    k("BGPFilter", "bgpfilters", false, true),
    k("Node", "nodes", false, true),
    k("WorkloadEndpoint", "workloadendpoints", true, true),
    k("NetworkSet", "networksets", true, true),
    k("GlobalNetworkSet", "globalnetworksets", false, true),
    k("Tier", "tiers", false, true),
    k("StagedNetworkPolicy", "stagednetworkpolicies", true, true),
    k(
        "StagedGlobalNetworkPolicy",
        "stagedglobalnetworkpolicies",
        false,
        true,
    ),
    k(
        "StagedKubernetesNetworkPolicy",
        "stagedkubernetesnetworkpolicies",
        true,
        true,
    ),
    // Known to Calico, not implemented by calico-rs: ignored (debug log, counted).
    k("ClusterInformation", "clusterinformations", false, false),
    k("FelixConfiguration", "felixconfigurations", false, false),
    k(
        "KubeControllersConfiguration",
        "kubecontrollersconfigurations",
        false,
        false,
    ),
    k("IPReservation", "ipreservations", false, false),
    k("CalicoNodeStatus", "caliconodestatuses", false, false),
    k("IPAMConfiguration", "ipamconfigurations", false, false),
    k("IPAMConfig", "ipamconfigs", false, false),
    k("BlockAffinity", "blockaffinities", false, false),
    k("LiveMigration", "livemigrations", true, false),
    k(
        "KubernetesEndpointSlice",
        "kubernetesendpointslices",
        true,
        false,
    ),
    k("KubernetesService", "kubernetesservice", true, false),
    k(
        "KubernetesNetworkPolicy",
        "kubernetesnetworkpolicies",
        true,
        false,
    ),
    k(
        "KubernetesClusterNetworkPolicy",
        "kubernetesclusternetworkpolicies",
        false,
        false,
    ),
];

/// The kind stored under `plural`.
pub fn kind_by_plural(plural: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.plural == plural)
}

/// The kind named `kind`.
pub fn kind_by_name(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// A key that does not parse as a resource key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is not under `<prefix>/resources/v3/projectcalico.org/`.
    #[error("{key}: not under {root}")]
    NotResource {
        /// The key.
        key: String,
        /// The resources root.
        root: String,
    },
    /// The plural segment names no kind Calico stores.
    #[error("{key}: unknown kind {plural:?}")]
    UnknownKind {
        /// The key.
        key: String,
        /// The plural segment.
        plural: String,
    },
    /// Too many or too few segments for the kind (namespaced kinds have a namespace).
    #[error("{key}: expected {expected} after the kind {kind}, found {found} segment(s)")]
    Shape {
        /// The key.
        key: String,
        /// The kind.
        kind: &'static str,
        /// What the kind's keys hold.
        expected: &'static str,
        /// How many segments were found.
        found: usize,
    },
    /// A segment is empty.
    #[error("{key}: empty {segment} segment")]
    Empty {
        /// The key.
        key: String,
        /// `namespace` or `name`.
        segment: &'static str,
    },
}

/// A parsed resource key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    /// The kind.
    pub kind: &'static KindInfo,
    /// The namespace (namespaced kinds only).
    pub namespace: Option<String>,
    /// The name, as stored (see the module documentation for policies and endpoints).
    pub name: String,
}

/// The root of resource keys under `prefix` (`/calico` → `/calico/resources/v3/projectcalico.org/`).
pub fn resources_root(prefix: &str) -> String {
    format!("{}{RESOURCES}", prefix.trim_end_matches('/'))
}

/// Parses a key under `prefix`.
pub fn parse_key(prefix: &str, key: &str) -> Result<ResourcePath, KeyError> {
    let root = resources_root(prefix);
    let rest = key
        .strip_prefix(&root)
        .ok_or_else(|| KeyError::NotResource {
            key: key.to_string(),
            root: root.clone(),
        })?;
    let segments: Vec<&str> = rest.split('/').collect();
    let plural = segments[0];
    let kind = kind_by_plural(plural).ok_or_else(|| KeyError::UnknownKind {
        key: key.to_string(),
        plural: plural.to_string(),
    })?;
    let want = if kind.namespaced { 3 } else { 2 };
    if segments.len() != want {
        return Err(KeyError::Shape {
            key: key.to_string(),
            kind: kind.kind,
            expected: if kind.namespaced {
                "<namespace>/<name>"
            } else {
                "<name>"
            },
            found: segments.len() - 1,
        });
    }
    let empty = |segment| KeyError::Empty {
        key: key.to_string(),
        segment,
    };
    let name = segments[want - 1];
    if name.is_empty() {
        return Err(empty("name"));
    }
    let namespace = if kind.namespaced {
        if segments[1].is_empty() {
            return Err(empty("namespace"));
        }
        Some(segments[1].to_string())
    } else {
        None
    };
    Ok(ResourcePath {
        kind,
        namespace,
        name: name.to_string(),
    })
}

/// The key of a kind's resource.
pub fn key_for(prefix: &str, kind: &KindInfo, namespace: Option<&str>, name: &str) -> String {
    let root = resources_root(prefix);
    match namespace {
        Some(ns) if kind.namespaced => format!("{root}{}/{ns}/{name}", kind.plural),
        _ => format!("{root}{}/{name}", kind.plural),
    }
}

/// Why a resource has no key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: field {field}: {reason}")]
pub struct NoKey {
    /// The resource, e.g. `Policy shop/web`.
    pub resource: String,
    /// The field that cannot be stored.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

/// The calico-rs resource's kind in Calico's layout, its namespace and its stored name.
pub fn place_of(resource: &Resource) -> Result<(&'static KindInfo, Option<String>, String), NoKey> {
    let info = |k: &str| kind_by_name(k).expect("kind in the table");
    let (kind, ns, name) = match resource {
        // A staged policy under its staged kind and the user's name (a staged Kubernetes
        // policy is written back as the StagedNetworkPolicy it translates to).
        Resource::Policy(p) => match (&p.namespace, p.is_staged()) {
            (Some(ns), false) => (info("NetworkPolicy"), Some(ns.clone()), p.name.clone()),
            (None, false) => (info("GlobalNetworkPolicy"), None, p.name.clone()),
            (Some(ns), true) => (
                info("StagedNetworkPolicy"),
                Some(ns.clone()),
                p.user_name().to_string(),
            ),
            (None, true) => (
                info("StagedGlobalNetworkPolicy"),
                None,
                p.user_name().to_string(),
            ),
        },
        Resource::Profile(p) => (info("Profile"), None, p.name.clone()),
        Resource::HostEndpoint(h) => (info("HostEndpoint"), None, h.name.clone()),
        Resource::IpPool(p) => (info("IPPool"), None, p.name.clone()),
        Resource::BgpConfiguration(b) => (info("BGPConfiguration"), None, b.name.clone()),
        Resource::BgpPeer(b) => (info("BGPPeer"), None, b.name.clone()),
        Resource::BgpFilter(f) => (info("BGPFilter"), None, f.name.clone()),
        Resource::Node(n) => (info("Node"), None, n.name.clone()),
        Resource::Tier(t) => (info("Tier"), None, t.name.clone()),
        Resource::NetworkSet(s) => match &s.namespace {
            Some(ns) => (info("NetworkSet"), Some(ns.clone()), s.name.clone()),
            None => (info("GlobalNetworkSet"), None, s.name.clone()),
        },
        Resource::WorkloadEndpoint(w) => {
            let name = workload_endpoint_name(&w.node, &w.id).map_err(|(field, reason)| NoKey {
                resource: format!("WorkloadEndpoint {}", w.id),
                field,
                reason,
            })?;
            let ns = w.namespace.clone().unwrap_or_else(|| "default".into());
            (info("WorkloadEndpoint"), Some(ns), name)
        }
        other => {
            return Err(NoKey {
                resource: format!("{:?}", other.kind()),
                field: "kind",
                reason: "not stored under the resources path (IPAM keeps its own keys)".into(),
            })
        }
    };
    let what = format!("{} {}", kind.kind, name);
    for (field, value) in [
        ("metadata.namespace", ns.as_deref()),
        ("metadata.name", Some(&name)),
    ] {
        match value {
            Some("") => return Err(no_key(&what, field, "empty")),
            Some(v) if v.contains('/') => {
                return Err(no_key(
                    &what,
                    field,
                    "holds a '/', which a key segment cannot",
                ))
            }
            _ => {}
        }
    }
    Ok((kind, ns, name))
}

fn no_key(resource: &str, field: &'static str, reason: &str) -> NoKey {
    NoKey {
        resource: resource.to_string(),
        field,
        reason: reason.to_string(),
    }
}

/// The key of `resource` under `prefix`.
pub fn key_of(prefix: &str, resource: &Resource) -> Result<String, NoKey> {
    let (kind, ns, name) = place_of(resource)?;
    Ok(key_for(prefix, kind, ns.as_deref(), &name))
}

/// A workload endpoint's stored name: `<node>-<orchestrator>-<workload>-<endpoint>`, each
/// part's `-` doubled. A part that is empty or begins or ends with `-` cannot be told apart,
/// and is refused with its field.
pub fn workload_endpoint_name(
    node: &str,
    id: &WorkloadEndpointId,
) -> Result<String, (&'static str, String)> {
    let third = if id.orchestrator == "libnetwork" {
        ("spec.orchestrator", id.orchestrator.as_str())
    } else {
        ("spec.workload", id.workload.as_str())
    };
    let parts = [
        ("spec.node", node),
        ("spec.orchestrator", id.orchestrator.as_str()),
        third,
        ("spec.endpoint", id.endpoint.as_str()),
    ];
    let mut out = Vec::with_capacity(4);
    for (field, part) in parts {
        if part.is_empty() {
            return Err((field, "empty".into()));
        }
        if part.starts_with('-') || part.ends_with('-') {
            return Err((field, format!("{part:?} begins or ends with '-'")));
        }
        out.push(part.replace('-', "--"));
    }
    Ok(out.join("-"))
}

/// Splits a workload endpoint's stored name into its parts (a single `-` separates, a
/// doubled one is a `-` within a part).
pub fn split_workload_endpoint_name(name: &str) -> Vec<String> {
    let bytes = name.as_bytes();
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'-' && i > 0 {
            if bytes.get(i + 1) == Some(&b'-') {
                current.push('-');
                i += 2;
                continue;
            }
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c as char);
        }
        i += 1;
    }
    parts.push(current);
    if !name.is_ascii() {
        // Non-ASCII names are not DNS names; keep them whole rather than split bytes.
        return vec![name.to_string()];
    }
    parts
}

/// The name a stored policy has in calico-rs (see the module documentation): the
/// annotation's name if there is one, else the stored name without a `default.` prefix when
/// the policy is in the default tier.
pub fn policy_name(stored: &str, tier: Option<&str>, annotated: Option<&str>) -> String {
    if let Some(name) = annotated.filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    match tier {
        None | Some("") | Some("default") => stored
            .strip_prefix("default.")
            .unwrap_or(stored)
            .to_string(),
        Some(_) => stored.to_string(),
    }
}

#[cfg(test)]
mod tests;

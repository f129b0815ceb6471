//! Resource files: a YAML stream of resources, one per document, each naming its `kind`.
//! A document with `apiVersion: projectcalico.org/v3` is read as `calicoctl` users write
//! it (with the `calico-v3` feature; see `integrations::calico_v3`).
//!
//! ```
//! use calico_core::model::{parse_resources, Resource};
//!
//! let text = "kind: Profile\nname: web\n---\nkind: IpPool\nname: p\ncidr: 10.65.0.0/16\n";
//! let resources = parse_resources(text).unwrap();
//! assert!(matches!(resources[0], Resource::Profile(_)));
//!
//! let err = parse_resources("kind: IpPool\nname: p\ncidr: 10.65.0.0/16\nblockSise: 26\n")
//!     .unwrap_err();
//! assert!(err.to_string().contains("blockSise"), "{err}");
//! ```

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ValidationError;
use super::resource::Resource;

/// A resource file could not be read, parsed or validated. Its `Display` is one line naming
/// the file, the document, the field and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A document is not valid YAML or does not fit the resource's schema.
    #[error("{location}document {document}{kind}: {field}{reason}")]
    Parse {
        /// `path: ` (empty when parsing a string).
        location: String,
        /// 1-based document number.
        document: usize,
        /// ` (Kind)` when the kind is known.
        kind: String,
        /// `field <path>: ` when known.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A document parsed but the resource is invalid.
    #[error("{location}document {document}: {source}")]
    Invalid {
        /// `path: ` (empty when parsing a string).
        location: String,
        /// 1-based document number.
        document: usize,
        /// The validation error.
        source: ValidationError,
    },
}

/// The resource kinds a file may hold, by their `kind:` value.
const KINDS: [&str; 12] = [
    "WorkloadEndpoint",
    "HostEndpoint",
    "Policy",
    "Profile",
    "IpPool",
    "BlockAffinity",
    "BgpConfiguration",
    "BgpPeer",
    "Node",
    "NetworkSet",
    "BgpFilter",
    "Tier",
];

/// Parses a YAML stream of resources and validates each one.
pub fn parse_resources(text: &str) -> Result<Vec<Resource>, FileError> {
    parse(text, "")
}

/// Reads and parses a resource file; errors name the file.
pub fn load_file(path: impl AsRef<Path>) -> Result<Vec<Resource>, FileError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &format!("{}: ", path.display()))
}

fn parse(text: &str, location: &str) -> Result<Vec<Resource>, FileError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let parse_error = |kind: &str, field: String, reason: String| FileError::Parse {
            location: location.to_string(),
            document,
            kind: if kind.is_empty() {
                String::new()
            } else {
                format!(" ({kind})")
            },
            field,
            reason,
        };
        let value = serde_yaml_ng::Value::deserialize(doc)
            .map_err(|e| parse_error("", String::new(), e.to_string()))?;
        if value.is_null() {
            continue; // an empty document, e.g. after a trailing `---`
        }
        let mut mapping = match value {
            serde_yaml_ng::Value::Mapping(m) => m,
            _ => {
                return Err(parse_error(
                    "",
                    String::new(),
                    "expected a mapping with a `kind` field".into(),
                ))
            }
        };
        if let Some(api_version) = v3_api_version(&mapping) {
            out.extend(v3_document(location, document, api_version, mapping)?);
            continue;
        }
        let kind = match mapping.remove("kind") {
            Some(serde_yaml_ng::Value::String(k)) => k,
            Some(_) => {
                return Err(parse_error(
                    "",
                    "field kind: ".into(),
                    "must be a string".into(),
                ))
            }
            None => {
                return Err(parse_error(
                    "",
                    String::new(),
                    "missing field `kind`".into(),
                ))
            }
        };
        let value = serde_yaml_ng::Value::Mapping(mapping);
        let resource = match kind.as_str() {
            "WorkloadEndpoint" => typed(value).map(Resource::WorkloadEndpoint),
            "HostEndpoint" => typed(value).map(Resource::HostEndpoint),
            "Policy" => typed(value).map(Resource::Policy),
            "Profile" => typed(value).map(Resource::Profile),
            "IpPool" => typed(value).map(Resource::IpPool),
            "BlockAffinity" => typed(value).map(Resource::BlockAffinity),
            "BgpConfiguration" => typed(value).map(Resource::BgpConfiguration),
            "BgpPeer" => typed(value).map(Resource::BgpPeer),
            "Node" => typed(value).map(Resource::Node),
            "NetworkSet" => typed(value).map(Resource::NetworkSet),
            "BgpFilter" => typed(value).map(Resource::BgpFilter),
            "Tier" => typed(value).map(Resource::Tier),
            other => {
                return Err(parse_error(
                    "",
                    "field kind: ".into(),
                    format!(
                        "unknown kind {other:?}; expected one of {}",
                        KINDS.join(", ")
                    ),
                ))
            }
        }
        .map_err(|(path, reason)| {
            let field = if path.is_empty() || path == "." {
                String::new()
            } else {
                format!("field {path}: ")
            };
            parse_error(&kind, field, reason)
        })?;
        resource.validate().map_err(|source| FileError::Invalid {
            location: location.to_string(),
            document,
            source,
        })?;
        out.push(resource);
    }
    Ok(out)
}

/// The API version of a `projectcalico.org/v3` document (as `calicoctl` users write them),
/// `None` for the native format (which has no `apiVersion`).
fn v3_api_version(mapping: &serde_yaml_ng::Mapping) -> Option<&'static str> {
    const V3: &str = "projectcalico.org/v3";
    (mapping
        .get("apiVersion")
        .and_then(serde_yaml_ng::Value::as_str)
        == Some(V3))
    .then_some(V3)
}

/// A `projectcalico.org/v3` document (or `List`) of a resource file, through the v3
/// translation, so that a directory may hold `calicoctl`-style files.
#[cfg(feature = "calico-v3")]
fn v3_document(
    location: &str,
    document: usize,
    _api_version: &str,
    mapping: serde_yaml_ng::Mapping,
) -> Result<Vec<Resource>, FileError> {
    let value = serde_yaml_ng::Value::Mapping(mapping);
    crate::integrations::calico_v3::translate_document(document, value).map_err(|e| {
        // The object reads `document N` or `document N: Kind name`.
        let what = e
            .object
            .split_once(": ")
            .map(|(_, what)| format!(" ({what})"))
            .unwrap_or_default();
        FileError::Parse {
            location: location.to_string(),
            document,
            kind: what,
            field: format!("field {}: ", e.field),
            reason: e.reason,
        }
    })
}

/// Without the `calico-v3` feature a v3 document is refused with the reason.
#[cfg(not(feature = "calico-v3"))]
fn v3_document(
    location: &str,
    document: usize,
    api_version: &str,
    _mapping: serde_yaml_ng::Mapping,
) -> Result<Vec<Resource>, FileError> {
    Err(FileError::Parse {
        location: location.to_string(),
        document,
        kind: String::new(),
        field: "field apiVersion: ".into(),
        reason: format!(
            "{api_version} documents need calico-core's `calico-v3` feature, which this \
             build does not have"
        ),
    })
}

/// Deserializes one resource, returning the path of the offending field on error.
fn typed<T: DeserializeOwned>(value: serde_yaml_ng::Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        (path, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_resources(text).unwrap_err().to_string()
    }

    #[cfg(not(feature = "calico-v3"))]
    #[test]
    fn v3_documents_without_the_feature_say_so() {
        let e = err("apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: p}\n");
        assert!(
            e.contains("field apiVersion") && e.contains("calico-v3"),
            "{e}"
        );
    }

    #[test]
    fn loads_every_kind() {
        let text = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: ns.pod
endpoint: eth0
namespace: ns
node: h1
interfaceName: cali123
ipNetworks: [10.0.0.1/32]
labels: {app: web}
---
kind: HostEndpoint
name: h1-eth0
node: h1
interfaceName: eth0
---
kind: Policy
name: p
selector: app == 'web'
ingress: [{action: Allow, protocol: TCP, destination: {ports: [80, "8000:8080", http]}}]
---
kind: Profile
name: kns.ns
---
kind: IpPool
name: pool
cidr: 10.0.0.0/16
---
kind: BgpConfiguration
name: default
asNumber: 64512
---
kind: BgpPeer
name: tor
peerIP: 192.0.2.1
asNumber: "1.10"
---
kind: Node
name: h1
bgp: {ipv4Address: 192.0.2.10}
---
"#;
        let r = parse_resources(text).unwrap();
        assert_eq!(r.len(), 8);
        match &r[6] {
            Resource::BgpPeer(p) => assert_eq!(p.as_number, Some(crate::model::AsNumber(65546))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_path() {
        let e = err("kind: Policy\nname: p\ningress: [{action: Allow, source: {nett: []}}]\n");
        assert!(e.contains("document 1 (Policy)"), "{e}");
        assert!(e.contains("ingress[0].source.nett"), "{e}");
        let e = err("kind: WorkloadEndpoint\norchestrator: k\nworkload: w\nendpoint: e\nnode: n\ninterfaceName: i\nbogus: 1\n");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field_and_reason() {
        let e = err("kind: Policy\nname: p\ningress: [{action: Allow, protocol: TCP, destination: {ports: [\"90:80\"]}}]\n");
        assert!(e.contains("ingress[0].destination.ports[0]"), "{e}");
        assert!(e.contains("minimum above its maximum"), "{e}");
        let e = err("kind: Policy\nname: p\nselector: app ==\n");
        assert!(e.contains("field selector"), "{e}");
        assert!(e.contains("expected a quoted string"), "{e}");
        let e = err("kind: Gadget\nname: x\n");
        assert!(e.contains("unknown kind \"Gadget\""), "{e}");
        let e = err("name: x\n");
        assert!(e.contains("missing field `kind`"), "{e}");
        let e = err("kind: Profile\nname: a\n---\nkind: Profile\nname: [\n");
        assert!(e.contains("document 2"), "{e}");
    }

    #[test]
    fn validation_errors_name_the_document_resource_and_field() {
        let e = err("kind: Profile\nname: ok\n---\nkind: WorkloadEndpoint\norchestrator: k\nworkload: w\nendpoint: e\nnode: n\ninterfaceName: i\nipNetworks: [10.0.0.0/24]\n");
        assert!(e.starts_with("document 2: WorkloadEndpoint"), "{e}");
        assert!(e.contains("field ipNetworks[0]"), "{e}");
        assert!(e.contains("/32"), "{e}");
    }

    #[test]
    fn load_file_names_the_file() {
        let e = load_file("/nonexistent/calico.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/calico.yaml: "), "{e}");
    }
}

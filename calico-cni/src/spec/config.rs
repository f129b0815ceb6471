//! The network configuration on stdin (one plugin's entry of a `.conflist`, as the runtime
//! passes it, with `name`, `cniVersion` and `prevResult` filled in), with Calico's field
//! names where Calico has one.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "calico-rs", "type": "calico-rs-cni",
//!  "nodename": "host-1", "etcd_endpoints": "http://10.0.0.1:2379", "mtu": 1500,
//!  "labels": {"role": "web"}, "profiles": ["calico-rs"],
//!  "ipam": {"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "false",
//!           "ipv4_pools": ["10.65.0.0/16"]}}
//! ```
//!
//! Unknown fields are ignored (runtimes add their own, e.g. `runtimeConfig`); a known field
//! of the wrong type or value is [`Code::InvalidConfig`] naming it; bad JSON is
//! [`Code::Decode`]; an unsupported `cniVersion` is [`Code::IncompatibleVersion`]; an IPAM
//! type other than `calico-ipam` is [`Code::UnsupportedField`].

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::error::{CniError, Code};
use super::result::CniResult;

/// The spec versions this plugin speaks, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The newest supported version (used when a request's cannot be read).
pub const NEWEST_VERSION: &str = "1.0.0";

/// The only IPAM type this plugin implements (in-process, as Calico's `calico-ipam`).
pub const IPAM_TYPE: &str = "calico-ipam";

/// A boolean Calico writes as a string (`"true"`) or a JSON boolean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Flag, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Flag(b)),
            Value::String(s) if s == "true" => Ok(Flag(true)),
            Value::String(s) if s == "false" => Ok(Flag(false)),
            other => Err(serde::de::Error::custom(format!(
                "{other} is not true or false"
            ))),
        }
    }
}

/// The `ipam` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IpamSection {
    /// Must be `calico-ipam`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Assign an IPv4 address (default true).
    #[serde(default)]
    pub assign_ipv4: Option<Flag>,
    /// Assign an IPv6 address (default false).
    #[serde(default)]
    pub assign_ipv6: Option<Flag>,
    /// Only these IPv4 pools (by CIDR); empty: every enabled IPv4 pool.
    #[serde(default)]
    pub ipv4_pools: Vec<IpNet>,
    /// Only these IPv6 pools (by CIDR); empty: every enabled IPv6 pool.
    #[serde(default)]
    pub ipv6_pools: Vec<IpNet>,
}

/// A label given through the runtime's `args.cni.labels` (the CNI conventions).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ArgLabel {
    /// The label's key.
    pub key: String,
    /// The label's value.
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
struct CniArgs {
    #[serde(default)]
    labels: Vec<ArgLabel>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
struct Args {
    #[serde(default)]
    cni: CniArgs,
}

/// The plugin's configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct NetConf {
    /// The spec version the runtime speaks.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The network's name (part of the IPAM handle, the default profile).
    pub name: String,
    /// The plugin type (`calico-rs-cni`).
    #[serde(rename = "type")]
    pub kind: String,
    /// This host's name in the datastore (Calico's `nodename`); default: the host name.
    #[serde(default)]
    pub nodename: Option<String>,
    /// etcd client URLs, comma-separated (Calico's `etcd_endpoints`).
    #[serde(default)]
    pub etcd_endpoints: Option<String>,
    /// The key prefix (`/calico`).
    #[serde(default)]
    pub etcd_prefix: Option<String>,
    /// CA certificate file (Calico's `etcd_ca_cert_file`).
    #[serde(default)]
    pub etcd_ca_cert_file: Option<String>,
    /// Client certificate file (Calico's `etcd_cert_file`).
    #[serde(default)]
    pub etcd_cert_file: Option<String>,
    /// Client key file (Calico's `etcd_key_file`).
    #[serde(default)]
    pub etcd_key_file: Option<String>,
    /// The veth's MTU (default 1500).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The endpoint's namespace when the runtime names none (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels every endpoint on this network gets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Profiles every endpoint gets (default: `kns.<namespace>` for Kubernetes pods, the
    /// network's name otherwise, as Calico does).
    #[serde(default)]
    pub profiles: Option<Vec<String>>,
    /// The IPAM section.
    pub ipam: IpamSection,
    /// Runtime arguments: labels from `args.cni.labels`.
    #[serde(default)]
    args: Option<Args>,
    /// The previous plugin's result, if chained after one.
    #[serde(default, rename = "prevResult")]
    prev_result: Option<Value>,
}

fn invalid(field: impl std::fmt::Display, reason: impl std::fmt::Display) -> CniError {
    CniError::new(Code::InvalidConfig, format!("field {field}: {reason}"), "")
}

impl NetConf {
    /// Parses and checks `stdin` (see the module documentation for the error codes).
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let raw: Value = serde_json::from_slice(stdin)
            .map_err(|e| CniError::new(Code::Decode, format!("network configuration: {e}"), ""))?;
        version_of(&raw)?;
        let conf: NetConf =
            serde_path_to_error::deserialize(raw).map_err(|e| invalid(e.path(), e.inner()))?;
        conf.check()?;
        Ok(conf)
    }

    fn check(&self) -> Result<(), CniError> {
        if self.name.is_empty() || self.name.contains(['/', '\0']) {
            return Err(invalid(
                "name",
                format!("{:?} is not a network name", self.name),
            ));
        }
        if self.ipam.kind != IPAM_TYPE {
            return Err(CniError::new(
                Code::UnsupportedField,
                format!("field ipam.type: {:?} is not {IPAM_TYPE}", self.ipam.kind),
                "calico-rs-cni assigns addresses itself, from Calico IPAM in etcd",
            ));
        }
        if !self.assign_ipv4() && !self.assign_ipv6() {
            return Err(invalid(
                "ipam.assign_ipv4",
                "neither IPv4 nor IPv6 is assigned",
            ));
        }
        for (field, pools, v4) in [
            ("ipam.ipv4_pools", &self.ipam.ipv4_pools, true),
            ("ipam.ipv6_pools", &self.ipam.ipv6_pools, false),
        ] {
            if let Some(p) = pools.iter().find(|p| matches!(p, IpNet::V4(_)) != v4) {
                return Err(invalid(
                    field,
                    format!("{p} is of the other address family"),
                ));
            }
        }
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(invalid("mtu", format!("{mtu} is not within 68..=65535")));
            }
        }
        if self
            .etcd_endpoints
            .as_deref()
            .is_some_and(|e| e.trim().is_empty())
        {
            return Err(invalid("etcd_endpoints", "empty"));
        }
        if let Some(prev) = &self.prev_result {
            CniResult::from_value(prev)?;
        }
        Ok(())
    }

    /// Whether an IPv4 address is assigned.
    pub fn assign_ipv4(&self) -> bool {
        self.ipam.assign_ipv4.is_none_or(|f| f.0)
    }

    /// Whether an IPv6 address is assigned.
    pub fn assign_ipv6(&self) -> bool {
        self.ipam.assign_ipv6.is_some_and(|f| f.0)
    }

    /// The labels the runtime passed in `args.cni.labels`.
    pub fn arg_labels(&self) -> impl Iterator<Item = &ArgLabel> {
        self.args.iter().flat_map(|a| a.cni.labels.iter())
    }

    /// The previous plugin's result, if any (checked by [`NetConf::parse`]).
    pub fn prev_result(&self) -> Option<CniResult> {
        self.prev_result
            .as_ref()
            .and_then(|v| CniResult::from_value(v).ok())
    }

    /// The etcd endpoints (default `http://127.0.0.1:2379`).
    pub fn endpoints(&self) -> Vec<String> {
        match &self.etcd_endpoints {
            Some(e) => e
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => vec!["http://127.0.0.1:2379".to_string()],
        }
    }
}

/// The `cniVersion` of a request (a config, or VERSION's input): a supported one, else
/// [`Code::IncompatibleVersion`]; missing or not a string is [`Code::InvalidConfig`].
pub fn version_of(raw: &Value) -> Result<String, CniError> {
    let v = raw
        .get("cniVersion")
        .ok_or_else(|| invalid("cniVersion", "missing"))?
        .as_str()
        .ok_or_else(|| invalid("cniVersion", "not a string"))?;
    if !SUPPORTED_VERSIONS.contains(&v) {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!("field cniVersion: {v:?} is not supported"),
            format!("supported: {}", SUPPORTED_VERSIONS.join(", ")),
        ));
    }
    Ok(v.to_string())
}

/// What VERSION prints: `{"cniVersion": <version>, "supportedVersions": [...]}`.
pub fn version_json(version: &str) -> String {
    serde_json::json!({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"cniVersion": "1.0.0", "name": "net1", "type": "calico-rs-cni",
        "nodename": "h1", "etcd_endpoints": "http://10.0.0.1:2379, http://10.0.0.2:2379",
        "labels": {"role": "web"}, "runtimeConfig": {"portMappings": []},
        "args": {"cni": {"labels": [{"key": "team", "value": "a"}]}},
        "ipam": {"type": "calico-ipam", "assign_ipv6": "true", "ipv4_pools": ["10.65.0.0/16"]}}"#;

    fn with(field: &str, value: Value) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(GOOD).unwrap();
        let mut at = &mut v;
        let parts: Vec<&str> = field.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            at = &mut at[*p];
        }
        at[parts[parts.len() - 1]] = value;
        v.to_string().into_bytes()
    }

    #[test]
    fn a_good_config_is_read_with_calicos_defaults() {
        let c = NetConf::parse(GOOD.as_bytes()).unwrap();
        assert!(c.assign_ipv4() && c.assign_ipv6());
        assert_eq!(
            c.endpoints(),
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(
            c.arg_labels().map(|l| l.key.as_str()).collect::<Vec<_>>(),
            ["team"]
        );
        assert_eq!(c.prev_result(), None);
    }

    #[test]
    fn bad_input_is_the_specs_code_naming_the_field() {
        let cases: Vec<(Vec<u8>, Code, &str)> = vec![
            (b"{not json".to_vec(), Code::Decode, "network configuration"),
            (
                with("cniVersion", "9.9.9".into()),
                Code::IncompatibleVersion,
                "cniVersion",
            ),
            (
                with("cniVersion", 1.into()),
                Code::InvalidConfig,
                "cniVersion",
            ),
            (with("mtu", "big".into()), Code::InvalidConfig, "field mtu"),
            (with("mtu", 20.into()), Code::InvalidConfig, "field mtu"),
            (with("name", "".into()), Code::InvalidConfig, "field name"),
            (
                with("ipam.type", "host-local".into()),
                Code::UnsupportedField,
                "field ipam.type",
            ),
            (
                with("ipam.assign_ipv4", "yes".into()),
                Code::InvalidConfig,
                "field ipam.assign_ipv4",
            ),
            (
                with("ipam.ipv4_pools", serde_json::json!(["fd00::/64"])),
                Code::InvalidConfig,
                "field ipam.ipv4_pools",
            ),
            (
                with("ipam.ipv6_pools", serde_json::json!(["x"])),
                Code::InvalidConfig,
                "field ipam.ipv6_pools",
            ),
            (
                with("labels", serde_json::json!({"a": 1})),
                Code::InvalidConfig,
                "field labels.a",
            ),
            (
                with("prevResult", serde_json::json!({"ips": 3})),
                Code::Decode,
                "field prevResult.ips",
            ),
            (
                with("etcd_endpoints", " ".into()),
                Code::InvalidConfig,
                "field etcd_endpoints",
            ),
        ];
        for (input, code, field) in cases {
            let e = NetConf::parse(&input).unwrap_err();
            assert_eq!(e.code, code, "{}: {e}", String::from_utf8_lossy(&input));
            assert!(e.msg.contains(field), "want {field:?} in {:?}", e.msg);
        }
        let mut v: Value = serde_json::from_str(GOOD).unwrap();
        v.as_object_mut().unwrap().remove("ipam");
        let e = NetConf::parse(v.to_string().as_bytes()).unwrap_err();
        assert!(e.msg.contains("ipam"), "{e}");
    }

    #[test]
    fn version_lists_what_is_supported() {
        let v: Value = serde_json::from_str(&version_json("0.4.0")).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 4);
    }
}

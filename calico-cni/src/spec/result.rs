//! The CNI result (`interfaces`, `ips`, `routes`, `dns`), written in the configuration's
//! version, read back from `prevResult`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{CniError, Code};

/// An interface the plugin created or knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address (`aa:bb:…`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The network namespace path it is in; absent for the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address given to an interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length (`10.0.0.5/32`).
    pub address: IpNet,
    /// The gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The index into `interfaces` of the interface holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route set up in the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop, if not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// What ADD reports: the spec's result object (without `cniVersion`, added on output).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces created.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes set up.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings (passed through from a previous result; this plugin sets none).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub dns: Value,
}

impl CniResult {
    /// The result as JSON in spec `version`: 0.3.x and 0.4.0 add `"version": "4"|"6"` to
    /// each address; 1.0.0 does not.
    pub fn to_json(&self, version: &str) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("cniVersion".into(), Value::String(version.to_string()));
            if version.starts_with("0.") {
                if let Some(ips) = obj.get_mut("ips").and_then(Value::as_array_mut) {
                    for (ip, ours) in ips.iter_mut().zip(&self.ips) {
                        let family = if ours.address.addr().is_ipv4() {
                            "4"
                        } else {
                            "6"
                        };
                        ip["version"] = Value::String(family.into());
                    }
                }
            }
        }
        v.to_string()
    }

    /// Reads a `prevResult` (any supported version; `version` fields ignored). A bad one
    /// is [`Code::Decode`] naming the field.
    pub fn from_value(v: &Value) -> Result<CniResult, CniError> {
        let mut v = v.clone();
        if let Some(obj) = v.as_object_mut() {
            obj.remove("cniVersion");
            if let Some(ips) = obj.get_mut("ips").and_then(Value::as_array_mut) {
                for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                    ip.remove("version");
                }
            }
        }
        serde_path_to_error::deserialize(v).map_err(|e| {
            CniError::new(
                Code::Decode,
                format!("field prevResult.{}: {}", e.path(), e.inner()),
                "",
            )
        })
    }

    /// This result after `prev`'s: `prev`'s interfaces, addresses and routes first, then
    /// ours (interface indices shifted), `prev`'s DNS kept.
    pub fn after(self, prev: CniResult) -> CniResult {
        let shift = prev.interfaces.len();
        let mut out = prev;
        out.interfaces.extend(self.interfaces);
        out.ips.extend(self.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + shift);
            ip
        }));
        out.routes.extend(self.routes);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: Some("aa:bb:cc:dd:ee:ff".into()),
                sandbox: Some("/var/run/netns/x".into()),
            }],
            ips: vec![
                IpConfig {
                    address: "10.0.0.5/32".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
                IpConfig {
                    address: "fd00::5/128".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
            ],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("169.254.1.1".parse().unwrap()),
            }],
            dns: Value::Null,
        }
    }

    #[test]
    fn versions_differ_only_in_the_address_family_field() {
        let r = sample();
        let v1: Value = serde_json::from_str(&r.to_json("1.0.0")).unwrap();
        let v04: Value = serde_json::from_str(&r.to_json("0.4.0")).unwrap();
        assert_eq!(v1["cniVersion"], "1.0.0");
        assert!(v1["ips"][0].get("version").is_none());
        assert_eq!(
            (
                v04["ips"][0]["version"].as_str(),
                v04["ips"][1]["version"].as_str()
            ),
            (Some("4"), Some("6"))
        );
        assert_eq!(CniResult::from_value(&v04).unwrap(), r);
        assert_eq!(CniResult::from_value(&v1).unwrap(), r);
    }

    #[test]
    fn a_bad_prev_result_names_the_field() {
        let bad = serde_json::json!({"ips": [{"address": "not-an-ip"}]});
        let e = CniResult::from_value(&bad).unwrap_err();
        assert_eq!(e.code, Code::Decode);
        assert!(e.msg.contains("prevResult.ips[0].address"), "{}", e.msg);
    }

    #[test]
    fn chaining_shifts_our_interface_indices() {
        let out = sample().after(sample());
        assert_eq!(out.interfaces.len(), 2);
        assert_eq!(out.ips[2].interface, Some(1));
    }
}

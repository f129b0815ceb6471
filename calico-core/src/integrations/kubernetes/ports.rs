//! NetworkPolicy ports and protocols, validated as the Kubernetes API server validates them.

use std::collections::BTreeMap;

use super::{IntOrString, NetworkPolicyPort};
use crate::integrations::TranslateError;
use crate::model::{PortSpec, Protocol};

pub(super) fn protocol(
    obj: &str,
    field: &str,
    p: Option<&str>,
) -> Result<Protocol, TranslateError> {
    match p.unwrap_or("TCP") {
        "TCP" => Ok(Protocol::TCP),
        "UDP" => Ok(Protocol::UDP),
        "SCTP" => Ok(Protocol::SCTP),
        other => Err(TranslateError::new(
            obj,
            field,
            format!("protocol {other:?} is not TCP, UDP or SCTP"),
        )),
    }
}

/// A protocol (`None`: any) and the destination ports allowed for it (empty: all).
pub(super) type PortGroup = (Option<Protocol>, Vec<PortSpec>);

/// Ports grouped by protocol; a protocol listed without a port matches all its ports.
pub(super) fn port_groups(
    obj: &str,
    field: &str,
    ports: &[NetworkPolicyPort],
) -> Result<Vec<PortGroup>, TranslateError> {
    if ports.is_empty() {
        return Ok(vec![(None, vec![])]);
    }
    let mut groups: BTreeMap<Protocol, Option<Vec<PortSpec>>> = BTreeMap::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let proto = protocol(obj, &format!("{f}.protocol"), p.protocol.as_deref())?;
        let spec = match (&p.port, p.end_port) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(TranslateError::new(
                    obj,
                    format!("{f}.endPort"),
                    "endPort needs port",
                ))
            }
            (Some(IntOrString::String(name)), None) => {
                if let Some(why) = port_name_error(name) {
                    return Err(TranslateError::new(
                        obj,
                        format!("{f}.port"),
                        format!("{name:?} is not a valid port name: {why}"),
                    ));
                }
                Some(PortSpec::Named(name.clone()))
            }
            (Some(IntOrString::String(_)), Some(_)) => {
                return Err(TranslateError::new(
                    obj,
                    format!("{f}.endPort"),
                    "endPort needs a numeric port",
                ))
            }
            (Some(IntOrString::Int(n)), end) => {
                let port = |v: i64, name: &str| {
                    u16::try_from(v).ok().filter(|p| *p > 0).ok_or_else(|| {
                        TranslateError::new(
                            obj,
                            format!("{f}.{name}"),
                            format!("{v} is not a port number 1-65535"),
                        )
                    })
                };
                let min = port(*n, "port")?;
                let max = match end {
                    Some(e) => port(e, "endPort")?,
                    None => min,
                };
                if max < min {
                    return Err(TranslateError::new(
                        obj,
                        format!("{f}.endPort"),
                        format!("{max} is below port {min}"),
                    ));
                }
                Some(PortSpec::Range { min, max })
            }
        };
        let group = groups.entry(proto).or_insert_with(|| Some(Vec::new()));
        match (group.as_mut(), spec) {
            (Some(list), Some(spec)) => list.push(spec),
            // A protocol with no port: all its ports.
            (_, None) => *group = None,
            (None, Some(_)) => {}
        }
    }
    Ok(groups
        .into_iter()
        .map(|(p, ports)| (Some(p), ports.unwrap_or_default()))
        .collect())
}

/// Why `name` is not a port name as Kubernetes validates one (an IANA_SVC_NAME: at most 15
/// characters of `a-z`, `0-9` and `-`, at least one letter, no leading, trailing or double
/// `-`), or `None` if it is one. So `"80"` written as a string is refused, as the API server
/// refuses it, instead of being looked up as a named port.
fn port_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 15 {
        Some("it must be 1 to 15 characters long")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("it may contain only a-z, 0-9 and '-'")
    } else if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        Some("it must contain at least one letter (a-z); write a port number without quotes")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it must not begin or end with '-'")
    } else if name.contains("--") {
        Some("it must not contain '--'")
    } else {
        None
    }
}

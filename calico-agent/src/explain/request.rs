//! A trace request: the query string of `GET /api/trace` parsed and checked, and its ends
//! resolved against the model (an endpoint by name, interface or address, or any address).

use std::net::IpAddr;

use calico_core::model::{Model, Protocol, WorkloadEndpoint};

/// Why a request cannot be traced; names the parameter and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A required parameter is missing.
    #[error("parameter {0}: missing")]
    Missing(&'static str),
    /// A parameter's value is not acceptable.
    #[error("parameter {name}: {reason}")]
    Bad {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The two ends cannot be traced together.
    #[error("{0}")]
    Unsupported(String),
}

fn bad(name: &'static str, reason: impl Into<String>) -> RequestError {
    RequestError::Bad {
        name,
        reason: reason.into(),
    }
}

/// The protocol of a traced packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// TCP, with a destination port.
    Tcp,
    /// UDP, with a destination port.
    Udp,
    /// An ICMP (or ICMPv6) echo request.
    Icmp,
}

impl Proto {
    /// Its name in requests and reports.
    pub fn name(self, v6: bool) -> &'static str {
        match (self, v6) {
            (Proto::Tcp, _) => "tcp",
            (Proto::Udp, _) => "udp",
            (Proto::Icmp, false) => "icmp",
            (Proto::Icmp, true) => "icmpv6",
        }
    }

    /// Its IP protocol number.
    pub fn protocol(self, v6: bool) -> Protocol {
        match (self, v6) {
            (Proto::Tcp, _) => Protocol::TCP,
            (Proto::Udp, _) => Protocol::UDP,
            (Proto::Icmp, false) => Protocol::ICMP,
            (Proto::Icmp, true) => Protocol::ICMPV6,
        }
    }
}

/// A checked trace request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRequest {
    /// The source: an endpoint name (`orchestrator/workload/endpoint`, the workload alone,
    /// or its interface) or an address.
    pub from: String,
    /// The destination, the same way.
    pub to: String,
    /// The protocol.
    pub proto: Proto,
    /// Destination port (TCP, UDP).
    pub port: Option<u16>,
    /// Source port (TCP, UDP); 40000 unless given.
    pub src_port: u16,
}

/// The source port of a traced packet unless the request gives one.
pub const DEFAULT_SRC_PORT: u16 = 40000;

impl TraceRequest {
    /// Parses a query string: `from`, `to`, `proto` (`tcp`, `udp`, `icmp`; default `tcp`),
    /// `port` (required for TCP and UDP), `sport` (optional).
    pub fn from_query(query: &str) -> Result<TraceRequest, RequestError> {
        let (mut from, mut to, mut proto, mut port, mut sport) = (None, None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| bad("query", "bad %-escape"))?;
            match k {
                "from" => from = Some(v),
                "to" => to = Some(v),
                "proto" => proto = Some(v),
                "port" => port = Some(v),
                "sport" => sport = Some(v),
                _ => {} // unknown parameters are ignored, as by most HTTP APIs
            }
        }
        let from = from
            .filter(|s| !s.is_empty())
            .ok_or(RequestError::Missing("from"))?;
        let to = to
            .filter(|s| !s.is_empty())
            .ok_or(RequestError::Missing("to"))?;
        let proto = match proto
            .as_deref()
            .unwrap_or("tcp")
            .to_ascii_lowercase()
            .as_str()
        {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" | "icmpv6" | "ping" => Proto::Icmp,
            other => return Err(bad("proto", format!("{other:?}: not tcp, udp or icmp"))),
        };
        let port_of = |name: &'static str, v: Option<String>| {
            v.map(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad(name, format!("{v:?}: not a port number 1-65535")))
            })
            .transpose()
        };
        let port = port_of("port", port)?;
        let src_port = port_of("sport", sport)?.unwrap_or(DEFAULT_SRC_PORT);
        match (proto, port) {
            (Proto::Tcp | Proto::Udp, None) => return Err(RequestError::Missing("port")),
            (Proto::Icmp, Some(_)) => return Err(bad("port", "ICMP has no ports")),
            _ => {}
        }
        Ok(TraceRequest {
            from,
            to,
            proto,
            port,
            src_port,
        })
    }

    /// The query string that [`TraceRequest::from_query`] reads back as `self`.
    pub fn to_query(&self) -> String {
        let mut q = format!(
            "from={}&to={}&proto={}",
            percent_encode(&self.from),
            percent_encode(&self.to),
            self.proto.name(false)
        );
        if let Some(p) = self.port {
            q += &format!("&port={p}");
        }
        if self.src_port != DEFAULT_SRC_PORT {
            q += &format!("&sport={}", self.src_port);
        }
        q
    }
}

/// Decodes `%XX` escapes and `+` (a space); `None` for a bad escape or non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes everything but unreserved characters (RFC 3986) and `/` as `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

/// One end of a request, resolved.
#[derive(Clone, Debug)]
pub struct Resolved<'m> {
    /// The address.
    pub address: IpAddr,
    /// The workload endpoint owning it, if any.
    pub endpoint: Option<&'m WorkloadEndpoint>,
}

/// Resolves `what` (parameter `name`): an address (owned by an endpoint or not), an
/// endpoint's full name, its workload name, or its interface on `node`. `family`: the
/// address family wanted, when the other end fixed it.
pub fn resolve<'m>(
    model: &'m Model,
    node: &str,
    name: &'static str,
    what: &str,
    family_v6: Option<bool>,
) -> Result<Resolved<'m>, RequestError> {
    if let Ok(address) = what.parse::<IpAddr>() {
        let endpoint = model
            .workload_endpoints
            .values()
            .find(|ep| ep.ip_networks.iter().any(|n| n.addr() == address));
        return Ok(Resolved { address, endpoint });
    }
    let matches: Vec<&WorkloadEndpoint> = model
        .workload_endpoints
        .values()
        .filter(|ep| {
            ep.id.to_string() == what
                || ep.id.workload == what
                || (ep.node == node && ep.interface_name == what)
        })
        .collect();
    let ep = match matches.as_slice() {
        [] => {
            return Err(bad(
                name,
                format!(
                    "{what:?}: no workload endpoint of that name, workload, interface or address"
                ),
            ))
        }
        [one] => *one,
        several => {
            // Prefer the one on this host when the name is ambiguous only across hosts.
            let local: Vec<_> = several.iter().filter(|ep| ep.node == node).collect();
            match local.as_slice() {
                [one] => **one,
                _ => {
                    return Err(bad(
                        name,
                        format!(
                            "{what:?} names {} endpoints; use orchestrator/workload/endpoint",
                            several.len()
                        ),
                    ))
                }
            }
        }
    };
    let address = ep
        .ip_networks
        .iter()
        .map(|n| n.addr())
        .find(|a| family_v6.is_none_or(|v6| a.is_ipv6() == v6))
        .ok_or_else(|| {
            bad(
                name,
                format!(
                    "endpoint {} has no address of the other end's family",
                    ep.id
                ),
            )
        })?;
    Ok(Resolved {
        address,
        endpoint: Some(ep),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked_parameter_by_parameter() {
        let r =
            TraceRequest::from_query("from=k8s%2Fa%2Feth0&to=10.0.0.2&proto=TCP&port=80").unwrap();
        assert_eq!(r.from, "k8s/a/eth0");
        assert_eq!((r.proto, r.port, r.src_port), (Proto::Tcp, Some(80), 40000));
        assert_eq!(TraceRequest::from_query(&r.to_query()).unwrap(), r);
        for (q, want) in [
            ("to=b&port=1", "parameter from: missing"),
            ("from=a&to=b", "parameter port: missing"),
            ("from=a&to=b&port=0", "parameter port:"),
            ("from=a&to=b&port=99999", "parameter port:"),
            ("from=a&to=b&proto=sctp&port=1", "parameter proto:"),
            ("from=a&to=b&proto=icmp&port=1", "ICMP has no ports"),
            ("from=a%zz&to=b&port=1", "bad %-escape"),
        ] {
            let e = TraceRequest::from_query(q).unwrap_err().to_string();
            assert!(e.contains(want), "{q}: {e}");
        }
    }

    #[test]
    fn decoding_never_panics_on_truncated_escapes() {
        for s in ["%", "%4", "a%", "%ff", "%e2%82"] {
            let _ = percent_decode(s);
        }
        assert_eq!(percent_decode("a+b%2Fc").as_deref(), Some("a b/c"));
    }
}

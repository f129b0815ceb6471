//! Failsafe entries: the ports no host-endpoint policy can close (Felix's
//! `FailsafeInboundHostPorts` and `FailsafeOutboundHostPorts`), written as Felix's
//! configuration parser (`PortListParam`) reads them: `<port>` (TCP),
//! `<protocol>:<port>`, or `<protocol>:<net>:<port>` with `net` a CIDR or an address
//! (`tcp:10.0.0.0/8:22`; an IPv6 one in brackets, `tcp:[fd00::/8]:22`). The network is
//! the remote end's: inbound, the packet's source; outbound, its destination. As in Felix
//! an entry with an IPv4 network opens nothing to IPv6 packets, and the reverse.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

use super::host_config::HostConfig;
use super::names::chain_name;
use crate::dataplane::ir::{Match, Rule, Set, SetElement, SetKey, Side, Verdict};
use crate::model::{parse_cidr_or_address, Protocol};

/// A port no host-endpoint policy can close: inbound, packets to the host with this
/// destination port (from `net`, when given); outbound, packets from the host with this
/// destination port (to `net`, when given).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailsafePort {
    /// TCP or UDP (or SCTP, which Calico's `FelixConfiguration` resource also takes).
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
    /// The remote network (inbound the source, outbound the destination); `None`: any
    /// address of either family.
    pub net: Option<IpNet>,
}

impl FailsafePort {
    /// An entry open to every address.
    pub const fn any(protocol: Protocol, port: u16) -> FailsafePort {
        FailsafePort {
            protocol,
            port,
            net: None,
        }
    }
}

/// Why a failsafe entry was refused; it names the entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failsafe entry {entry:?}: {reason}")]
pub struct FailsafeError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: FailsafeReason,
}

/// What is wrong with a failsafe entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailsafeReason {
    /// Not one of the three forms.
    #[error("not <port>, <protocol>:<port> or <protocol>:<net>:<port> (e.g. tcp:22, tcp:10.0.0.0/8:22, tcp:[fd00::/8]:22)")]
    Form,
    /// A protocol other than TCP, UDP or SCTP.
    #[error("protocol {0:?} is not tcp, udp or sctp")]
    Protocol(String),
    /// Not a port number.
    #[error("{0:?} is not a port number (0-65535)")]
    Port(String),
    /// Not a CIDR or an address.
    #[error(
        "{0:?} is not a CIDR or an IP address (an IPv6 one goes in brackets: tcp:[fd00::/8]:22)"
    )]
    Net(String),
}

impl FromStr for FailsafePort {
    type Err = FailsafeError;

    /// One entry, as Felix's configuration parser reads it (the protocol in any case).
    fn from_str(s: &str) -> Result<Self, FailsafeError> {
        let fail = |reason| FailsafeError {
            entry: s.to_string(),
            reason,
        };
        let (rest, bracketed) = take_bracketed_net(s).ok_or_else(|| fail(FailsafeReason::Form))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (protocol, net, port) = match (parts.as_slice(), bracketed) {
            ([port], None) => ("tcp", None, *port),
            ([protocol, port], net) => (*protocol, net, *port),
            ([protocol, net, port], None) => (*protocol, Some(*net), *port),
            _ => return Err(fail(FailsafeReason::Form)),
        };
        let protocol = match protocol.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::TCP,
            "udp" => Protocol::UDP,
            "sctp" => Protocol::SCTP,
            _ => return Err(fail(FailsafeReason::Protocol(protocol.to_string()))),
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| fail(FailsafeReason::Port(port.to_string())))?;
        let net = net
            .map(|n| parse_cidr_or_address(n).map_err(|_| fail(FailsafeReason::Net(n.into()))))
            .transpose()?
            // As Felix stores it: the network of the CIDR (its host bits cleared).
            .map(|n| n.trunc());
        Ok(FailsafePort {
            protocol,
            port,
            net,
        })
    }
}

/// Takes an IPv6 network written in brackets out of `s` (`tcp:[fd00::/8]:22` gives
/// `tcp:22` and `fd00::/8`); `None` when a bracket is not closed by `]:`.
fn take_bracketed_net(s: &str) -> Option<(String, Option<&str>)> {
    let Some(open) = s.find('[') else {
        return (!s.contains(']')).then(|| (s.to_string(), None));
    };
    let close = s.find("]:").filter(|&c| c > open)?;
    let net = &s[open + 1..close];
    Some((format!("{}{}", &s[..open], &s[close + 2..]), Some(net)))
}

impl fmt::Display for FailsafePort {
    /// As the flags take it: `tcp:22`, `tcp:10.0.0.0/8:22`, `udp:[fd00::/8]:53`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::TCP => "tcp",
            Protocol::UDP => "udp",
            _ => "sctp",
        };
        match self.net {
            None => write!(f, "{proto}:{}", self.port),
            Some(IpNet::V4(n)) => write!(f, "{proto}:{n}:{}", self.port),
            Some(IpNet::V6(n)) => write!(f, "{proto}:[{n}]:{}", self.port),
        }
    }
}

/// A comma-separated list of entries (blank entries skipped, as Felix does), or `none`
/// (or nothing) for no entry at all.
pub fn parse_failsafe_list(s: &str) -> Result<Vec<FailsafePort>, FailsafeError> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::parse)
        .collect()
}

/// Felix's default inbound failsafe ports: SSH, DHCP, BGP, etcd, Typha, the Kubernetes API
/// server and Calico's etcd proxy ports.
pub const DEFAULT_FAILSAFE_INBOUND: &[(Protocol, u16)] = &[
    (Protocol::TCP, 22),
    (Protocol::UDP, 68),
    (Protocol::TCP, 179),
    (Protocol::TCP, 2379),
    (Protocol::TCP, 2380),
    (Protocol::TCP, 5473),
    (Protocol::TCP, 6443),
    (Protocol::TCP, 6666),
    (Protocol::TCP, 6667),
];

/// Felix's default outbound failsafe ports: DNS, DHCP, BGP, etcd, Typha, the Kubernetes API
/// server and Calico's etcd proxy ports.
pub const DEFAULT_FAILSAFE_OUTBOUND: &[(Protocol, u16)] = &[
    (Protocol::UDP, 53),
    (Protocol::UDP, 67),
    (Protocol::TCP, 179),
    (Protocol::TCP, 2379),
    (Protocol::TCP, 2380),
    (Protocol::TCP, 5473),
    (Protocol::TCP, 6443),
    (Protocol::TCP, 6666),
    (Protocol::TCP, 6667),
];

/// The entries of a default list, open to every address.
pub(super) fn ports(list: &[(Protocol, u16)]) -> Vec<FailsafePort> {
    list.iter()
        .map(|&(protocol, port)| FailsafePort::any(protocol, port))
        .collect()
}

/// The rules accepting what `entries` let through; `remote` is the side of the packet
/// their networks are about (the source inbound, the destination outbound). An entry
/// with a network matches the network's family only.
pub(super) fn failsafe_rules(entries: &[FailsafePort], remote: Side) -> Vec<Rule> {
    entry_rules(entries, Side::Dst, remote)
}

/// Rules accepting the replies of the failsafe connections `entries` describe, the other
/// way (their port the source port; `remote` the side of the remote end's address). Felix
/// puts them in its raw chains: before conntrack, a reply is no established traffic, and
/// untracked policy must not cut a failsafe connection by dropping its replies.
pub(super) fn failsafe_reply_rules(entries: &[FailsafePort], remote: Side) -> Vec<Rule> {
    entry_rules(entries, Side::Src, remote)
}

/// One accepting rule per entry: its protocol, its port on `port_side`, its network (if
/// any) on `remote`.
fn entry_rules(entries: &[FailsafePort], port_side: Side, remote: Side) -> Vec<Rule> {
    entries
        .iter()
        .map(|p| {
            let mut matches = Vec::new();
            if let Some(net) = p.net {
                matches.push(Match::Ipv4(matches!(net, IpNet::V4(_))));
            }
            matches.push(Match::L4Proto {
                proto: p.protocol.0,
                negate: false,
            });
            matches.push(Match::Port {
                side: port_side,
                ranges: vec![(p.port, p.port)],
                negate: false,
            });
            if let Some(net) = p.net {
                matches.push(Match::AddrInSet {
                    side: remote,
                    set: failsafe_set(&net),
                    negate: false,
                });
            }
            Rule::new(matches, Verdict::Accept)
        })
        .collect()
}

/// The set holding one failsafe network (the IR compares networks through sets).
pub(super) fn failsafe_set(net: &IpNet) -> String {
    chain_name("fs-net", &[&net.to_string()])
}

/// The sets of the networks `config`'s failsafe entries name, by name.
pub(super) fn failsafe_sets(config: &HostConfig) -> BTreeMap<String, Set> {
    let entries = config.failsafe_inbound.iter();
    entries
        .chain(&config.failsafe_outbound)
        .filter_map(|p| p.net)
        .map(|net| {
            let key = match net {
                IpNet::V4(_) => SetKey::Ipv4Net,
                IpNet::V6(_) => SetKey::Ipv6Net,
            };
            let set = Set {
                key,
                elements: [SetElement::Net(net)].into(),
            };
            (failsafe_set(&net), set)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str) -> FailsafePort {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn entries_parse_as_felix_reads_them() {
        assert_eq!(entry("TCP:22"), FailsafePort::any(Protocol::TCP, 22));
        // A bare port is TCP.
        assert_eq!(entry("22"), FailsafePort::any(Protocol::TCP, 22));
        let with_net = entry("udp:10.1.0.0/16:53");
        assert_eq!(with_net.protocol, Protocol::UDP);
        assert_eq!(with_net.net, Some("10.1.0.0/16".parse().unwrap()));
        // An address is its /32 (/128); a CIDR's host bits are cleared, as Felix stores it.
        assert_eq!(
            entry("tcp:192.0.2.7:22").net,
            Some("192.0.2.7/32".parse().unwrap())
        );
        assert_eq!(
            entry("tcp:10.1.2.3/8:22").net,
            Some("10.0.0.0/8".parse().unwrap())
        );
        let v6 = entry("tcp:[fd00::1/64]:179");
        assert_eq!(v6.net, Some("fd00::/64".parse().unwrap()));
        assert_eq!(v6.port, 179);
        assert_eq!(
            entry("udp:[2001:db8::5]:53").net,
            Some("2001:db8::5/128".parse().unwrap())
        );
        assert_eq!(
            entry("tcp:0.0.0.0/0:22").net,
            Some("0.0.0.0/0".parse().unwrap())
        );
    }

    #[test]
    fn entries_print_as_they_parse() {
        for s in ["tcp:22", "udp:10.0.0.0/8:53", "tcp:[fd00::/8]:22", "sctp:9"] {
            assert_eq!(entry(s).to_string(), s);
            assert_eq!(entry(&entry(s).to_string()), entry(s));
        }
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry_and_the_reason() {
        let reason = |s: &str| {
            let e = s.parse::<FailsafePort>().unwrap_err();
            assert_eq!(e.entry, s);
            assert!(
                e.to_string()
                    .starts_with(&format!("failsafe entry {s:?}: ")),
                "{e}"
            );
            e.reason
        };
        assert_eq!(reason("icmp:1"), FailsafeReason::Protocol("icmp".into()));
        assert_eq!(reason("tcp:70000"), FailsafeReason::Port("70000".into()));
        assert_eq!(reason("tcp:"), FailsafeReason::Port("".into()));
        assert_eq!(reason("ssh"), FailsafeReason::Port("ssh".into()));
        assert_eq!(
            reason("tcp:10.0.0.0/33:22"),
            FailsafeReason::Net("10.0.0.0/33".into())
        );
        assert_eq!(reason("tcp:eth0:22"), FailsafeReason::Net("eth0".into()));
        // IPv6 without brackets has too many colons; unclosed brackets are no form either.
        assert_eq!(reason("tcp:fd00::/8:22"), FailsafeReason::Form);
        assert_eq!(reason("tcp:[fd00::/8:22"), FailsafeReason::Form);
        assert_eq!(reason("tcp:fd00::/8]:22"), FailsafeReason::Form);
        assert_eq!(reason("tcp:[fd00::/8]:10.0.0.0/8:22"), FailsafeReason::Form);
        assert_eq!(reason("tcp:[zz]:22"), FailsafeReason::Net("zz".into()));
    }

    #[test]
    fn lists_skip_blank_entries_and_none_means_none() {
        let list = parse_failsafe_list(" tcp:22, ,udp:10.0.0.0/8:68,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].to_string(), "udp:10.0.0.0/8:68");
        assert!(parse_failsafe_list("NONE").unwrap().is_empty());
        assert!(parse_failsafe_list("").unwrap().is_empty());
        let e = parse_failsafe_list("tcp:22,tcp:1.2.3.4/40:22").unwrap_err();
        assert_eq!(e.entry, "tcp:1.2.3.4/40:22");
    }
}

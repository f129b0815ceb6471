//! One policy or profile rule → IR rules, and the sets they need.
//!
//! A Calico rule ORs within lists (several nets, several ports) and ANDs across fields; IR
//! rules only AND. So one Calico rule becomes up to one IR rule per address family and per
//! combination of port alternatives (numeric ranges, or one named port), each ANDing the
//! rest. A short list of port ranges is split into one alternative per range
//! ([`PORT_LIST_SPLIT`]), for the kernel's sake.

use ipnet::IpNet;

use crate::calc::effective;
use crate::dataplane::ir::{Match, Rule as IrRule, SetKey, Side, Statement, Verdict, IPPROTO_ICMP};
use crate::model::{Action, EntityRule, IpVersion, PortSpec, Protocol, Rule};
use crate::naming::hashed;
use crate::selector::Selector;

/// A set a compiled rule refers to, by what determines its contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SetSpec {
    /// Addresses of the endpoints and networks of the network sets matching a selector (an
    /// interval set: endpoints' addresses are single-address networks).
    Selector {
        /// The effective (namespace-scoped) selector.
        selector: Selector,
        /// IPv4 (else IPv6).
        v4: bool,
    },
    /// `(address, protocol, port)` of a named port on the endpoints matching a selector.
    NamedPort {
        /// The effective selector.
        selector: Selector,
        /// The port name.
        port: String,
        /// IPv4 (else IPv6).
        v4: bool,
    },
    /// A list of CIDRs, merged so that no two overlap.
    Nets {
        /// The CIDRs, aggregated and sorted.
        nets: Vec<IpNet>,
        /// IPv4 (else IPv6).
        v4: bool,
    },
}

impl SetSpec {
    /// The set's name: what it is, hashed.
    pub(crate) fn name(&self) -> String {
        match self {
            SetSpec::Selector { selector, v4 } => {
                hashed(if *v4 { "sel4" } else { "sel6" }, &[&selector.to_string()])
            }
            SetSpec::NamedPort { selector, port, v4 } => hashed(
                if *v4 { "np4" } else { "np6" },
                &[&selector.to_string(), port],
            ),
            SetSpec::Nets { nets, v4 } => {
                let text: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
                let parts: Vec<&str> = text.iter().map(String::as_str).collect();
                hashed(if *v4 { "net4" } else { "net6" }, &parts)
            }
        }
    }

    /// The set's key type.
    pub(crate) fn key(&self) -> SetKey {
        match self {
            SetSpec::Selector { v4: true, .. } => SetKey::Ipv4Net,
            SetSpec::Selector { v4: false, .. } => SetKey::Ipv6Net,
            SetSpec::NamedPort { v4: true, .. } => SetKey::Ipv4AddrProtoPort,
            SetSpec::NamedPort { v4: false, .. } => SetKey::Ipv6AddrProtoPort,
            SetSpec::Nets { v4: true, .. } => SetKey::Ipv4Net,
            SetSpec::Nets { v4: false, .. } => SetKey::Ipv6Net,
        }
    }
}

/// The verdicts a rule's actions compile to in the chain being built.
#[derive(Clone, Debug)]
pub(crate) struct Verdicts {
    /// For `Allow`: statements and verdict.
    pub(crate) allow: (Vec<Statement>, Verdict),
    /// Statements and verdict for `Pass`.
    pub(crate) pass: (Vec<Statement>, Verdict),
    /// Log prefix for `Log`.
    pub(crate) log_prefix: String,
}

/// Merges CIDRs of one family into a canonical, non-overlapping, sorted list.
fn aggregate(nets: &[IpNet], v4: bool) -> Vec<IpNet> {
    let family: Vec<IpNet> = nets
        .iter()
        .filter(|n| matches!(n, IpNet::V4(_)) == v4)
        .map(IpNet::trunc)
        .collect();
    IpNet::aggregate(&family)
}

/// One way the ports of one side can match.
enum PortAlt {
    Any,
    Ranges(Vec<(u16, u16)>),
    Named(String),
}

fn ranges(specs: &[PortSpec]) -> Vec<(u16, u16)> {
    let mut r: Vec<(u16, u16)> = specs
        .iter()
        .filter_map(|p| match p {
            PortSpec::Range { min, max } => Some((*min, *max)),
            PortSpec::Named(_) => None,
        })
        .collect();
    r.sort();
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in r {
        match merged.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

fn named(specs: &[PortSpec]) -> impl Iterator<Item = &String> {
    specs.iter().filter_map(|p| match p {
        PortSpec::Named(n) => Some(n),
        PortSpec::Range { .. } => None,
    })
}

fn port_alternatives(e: &EntityRule) -> Vec<PortAlt> {
    if e.ports.is_empty() {
        return vec![PortAlt::Any];
    }
    let mut alts = Vec::new();
    let r = ranges(&e.ports);
    if !r.is_empty() {
        alts.push(PortAlt::Ranges(r));
    }
    alts.extend(named(&e.ports).map(|n| PortAlt::Named(n.clone())));
    alts
}

/// Compiles one rule of a policy (in `namespace`, `None` for global policies and profiles).
/// Returns the IR rules and every set they refer to.
pub(crate) fn compile_rule(
    rule: &Rule,
    namespace: Option<&str>,
    verdicts: &Verdicts,
) -> (Vec<IrRule>, Vec<SetSpec>) {
    let mut out = Vec::new();
    let mut sets = Vec::new();
    for v4 in [true, false] {
        match rule.ip_version {
            Some(IpVersion::V4) if !v4 => continue,
            Some(IpVersion::V6) if v4 => continue,
            _ => {}
        }
        let common = common_matches(rule, v4);
        let mut fam_sets = Vec::new();
        let Some(src) = side_matches(Side::Src, &rule.source, namespace, v4, &mut fam_sets) else {
            continue;
        };
        let Some(dst) = side_matches(Side::Dst, &rule.destination, namespace, v4, &mut fam_sets)
        else {
            continue;
        };
        sets.extend(fam_sets);
        let (src_alts, dst_alts) = split_short_port_lists(src.1, dst.1);
        for src_alt in &src_alts {
            for dst_alt in &dst_alts {
                // Ports before addresses: a port compare rejects a packet more cheaply
                // than a set lookup, which matters most where a list was split.
                let mut matches = common.clone();
                matches.extend(src_alt.iter().cloned());
                matches.extend(dst_alt.iter().cloned());
                matches.extend(src.0.iter().cloned());
                matches.extend(dst.0.iter().cloned());
                out.push(action_rule(rule.action, matches, verdicts));
            }
        }
    }
    sets.sort();
    sets.dedup();
    (out, sets)
}

/// The matches every IR rule of `rule` in one family shares: family, protocol, ICMP.
fn common_matches(rule: &Rule, v4: bool) -> Vec<Match> {
    let mut common = vec![Match::Ipv4(v4)];
    if let Some(p) = rule.protocol {
        common.push(Match::L4Proto {
            proto: p.0,
            negate: false,
        });
    }
    if let Some(p) = rule.not_protocol {
        common.push(Match::L4Proto {
            proto: p.0,
            negate: true,
        });
    }
    let icmp_v6 = rule.protocol == Some(Protocol::ICMPV6);
    for (icmp, negate) in [(&rule.icmp, false), (&rule.not_icmp, true)] {
        if let Some(m) = icmp {
            if let Some(t) = m.icmp_type {
                common.push(Match::Icmp {
                    v6: icmp_v6,
                    icmp_type: t,
                    code: m.code,
                    negate,
                });
            }
            // `icmp: {}` (no type) matches every ICMP packet: the protocol match
            // already says so; `notICMP: {}` then excludes every ICMP packet.
            if m.icmp_type.is_none() && negate {
                never_matches(&mut common);
            }
        }
    }
    common
}

/// The matches of one side every IR rule carries, and its port alternatives.
type SideMatches = (Vec<Match>, Vec<Option<Match>>);

/// One side of a rule in one family: the matches every IR rule carries, and the port
/// alternatives (one IR rule each; `None`: any port). The sets they use are added to
/// `sets`. `None` when the side cannot match in this family (its nets are all of the
/// other family).
fn side_matches(
    side: Side,
    entity: &EntityRule,
    namespace: Option<&str>,
    v4: bool,
    sets: &mut Vec<SetSpec>,
) -> Option<SideMatches> {
    let mut side_matches = Vec::new();
    if !entity.nets.is_empty() {
        let nets = aggregate(&entity.nets, v4);
        if nets.is_empty() {
            return None;
        }
        let spec = SetSpec::Nets { nets, v4 };
        side_matches.push(Match::AddrInSet {
            side,
            set: spec.name(),
            negate: false,
        });
        sets.push(spec);
    }
    let not_nets = aggregate(&entity.not_nets, v4);
    if !not_nets.is_empty() {
        let spec = SetSpec::Nets { nets: not_nets, v4 };
        side_matches.push(Match::AddrInSet {
            side,
            set: spec.name(),
            negate: true,
        });
        sets.push(spec);
    }
    for (sel, negate) in [
        (effective::effective_selector(namespace, entity), false),
        (effective::effective_not_selector(namespace, entity), true),
    ] {
        if let Some(selector) = sel {
            let spec = SetSpec::Selector { selector, v4 };
            side_matches.push(Match::AddrInSet {
                side,
                set: spec.name(),
                negate,
            });
            sets.push(spec);
        }
    }
    let np_selector = effective::named_port_selector(namespace, entity);
    let not_ranges = ranges(&entity.not_ports);
    if !not_ranges.is_empty() {
        side_matches.push(Match::Port {
            side,
            ranges: not_ranges,
            negate: true,
        });
    }
    for port in named(&entity.not_ports) {
        let spec = SetSpec::NamedPort {
            selector: np_selector.clone(),
            port: port.clone(),
            v4,
        };
        side_matches.push(Match::AddrProtoPortInSet {
            side,
            set: spec.name(),
            negate: true,
        });
        sets.push(spec);
    }
    let mut alts = Vec::new();
    for alt in port_alternatives(entity) {
        alts.push(match alt {
            PortAlt::Any => None,
            PortAlt::Ranges(ranges) => Some(Match::Port {
                side,
                ranges,
                negate: false,
            }),
            PortAlt::Named(port) => {
                let spec = SetSpec::NamedPort {
                    selector: np_selector.clone(),
                    port,
                    v4,
                };
                let m = Match::AddrProtoPortInSet {
                    side,
                    set: spec.name(),
                    negate: false,
                };
                sets.push(spec);
                Some(m)
            }
        });
    }
    Some((side_matches, alts))
}

/// The most IR rules one rule may become in one family by splitting its port lists.
///
/// A positive list of port ranges is an anonymous set in the kernel, and each anonymous set
/// added in a transaction walks the table's sets and the whole transaction (to name, find
/// and bind it), so a large table's programming grows with the square of its port lists:
/// the ACL benchmark's 250 × 2,000 table (4,000 two-port lists) took `nft -f` 2.1–2.7 s
/// with them and 0.50–0.58 s with one rule per port. A short list costs the packets that
/// reach it a few port compares instead of one lookup; long lists stay sets.
pub(crate) const PORT_LIST_SPLIT: usize = 4;

/// The port alternatives of each side (one IR rule per pair), with each positive list of
/// ranges split into one alternative per range while the rule's IR rules in this family
/// stay at most [`PORT_LIST_SPLIT`]. Destination lists first: they are the usual ones.
/// The ranges are disjoint, so a packet matches at most one of the rules a list became.
fn split_short_port_lists(
    src: Vec<Option<Match>>,
    dst: Vec<Option<Match>>,
) -> (Vec<Option<Match>>, Vec<Option<Match>>) {
    let dst = split_alternatives(dst, src.len());
    let src = split_alternatives(src, dst.len());
    (src, dst)
}

/// `alts` with its range lists split, when `alts` then times `other` alternatives stays
/// within [`PORT_LIST_SPLIT`].
fn split_alternatives(alts: Vec<Option<Match>>, other: usize) -> Vec<Option<Match>> {
    let split: Vec<Option<Match>> = alts
        .iter()
        .flat_map(|alt| match alt {
            Some(Match::Port {
                side,
                ranges,
                negate: false,
            }) => ranges
                .iter()
                .map(|r| {
                    Some(Match::Port {
                        side: *side,
                        ranges: vec![*r],
                        negate: false,
                    })
                })
                .collect(),
            other => vec![other.clone()],
        })
        .collect();
    if split.len() * other <= PORT_LIST_SPLIT {
        split
    } else {
        alts
    }
}

/// Makes a rule impossible to match (an ICMP packet that is not ICMP).
fn never_matches(common: &mut Vec<Match>) {
    common.push(Match::L4Proto {
        proto: IPPROTO_ICMP,
        negate: false,
    });
    common.push(Match::L4Proto {
        proto: IPPROTO_ICMP,
        negate: true,
    });
}

fn action_rule(action: Action, matches: Vec<Match>, v: &Verdicts) -> IrRule {
    match action {
        Action::Allow => IrRule {
            matches,
            statements: v.allow.0.clone(),
            verdict: Some(v.allow.1.clone()),
        },
        Action::Deny => IrRule::new(matches, Verdict::Drop),
        Action::Pass => IrRule {
            matches,
            statements: v.pass.0.clone(),
            verdict: Some(v.pass.1.clone()),
        },
        Action::Log => IrRule {
            matches,
            statements: vec![Statement::Log(v.log_prefix.clone())],
            verdict: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ir_rules(yaml: &str) -> Vec<IrRule> {
        let rule: Rule = serde_yaml_ng::from_str(yaml).unwrap();
        let v = Verdicts {
            allow: (vec![], Verdict::Accept),
            pass: (vec![], Verdict::Return),
            log_prefix: String::new(),
        };
        compile_rule(&rule, None, &v).0
    }

    /// A port match as (side, ranges, negate).
    type PortMatch = (Side, Vec<(u16, u16)>, bool);

    /// The port matches of each IR rule.
    fn ports(rules: &[IrRule]) -> Vec<Vec<PortMatch>> {
        rules
            .iter()
            .map(|r| {
                r.matches
                    .iter()
                    .filter_map(|m| match m {
                        Match::Port {
                            side,
                            ranges,
                            negate,
                        } => Some((*side, ranges.clone(), *negate)),
                        _ => None,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn short_port_lists_become_one_rule_per_range_and_long_ones_stay_lists() {
        let two = ir_rules(
            "{action: Allow, protocol: TCP, ipVersion: 4, destination: {ports: [443, 80]}}",
        );
        assert_eq!(
            ports(&two),
            [
                vec![(Side::Dst, vec![(80, 80)], false)],
                vec![(Side::Dst, vec![(443, 443)], false)]
            ]
        );
        assert!(
            matches!(two[0].matches[2], Match::Port { .. }),
            "ports come right after the family and protocol: {:?}",
            two[0].matches
        );
        let five = ir_rules(
            "{action: Allow, protocol: TCP, ipVersion: 4, destination: {ports: [1, 3, 5, 7, 9]}}",
        );
        assert_eq!(ports(&five).len(), 1, "five ranges stay one list");
        // 3 destination ranges split; 2 source ranges more would make 6 rules: they stay
        // a list.
        let both = ir_rules(
            "{action: Deny, protocol: UDP, ipVersion: 4, source: {ports: [1, 3]}, \
             destination: {ports: [10, 20, 30]}}",
        );
        assert_eq!(ports(&both).len(), 3);
        for p in ports(&both) {
            assert_eq!(p[0], (Side::Src, vec![(1, 1), (3, 3)], false));
            assert_eq!(p[1].1.len(), 1);
        }
        // A negated list is ANDed in one rule already: unchanged.
        let not = ir_rules(
            "{action: Allow, protocol: TCP, ipVersion: 4, destination: {notPorts: [22, 23, 25]}}",
        );
        assert_eq!(
            ports(&not),
            [vec![(Side::Dst, vec![(22, 23), (25, 25)], true)]]
        );
    }
}

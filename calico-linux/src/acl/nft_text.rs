//! The IR as `nft` syntax: what an operator would type to get the same table. Used as the
//! baseline of the benchmarks (`nft -f` of this text against [`super::LinuxAcl`]) and handy
//! for reading a ruleset.

use std::fmt::Write;

use calico_core::dataplane::ir::{
    ChainPolicy, CtState, Hook, IfaceKey, Match, Rule, Ruleset, SetElement, SetKey, Side,
    Statement, Verdict,
};

/// The whole ruleset as one `table inet <table> { ... }` block.
pub fn render(ruleset: &Ruleset, table: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table inet {table} {{");
    // The agent's mark: a table loaded from this text is one the agent may manage.
    let _ = writeln!(out, "  comment {:?}", super::TABLE_MARK);
    for (name, set) in &ruleset.sets {
        let ty = match set.key {
            SetKey::Ipv4Addr | SetKey::Ipv4Net => "ipv4_addr",
            SetKey::Ipv6Addr | SetKey::Ipv6Net => "ipv6_addr",
            SetKey::Ipv4AddrProtoPort => "ipv4_addr . inet_proto . inet_service",
            SetKey::Ipv6AddrProtoPort => "ipv6_addr . inet_proto . inet_service",
        };
        let _ = write!(out, "  set {name} {{ type {ty};");
        if set.key.is_interval() {
            out.push_str(" flags interval;");
        }
        if !set.elements.is_empty() {
            out.push_str(" elements = { ");
            for (i, e) in set.elements.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match e {
                    SetElement::Addr(a) => {
                        let _ = write!(out, "{a}");
                    }
                    SetElement::Net(n) => {
                        let _ = write!(out, "{n}");
                    }
                    SetElement::AddrProtoPort(a, p, port) => {
                        let _ = write!(out, "{a} . {p} . {port}");
                    }
                }
            }
            out.push_str(" }");
        }
        out.push_str(" }\n");
    }
    for (name, map) in &ruleset.maps {
        let _ = write!(out, "  map {name} {{ type ifname : verdict;");
        if !map.elements.is_empty() {
            out.push_str(" elements = { ");
            for (i, (iface, v)) in map.elements.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "\"{iface}\" : {}", verdict(v));
            }
            out.push_str(" }");
        }
        out.push_str(" }\n");
    }
    // Chains are declared first and filled after, so jumps may point forward.
    for (name, chain) in &ruleset.chains {
        let _ = write!(out, "  chain {name} {{");
        if let Some(base) = &chain.base {
            let hook = match base.hook {
                Hook::Prerouting => "prerouting",
                Hook::Forward => "forward",
                Hook::Input => "input",
                Hook::Output => "output",
                Hook::Postrouting => "postrouting",
            };
            let policy = match base.policy {
                ChainPolicy::Accept => "accept",
                ChainPolicy::Drop => "drop",
            };
            let _ = write!(
                out,
                " type {} hook {hook} priority {}; policy {policy};",
                crate::acl::batch::chain_type_name(base.kind),
                base.priority
            );
        }
        out.push_str(" }\n");
    }
    out.push_str("}\n");
    for (name, chain) in &ruleset.chains {
        for rule in &chain.rules {
            let _ = writeln!(out, "add rule inet {table} {name} {}", rule_text(rule));
        }
    }
    out
}

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Return => "return".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
        Verdict::Dispatch { key, map } => match key {
            IfaceKey::Input => format!("iifname vmap @{map}"),
            IfaceKey::Output => format!("oifname vmap @{map}"),
        },
    }
}

/// One rule in `nft` syntax (matches, statements, verdict).
pub fn rule_text(rule: &Rule) -> String {
    let v4 = rule
        .matches
        .iter()
        .find_map(|m| match m {
            Match::Ipv4(v) => Some(*v),
            _ => None,
        })
        .unwrap_or(true);
    let ip = if v4 { "ip" } else { "ip6" };
    let mut parts: Vec<String> = Vec::new();
    for m in &rule.matches {
        parts.push(match_text(m, ip));
    }
    let mut comment = None;
    for s in &rule.statements {
        parts.push(match s {
            Statement::FlowRef(r) => {
                comment = Some(format!("comment \"{}\"", r.replace('"', "'")));
                continue;
            }
            Statement::Log(prefix) => format!("log prefix \"{}\"", prefix.replace('"', "'")),
            Statement::SetMark(bits) => format!("meta mark set meta mark | {bits:#x}"),
            Statement::NoTrack => "notrack".to_string(),
            Statement::Dnat(a) => format!("dnat {ip} to {a}"),
            Statement::Snat(a) => format!("snat {ip} to {a}"),
            Statement::ClearMark(bits) => format!("meta mark set meta mark & {:#x}", !bits),
            Statement::NfLog {
                group,
                prefix,
                rate,
            } => {
                let limit = rate.map_or(String::new(), |r| {
                    format!("limit rate {r}/second burst {r} packets ")
                });
                format!(
                    "{limit}log prefix \"{}\" group {group}",
                    prefix.replace('"', "'")
                )
            }
        });
    }
    if let Some(v) = &rule.verdict {
        parts.push(verdict(v));
    }
    if parts.is_empty() {
        parts.push("counter".into());
    }
    parts.extend(comment);
    parts.join(" ")
}

/// One match in `nft` syntax; `ip` is `ip` or `ip6`, the rule's family.
fn match_text(m: &Match, ip: &str) -> String {
    let side = |s: Side| match s {
        Side::Src => "saddr",
        Side::Dst => "daddr",
    };
    let port = |s: Side| match s {
        Side::Src => "sport",
        Side::Dst => "dport",
    };
    let neg = |n: bool| if n { "!= " } else { "" };
    match m {
        Match::Ipv4(v) => format!("meta nfproto {}", if *v { "ipv4" } else { "ipv6" }),
        Match::L4Proto { proto, negate } => format!("meta l4proto {}{proto}", neg(*negate)),
        Match::AddrEq {
            side: s,
            addr,
            negate,
        } => format!("{ip} {} {}{addr}", side(*s), neg(*negate)),
        Match::AddrInSet {
            side: s,
            set,
            negate,
        } => {
            format!("{ip} {} {}@{set}", side(*s), neg(*negate))
        }
        Match::AddrProtoPortInSet {
            side: s,
            set,
            negate,
        } => format!(
            "{ip} {} . meta l4proto . th {} {}@{set}",
            side(*s),
            port(*s),
            neg(*negate)
        ),
        Match::Port {
            side: s,
            ranges,
            negate,
        } => {
            let r = |(lo, hi): &(u16, u16)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            };
            if *negate {
                ranges
                    .iter()
                    .map(|x| format!("th {} != {}", port(*s), r(x)))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else if let [only] = ranges.as_slice() {
                format!("th {} {}", port(*s), r(only))
            } else {
                let list: Vec<String> = ranges.iter().map(r).collect();
                format!("th {} {{ {} }}", port(*s), list.join(", "))
            }
        }
        Match::Icmp {
            v6,
            icmp_type,
            code,
            negate,
        } => {
            let proto = calico_core::dataplane::ir::icmp_protocol(*v6);
            match code {
                Some(c) => format!(
                    "meta l4proto {proto} @th,0,16 {}{}",
                    neg(*negate),
                    (*icmp_type as u16) << 8 | *c as u16
                ),
                None => format!("meta l4proto {proto} @th,0,8 {}{icmp_type}", neg(*negate)),
            }
        }
        Match::Ct(CtState::EstablishedOrRelated) => "ct state established,related".into(),
        Match::Ct(CtState::Invalid) => "ct state invalid".into(),
        Match::MarkSet(bits) => format!("meta mark & {bits:#x} != 0"),
        Match::CtUnconfirmed => "ct status ! confirmed".into(),
    }
}

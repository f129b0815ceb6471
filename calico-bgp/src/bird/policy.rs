//! Route policy in BIRD's filter language, as Calico's confd renders it: one function per
//! `BGPFilter`, direction and family, whose rules `accept` or `reject` (ending the filter)
//! in order; each peering's filter calls its filters' functions in order and accepts what
//! none decided. `prefixAdvertisements` become `bgp_community.add` and
//! `bgp_large_community.add` statements of the export filters.
//!
//! Unlike confd's rendering, a peering's own export condition (our exports, and what a
//! reflector passes on) is checked before the filters, so that a filter's `Accept` never
//! advertises more than the peering would without filters (the native speaker's rule).

use std::collections::BTreeSet;
use std::fmt::Write;

use calico_core::dataplane::RoutePolicy;
use calico_core::model::{
    BgpFilter, BgpFilterRule, Community, Direction, FilterAction, FilterSource, MatchOperator,
    PrefixLength,
};
use ipnet::IpNet;

/// The filters of every peering, once each, in a stable order (their function names use
/// the position).
pub(super) fn used_filters(policy: &RoutePolicy) -> Vec<&BgpFilter> {
    let set: BTreeSet<&BgpFilter> = policy.filters.values().flatten().collect();
    set.into_iter().collect()
}

/// The BIRD function of one filter's rules for `direction` and family (`v4`).
fn function_name(index: usize, direction: Direction, v4: bool) -> String {
    let dir = match direction {
        Direction::Import => "import",
        Direction::Export => "export",
    };
    format!("calico_bgpfilter{index}_{dir}_v{}", if v4 { 4 } else { 6 })
}

/// Every filter function the peerings call.
pub(super) fn render_functions(c: &mut String, filters: &[&BgpFilter]) {
    for (i, f) in filters.iter().enumerate() {
        let _ = writeln!(c, "# BGPFilter {}", f.name);
        for direction in [Direction::Import, Direction::Export] {
            for v4 in [true, false] {
                let rules = f.rules(direction, v4);
                if rules.is_empty() {
                    continue;
                }
                let _ = writeln!(c, "function {}() {{", function_name(i, direction, v4));
                for rule in rules {
                    let _ = writeln!(c, "  {}", statement(rule));
                }
                c.push_str("}\n");
            }
        }
    }
}

/// One rule: `if (conditions) then { action; }`, or the bare action when it has none.
fn statement(rule: &BgpFilterRule) -> String {
    let action = match rule.action {
        FilterAction::Accept => "accept;",
        FilterAction::Reject => "reject;",
    };
    let mut conditions = Vec::new();
    if let (Some(cidr), Some(op)) = (rule.cidr, rule.match_operator) {
        conditions.push(match_cidr(&cidr, op, rule.prefix_length.as_ref()));
    }
    if rule.source == Some(FilterSource::RemotePeers) {
        conditions.push("source = RTS_BGP".to_string());
    }
    if let Some(iface) = &rule.interface {
        // A blackhole's ifname is "" (and defined): it has no interface to match.
        conditions.push(format!("(ifname != \"\" && ifname ~ \"{iface}\")"));
    }
    if conditions.is_empty() {
        return action.to_string();
    }
    format!("if ({}) then {{ {action} }}", conditions.join(" && "))
}

fn match_cidr(cidr: &IpNet, op: MatchOperator, len: Option<&PrefixLength>) -> String {
    match op {
        MatchOperator::Equal => format!("net = {cidr}"),
        MatchOperator::NotEqual => format!("net != {cidr}"),
        MatchOperator::In | MatchOperator::NotIn => {
            let (lo, hi) = PrefixLength::range(len, cidr);
            let set = format!("[ {}/{}{{{lo},{hi}}} ]", cidr.network(), cidr.prefix_len());
            let op = if op == MatchOperator::In { "~" } else { "!~" };
            format!("net {op} {set}")
        }
    }
}

/// The calls to the peer's filter functions for `direction` and family, in order.
fn calls(c: &mut String, all: &[&BgpFilter], mine: &[BgpFilter], direction: Direction, v4: bool) {
    for f in mine {
        if f.rules(direction, v4).is_empty() {
            continue;
        }
        if let Some(i) = all.iter().position(|g| *g == f) {
            let _ = writeln!(c, "    {}();", function_name(i, direction, v4));
        }
    }
}

/// The import clause of a peering's channel.
pub(super) fn import_clause(all: &[&BgpFilter], mine: &[BgpFilter], v4: bool) -> String {
    if mine
        .iter()
        .all(|f| f.rules(Direction::Import, v4).is_empty())
    {
        return "import all;".into();
    }
    let mut c = String::from("import filter {\n");
    calls(&mut c, all, mine, Direction::Import, v4);
    c.push_str("    accept;\n  };");
    c
}

/// The export clause of a peering's channel: `base` is the BIRD condition of what the
/// peering exports without policy.
pub(super) fn export_clause(
    policy: &RoutePolicy,
    (all, mine): (&[&BgpFilter], &[BgpFilter]),
    v4: bool,
    base: &str,
) -> String {
    let no_filters = mine
        .iter()
        .all(|f| f.rules(Direction::Export, v4).is_empty());
    if no_filters && policy.communities.is_empty() {
        return format!("export where {base};");
    }
    let mut c = format!("export filter {{\n    if !({base}) then reject;\n");
    for (cidr, list) in &policy.communities {
        if cidr.addr().is_ipv4() != v4 {
            continue;
        }
        let adds: Vec<String> = list.iter().map(community_add).collect();
        let _ = writeln!(c, "    if net ~ {cidr} then {{ {} }}", adds.join(" "));
    }
    calls(&mut c, all, mine, Direction::Export, v4);
    c.push_str("    accept;\n  };");
    c
}

fn community_add(community: &Community) -> String {
    match community {
        Community::Standard(v) => format!("bgp_community.add(({}, {}));", v >> 16, v & 0xFFFF),
        Community::Large(a, b, l) => format!("bgp_large_community.add(({a}, {b}, {l}));"),
    }
}

#[cfg(test)]
mod tests;

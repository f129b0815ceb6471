//! Route policy as FRR route-maps and prefix-lists: a peering with `BGPFilter` rules (or
//! any `prefixAdvertisements`) gets route-maps of its own in place of the shared ones.
//!
//! An export route-map: entries 10-30 keep the shared export rule (our exports; on a route
//! reflector, what it learned too) and jump on to 100 (`on-match goto`); entries from 100
//! add each advertisement's communities (`set community … additive`, `set
//! large-community … additive`, `on-match next`) to the routes in its CIDR; entries from
//! 1000 are the filter rules, in order, each a `permit` (Accept) or `deny` (Reject) entry
//! matching a prefix-list that expresses its CIDR, operator and length range; the last
//! entry permits what no rule decided. `source: RemotePeers` skips the rule for our own
//! exports (an entry matching our exports' prefix-list that jumps past it): a prefix we
//! export is always announced as ours (the `network` route wins), so "learned" is "not
//! ours". An import route-map is the rules and the last entry alone.
//!
//! Each route-map (with its prefix-lists) is named after a hash of its content, so a
//! changed policy is a new name the neighbor is pointed at, and the old one is removed
//! after ([`stale`]), never while a neighbor still uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use calico_core::dataplane::BgpSettings;
use calico_core::model::{
    BgpFilterRule, Community, Direction, FilterAction, FilterSource, MatchOperator, PrefixLength,
};
use ipnet::IpNet;

use super::conf::{export_list, ConfError};

/// Prefix of the names of policy route-maps and prefix-lists.
pub const PREFIX: &str = "CALICO-P-";

/// Where the filter rules start, and the step between them.
const RULES_FROM: u32 = 1000;
const STEP: u32 = 10;

/// The policy objects of a configuration and the route-maps each peering uses.
#[derive(Debug, Default)]
pub(super) struct PolicyMaps {
    /// Route-map (and prefix-list) definitions by route-map name.
    pub(super) objects: BTreeMap<String, String>,
    /// (peer, direction) → the route-map of its own.
    pub(super) maps: BTreeMap<(IpAddr, bool), String>,
}

impl PolicyMaps {
    /// The peer's own route-map for imports (`export` false) or exports, if it has one.
    pub(super) fn map(&self, peer: IpAddr, export: bool) -> Option<&str> {
        self.maps.get(&(peer, export)).map(String::as_str)
    }
}

/// Builds the route-maps of every peering that needs its own.
pub(super) fn build(settings: &BgpSettings) -> Result<PolicyMaps, ConfError> {
    let mut out = PolicyMaps::default();
    for peer in &settings.peers {
        let v6 = peer.address.is_ipv6();
        let rules = |d| -> Vec<&BgpFilterRule> {
            let filters = settings.policy.peer_filters(peer.address);
            filters.iter().flat_map(|f| f.rules(d, !v6)).collect()
        };
        let (import, export) = (rules(Direction::Import), rules(Direction::Export));
        if import.iter().chain(&export).any(|r| r.interface.is_some()) {
            return Err(ConfError::Unsupported {
                peer: peer.address,
                field: "filters: interface",
                why: "bgpd's `match interface` takes no `*` pattern and sees no interface on \
                      the driver's `network` routes; use the BIRD driver or the native speaker",
            });
        }
        let limit = ((u32::from(u16::MAX) - RULES_FROM) / STEP - 1) as usize;
        if import.len().max(export.len()) > limit {
            return Err(ConfError::Unsupported {
                peer: peer.address,
                field: "filters",
                why: "more rules than one FRR route-map can number",
            });
        }
        if !import.is_empty() {
            let body = import_body(&import, v6);
            out.maps
                .insert((peer.address, false), named(&mut out.objects, body));
        }
        let communities = family_communities(settings, v6);
        if !export.is_empty() || !communities.is_empty() {
            let body = export_body(&export, &communities, v6, settings.cluster_id.is_some());
            out.maps
                .insert((peer.address, true), named(&mut out.objects, body));
        }
    }
    Ok(out)
}

/// Writes every policy object.
pub(super) fn render(c: &mut String, maps: &PolicyMaps) {
    for text in maps.objects.values() {
        c.push_str(text);
    }
}

/// The commands removing policy objects of `running` (route-map names, prefix-list
/// (`ip`/`ipv6`, name) pairs) that `maps` no longer has.
pub(super) fn stale(
    maps: &BTreeSet<String>,
    lists: &BTreeSet<(String, String)>,
    wanted: &PolicyMaps,
) -> String {
    let keep = |name: &str| {
        wanted
            .objects
            .keys()
            .any(|m| name == m || name.starts_with(&format!("{m}-")))
    };
    let mut c = String::new();
    for m in maps.iter().filter(|m| !keep(m)) {
        let _ = writeln!(c, "no route-map {m}");
    }
    for (ip, l) in lists.iter().filter(|(_, l)| !keep(l)) {
        let _ = writeln!(c, "no {ip} prefix-list {l}");
    }
    c
}

/// The advertisements of one family.
fn family_communities(settings: &BgpSettings, v6: bool) -> Vec<(IpNet, Vec<Community>)> {
    let rules = &settings.policy.communities;
    rules
        .iter()
        .filter(|(n, _)| n.addr().is_ipv6() == v6)
        .cloned()
        .collect()
}

/// Names `body` (where `@` stands for the name) after its hash and stores it.
fn named(objects: &mut BTreeMap<String, String>, body: String) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    let name = format!("{PREFIX}{:012x}", h.finish() & 0xffff_ffff_ffff);
    objects.insert(name.clone(), body.replace('@', &name));
    name
}

fn ip(v6: bool) -> &'static str {
    if v6 {
        "ipv6"
    } else {
        "ip"
    }
}

fn import_body(rules: &[&BgpFilterRule], v6: bool) -> String {
    let mut c = String::new();
    render_rules(&mut c, rules, v6, false);
    c
}

fn export_body(
    rules: &[&BgpFilterRule],
    communities: &[(IpNet, Vec<Community>)],
    v6: bool,
    reflector: bool,
) -> String {
    let (ip, ours) = (ip(v6), export_list(v6));
    let mut c = format!(
        "route-map @ permit 10\n match {ip} address prefix-list {ours}\n on-match goto 100\nexit\n"
    );
    if reflector {
        c.push_str("route-map @ permit 20\n on-match goto 100\nexit\n");
    }
    c.push_str("route-map @ deny 30\nexit\n");
    for (i, (cidr, list)) in communities.iter().enumerate() {
        let full = cidr.max_prefix_len();
        let le = if cidr.prefix_len() < full {
            format!(" le {full}")
        } else {
            String::new()
        };
        let _ = writeln!(c, "{ip} prefix-list @-c{i} seq 5 permit {cidr}{le}");
        let _ = writeln!(
            c,
            "route-map @ permit {}\n match {ip} address prefix-list @-c{i}",
            100 + i
        );
        let standard: Vec<String> = list
            .iter()
            .filter(|c| matches!(c, Community::Standard(_)))
            .map(Community::to_string)
            .collect();
        let large: Vec<String> = list
            .iter()
            .filter(|c| matches!(c, Community::Large(..)))
            .map(Community::to_string)
            .collect();
        if !standard.is_empty() {
            let _ = writeln!(c, " set community {} additive", standard.join(" "));
        }
        if !large.is_empty() {
            let _ = writeln!(c, " set large-community {} additive", large.join(" "));
        }
        c.push_str(" on-match next\nexit\n");
    }
    render_rules(&mut c, rules, v6, true);
    c
}

/// The rule entries from [`RULES_FROM`] and the final permit.
fn render_rules(c: &mut String, rules: &[&BgpFilterRule], v6: bool, export: bool) {
    let (ip, ours) = (ip(v6), export_list(v6));
    let end = RULES_FROM + STEP * rules.len() as u32;
    for (j, rule) in rules.iter().enumerate() {
        let base = RULES_FROM + STEP * j as u32;
        if export && rule.source == Some(FilterSource::RemotePeers) {
            let _ = writeln!(c, "route-map @ permit {base}\n match {ip} address prefix-list {ours}\n on-match goto {}\nexit", base + STEP);
        }
        let action = match rule.action {
            FilterAction::Accept => "permit",
            FilterAction::Reject => "deny",
        };
        let list = match (rule.cidr, rule.match_operator) {
            (Some(cidr), Some(op)) => {
                c.push_str(&rule_list(
                    &format!("@-r{j}"),
                    &cidr,
                    op,
                    rule.prefix_length.as_ref(),
                ));
                format!(" match {ip} address prefix-list @-r{j}\n")
            }
            _ => String::new(),
        };
        let _ = write!(c, "route-map @ {action} {}\n{list}exit\n", base + 5);
    }
    let _ = writeln!(c, "route-map @ permit {end}\nexit");
}

/// The prefix-list of a rule's CIDR match (written ahead of its route-map entry).
fn rule_list(name: &str, cidr: &IpNet, op: MatchOperator, len: Option<&PrefixLength>) -> String {
    let v6 = cidr.addr().is_ipv6();
    let (ip, full) = (ip(v6), cidr.max_prefix_len());
    let range = match op {
        MatchOperator::Equal | MatchOperator::NotEqual => String::new(),
        MatchOperator::In | MatchOperator::NotIn => {
            let (lo, hi) = PrefixLength::range(len, cidr);
            match (lo > cidr.prefix_len(), hi > cidr.prefix_len()) {
                (true, _) => format!(" ge {lo} le {hi}"),
                (false, true) => format!(" le {hi}"),
                (false, false) => String::new(),
            }
        }
    };
    let mut c = String::new();
    if matches!(op, MatchOperator::NotEqual | MatchOperator::NotIn) {
        let any = if v6 { "::/0" } else { "0.0.0.0/0" };
        let _ = writeln!(c, "{ip} prefix-list {name} seq 5 deny {cidr}{range}");
        let _ = writeln!(c, "{ip} prefix-list {name} seq 10 permit {any} le {full}");
    } else {
        let _ = writeln!(c, "{ip} prefix-list {name} seq 5 permit {cidr}{range}");
    }
    c
}

#[cfg(test)]
mod tests;

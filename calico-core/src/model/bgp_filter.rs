//! BGP route policy: Calico's `BGPFilter` (ordered accept/reject rules per family and
//! direction, attached to peerings by `BGPPeer.filters`) and BGP communities
//! (`BGPConfiguration.communities` and `prefixAdvertisements`).
//!
//! Semantics, as Calico documents and renders them for BIRD:
//!
//! * A peering's filters are tried in the order `filters` lists them, and within a filter
//!   its rules in order; the first rule that matches decides (`Accept` or `Reject`). A route
//!   no rule matches is accepted: on import it is kept, on export it is advertised as it
//!   would be without filters. `Accept` never advertises what the BGP rules (RFC 4271 §9.2,
//!   RFC 4456) would not.
//! * A rule matches when all its conditions hold; a rule with none matches everything.
//!   `cidr` with `matchOperator`: `Equal` the prefix is the CIDR, `In` the prefix lies in
//!   the CIDR (the CIDR itself included), `NotEqual` and `NotIn` their negations.
//!   `prefixLength` (with `In` or `NotIn` only) narrows the lengths `cidr` matches to
//!   `max(len(cidr), min)` ..= `max`. `source: RemotePeers` matches routes learned from
//!   BGP peers (on import, every route; on export, not this node's own prefixes).
//!   `interface` (a name where `*` stands for any run of characters) matches a route that
//!   leaves by an interface of that name, as BIRD's `defined(ifname) && ifname ~ "…"` does
//!   in Calico's rendering: one of this node's workload addresses by its workload's
//!   interface; a learned route by the interface toward its next hop. A block (a
//!   blackhole) has no interface, so no `interface` rule matches it.
//! * `prefixAdvertisements` attach communities to every advertised route whose prefix lies
//!   in the CIDR (several matching entries add up). A node's `node.<name>`
//!   configuration, when it sets `prefixAdvertisements`, replaces the `default` one's.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A `BGPFilter`: rules for routes exported to and imported from the peers that name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpFilter {
    /// Name of the resource (what `BgpPeer::filters` lists).
    pub name: String,
    /// Rules for IPv4 routes sent to a peer, in order.
    #[serde(default, rename = "exportV4", skip_serializing_if = "Vec::is_empty")]
    pub export_v4: Vec<BgpFilterRule>,
    /// Rules for IPv4 routes received from a peer, in order.
    #[serde(default, rename = "importV4", skip_serializing_if = "Vec::is_empty")]
    pub import_v4: Vec<BgpFilterRule>,
    /// Rules for IPv6 routes sent to a peer, in order.
    #[serde(default, rename = "exportV6", skip_serializing_if = "Vec::is_empty")]
    pub export_v6: Vec<BgpFilterRule>,
    /// Rules for IPv6 routes received from a peer, in order.
    #[serde(default, rename = "importV6", skip_serializing_if = "Vec::is_empty")]
    pub import_v6: Vec<BgpFilterRule>,
}

/// One rule of a [`BgpFilter`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpFilterRule {
    /// The network the route's prefix is compared with (needs `matchOperator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<IpNet>,
    /// Prefix lengths to match (with `cidr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<PrefixLength>,
    /// How the prefix is compared with `cidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_operator: Option<MatchOperator>,
    /// Only routes learned from BGP peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FilterSource>,
    /// The interface the route leaves by; `*` matches any run of characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// What to do with a route the rule matches.
    pub action: FilterAction,
}

/// `prefixLength` of a rule: both ends inclusive, each optional.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct PrefixLength {
    /// Shortest length matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i32>,
    /// Longest length matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i32>,
}

/// How a rule compares the route's prefix with its `cidr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MatchOperator {
    /// The prefix is the CIDR.
    Equal,
    /// The prefix is not the CIDR.
    NotEqual,
    /// The prefix lies in the CIDR.
    In,
    /// The prefix does not lie in the CIDR.
    NotIn,
}

/// Where a route came from, for `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FilterSource {
    /// Learned from a BGP peer.
    RemotePeers,
}

/// A rule's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FilterAction {
    /// Keep (import) or advertise (export) the route.
    Accept,
    /// Drop (import) or do not advertise (export) the route.
    Reject,
}

/// What a filter rule may know of a route besides its prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteFacts<'a> {
    /// Learned from a BGP peer (not one of this node's own prefixes).
    pub learned: bool,
    /// The interface the route leaves by: a workload address's interface, or for a
    /// learned route the interface toward its next hop. `None` for a blackhole (an IPAM
    /// block) or when it is not known.
    pub interface: Option<&'a str>,
}

impl<'a> RouteFacts<'a> {
    /// One of this node's own prefixes, routed by `interface` (`None`: a blackhole).
    pub fn local(interface: Option<&'a str>) -> Self {
        RouteFacts {
            learned: false,
            interface,
        }
    }

    /// A route learned from a peer reached by `interface`.
    pub fn learned(interface: Option<&'a str>) -> Self {
        RouteFacts {
            learned: true,
            interface,
        }
    }
}

/// Which way a route crosses a peering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from the peer.
    Import,
    /// Sent to the peer.
    Export,
}

impl BgpFilter {
    /// The rules for routes of `prefix`'s family going `direction`.
    pub fn rules(&self, direction: Direction, v4: bool) -> &[BgpFilterRule] {
        match (direction, v4) {
            (Direction::Export, true) => &self.export_v4,
            (Direction::Import, true) => &self.import_v4,
            (Direction::Export, false) => &self.export_v6,
            (Direction::Import, false) => &self.import_v6,
        }
    }
}

impl PrefixLength {
    /// The lengths matched under `cidr`: from `max(len(cidr), min)` to `max` (or the
    /// family's full length), as Calico renders them.
    pub fn range(range: Option<&PrefixLength>, cidr: &IpNet) -> (u8, u8) {
        let full = cidr.max_prefix_len();
        let (min, max) = range.map_or((None, None), |r| (r.min, r.max));
        let clamp = |v: i32| v.clamp(0, full.into()) as u8;
        let lo = min.map_or(cidr.prefix_len(), |m| clamp(m).max(cidr.prefix_len()));
        let hi = max.map_or(full, clamp);
        (lo, hi)
    }
}

impl BgpFilterRule {
    /// Whether the rule matches a route to `prefix` that `route` tells more of.
    pub fn matches(&self, prefix: &IpNet, route: RouteFacts<'_>) -> bool {
        if self.source == Some(FilterSource::RemotePeers) && !route.learned {
            return false;
        }
        if let Some(pattern) = &self.interface {
            if !route
                .interface
                .is_some_and(|name| interface_matches(pattern, name))
            {
                return false;
            }
        }
        let Some(cidr) = &self.cidr else {
            return true;
        };
        let inside = match self.match_operator {
            Some(MatchOperator::Equal | MatchOperator::NotEqual) => prefix == cidr,
            _ => {
                let (lo, hi) = PrefixLength::range(self.prefix_length.as_ref(), cidr);
                cidr.contains(prefix) && (lo..=hi).contains(&prefix.prefix_len())
            }
        };
        match self.match_operator {
            Some(MatchOperator::NotEqual | MatchOperator::NotIn) => !inside,
            _ => inside,
        }
    }
}

/// Whether interface `name` matches a rule's `pattern`, where `*` stands for any run of
/// characters (possibly none) and every other character for itself, over the whole name
/// (BIRD's `~` on strings, with the characters Calico allows).
pub fn interface_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty(); // no `*`: the whole name
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The verdict of `filters`, tried in order, on a route to `prefix` crossing a peering
/// `direction`: the first matching rule's action, `Accept` when none matches.
pub fn evaluate<'a>(
    filters: impl IntoIterator<Item = &'a BgpFilter>,
    direction: Direction,
    prefix: &IpNet,
    route: RouteFacts<'_>,
) -> FilterAction {
    filters
        .into_iter()
        .flat_map(|f| f.rules(direction, matches!(prefix, IpNet::V4(_))))
        .find(|r| r.matches(prefix, route))
        .map_or(FilterAction::Accept, |r| r.action)
}

/// A BGP community: standard (RFC 1997, `aa:nn`, 16 bits each) or large (RFC 8092,
/// `aa:bb:cc`, 32 bits each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    /// A standard community, as its 32-bit value (`aa << 16 | nn`).
    Standard(u32),
    /// A large community: global administrator (an AS), and two local data parts.
    Large(u32, u32, u32),
}

impl Community {
    /// NO_EXPORT (RFC 1997): not advertised outside the AS.
    pub const NO_EXPORT: Community = Community::Standard(0xFFFF_FF01);
    /// NO_ADVERTISE (RFC 1997): not advertised to any peer.
    pub const NO_ADVERTISE: Community = Community::Standard(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (RFC 1997): not advertised to external peers (no
    /// confederations here, so the same as NO_EXPORT).
    pub const NO_EXPORT_SUBCONFED: Community = Community::Standard(0xFFFF_FF03);
    /// NO_PEER (RFC 3765): advisory, not acted on.
    pub const NO_PEER: Community = Community::Standard(0xFFFF_FF04);
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(v) => write!(f, "{}:{}", v >> 16, v & 0xFFFF),
            Community::Large(a, b, c) => write!(f, "{a}:{b}:{c}"),
        }
    }
}

impl FromStr for Community {
    type Err = String;

    /// `aa:nn` (each 0-65535) or `aa:bb:cc` (each 0-4294967295), decimal.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let number = |p: &str| -> Option<u64> {
            (!p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        let nums: Option<Vec<u64>> = parts.iter().map(|p| number(p)).collect();
        match (nums.as_deref(), parts.len()) {
            (Some(&[a, n]), 2) if a <= 0xFFFF && n <= 0xFFFF => {
                Ok(Community::Standard(((a as u32) << 16) | n as u32))
            }
            (Some(&[a, b, c]), 3) if [a, b, c].iter().all(|v| *v <= u32::MAX.into()) => {
                Ok(Community::Large(a as u32, b as u32, c as u32))
            }
            _ => Err(format!(
                "{s:?} is not a community: use aa:nn (standard, each 0-65535) or aa:bb:cc (large, each 0-4294967295)"
            )),
        }
    }
}

/// A named community of `BgpConfiguration::communities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityDef {
    /// The name `prefixAdvertisements` may use.
    pub name: String,
    /// `aa:nn` or `aa:bb:cc`.
    pub value: String,
}

/// Communities to attach to advertised routes in a CIDR (`prefixAdvertisements`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixAdvertisement {
    /// Routes whose prefix lies in this network get the communities.
    pub cidr: IpNet,
    /// Names from `communities`, or values `aa:nn` / `aa:bb:cc`.
    pub communities: Vec<String>,
}

/// Resolves a `prefixAdvertisements` entry: a name defined in `defs`, else a value.
pub fn resolve_community(defs: &[CommunityDef], entry: &str) -> Result<Community, String> {
    if let Some(d) = defs.iter().find(|d| d.name == entry) {
        return d.value.parse();
    }
    entry.parse().map_err(|_| {
        format!(
            "{entry:?} is neither a community defined in communities nor a value aa:nn or aa:bb:cc"
        )
    })
}

/// The resolved form of `prefixAdvertisements`: every CIDR with its communities, as the
/// BGP backends apply them.
pub type CommunityRules = Vec<(IpNet, Vec<Community>)>;

/// The communities to attach to an advertised route to `prefix`: those of every rule whose
/// CIDR contains it, in rule order, without repeats.
pub fn communities_for(rules: &CommunityRules, prefix: &IpNet) -> Vec<Community> {
    let mut out: Vec<Community> = Vec::new();
    for (cidr, list) in rules {
        if cidr.contains(prefix) {
            for c in list {
                if !out.contains(c) {
                    out.push(*c);
                }
            }
        }
    }
    out
}

mod validate;
pub(crate) use validate::check_communities;

#[cfg(test)]
mod tests;

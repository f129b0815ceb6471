//! The 1:1 NAT of local workloads' floating IPs (Calico's `ipNATs`), rendered as Felix's
//! `floatingIPManager` does (`cali-fip-dnat`, `cali-fip-snat` in the `nat` table), in NAT
//! base chains of the agent's one table, present only while some local endpoint has a
//! floating IP in effect:
//!
//! ```text
//! nat-prerouting (type nat, hook prerouting, priority dstnat -100)   jump fip-dnat
//! nat-output     (type nat, hook output, priority dstnat -100)       jump fip-dnat
//! nat-postrouting (type nat, hook postrouting, priority srcnat 100)  jump fip-snat
//! fip-dnat
//!   ip daddr <external> dnat ip to <internal>            one per external address
//! fip-snat
//!   ip saddr <internal> ip daddr <internal> snat ip to <external>
//!                                                        one per internal address: a
//!                                                        workload reaching its own
//!                                                        floating IP (hairpin)
//! ```
//!
//! Destination NAT runs before filter (priority 0), so policy sees the workload's own
//! address, as in Felix; the replies are translated back by conntrack. Like Felix, an
//! external address two endpoints claim goes to the lower internal address, and an internal
//! address with several external ones is hairpinned from the lowest (both compared as
//! text, as Felix does); from hosts without a route to it, the address is unreachable.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::dataplane::ir::{
    BaseChain, Chain, ChainType, Hook, Match, Rule, Side, Statement, Verdict, PRIORITY_DSTNAT,
    PRIORITY_SRCNAT,
};
use crate::model::{IpNat, Model};

use super::Compiler;

/// The NAT base chain of the prerouting hook.
pub const NAT_PREROUTING_CHAIN: &str = "nat-prerouting";
/// The NAT base chain of the output hook.
pub const NAT_OUTPUT_CHAIN: &str = "nat-output";
/// The NAT base chain of the postrouting hook.
pub const NAT_POSTROUTING_CHAIN: &str = "nat-postrouting";
/// The chain of destination NATs (Felix's `cali-fip-dnat`).
pub const FIP_DNAT_CHAIN: &str = "fip-dnat";
/// The chain of hairpin source NATs (Felix's `cali-fip-snat`).
pub const FIP_SNAT_CHAIN: &str = "fip-snat";

/// The floating IPs in effect on each local interface, and whether they changed since the
/// chains were last rendered.
#[derive(Clone, Debug, Default)]
pub(super) struct FloatingIps {
    by_iface: BTreeMap<String, Vec<IpNat>>,
    dirty: bool,
}

impl FloatingIps {
    /// Records the NATs in effect on `iface` (none: the interface is gone or has none).
    fn set(&mut self, iface: &str, nats: &[IpNat]) {
        let old = self.by_iface.get(iface).map_or(&[][..], Vec::as_slice);
        if old == nats {
            return;
        }
        if nats.is_empty() {
            self.by_iface.remove(iface);
        } else {
            self.by_iface.insert(iface.to_string(), nats.to_vec());
        }
        self.dirty = true;
    }
}

/// External address → internal address, one each (Felix's collation).
fn destination_nats<'a>(nats: impl Iterator<Item = &'a IpNat>) -> BTreeMap<IpAddr, IpAddr> {
    let mut out: BTreeMap<IpAddr, IpAddr> = BTreeMap::new();
    for n in nats {
        out.entry(n.external_ip)
            .and_modify(|int| *int = lower_as_text(*int, n.internal_ip))
            .or_insert(n.internal_ip);
    }
    out
}

/// Internal address → the external address it is hairpinned from.
fn source_nats(dnats: &BTreeMap<IpAddr, IpAddr>) -> BTreeMap<IpAddr, IpAddr> {
    let mut out: BTreeMap<IpAddr, IpAddr> = BTreeMap::new();
    for (ext, int) in dnats {
        out.entry(*int)
            .and_modify(|e| *e = lower_as_text(*e, *ext))
            .or_insert(*ext);
    }
    out
}

/// The address whose text sorts first (Felix compares the strings).
fn lower_as_text(a: IpAddr, b: IpAddr) -> IpAddr {
    if b.to_string() < a.to_string() {
        b
    } else {
        a
    }
}

fn addr_is(side: Side, addr: IpAddr) -> Match {
    Match::AddrEq {
        side,
        addr,
        negate: false,
    }
}

fn nat_base(hook: Hook, priority: i32, target: &str) -> Chain {
    Chain {
        base: Some(BaseChain::accepting(ChainType::Nat, hook, priority)),
        rules: vec![Rule::new(vec![], Verdict::Jump(target.into()))],
    }
}

/// The five chains for `nats` (all `None` when there are none).
pub(super) fn nat_chains<'a>(
    nats: impl Iterator<Item = &'a IpNat>,
) -> [(&'static str, Option<Chain>); 5] {
    let dnats = destination_nats(nats);
    let present = !dnats.is_empty();
    let dnat_rules = dnats.iter().map(|(ext, int)| Rule {
        matches: vec![Match::Ipv4(ext.is_ipv4()), addr_is(Side::Dst, *ext)],
        statements: vec![Statement::Dnat(*int)],
        verdict: None,
    });
    let snat_rules = source_nats(&dnats).into_iter().map(|(int, ext)| Rule {
        matches: vec![
            Match::Ipv4(int.is_ipv4()),
            addr_is(Side::Src, int),
            addr_is(Side::Dst, int),
        ],
        statements: vec![Statement::Snat(ext)],
        verdict: None,
    });
    let regular = |rules: Vec<Rule>| Chain { base: None, rules };
    let dnat = regular(dnat_rules.collect());
    let snat = regular(snat_rules.collect());
    let pre = nat_base(Hook::Prerouting, PRIORITY_DSTNAT, FIP_DNAT_CHAIN);
    let out = nat_base(Hook::Output, PRIORITY_DSTNAT, FIP_DNAT_CHAIN);
    let post = nat_base(Hook::Postrouting, PRIORITY_SRCNAT, FIP_SNAT_CHAIN);
    let keep = |c: Chain| present.then_some(c);
    [
        (FIP_DNAT_CHAIN, keep(dnat)),
        (FIP_SNAT_CHAIN, keep(snat)),
        (NAT_PREROUTING_CHAIN, keep(pre)),
        (NAT_OUTPUT_CHAIN, keep(out)),
        (NAT_POSTROUTING_CHAIN, keep(post)),
    ]
}

impl Compiler {
    /// Records the floating IPs now in effect on local interface `iface`.
    pub(super) fn floating_ips_changed(&mut self, model: &Model, iface: &str) {
        let enabled = self.config.floating_ips;
        let nats = self
            .local
            .owner(iface)
            .and_then(|id| model.workload_endpoints.get(id))
            .map_or(&[][..], |ep| ep.floating_ips(enabled));
        self.floating.set(iface, nats);
    }

    /// Re-renders the NAT chains when some interface's floating IPs changed.
    pub(super) fn render_floating_ips(&mut self) {
        if !std::mem::take(&mut self.floating.dirty) {
            return;
        }
        let nats = self.floating.by_iface.values().flatten();
        for (name, chain) in nat_chains(nats) {
            self.journal.put_chain(name, chain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(int: &str, ext: &str) -> IpNat {
        IpNat {
            internal_ip: int.parse().unwrap(),
            external_ip: ext.parse().unwrap(),
        }
    }

    #[test]
    fn conflicting_claims_resolve_as_felix_does() {
        let nats = [
            nat("10.0.0.9", "172.16.0.1"),
            nat("10.0.0.10", "172.16.0.1"),
            nat("10.0.0.9", "172.16.0.2"),
        ];
        let dnats = destination_nats(nats.iter());
        // "10.0.0.10" < "10.0.0.9" as text.
        assert_eq!(
            dnats[&"172.16.0.1".parse().unwrap()],
            nat("10.0.0.10", "0.0.0.0").internal_ip
        );
        let snats = source_nats(&dnats);
        assert_eq!(snats.len(), 2);
        assert_eq!(
            snats[&"10.0.0.9".parse().unwrap()],
            "172.16.0.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn no_floating_ip_no_nat_chain() {
        assert!(nat_chains([].iter()).iter().all(|(_, c)| c.is_none()));
    }
}

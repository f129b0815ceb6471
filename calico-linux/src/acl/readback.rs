//! Reading the agent's table back from the kernel into the IR, so that resync compares
//! what the kernel really holds with what it should hold.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainPolicy, Hook, Rule, Ruleset, Set, SetElement, SetKey, Statement,
    Verdict, VerdictMap,
};
use ipnet::IpNet;

use super::rule_codec;
use crate::nft::expr::{decode_value, decode_verdict_data, Expr, VerdictCode};
use crate::nft::netlink::{parse_be32, parse_string, Attrs, WireError};
use crate::nft::proto::*;
use crate::nft::socket::{NfSocket, NlError};

/// The log prefix of the stand-in rule reported for a rule this backend did not write (added
/// or edited by hand). It never occurs in a compiled ruleset, so the chain holding it always
/// differs from the desired one and resync rewrites it.
pub const FOREIGN_RULE: &str = "calico-rs: foreign rule";

/// Why the table could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Netlink failed.
    #[error(transparent)]
    Netlink(#[from] NlError),
    /// The table holds an object calico-rs never creates and cannot represent.
    #[error("{0}")]
    Foreign(String),
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> Self {
        ReadError::Netlink(NlError::Wire(e))
    }
}

struct RawSet {
    flags: u32,
    key_len: u32,
    data_type: Option<u32>,
    /// `(key, interval end, verdict)`.
    elements: Vec<(Vec<u8>, bool, Option<VerdictCode>)>,
}

/// Reads table `table` (family `inet`) back. An absent table reads as an empty ruleset.
pub fn read(sock: &mut NfSocket, table: &str) -> Result<Ruleset, ReadError> {
    let mut found = false;
    sock.dump(
        NFT_MSG_GETTABLE,
        |_| {},
        |m| {
            for a in m.nft_attrs()? {
                if let (NFTA_TABLE_NAME, d) = a? {
                    found |= parse_string(d)? == table;
                }
            }
            Ok(())
        },
    )?;
    let mut ruleset = Ruleset::default();
    if !found {
        return Ok(ruleset);
    }

    // Chains.
    sock.dump(
        NFT_MSG_GETCHAIN,
        |w| w.string(NFTA_CHAIN_TABLE, table),
        |m| {
            let mut name = None;
            let mut in_table = false;
            let mut hook = None;
            let mut priority = 0i32;
            let mut policy = None;
            for a in m.nft_attrs()? {
                match a? {
                    (NFTA_CHAIN_TABLE, d) => in_table = parse_string(d)? == table,
                    (NFTA_CHAIN_NAME, d) => name = Some(parse_string(d)?),
                    (NFTA_CHAIN_POLICY, d) => policy = Some(parse_be32(d)?),
                    (NFTA_CHAIN_HOOK, d) => {
                        for h in Attrs::new(d) {
                            match h? {
                                (NFTA_HOOK_HOOKNUM, d) => hook = Some(parse_be32(d)?),
                                (NFTA_HOOK_PRIORITY, d) => priority = parse_be32(d)? as i32,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            let (Some(name), true) = (name, in_table) else {
                return Ok(());
            };
            let base = hook.map(|h| BaseChain {
                hook: match h {
                    NF_INET_FORWARD => Hook::Forward,
                    NF_INET_LOCAL_IN => Hook::Input,
                    NF_INET_LOCAL_OUT => Hook::Output,
                    // A chain on a hook calico-rs never uses: report it with an
                    // impossible priority so that it differs from anything desired.
                    _ => Hook::Forward,
                },
                priority: if matches!(h, NF_INET_FORWARD | NF_INET_LOCAL_IN | NF_INET_LOCAL_OUT) {
                    priority
                } else {
                    i32::MIN
                },
                policy: if policy == Some(NF_DROP as u32) {
                    ChainPolicy::Drop
                } else {
                    ChainPolicy::Accept
                },
            });
            ruleset.chains.insert(
                name,
                Chain {
                    base,
                    rules: Vec::new(),
                },
            );
            Ok(())
        },
    )?;

    // Sets and maps, with their elements.
    let mut raw: BTreeMap<String, RawSet> = BTreeMap::new();
    sock.dump(
        NFT_MSG_GETSET,
        |w| w.string(NFTA_SET_TABLE, table),
        |m| {
            let mut name = None;
            let mut in_table = false;
            let mut set = RawSet {
                flags: 0,
                key_len: 0,
                data_type: None,
                elements: Vec::new(),
            };
            for a in m.nft_attrs()? {
                match a? {
                    (NFTA_SET_TABLE, d) => in_table = parse_string(d)? == table,
                    (NFTA_SET_NAME, d) => name = Some(parse_string(d)?),
                    (NFTA_SET_FLAGS, d) => set.flags = parse_be32(d)?,
                    (NFTA_SET_KEY_LEN, d) => set.key_len = parse_be32(d)?,
                    (NFTA_SET_DATA_TYPE, d) => set.data_type = Some(parse_be32(d)?),
                    _ => {}
                }
            }
            if let (Some(name), true) = (name, in_table) {
                raw.insert(name, set);
            }
            Ok(())
        },
    )?;
    for (name, set) in raw.iter_mut() {
        sock.dump(
            NFT_MSG_GETSETELEM,
            |w| {
                w.string(NFTA_SET_ELEM_LIST_TABLE, table);
                w.string(NFTA_SET_ELEM_LIST_SET, name);
            },
            |m| {
                for a in m.nft_attrs()? {
                    let (ty, d) = a?;
                    if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
                        continue;
                    }
                    for e in Attrs::new(d) {
                        let (_, e) = e?;
                        let mut key = None;
                        let mut end = false;
                        let mut data = None;
                        for f in Attrs::new(e) {
                            match f? {
                                (NFTA_SET_ELEM_KEY, d) => key = Some(decode_value(d)?),
                                (NFTA_SET_ELEM_FLAGS, d) => {
                                    end = parse_be32(d)? & NFT_SET_ELEM_INTERVAL_END != 0
                                }
                                (NFTA_SET_ELEM_DATA, d) => data = decode_verdict_data(d)?,
                                _ => {}
                            }
                        }
                        if let Some(key) = key {
                            set.elements.push((key, end, data));
                        }
                    }
                }
                Ok(())
            },
        )?;
    }
    for (name, set) in &raw {
        if set.flags & NFT_SET_ANONYMOUS != 0 {
            continue;
        }
        if set.flags & NFT_SET_MAP != 0 {
            if set.data_type != Some(NFT_DATA_VERDICT) || set.key_len != 16 {
                return Err(ReadError::Foreign(format!(
                    "map {name:?} in table {table:?} is not an interface-name verdict map; \
                     calico-rs does not create such maps (delete it by hand)"
                )));
            }
            let mut map = VerdictMap::default();
            for (key, _, data) in &set.elements {
                let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
                let iface = String::from_utf8_lossy(&key[..end]).into_owned();
                let verdict = match data {
                    Some(VerdictCode::Accept) => Verdict::Accept,
                    Some(VerdictCode::Drop) => Verdict::Drop,
                    Some(VerdictCode::Return) => Verdict::Return,
                    Some(VerdictCode::Jump(c)) => Verdict::Jump(c.clone()),
                    Some(VerdictCode::Goto(c)) => Verdict::Goto(c.clone()),
                    None => continue,
                };
                map.elements.insert(iface, verdict);
            }
            ruleset.maps.insert(name.clone(), map);
            continue;
        }
        let interval = set.flags & NFT_SET_INTERVAL != 0;
        let key = match (set.key_len, interval) {
            (4, false) => SetKey::Ipv4Addr,
            (16, false) => SetKey::Ipv6Addr,
            (4, true) => SetKey::Ipv4Net,
            (16, true) => SetKey::Ipv6Net,
            (12, false) => SetKey::Ipv4AddrProtoPort,
            (24, false) => SetKey::Ipv6AddrProtoPort,
            _ => {
                return Err(ReadError::Foreign(format!(
                    "set {name:?} in table {table:?} has a key calico-rs never uses \
                     ({} bytes{}); delete it by hand",
                    set.key_len,
                    if interval { ", interval" } else { "" }
                )))
            }
        };
        let elements = if interval {
            intervals_to_nets(&set.elements, set.key_len == 4)
        } else {
            set.elements
                .iter()
                .filter_map(|(k, _, _)| element_of(key, k))
                .collect()
        };
        ruleset.sets.insert(name.clone(), Set { key, elements });
    }

    // Rules, in chain order.
    let anon = |set_name: &str| -> Option<Vec<(u16, u16)>> {
        let set = raw.get(set_name)?;
        if set.key_len != 2 || set.flags & NFT_SET_INTERVAL == 0 {
            return None;
        }
        port_ranges(&set.elements)
    };
    let mut rules: Vec<(String, Rule)> = Vec::new();
    sock.dump(
        NFT_MSG_GETRULE,
        |w| w.string(NFTA_RULE_TABLE, table),
        |m| {
            let mut chain = None;
            let mut in_table = false;
            let mut exprs = Vec::new();
            let mut foreign = false;
            for a in m.nft_attrs()? {
                match a? {
                    (NFTA_RULE_TABLE, d) => in_table = parse_string(d)? == table,
                    (NFTA_RULE_CHAIN, d) => chain = Some(parse_string(d)?),
                    (NFTA_RULE_EXPRESSIONS, d) => {
                        for e in Attrs::new(d) {
                            let (_, e) = e?;
                            match Expr::decode(e)? {
                                Some(e) => exprs.push(e),
                                None => foreign = true,
                            }
                        }
                    }
                    _ => {}
                }
            }
            let (Some(chain), true) = (chain, in_table) else {
                return Ok(());
            };
            let rule = if foreign {
                None
            } else {
                rule_codec::parse(&exprs, &anon)
            };
            rules.push((chain, rule.unwrap_or_else(foreign_rule)));
            Ok(())
        },
    )?;
    for (chain, rule) in rules {
        if let Some(c) = ruleset.chains.get_mut(&chain) {
            c.rules.push(rule);
        }
    }
    Ok(ruleset)
}

fn foreign_rule() -> Rule {
    Rule {
        matches: Vec::new(),
        statements: vec![Statement::Log(FOREIGN_RULE.into())],
        verdict: None,
    }
}

fn addr_of(k: &[u8]) -> Option<IpAddr> {
    match k.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(k).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(k).ok()?))),
        _ => None,
    }
}

fn element_of(key: SetKey, k: &[u8]) -> Option<SetElement> {
    match key {
        SetKey::Ipv4Addr | SetKey::Ipv6Addr => addr_of(k).map(SetElement::Addr),
        SetKey::Ipv4AddrProtoPort | SetKey::Ipv6AddrProtoPort => {
            let al = k.len() - 8;
            let addr = addr_of(&k[..al])?;
            Some(SetElement::AddrProtoPort(
                addr,
                k[al],
                u16::from_be_bytes([k[al + 4], k[al + 5]]),
            ))
        }
        _ => None,
    }
}

/// Start/end keys sorted by key, ends before starts at equal keys (adjacent ranges).
fn sorted_bounds(elements: &[(Vec<u8>, bool, Option<VerdictCode>)]) -> Vec<(&[u8], bool)> {
    let mut bounds: Vec<(&[u8], bool)> = elements
        .iter()
        .map(|(k, end, _)| (k.as_slice(), *end))
        .collect();
    bounds.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
    bounds
}

/// Rebuilds the CIDRs of an interval set from its start and end keys.
pub(crate) fn intervals_to_nets(
    elements: &[(Vec<u8>, bool, Option<VerdictCode>)],
    v4: bool,
) -> BTreeSet<SetElement> {
    let width = if v4 { 32 } else { 128 };
    let to_int = |k: &[u8]| -> u128 { k.iter().fold(0u128, |acc, b| (acc << 8) | *b as u128) };
    let max: u128 = if v4 { u32::MAX as u128 } else { u128::MAX };
    let mut out = BTreeSet::new();
    let mut open: Option<u128> = None;
    for (k, end) in sorted_bounds(elements) {
        let v = to_int(k);
        match (end, open) {
            (false, _) => open = Some(v),
            (true, Some(start)) if v > start => {
                cidrs(start, v - 1, width, &mut out);
                open = None;
            }
            _ => {} // an end with no start (some nft versions write a leading one)
        }
    }
    if let Some(start) = open {
        cidrs(start, max, width, &mut out);
    }
    out
}

/// The minimal CIDRs covering `[lo, hi]` in a `width`-bit address space.
fn cidrs(mut lo: u128, hi: u128, width: u32, out: &mut BTreeSet<SetElement>) {
    // A block of 2^bits addresses starting at `lo` fits when aligned and not beyond `hi`.
    let fits = |lo: u128, bits: u32| -> bool {
        if bits >= 128 {
            return lo == 0 && hi == u128::MAX;
        }
        let mask = (1u128 << bits) - 1;
        lo & mask == 0 && lo.checked_add(mask).is_some_and(|top| top <= hi)
    };
    loop {
        let bits = (0..=width).rev().find(|b| fits(lo, *b)).unwrap_or(0);
        let net = if width == 32 {
            IpNet::new(IpAddr::V4(Ipv4Addr::from(lo as u32)), (32 - bits) as u8)
        } else {
            IpNet::new(IpAddr::V6(Ipv6Addr::from(lo)), (128 - bits) as u8)
        };
        if let Ok(net) = net {
            out.insert(SetElement::Net(net));
        }
        let top = if bits >= 128 {
            u128::MAX
        } else {
            lo + ((1u128 << bits) - 1)
        };
        if top >= hi {
            return;
        }
        lo = top + 1;
    }
}

/// Rebuilds the port ranges of an anonymous interval set.
fn port_ranges(elements: &[(Vec<u8>, bool, Option<VerdictCode>)]) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    let mut open: Option<u16> = None;
    for (k, end) in sorted_bounds(elements) {
        let v = u16::from_be_bytes(k.try_into().ok()?);
        match (end, open) {
            (false, _) => open = Some(v),
            (true, Some(start)) if v > start => {
                out.push((start, v - 1));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        out.push((start, u16::MAX));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::batch::element_keys;

    fn keys_of(nets: &[&str]) -> Vec<(Vec<u8>, bool, Option<VerdictCode>)> {
        let mut keys = Vec::new();
        for n in nets {
            element_keys(&SetElement::Net(n.parse().unwrap()), &mut keys);
        }
        keys.into_iter().map(|(k, e)| (k, e, None)).collect()
    }

    #[test]
    fn interval_keys_give_back_the_cidrs() {
        for nets in [
            &["10.0.0.0/24", "10.0.1.0/24", "192.168.0.7/32"][..],
            &["0.0.0.0/0"],
            &["255.255.255.0/24", "0.0.0.0/8"],
            &["fd00::/120", "::/0"][1..],
            &["fd00::/120", "fd00::100/128", "ffff::/16"],
        ] {
            let v4 = nets[0].contains('.');
            let mut keys = keys_of(nets);
            keys.reverse(); // the kernel dumps in its own order
            let back = intervals_to_nets(&keys, v4);
            let want: BTreeSet<_> = nets
                .iter()
                .map(|n| SetElement::Net(n.parse().unwrap()))
                .collect();
            assert_eq!(back, want, "{nets:?}");
        }
    }

    #[test]
    fn port_range_keys_give_back_the_ranges() {
        let keys: Vec<_> = [
            (80u16, false),
            (81, true),
            (1000, false),
            (2001, true),
            (65000, false),
        ]
        .iter()
        .map(|(p, e)| (p.to_be_bytes().to_vec(), *e, None))
        .collect();
        assert_eq!(
            port_ranges(&keys),
            Some(vec![(80, 80), (1000, 2000), (65000, 65535)])
        );
    }
}

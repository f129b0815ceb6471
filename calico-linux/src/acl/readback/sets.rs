//! Sets and verdict maps read back, as the IR's [`Set`] and [`VerdictMap`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_core::dataplane::ir::{Ruleset, Set, SetElement, SetKey, Verdict, VerdictMap};

use super::intervals::intervals_to_nets;
use super::{RawSet, ReadError};
use crate::nft::expr::VerdictCode;
use crate::nft::proto::*;

/// Adds the named sets and maps of `raw` (anonymous sets aside) to `ruleset`.
pub(super) fn add_sets<'a>(
    ruleset: &mut Ruleset,
    table: &str,
    raw: impl IntoIterator<Item = (&'a String, &'a RawSet)>,
) -> Result<(), ReadError> {
    for (name, set) in raw {
        if set.flags & NFT_SET_ANONYMOUS != 0 {
            continue;
        }
        if set.flags & NFT_SET_MAP != 0 {
            ruleset
                .maps
                .insert(name.clone(), verdict_map(set, name, table)?);
        } else {
            ruleset
                .sets
                .insert(name.clone(), plain_set(set, name, table)?);
        }
    }
    Ok(())
}

/// An interface-name verdict map.
fn verdict_map(set: &RawSet, name: &str, table: &str) -> Result<VerdictMap, ReadError> {
    if set.data_type != Some(NFT_DATA_VERDICT) || set.key_len != 16 {
        return Err(ReadError::Foreign(format!(
            "map {name:?} in table {table:?} is not an interface-name verdict map; \
             calico-rs does not create such maps (delete it by hand)"
        )));
    }
    let mut map = VerdictMap::default();
    for e in &set.elements {
        let iface = e.key.split(|b| *b == 0).next().unwrap_or_default();
        let iface = String::from_utf8_lossy(iface).into_owned();
        let verdict = match &e.verdict {
            Some(VerdictCode::Accept) => Verdict::Accept,
            Some(VerdictCode::Drop) => Verdict::Drop,
            Some(VerdictCode::Return) => Verdict::Return,
            Some(VerdictCode::Jump(c)) => Verdict::Jump(c.clone()),
            Some(VerdictCode::Goto(c)) => Verdict::Goto(c.clone()),
            None => continue,
        };
        map.elements.insert(iface, verdict);
    }
    Ok(map)
}

/// A set of addresses, networks or address-protocol-port triples.
fn plain_set(set: &RawSet, name: &str, table: &str) -> Result<Set, ReadError> {
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
            .filter_map(|e| element_of(key, &e.key))
            .collect()
    };
    Ok(Set { key, elements })
}

fn addr_of(k: &[u8]) -> Option<IpAddr> {
    match k.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(k).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(k).ok()?))),
        _ => None,
    }
}

/// The IR element of a key of a set of `key`; `None` for a key of the wrong size.
fn element_of(key: SetKey, k: &[u8]) -> Option<SetElement> {
    match key {
        SetKey::Ipv4Addr | SetKey::Ipv6Addr => addr_of(k).map(SetElement::Addr),
        SetKey::Ipv4AddrProtoPort | SetKey::Ipv6AddrProtoPort => {
            // address, protocol padded to 4 bytes, port padded to 4 bytes.
            let (addr, rest) = k.split_at_checked(k.len().checked_sub(8)?)?;
            let &[proto, _, _, _, hi, lo, _, _] = rest else {
                return None;
            };
            Some(SetElement::AddrProtoPort(
                addr_of(addr)?,
                proto,
                u16::from_be_bytes([hi, lo]),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::batch::element_keys;

    #[test]
    fn element_keys_give_back_the_elements() {
        for (key, e) in [
            (
                SetKey::Ipv4Addr,
                SetElement::Addr("10.0.0.1".parse().unwrap()),
            ),
            (
                SetKey::Ipv6Addr,
                SetElement::Addr("fd00::1".parse().unwrap()),
            ),
            (
                SetKey::Ipv4AddrProtoPort,
                SetElement::AddrProtoPort("10.0.0.1".parse().unwrap(), 6, 8080),
            ),
            (
                SetKey::Ipv6AddrProtoPort,
                SetElement::AddrProtoPort("fd00::1".parse().unwrap(), 17, 53),
            ),
        ] {
            let mut keys = Vec::new();
            element_keys(&e, &mut keys);
            assert_eq!(element_of(key, &keys[0].0), Some(e));
        }
    }

    #[test]
    fn a_concatenated_key_shorter_than_its_padding_is_no_element_not_a_panic() {
        // `k.len() - 8` used to underflow for keys under 8 bytes.
        for len in 0..12 {
            let k = vec![1; len];
            assert_eq!(element_of(SetKey::Ipv4AddrProtoPort, &k), None, "{len}");
            assert_eq!(element_of(SetKey::Ipv6AddrProtoPort, &k), None, "{len}");
        }
    }
}

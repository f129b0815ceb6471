//! Interval sets read back: the kernel holds a range as a start key and an interval-end
//! key one past its top; these rebuild the CIDRs and port ranges the IR speaks of.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_core::dataplane::ir::SetElement;
use ipnet::IpNet;

use super::RawElement;

/// Start/end keys sorted by key, ends before starts at equal keys (adjacent ranges).
fn sorted_bounds(elements: &[RawElement]) -> Vec<(&[u8], bool)> {
    let mut bounds: Vec<(&[u8], bool)> = elements
        .iter()
        .map(|e| (e.key.as_slice(), e.interval_end))
        .collect();
    bounds.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
    bounds
}

/// Rebuilds the CIDRs of an interval set from its start and end keys.
pub(super) fn intervals_to_nets(elements: &[RawElement], v4: bool) -> BTreeSet<SetElement> {
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

/// Rebuilds the port ranges of an anonymous interval set; `None` if a key is not a port.
pub(super) fn port_ranges(elements: &[RawElement]) -> Option<Vec<(u16, u16)>> {
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

    fn raw(key: Vec<u8>, interval_end: bool) -> RawElement {
        RawElement {
            key,
            interval_end,
            verdict: None,
        }
    }

    fn keys_of(nets: &[&str]) -> Vec<RawElement> {
        let mut keys = Vec::new();
        for n in nets {
            element_keys(&SetElement::Net(n.parse().unwrap()), &mut keys);
        }
        keys.into_iter().map(|(k, e)| raw(k, e)).collect()
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
        .map(|(p, e)| raw(p.to_be_bytes().to_vec(), *e))
        .collect();
        assert_eq!(
            port_ranges(&keys),
            Some(vec![(80, 80), (1000, 2000), (65000, 65535)])
        );
        assert_eq!(port_ranges(&[raw(vec![0, 80, 0], false)]), None);
    }
}

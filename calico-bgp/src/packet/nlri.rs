//! Prefixes as NLRI encodes them: a length in bits, then just enough octets (RFC 4271 §4.3).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::error::EncodeError;
use super::open::AfiSafi;

/// The address family of a run of prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// Decodes a run of prefixes; host bits beyond the length are cleared.
pub(crate) fn decode_prefixes(bytes: &[u8], family: Family) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((&bits, tail)) = rest.split_first() {
        let max = match family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        if bits > max {
            return Err(format!("prefix length {bits} exceeds {max}"));
        }
        let n = usize::from(bits).div_ceil(8);
        if n > tail.len() {
            return Err(format!("prefix of /{bits} truncated"));
        }
        let (octets, tail) = tail.split_at(n);
        rest = tail;
        out.push(match family {
            Family::V4 => {
                let mut a = [0u8; 4];
                a[..n].copy_from_slice(octets);
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a), bits).trunc())
            }
            Family::V6 => {
                let mut a = [0u8; 16];
                a[..n].copy_from_slice(octets);
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(a), bits).trunc())
            }
        });
    }
    Ok(out)
}

/// Decodes IPv4 prefixes (the withdrawn routes and NLRI fields).
pub(crate) fn decode_v4(bytes: &[u8]) -> Result<Vec<Ipv4Net>, String> {
    let mut out = Vec::with_capacity(bytes.len() / 4);
    let mut rest = bytes;
    while let Some((&bits, tail)) = rest.split_first() {
        if bits > 32 {
            return Err(format!("prefix length {bits} exceeds 32"));
        }
        let n = usize::from(bits).div_ceil(8);
        let Some(octets) = tail.get(..n) else {
            return Err(format!("prefix of /{bits} truncated"));
        };
        let mut a = [0u8; 4];
        a[..n].copy_from_slice(octets);
        rest = &tail[n..];
        out.push(Ipv4Net::new_assert(Ipv4Addr::from(a), bits).trunc());
    }
    Ok(out)
}

/// The encoded size of a prefix.
pub fn encoded_len(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

/// Appends one prefix.
pub(crate) fn encode_prefix(prefix: &IpNet, out: &mut Vec<u8>) {
    let bits = prefix.prefix_len();
    let n = usize::from(bits).div_ceil(8);
    out.push(bits);
    match prefix {
        IpNet::V4(p) => out.extend_from_slice(&p.network().octets()[..n]),
        IpNet::V6(p) => out.extend_from_slice(&p.network().octets()[..n]),
    }
}

/// Appends prefixes that must all belong to `family`.
pub(crate) fn encode_family_prefixes(
    prefixes: &[IpNet],
    family: AfiSafi,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for p in prefixes {
        let ok = matches!(
            (p, family),
            (IpNet::V4(_), AfiSafi::IPV4_UNICAST) | (IpNet::V6(_), AfiSafi::IPV6_UNICAST)
        );
        if !ok {
            return Err(EncodeError::Field {
                field: "multiprotocol NLRI",
                reason: format!("prefix {p} does not belong to {family:?}"),
            });
        }
        encode_prefix(p, out);
    }
    Ok(())
}

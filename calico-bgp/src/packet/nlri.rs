//! Prefixes as NLRI encodes them: a length in bits, then just enough octets (RFC 4271 §4.3),
//! each preceded by a 4-octet Path Identifier on families where ADD-PATH was negotiated in
//! that direction (RFC 7911 §3).

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

/// The families whose NLRI carry a Path Identifier (RFC 7911) in one direction of a session:
/// for what we receive, those we advertised receive for and the peer send; for what we send,
/// the reverse. Only the unicast families this speaker handles can be members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddPathFamilies {
    ipv4_unicast: bool,
    ipv6_unicast: bool,
}

impl AddPathFamilies {
    /// No family carries path identifiers (a session without ADD-PATH).
    pub const NONE: AddPathFamilies = AddPathFamilies {
        ipv4_unicast: false,
        ipv6_unicast: false,
    };

    /// The set of `families` (other families than IPv4 and IPv6 unicast are left out).
    pub fn of(families: impl IntoIterator<Item = AfiSafi>) -> AddPathFamilies {
        let mut set = AddPathFamilies::NONE;
        for f in families {
            set.ipv4_unicast |= f == AfiSafi::IPV4_UNICAST;
            set.ipv6_unicast |= f == AfiSafi::IPV6_UNICAST;
        }
        set
    }

    /// Whether NLRI of `family` carry path identifiers.
    pub fn contains(&self, family: AfiSafi) -> bool {
        (family == AfiSafi::IPV4_UNICAST && self.ipv4_unicast)
            || (family == AfiSafi::IPV6_UNICAST && self.ipv6_unicast)
    }

    /// Whether no family does.
    pub fn is_empty(&self) -> bool {
        *self == AddPathFamilies::NONE
    }

    /// The member families, IPv4 first.
    pub fn families(&self) -> Vec<AfiSafi> {
        [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
            .into_iter()
            .filter(|f| self.contains(*f))
            .collect()
    }
}

/// Prefixes decoded from one NLRI field, with their path identifiers (empty when the field
/// carries none).
pub(crate) type Decoded<P> = (Vec<P>, Vec<u32>);

/// Reads the path identifier in front of a prefix when `add_path`.
fn path_id<'a>(rest: &'a [u8], add_path: bool, ids: &mut Vec<u32>) -> Result<&'a [u8], String> {
    if !add_path {
        return Ok(rest);
    }
    let Some((id, tail)) = rest.split_first_chunk::<4>() else {
        return Err(format!(
            "path identifier truncated ({} bytes left)",
            rest.len()
        ));
    };
    ids.push(u32::from_be_bytes(*id));
    Ok(tail)
}

/// Decodes a run of prefixes (with path identifiers when `add_path`); host bits beyond the
/// length are cleared.
pub(crate) fn decode_prefixes(
    bytes: &[u8],
    family: Family,
    add_path: bool,
) -> Result<Decoded<IpNet>, String> {
    let room = count(bytes, add_path);
    match family {
        Family::V4 => decode_run(bytes, add_path, room, |a: [u8; 4], bits| {
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a), bits))
        }),
        Family::V6 => decode_run(bytes, add_path, room, |a: [u8; 16], bits| {
            IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(a), bits))
        }),
    }
}

/// Decodes IPv4 prefixes (the withdrawn routes and NLRI fields), with path identifiers when
/// `add_path`.
#[inline]
pub(crate) fn decode_v4(bytes: &[u8], add_path: bool) -> Result<Decoded<Ipv4Net>, String> {
    if bytes.is_empty() {
        // Every UPDATE has both fields, and most leave one (an IPv6 one both) empty.
        return Ok((Vec::new(), Vec::new()));
    }
    // Room for /24s (a full table's most common length) or longer: rarely grown.
    let room = bytes.len() / if add_path { 8 } else { 4 };
    decode_run(bytes, add_path, room, |a: [u8; 4], bits| {
        Ipv4Net::new_assert(Ipv4Addr::from(a), bits)
    })
}

/// How many prefixes a run of `bytes` holds, as far as it can be read (room to decode
/// them into: counting is a fraction of decoding, growing the list by doubling is not).
fn count(bytes: &[u8], add_path: bool) -> usize {
    let id = if add_path { 4 } else { 0 };
    let (mut at, mut n) = (0, 0);
    while let Some(&bits) = bytes.get(at + id) {
        at += id + 1 + usize::from(bits).div_ceil(8);
        n += 1;
    }
    n
}

/// Decodes a run of prefixes of `N`-octet addresses (with path identifiers when
/// `add_path`) into room for `room` of them, each made by `make` from its address, host
/// bits cleared, and its length.
fn decode_run<const N: usize, P>(
    bytes: &[u8],
    add_path: bool,
    room: usize,
    make: impl Fn([u8; N], u8) -> P,
) -> Result<Decoded<P>, String> {
    let max = N * 8;
    let mut out = Vec::with_capacity(room);
    let mut ids = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        rest = path_id(rest, add_path, &mut ids)?;
        let Some((&bits, tail)) = rest.split_first() else {
            return Err("prefix length missing after its path identifier".into());
        };
        if usize::from(bits) > max {
            return Err(format!("prefix length {bits} exceeds {max}"));
        }
        let n = usize::from(bits).div_ceil(8);
        let Some(octets) = tail.get(..n) else {
            return Err(format!("prefix of /{bits} truncated"));
        };
        let mut a = [0u8; N];
        a[..n].copy_from_slice(octets);
        // Octets past the length are zero already; clear the last one's host bits.
        if bits % 8 != 0 {
            a[n - 1] &= 0xff << (8 - bits % 8);
        }
        rest = &tail[n..];
        out.push(make(a, bits));
    }
    Ok((out, ids))
}

/// The encoded size of a prefix (without a path identifier).
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

/// Checks that a field's path identifiers fit the session: one per prefix when ADD-PATH is
/// negotiated for the field's family, none otherwise.
pub(crate) fn check_path_ids(
    field: &'static str,
    prefixes: usize,
    ids: usize,
    add_path: bool,
) -> Result<(), EncodeError> {
    let reason = match (add_path, ids) {
        (true, n) if n != prefixes => format!(
            "ADD-PATH is negotiated: {prefixes} prefixes need as many path identifiers, {n} given"
        ),
        (false, n) if n != 0 => {
            format!("{n} path identifiers given but ADD-PATH is not negotiated for the family")
        }
        _ => return Ok(()),
    };
    Err(EncodeError::Field { field, reason })
}

/// Appends prefixes, each preceded by its path identifier when `ids` is not empty (the
/// caller checked with [`check_path_ids`]).
pub(crate) fn encode_with_ids(
    prefixes: impl Iterator<Item = IpNet>,
    ids: &[u32],
    out: &mut Vec<u8>,
) {
    let mut ids = ids.iter();
    for p in prefixes {
        if let Some(id) = ids.next() {
            out.extend_from_slice(&id.to_be_bytes());
        }
        encode_prefix(&p, out);
    }
}

/// Appends prefixes (with `ids` as [`encode_with_ids`]) that must all belong to `family`.
pub(crate) fn encode_family_prefixes(
    field: &'static str,
    prefixes: &[IpNet],
    ids: &[u32],
    (family, add_path): (AfiSafi, bool),
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_path_ids(field, prefixes.len(), ids.len(), add_path)?;
    if let Some(p) = prefixes.iter().find(|p| {
        !matches!(
            (p, family),
            (IpNet::V4(_), AfiSafi::IPV4_UNICAST) | (IpNet::V6(_), AfiSafi::IPV6_UNICAST)
        )
    }) {
        return Err(EncodeError::Field {
            field,
            reason: format!("prefix {p} does not belong to {family:?}"),
        });
    }
    encode_with_ids(prefixes.iter().copied(), ids, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Decoding as it was done before `decode_run`: a prefix at a time, truncated by
    /// `ipnet`.
    fn reference(bytes: &[u8], family: Family, add_path: bool) -> Result<Decoded<IpNet>, String> {
        let mut out = Vec::new();
        let mut ids = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            rest = path_id(rest, add_path, &mut ids)?;
            let Some((&bits, tail)) = rest.split_first() else {
                return Err("prefix length missing after its path identifier".into());
            };
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
        Ok((out, ids))
    }

    /// Runs of prefixes, mostly well formed: lengths up to 128 with their octets (host
    /// bits set at random), with or without path identifiers, perhaps cut short.
    fn runs() -> impl Strategy<Value = Vec<u8>> {
        let prefix = (
            any::<u32>(),
            0u8..=130,
            prop::collection::vec(any::<u8>(), 16),
        );
        (
            prop::collection::vec(prefix, 0..8),
            any::<bool>(),
            0usize..4,
        )
            .prop_map(|(prefixes, ids, cut)| {
                let mut out = Vec::new();
                for (id, bits, octets) in prefixes {
                    if ids {
                        out.extend_from_slice(&id.to_be_bytes());
                    }
                    out.push(bits);
                    let n = usize::from(bits).div_ceil(8).min(16);
                    out.extend_from_slice(&octets[..n]);
                }
                out.truncate(out.len().saturating_sub(cut));
                out
            })
    }

    proptest! {
        /// Both families' runs, with and without path identifiers, decode (or fail) exactly
        /// as a prefix at a time truncated by `ipnet`, the IPv4 NLRI field too.
        #[test]
        fn runs_decode_as_one_prefix_at_a_time(bytes in runs(), add_path in any::<bool>()) {
            for family in [Family::V4, Family::V6] {
                prop_assert_eq!(
                    decode_prefixes(&bytes, family, add_path),
                    reference(&bytes, family, add_path)
                );
            }
            let v4 = reference(&bytes, Family::V4, add_path).map(|(prefixes, ids)| {
                let v4 = prefixes.into_iter().map(|p| match p {
                    IpNet::V4(p) => p,
                    IpNet::V6(_) => unreachable!("IPv4 run"),
                });
                (v4.collect::<Vec<_>>(), ids)
            });
            prop_assert_eq!(decode_v4(&bytes, add_path), v4);
        }
    }
}

//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760) for IPv4 and IPv6 unicast, with RFC 2545
//! link-local next hops, and RFC 7911 path identifiers on families where ADD-PATH was
//! negotiated. A malformed one resets the session (RFC 7606 §7.3).

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use super::super::cursor::Cursor;
use super::super::error::{DecodeError, EncodeError};
use super::super::nlri;
use super::super::nlri::AddPathFamilies;
use super::super::open::AfiSafi;

/// Next hop(s) of MP_REACH_NLRI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MpNextHop {
    /// The global next hop (IPv4 for IPv4 next hops, IPv6 otherwise).
    pub global: IpAddr,
    /// The link-local IPv6 next hop sent after the global one (RFC 2545).
    pub link_local: Option<Ipv6Addr>,
}

/// MP_REACH_NLRI for IPv4 or IPv6 unicast.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family.
    pub family: AfiSafi,
    /// The next hop.
    pub next_hop: MpNextHop,
    /// Reachable prefixes.
    pub nlri: Vec<IpNet>,
    /// The path identifier of each prefix (RFC 7911), in order; empty on a session without
    /// ADD-PATH for the family.
    pub path_ids: Vec<u32>,
}

/// MP_UNREACH_NLRI for IPv4 or IPv6 unicast.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family.
    pub family: AfiSafi,
    /// Withdrawn prefixes.
    pub withdrawn: Vec<IpNet>,
    /// The path identifier of each withdrawn prefix (RFC 7911), in order; empty on a
    /// session without ADD-PATH for the family.
    pub path_ids: Vec<u32>,
}

fn mp_error(attribute: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::MalformedMultiprotocol {
        attribute,
        reason: reason.into(),
    }
}

/// Reads AFI and SAFI; only the unicast families this speaker negotiates are accepted.
fn family_of(
    attribute: &'static str,
    c: &mut Cursor,
) -> Result<(AfiSafi, nlri::Family), DecodeError> {
    let (Some(afi), Some(safi)) = (c.u16(), c.u8()) else {
        return Err(mp_error(attribute, "AFI/SAFI truncated"));
    };
    let family = AfiSafi { afi, safi };
    match family {
        AfiSafi::IPV4_UNICAST => Ok((family, nlri::Family::V4)),
        AfiSafi::IPV6_UNICAST => Ok((family, nlri::Family::V6)),
        _ => Err(mp_error(
            attribute,
            format!("AFI {afi} SAFI {safi} was not negotiated"),
        )),
    }
}

/// The next hop field: 4 bytes (IPv4 NLRI), 16 (global IPv6) or 32 (global then
/// link-local, RFC 2545; RFC 8950 for IPv4 NLRI). `None` for any other length.
fn next_hop_of(family: nlri::Family, bytes: &[u8]) -> Option<MpNextHop> {
    let mut n = Cursor::new(bytes);
    match (family, bytes.len()) {
        (nlri::Family::V4, 4) => Some(MpNextHop {
            global: IpAddr::V4(n.ipv4()?),
            link_local: None,
        }),
        (_, 16) | (_, 32) => Some(MpNextHop {
            global: IpAddr::V6(n.ipv6()?),
            link_local: n.ipv6(),
        }),
        _ => None,
    }
}

/// Decodes an MP_REACH_NLRI value; NLRI of families in `add_path` carry path identifiers.
pub(super) fn decode_mp_reach(
    value: &[u8],
    add_path: AddPathFamilies,
) -> Result<MpReach, DecodeError> {
    const NAME: &str = "MP_REACH_NLRI";
    let mut c = Cursor::new(value);
    let (family, fam) = family_of(NAME, &mut c)?;
    let nh_len = c.u8().ok_or_else(|| mp_error(NAME, "next hop truncated"))?;
    let nh = c
        .take(usize::from(nh_len))
        .ok_or_else(|| mp_error(NAME, "next hop truncated"))?;
    let next_hop = next_hop_of(fam, nh)
        .ok_or_else(|| mp_error(NAME, format!("next hop length {nh_len} is invalid")))?;
    c.u8()
        .ok_or_else(|| mp_error(NAME, "reserved octet missing"))?;
    let (nlri, path_ids) = nlri::decode_prefixes(c.rest(), fam, add_path.contains(family))
        .map_err(|r| mp_error(NAME, r))?;
    Ok(MpReach {
        family,
        next_hop,
        nlri,
        path_ids,
    })
}

/// Decodes an MP_UNREACH_NLRI value; prefixes of families in `add_path` carry path
/// identifiers.
pub(super) fn decode_mp_unreach(
    value: &[u8],
    add_path: AddPathFamilies,
) -> Result<MpUnreach, DecodeError> {
    const NAME: &str = "MP_UNREACH_NLRI";
    let mut c = Cursor::new(value);
    let (family, fam) = family_of(NAME, &mut c)?;
    let (withdrawn, path_ids) = nlri::decode_prefixes(c.rest(), fam, add_path.contains(family))
        .map_err(|r| mp_error(NAME, r))?;
    Ok(MpUnreach {
        family,
        withdrawn,
        path_ids,
    })
}

/// Encodes an MP_REACH_NLRI value (with path identifiers on families in `add_path`).
pub(super) fn encode_mp_reach(
    mp: &MpReach,
    add_path: AddPathFamilies,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(&mp.family.afi.to_be_bytes());
    out.push(mp.family.safi);
    match (mp.next_hop.global, mp.next_hop.link_local) {
        (IpAddr::V4(a), None) if mp.family == AfiSafi::IPV4_UNICAST => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        (IpAddr::V6(a), ll) => {
            out.push(if ll.is_some() { 32 } else { 16 });
            out.extend_from_slice(&a.octets());
            if let Some(ll) = ll {
                out.extend_from_slice(&ll.octets());
            }
        }
        _ => {
            return Err(EncodeError::Field {
                field: "MP_REACH_NLRI next hop",
                reason: format!("{:?} does not fit {:?}", mp.next_hop, mp.family),
            })
        }
    }
    out.push(0);
    let family = (mp.family, add_path.contains(mp.family));
    nlri::encode_family_prefixes("MP_REACH_NLRI", &mp.nlri, &mp.path_ids, family, out)
}

/// Encodes an MP_UNREACH_NLRI value (with path identifiers on families in `add_path`).
pub(super) fn encode_mp_unreach(
    mp: &MpUnreach,
    add_path: AddPathFamilies,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(&mp.family.afi.to_be_bytes());
    out.push(mp.family.safi);
    let family = (mp.family, add_path.contains(mp.family));
    nlri::encode_family_prefixes("MP_UNREACH_NLRI", &mp.withdrawn, &mp.path_ids, family, out)
}

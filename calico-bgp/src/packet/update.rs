//! UPDATE messages (RFC 4271 §4.3), and packing many prefixes into as few UPDATEs as fit.

use ipnet::{IpNet, Ipv4Net};

use super::attribute::{MpReach, MpUnreach, PathAttributes};
use super::cursor::Cursor;
use super::error::{AttributeError, DecodeError, EncodeError, ErrorAction};
use super::nlri;
use super::open::AfiSafi;
use super::{Context, HEADER_LEN, MAX_LEN};

/// An UPDATE message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 prefixes.
    pub withdrawn: Vec<Ipv4Net>,
    /// The path identifier of each withdrawn IPv4 prefix (RFC 7911), in order; empty on a
    /// session without ADD-PATH for IPv4 unicast.
    pub withdrawn_path_ids: Vec<u32>,
    /// Path attributes.
    pub attributes: PathAttributes,
    /// Reachable IPv4 prefixes.
    pub nlri: Vec<Ipv4Net>,
    /// The path identifier of each IPv4 NLRI prefix (RFC 7911), in order; empty on a
    /// session without ADD-PATH for IPv4 unicast.
    pub nlri_path_ids: Vec<u32>,
    /// Malformed attributes handled as RFC 7606 allows (empty for a clean message).
    pub errors: Vec<AttributeError>,
}

impl Update {
    /// Whether RFC 7606 says to handle the announced prefixes as withdrawn: an attribute is
    /// malformed in a way that calls for it, or a mandatory attribute is missing.
    pub fn treat_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action == ErrorAction::TreatAsWithdraw)
    }

    /// Every prefix the message announces, IPv4 NLRI and MP_REACH_NLRI.
    pub fn announced(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.nlri.iter().map(|p| IpNet::V4(*p)).chain(
            self.attributes
                .mp_reach
                .iter()
                .flat_map(|mp| mp.nlri.iter().copied()),
        )
    }

    /// Every prefix the message withdraws, IPv4 withdrawn routes and MP_UNREACH_NLRI.
    pub fn withdrawn_prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.withdrawn.iter().map(|p| IpNet::V4(*p)).chain(
            self.attributes
                .mp_unreach
                .iter()
                .flat_map(|mp| mp.withdrawn.iter().copied()),
        )
    }

    /// Every announced prefix with its path identifier (RFC 7911; 0 on a session without
    /// ADD-PATH for its family), IPv4 NLRI then MP_REACH_NLRI.
    pub fn announced_paths(&self) -> impl Iterator<Item = (IpNet, u32)> + '_ {
        let mp = self.attributes.mp_reach.as_deref();
        with_ids(self.nlri.iter().map(|p| IpNet::V4(*p)), &self.nlri_path_ids).chain(
            mp.into_iter()
                .flat_map(|mp| with_ids(mp.nlri.iter().copied(), &mp.path_ids)),
        )
    }

    /// Every withdrawn prefix with its path identifier (RFC 7911; 0 on a session without
    /// ADD-PATH for its family), IPv4 withdrawn routes then MP_UNREACH_NLRI.
    pub fn withdrawn_paths(&self) -> impl Iterator<Item = (IpNet, u32)> + '_ {
        let mp = self.attributes.mp_unreach.as_deref();
        let v4 = self.withdrawn.iter().map(|p| IpNet::V4(*p));
        with_ids(v4, &self.withdrawn_path_ids).chain(
            mp.into_iter()
                .flat_map(|mp| with_ids(mp.withdrawn.iter().copied(), &mp.path_ids)),
        )
    }

    /// Whether this is an End-of-RIB marker (RFC 4724 §2).
    pub fn is_end_of_rib(&self) -> bool {
        let a = &self.attributes;
        // Asked of every received UPDATE: one that announces or withdraws IPv4 prefixes or
        // carries MP_REACH_NLRI is none, known without comparing the other attributes
        // (which, on an UPDATE a peering's task prepared, are all absent but the
        // NLRI-carrying ones, so that the comparison went through every field).
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || a.mp_reach.is_some() {
            return false;
        }
        match &a.mp_unreach {
            None => *a == PathAttributes::default(),
            Some(m) => {
                m.withdrawn.is_empty()
                    && PathAttributes {
                        mp_unreach: None,
                        ..a.clone()
                    } == PathAttributes::default()
            }
        }
    }

    /// The family whose End-of-RIB marker this is (RFC 4724 §2): an UPDATE with nothing in
    /// it marks IPv4 unicast, one holding only an empty MP_UNREACH_NLRI marks that
    /// attribute's family; `None` for any other UPDATE.
    pub fn end_of_rib_family(&self) -> Option<AfiSafi> {
        if !self.is_end_of_rib() || !self.errors.is_empty() {
            return None;
        }
        Some(
            self.attributes
                .mp_unreach
                .as_ref()
                .map_or(AfiSafi::IPV4_UNICAST, |m| m.family),
        )
    }

    pub(crate) fn decode(body: &[u8], ctx: &Context) -> Result<Update, DecodeError> {
        let mut c = Cursor::new(body);
        let list = |r: &str| DecodeError::MalformedAttributeList(r.to_string());
        let wlen = c
            .u16()
            .ok_or_else(|| list("withdrawn routes length missing"))?;
        let wbytes = c
            .take(usize::from(wlen))
            .ok_or_else(|| list("withdrawn routes length exceeds the message"))?;
        let alen = c
            .u16()
            .ok_or_else(|| list("path attributes length missing"))?;
        let abytes = c
            .take(usize::from(alen))
            .ok_or_else(|| list("path attributes length exceeds the message"))?;
        let add_path = ctx.add_path.contains(AfiSafi::IPV4_UNICAST);
        let (withdrawn, withdrawn_path_ids) =
            nlri::decode_v4(wbytes, add_path).map_err(|reason| {
                DecodeError::InvalidNetworkField {
                    field: "withdrawn routes",
                    reason,
                }
            })?;
        let (nlri, nlri_path_ids) = nlri::decode_v4(c.rest(), add_path).map_err(|reason| {
            DecodeError::InvalidNetworkField {
                field: "NLRI",
                reason,
            }
        })?;
        let mut errors = Vec::new();
        let attributes = PathAttributes::decode(abytes, ctx, &mut errors)?;
        let mut update = Update {
            withdrawn,
            withdrawn_path_ids,
            attributes,
            nlri,
            nlri_path_ids,
            errors,
        };
        update.check_mandatory();
        Ok(update)
    }

    /// RFC 7606 §3(d): a missing mandatory attribute makes the announcements withdrawals.
    fn check_mandatory(&mut self) {
        use super::attribute::code;
        use super::notification::{ErrorCode, UpdateSubcode};
        let announces = !self.nlri.is_empty()
            || self
                .attributes
                .mp_reach
                .as_ref()
                .is_some_and(|m| !m.nlri.is_empty());
        if !announces || self.treat_as_withdraw() {
            return;
        }
        let a = &self.attributes;
        let missing = if a.origin.is_none() {
            Some(code::ORIGIN)
        } else if a.as_path.is_none() {
            Some(code::AS_PATH)
        } else if !self.nlri.is_empty() && a.next_hop.is_none() {
            Some(code::NEXT_HOP)
        } else {
            None
        };
        if let Some(type_code) = missing {
            self.errors.push(AttributeError {
                type_code,
                action: ErrorAction::TreatAsWithdraw,
                reason: "mandatory attribute missing".into(),
                code: ErrorCode::UpdateMessage(UpdateSubcode::MissingWellKnownAttribute),
            });
        }
    }

    pub(crate) fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let add_path = ctx.add_path.contains(AfiSafi::IPV4_UNICAST);
        let (withdrawn, w_ids) = (&self.withdrawn, &self.withdrawn_path_ids);
        nlri::check_path_ids("withdrawn routes", withdrawn.len(), w_ids.len(), add_path)?;
        let (announced, n_ids) = (&self.nlri, &self.nlri_path_ids);
        nlri::check_path_ids("NLRI", announced.len(), n_ids.len(), add_path)?;
        let wpos = out.len();
        out.extend_from_slice(&[0, 0]);
        nlri::encode_with_ids(withdrawn.iter().map(|p| IpNet::V4(*p)), w_ids, out);
        let wlen = out.len() - wpos - 2;
        let apos = out.len();
        out.extend_from_slice(&[0, 0]);
        self.attributes.encode(ctx, out)?;
        let alen = out.len() - apos - 2;
        nlri::encode_with_ids(announced.iter().map(|p| IpNet::V4(*p)), n_ids, out);
        let too_long = |n| EncodeError::TooLong(n + HEADER_LEN);
        let wlen = u16::try_from(wlen).map_err(|_| too_long(wlen))?;
        let alen = u16::try_from(alen).map_err(|_| too_long(alen))?;
        out[wpos..wpos + 2].copy_from_slice(&wlen.to_be_bytes());
        out[apos..apos + 2].copy_from_slice(&alen.to_be_bytes());
        Ok(())
    }
}

/// Packs announcements of `prefixes` (all of one family) with `attributes` into UPDATEs of
/// at most 4096 bytes. IPv4 prefixes go in the NLRI field (with `attributes.next_hop`), IPv6
/// ones in MP_REACH_NLRI with `next_hop`.
pub fn pack_announcements(
    attributes: &PathAttributes,
    mp_next_hop: Option<super::attribute::MpNextHop>,
    prefixes: &[IpNet],
) -> Result<Vec<Update>, EncodeError> {
    pack_path_announcements(attributes, mp_next_hop, prefixes, &[])
}

/// [`pack_announcements`] for a session with ADD-PATH (RFC 7911) for the prefixes' family:
/// `path_ids[i]` is the path identifier of `prefixes[i]` (empty: no path identifiers).
pub fn pack_path_announcements(
    attributes: &PathAttributes,
    mp_next_hop: Option<super::attribute::MpNextHop>,
    prefixes: &[IpNet],
    path_ids: &[u32],
) -> Result<Vec<Update>, EncodeError> {
    nlri::check_path_ids("NLRI", prefixes.len(), path_ids.len(), !path_ids.is_empty())?;
    let mut base = Vec::new();
    attributes.encode(&Context::plain(true), &mut base)?;
    let four_len = base.len();
    base.clear();
    attributes.encode(&Context::plain(false), &mut base)?;
    let attrs_len = four_len.max(base.len());
    // Room for prefixes: header, two length fields, attributes, and for MP_REACH_NLRI its
    // own header (flags, type, 2-byte length, AFI, SAFI, next hop length, next hop, reserved).
    let mp_overhead = 4 + 3 + 1 + 32 + 1;
    let budget = MAX_LEN
        .saturating_sub(HEADER_LEN + 4 + attrs_len + mp_overhead + 16)
        .max(64);
    Ok(chunks_within(prefixes, path_ids, budget)
        .map(|(prefixes, ids)| {
            let mut update = Update {
                attributes: attributes.clone(),
                ..Update::default()
            };
            match (prefixes[0], mp_next_hop) {
                (IpNet::V4(_), None) => {
                    update.nlri = ipv4_only(prefixes);
                    update.nlri_path_ids = ids.to_vec();
                }
                (first, next_hop) => {
                    update.attributes.next_hop = None;
                    update.attributes.mp_reach = Some(Box::new(MpReach {
                        family: family_of(&first),
                        next_hop: next_hop.unwrap_or(super::attribute::MpNextHop {
                            global: std::net::Ipv6Addr::UNSPECIFIED.into(),
                            link_local: None,
                        }),
                        nlri: prefixes.to_vec(),
                        path_ids: ids.to_vec(),
                    }));
                }
            }
            update
        })
        .collect())
}

/// Packs withdrawals of `prefixes` (all of one family) into UPDATEs of at most 4096 bytes.
pub fn pack_withdrawals(prefixes: &[IpNet]) -> Vec<Update> {
    pack_runs(prefixes, &[])
}

/// [`pack_withdrawals`] for a session with ADD-PATH (RFC 7911) for the prefixes' family:
/// `path_ids[i]` is the path identifier of `prefixes[i]` (empty: no path identifiers; any
/// other length is refused).
pub fn pack_path_withdrawals(
    prefixes: &[IpNet],
    path_ids: &[u32],
) -> Result<Vec<Update>, EncodeError> {
    let field = "withdrawn routes";
    nlri::check_path_ids(field, prefixes.len(), path_ids.len(), !path_ids.is_empty())?;
    Ok(pack_runs(prefixes, path_ids))
}

/// Withdrawals of `prefixes` with `path_ids` (one per prefix, or none) in UPDATEs.
fn pack_runs(prefixes: &[IpNet], path_ids: &[u32]) -> Vec<Update> {
    let budget = MAX_LEN - HEADER_LEN - 4 - 16;
    chunks_within(prefixes, path_ids, budget)
        .map(|(prefixes, ids)| {
            let mut update = Update::default();
            match prefixes[0] {
                IpNet::V4(_) => {
                    update.withdrawn = ipv4_only(prefixes);
                    update.withdrawn_path_ids = ids.to_vec();
                }
                IpNet::V6(_) => {
                    update.attributes.mp_unreach = Some(Box::new(MpUnreach {
                        family: AfiSafi::IPV6_UNICAST,
                        withdrawn: prefixes.to_vec(),
                        path_ids: ids.to_vec(),
                    }))
                }
            }
            update
        })
        .collect()
}

/// Pairs prefixes with their path identifiers (0 for those without one).
pub(crate) fn with_ids<'a>(
    prefixes: impl Iterator<Item = IpNet> + 'a,
    ids: &'a [u32],
) -> impl Iterator<Item = (IpNet, u32)> + 'a {
    let ids = ids.iter().copied().chain(std::iter::repeat(0));
    prefixes.zip(ids)
}

fn family_of(prefix: &IpNet) -> AfiSafi {
    match prefix {
        IpNet::V4(_) => AfiSafi::IPV4_UNICAST,
        IpNet::V6(_) => AfiSafi::IPV6_UNICAST,
    }
}

/// Consecutive runs of `prefixes` with their path identifiers (`ids`: one per prefix, or
/// none), none empty, each encoding to at most `budget` bytes of NLRI (a single prefix
/// larger than the budget still gets a run of its own).
fn chunks_within<'a>(
    prefixes: &'a [IpNet],
    ids: &'a [u32],
    budget: usize,
) -> impl Iterator<Item = (&'a [IpNet], &'a [u32])> {
    let id_len = if ids.is_empty() { 0 } else { 4 };
    let (mut rest, mut rest_ids) = (prefixes, ids);
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut size = 0;
        let mut end = 0;
        for p in rest {
            let n = nlri::encoded_len(p) + id_len;
            if end > 0 && size + n > budget {
                break;
            }
            size += n;
            end += 1;
        }
        let (run, tail) = rest.split_at(end);
        rest = tail;
        let (run_ids, tail_ids) = rest_ids.split_at(end.min(rest_ids.len()));
        rest_ids = tail_ids;
        Some((run, run_ids))
    })
}

/// The IPv4 prefixes of `prefixes` (callers pass runs of one family).
fn ipv4_only(prefixes: &[IpNet]) -> Vec<ipnet::Ipv4Net> {
    prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(p) => Some(*p),
            IpNet::V6(_) => None,
        })
        .collect()
}

/// The End-of-RIB marker for a family (RFC 4724 §2).
pub fn end_of_rib(family: AfiSafi) -> Update {
    let mut update = Update::default();
    if family != AfiSafi::IPV4_UNICAST {
        update.attributes.mp_unreach = Some(Box::new(MpUnreach {
            family,
            withdrawn: Vec::new(),
            path_ids: Vec::new(),
        }));
    }
    update
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::packet::attribute::{MpNextHop, MpReach};

    /// RFC 4724 §2's definition, as written: no prefixes, and no attribute but an empty
    /// MP_UNREACH_NLRI.
    fn by_definition(u: &Update) -> bool {
        let a = &u.attributes;
        let empty_v4 = u.withdrawn.is_empty() && u.nlri.is_empty();
        let mut rest = a.clone();
        let unreach = rest.mp_unreach.take();
        empty_v4
            && rest == PathAttributes::default()
            && unreach.is_none_or(|m| m.withdrawn.is_empty())
    }

    #[test]
    fn end_of_rib_is_told_apart_from_every_other_update() {
        let v4 = Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8);
        let v6 = IpNet::V6(ipnet::Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128));
        let mut checked = 0;
        for bits in 0u32..(1 << 8) {
            let on = |i: u32| bits & (1 << i) != 0;
            let mut u = Update::default();
            if on(0) {
                u.withdrawn.push(v4);
            }
            if on(1) {
                u.nlri.push(v4);
            }
            if on(2) {
                u.attributes.med = Some(1);
            }
            if on(3) {
                u.attributes.mp_reach = Some(Box::new(MpReach {
                    family: AfiSafi::IPV6_UNICAST,
                    next_hop: MpNextHop {
                        global: IpAddr::V6(Ipv6Addr::LOCALHOST),
                        link_local: None,
                    },
                    nlri: if on(4) { vec![v6] } else { Vec::new() },
                    path_ids: Vec::new(),
                }));
            }
            if on(5) {
                let mut eor = end_of_rib(AfiSafi::IPV6_UNICAST);
                if on(6) {
                    if let Some(m) = eor.attributes.mp_unreach.as_mut() {
                        m.withdrawn.push(v6);
                    }
                }
                u.attributes.mp_unreach = eor.attributes.mp_unreach.take();
            }
            if on(7) {
                u.attributes.origin = Some(crate::packet::Origin::Igp);
            }
            assert_eq!(u.is_end_of_rib(), by_definition(&u), "{u:?}");
            checked += usize::from(u.is_end_of_rib());
        }
        // The IPv4 marker (bits 4 and 6, which then add nothing, either way) and the IPv6
        // one (bit 4 either way).
        assert_eq!(checked, 6);
    }
}

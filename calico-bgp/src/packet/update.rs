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
    /// Path attributes.
    pub attributes: PathAttributes,
    /// Reachable IPv4 prefixes.
    pub nlri: Vec<Ipv4Net>,
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

    /// Whether this is an End-of-RIB marker (RFC 4724 §2).
    pub fn is_end_of_rib(&self) -> bool {
        let a = &self.attributes;
        let empty_v4 = self.withdrawn.is_empty() && self.nlri.is_empty();
        (empty_v4 && *a == PathAttributes::default())
            || (empty_v4
                && a.mp_unreach
                    .as_ref()
                    .is_some_and(|m| m.withdrawn.is_empty())
                && PathAttributes {
                    mp_unreach: None,
                    ..a.clone()
                } == PathAttributes::default())
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
        let withdrawn =
            nlri::decode_v4(wbytes).map_err(|reason| DecodeError::InvalidNetworkField {
                field: "withdrawn routes",
                reason,
            })?;
        let nlri =
            nlri::decode_v4(c.rest()).map_err(|reason| DecodeError::InvalidNetworkField {
                field: "NLRI",
                reason,
            })?;
        let mut errors = Vec::new();
        let attributes = PathAttributes::decode(abytes, ctx, &mut errors)?;
        let mut update = Update {
            withdrawn,
            attributes,
            nlri,
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
        let wpos = out.len();
        out.extend_from_slice(&[0, 0]);
        for p in &self.withdrawn {
            nlri::encode_prefix(&IpNet::V4(*p), out);
        }
        let wlen = out.len() - wpos - 2;
        let apos = out.len();
        out.extend_from_slice(&[0, 0]);
        self.attributes.encode(ctx, out)?;
        let alen = out.len() - apos - 2;
        for p in &self.nlri {
            nlri::encode_prefix(&IpNet::V4(*p), out);
        }
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
    let mut base = Vec::new();
    attributes.encode(
        &Context {
            four_octet_as: true,
        },
        &mut base,
    )?;
    let four_len = base.len();
    base.clear();
    attributes.encode(
        &Context {
            four_octet_as: false,
        },
        &mut base,
    )?;
    let attrs_len = four_len.max(base.len());
    // Room for prefixes: header, two length fields, attributes, and for MP_REACH_NLRI its
    // own header (flags, type, 2-byte length, AFI, SAFI, next hop length, next hop, reserved).
    let mp_overhead = 4 + 3 + 1 + 32 + 1;
    let budget = MAX_LEN
        .saturating_sub(HEADER_LEN + 4 + attrs_len + mp_overhead + 16)
        .max(64);
    Ok(chunks_within(prefixes, budget)
        .map(|prefixes| {
            let mut update = Update {
                attributes: attributes.clone(),
                ..Update::default()
            };
            match (prefixes[0], mp_next_hop) {
                (IpNet::V4(_), None) => update.nlri = ipv4_only(prefixes),
                (first, next_hop) => {
                    let family = match first {
                        IpNet::V4(_) => AfiSafi::IPV4_UNICAST,
                        IpNet::V6(_) => AfiSafi::IPV6_UNICAST,
                    };
                    update.attributes.next_hop = None;
                    update.attributes.mp_reach = Some(Box::new(MpReach {
                        family,
                        next_hop: next_hop.unwrap_or(super::attribute::MpNextHop {
                            global: std::net::Ipv6Addr::UNSPECIFIED.into(),
                            link_local: None,
                        }),
                        nlri: prefixes.to_vec(),
                    }));
                }
            }
            update
        })
        .collect())
}

/// Packs withdrawals of `prefixes` (all of one family) into UPDATEs of at most 4096 bytes.
pub fn pack_withdrawals(prefixes: &[IpNet]) -> Vec<Update> {
    let budget = MAX_LEN - HEADER_LEN - 4 - 16;
    chunks_within(prefixes, budget)
        .map(|prefixes| {
            let mut update = Update::default();
            match prefixes[0] {
                IpNet::V4(_) => update.withdrawn = ipv4_only(prefixes),
                IpNet::V6(_) => {
                    update.attributes.mp_unreach = Some(Box::new(MpUnreach {
                        family: AfiSafi::IPV6_UNICAST,
                        withdrawn: prefixes.to_vec(),
                    }))
                }
            }
            update
        })
        .collect()
}

/// Consecutive runs of `prefixes`, none empty, each encoding to at most `budget` bytes of
/// NLRI (a single prefix larger than the budget still gets a run of its own).
fn chunks_within(prefixes: &[IpNet], budget: usize) -> impl Iterator<Item = &[IpNet]> {
    let mut rest = prefixes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut size = 0;
        let mut end = 0;
        for p in rest {
            let n = nlri::encoded_len(p);
            if end > 0 && size + n > budget {
                break;
            }
            size += n;
            end += 1;
        }
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
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
        }));
    }
    update
}

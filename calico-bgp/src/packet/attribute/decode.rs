//! Reading the path attributes field of an UPDATE, with RFC 7606 error handling.
//!
//! The list is read attribute by attribute: the header (flags, type, length), then the
//! checks every attribute gets (not repeated, a known type or an optional one, the right
//! flags), then one small section per attribute type for its value. What RFC 7606 handles
//! without a session reset (treat-as-withdraw, attribute-discard) is collected as
//! [`AttributeError`]s; the rest ends decoding with a [`DecodeError`].

use std::net::Ipv4Addr;

use super::super::cursor::Cursor;
use super::super::error::{AttributeError, DecodeError, ErrorAction};
use super::super::notification::{ErrorCode, UpdateSubcode};
use super::super::open::AS_TRANS;
use super::super::Context;
use super::as_path::{merge_as4, parse_segments, Segment};
use super::mp::{decode_mp_reach, decode_mp_unreach};
use super::{
    code, Aggregator, AsPath, Origin, PathAttributes, RawAttribute, ThinVec, FLAG_EXTENDED,
    FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE,
};

impl PathAttributes {
    /// Decodes the path attributes field of an UPDATE. Errors RFC 7606 handles without a
    /// session reset are appended to `errors`; the others are returned.
    pub(crate) fn decode(
        bytes: &[u8],
        ctx: &Context,
        errors: &mut Vec<AttributeError>,
    ) -> Result<PathAttributes, DecodeError> {
        let mut d = Decoder::new(*ctx, errors);
        let mut c = Cursor::new(bytes);
        while !c.is_empty() {
            let Some(raw) = d.next_attribute(&mut c)? else {
                break;
            };
            if d.admit(&raw)? {
                d.value(&raw)?;
            }
        }
        Ok(d.finish())
    }
}

/// One attribute as it came: its header and its value.
struct Raw<'a> {
    flags: u8,
    type_code: u8,
    value: &'a [u8],
}

impl Raw<'_> {
    /// The attribute as it was on the wire: flags, type, length (two octets when the
    /// extended-length flag is set), value.
    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags, self.type_code];
        let len = self.value.len();
        if self.flags & FLAG_EXTENDED != 0 {
            out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        } else {
            out.push(u8::try_from(len).unwrap_or(u8::MAX));
        }
        out.extend_from_slice(self.value);
        out
    }
}

/// Whether `type_code` is MP_REACH_NLRI or MP_UNREACH_NLRI, whose errors reset the session.
fn is_mp(type_code: u8) -> bool {
    matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI)
}

/// Expected (optional, transitive) flag bits of the attributes we know.
fn expected_flags(type_code: u8) -> Option<u8> {
    Some(match type_code {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => FLAG_TRANSITIVE,
        code::MED
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI => FLAG_OPTIONAL,
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::LARGE_COMMUNITY => FLAG_OPTIONAL | FLAG_TRANSITIVE,
        _ => return None,
    })
}

/// The state of one decoding: what is decoded so far, what was seen, what went wrong.
struct Decoder<'e> {
    ctx: Context,
    attrs: PathAttributes,
    /// Type codes seen so far.
    seen: [bool; 256],
    /// AS4_PATH and AS4_AGGREGATOR of a 2-byte speaker, merged in at the end.
    as4_path: Option<Vec<Segment>>,
    as4_aggregator: Option<Aggregator>,
    errors: &'e mut Vec<AttributeError>,
}

impl<'e> Decoder<'e> {
    fn new(ctx: Context, errors: &'e mut Vec<AttributeError>) -> Self {
        Decoder {
            ctx,
            attrs: PathAttributes::default(),
            seen: [false; 256],
            as4_path: None,
            as4_aggregator: None,
            errors,
        }
    }

    fn push(&mut self, type_code: u8, action: ErrorAction, sub: UpdateSubcode, reason: String) {
        self.errors.push(AttributeError {
            type_code,
            action,
            reason,
            code: ErrorCode::UpdateMessage(sub),
        });
    }

    /// Reports an error that makes the UPDATE a withdrawal of its prefixes.
    fn withdraw(&mut self, type_code: u8, sub: UpdateSubcode, reason: impl Into<String>) {
        self.push(type_code, ErrorAction::TreatAsWithdraw, sub, reason.into());
    }

    /// Reports an error that drops the attribute only.
    fn discard(&mut self, type_code: u8, sub: UpdateSubcode, reason: impl Into<String>) {
        self.push(type_code, ErrorAction::AttributeDiscard, sub, reason.into());
    }

    /// Reads the next attribute's header and value. `Ok(None)`: the rest of the list cannot
    /// be read (reported as treat-as-withdraw).
    fn next_attribute<'a>(&mut self, c: &mut Cursor<'a>) -> Result<Option<Raw<'a>>, DecodeError> {
        let (Some(flags), Some(type_code)) = (c.u8(), c.u8()) else {
            self.withdraw(
                0,
                UpdateSubcode::MalformedAttributeList,
                "attribute header truncated",
            );
            return Ok(None);
        };
        let len = if flags & FLAG_EXTENDED != 0 {
            c.u16().map(usize::from)
        } else {
            c.u8().map(usize::from)
        };
        match len.and_then(|len| c.take(len)) {
            Some(value) => Ok(Some(Raw {
                flags,
                type_code,
                value,
            })),
            None if is_mp(type_code) => Err(DecodeError::MalformedAttributeList(format!(
                "attribute {type_code} overruns the attribute list"
            ))),
            None => {
                self.withdraw(
                    type_code,
                    UpdateSubcode::AttributeLengthError,
                    "attribute length overruns the attribute list",
                );
                Ok(None)
            }
        }
    }

    /// Whether this is the first attribute of its type in the list.
    fn first_of_its_type(&mut self, type_code: u8) -> bool {
        self.seen
            .get_mut(usize::from(type_code))
            .is_none_or(|seen| !std::mem::replace(seen, true))
    }

    /// The checks before the value: not repeated, known (an unknown optional transitive
    /// attribute is kept as it came, an unknown optional non-transitive one dropped), and
    /// flagged as its type must be. Whether the value is to be decoded.
    fn admit(&mut self, raw: &Raw) -> Result<bool, DecodeError> {
        let (flags, type_code) = (raw.flags, raw.type_code);
        if !self.first_of_its_type(type_code) {
            if is_mp(type_code) {
                return Err(DecodeError::MalformedAttributeList(format!(
                    "attribute {type_code} appears twice"
                )));
            }
            self.discard(
                type_code,
                UpdateSubcode::MalformedAttributeList,
                "repeated attribute",
            );
            return Ok(false);
        }
        let Some(expected) = expected_flags(type_code) else {
            if flags & FLAG_OPTIONAL == 0 {
                return Err(DecodeError::UnrecognizedWellKnown {
                    type_code,
                    attribute: raw.bytes(),
                });
            }
            if flags & FLAG_TRANSITIVE != 0 {
                self.attrs.unknown.push(RawAttribute {
                    flags: flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE | FLAG_PARTIAL),
                    type_code,
                    value: raw.value.to_vec(),
                });
            }
            return Ok(false);
        };
        if flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) == expected {
            return Ok(true);
        }
        let reason = format!("flags {flags:#04x} conflict with the attribute type");
        if is_mp(type_code) {
            return Err(DecodeError::MalformedMultiprotocol {
                attribute: "MP_(UN)REACH_NLRI",
                reason,
            });
        }
        self.withdraw(type_code, UpdateSubcode::AttributeFlagsError, reason);
        Ok(false)
    }

    /// Decodes the value of an admitted attribute of a known type.
    fn value(&mut self, raw: &Raw) -> Result<(), DecodeError> {
        let value = raw.value;
        match raw.type_code {
            code::ORIGIN => self.origin(value),
            code::AS_PATH => self.as_path(value),
            code::NEXT_HOP => self.attrs.next_hop = self.next_hop(value),
            code::MED => self.attrs.med = self.four_octets(code::MED, "", value),
            code::LOCAL_PREF => {
                self.attrs.local_pref = self.four_octets(code::LOCAL_PREF, "", value)
            }
            code::ATOMIC_AGGREGATE => self.atomic_aggregate(value),
            code::AGGREGATOR | code::AS4_AGGREGATOR => self.aggregator(raw.type_code, value),
            code::COMMUNITIES => self.communities(value),
            code::LARGE_COMMUNITY => self.large_communities(value),
            code::ORIGINATOR_ID => self.originator_id(value),
            code::CLUSTER_LIST => self.cluster_list(value),
            code::MP_REACH_NLRI => {
                self.attrs.mp_reach = Some(Box::new(decode_mp_reach(value, self.ctx.add_path)?))
            }
            code::MP_UNREACH_NLRI => {
                self.attrs.mp_unreach = Some(Box::new(decode_mp_unreach(value, self.ctx.add_path)?))
            }
            code::AS4_PATH => self.as4_path(value),
            _ => {}
        }
        Ok(())
    }

    /// ORIGIN: one octet, 0 to 2.
    fn origin(&mut self, value: &[u8]) {
        match value {
            [o] => match Origin::from_u8(*o) {
                Some(origin) => self.attrs.origin = Some(origin),
                None => self.withdraw(
                    code::ORIGIN,
                    UpdateSubcode::InvalidOriginAttribute,
                    format!("ORIGIN value {o} is undefined"),
                ),
            },
            _ => self.withdraw(
                code::ORIGIN,
                UpdateSubcode::AttributeLengthError,
                format!("ORIGIN length {} is not 1", value.len()),
            ),
        }
    }

    /// AS_PATH: segments of AS numbers as wide as the session negotiated.
    fn as_path(&mut self, value: &[u8]) {
        match parse_segments(value, self.ctx.four_octet_as) {
            Ok(segments) => self.attrs.as_path = Some(AsPath { segments }),
            Err(reason) => self.withdraw(
                code::AS_PATH,
                UpdateSubcode::MalformedAsPath,
                format!("AS_PATH: {reason}"),
            ),
        }
    }

    /// A value of exactly four octets (NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF,
    /// ORIGINATOR_ID); otherwise a treat-as-withdraw error naming the attribute as `name`.
    fn four_octets(&mut self, type_code: u8, name: &str, value: &[u8]) -> Option<u32> {
        match <[u8; 4]>::try_from(value) {
            Ok(octets) => Some(u32::from_be_bytes(octets)),
            Err(_) => {
                self.withdraw(
                    type_code,
                    UpdateSubcode::AttributeLengthError,
                    format!("{name}length {} is not 4", value.len()),
                );
                None
            }
        }
    }

    /// NEXT_HOP: an IPv4 address.
    fn next_hop(&mut self, value: &[u8]) -> Option<Ipv4Addr> {
        self.four_octets(code::NEXT_HOP, "NEXT_HOP ", value)
            .map(Ipv4Addr::from)
    }

    /// ORIGINATOR_ID: a router ID.
    fn originator_id(&mut self, value: &[u8]) {
        if let Some(id) = self.four_octets(code::ORIGINATOR_ID, "ORIGINATOR_ID ", value) {
            self.attrs.originator_id = Some(Ipv4Addr::from(id));
        }
    }

    /// ATOMIC_AGGREGATE: empty.
    fn atomic_aggregate(&mut self, value: &[u8]) {
        if value.is_empty() {
            self.attrs.atomic_aggregate = true;
        } else {
            self.discard(
                code::ATOMIC_AGGREGATE,
                UpdateSubcode::AttributeLengthError,
                "ATOMIC_AGGREGATE is not empty",
            );
        }
    }

    /// AGGREGATOR (AS number as wide as the session negotiated) or AS4_AGGREGATOR (4-byte
    /// AS number, kept for the merge when the session is 2-byte): AS number and address.
    fn aggregator(&mut self, type_code: u8, value: &[u8]) {
        let four = type_code == code::AS4_AGGREGATOR || self.ctx.four_octet_as;
        let size = if four { 4 } else { 2 };
        let mut v = Cursor::new(value);
        let asn = if four {
            v.u32()
        } else {
            v.u16().map(u32::from)
        };
        let (Some(asn), Some(address), true) = (asn, v.ipv4(), v.is_empty()) else {
            self.discard(
                type_code,
                UpdateSubcode::AttributeLengthError,
                format!("AGGREGATOR length {} is not {}", value.len(), size + 4),
            );
            return;
        };
        let aggregator = Aggregator { asn, address };
        if type_code == code::AGGREGATOR {
            self.attrs.aggregator = Some(aggregator);
        } else if !self.ctx.four_octet_as {
            self.as4_aggregator = Some(aggregator);
        }
    }

    /// A non-empty list of four-octet values (COMMUNITIES, CLUSTER_LIST); otherwise a
    /// treat-as-withdraw error naming the attribute as `name`.
    fn four_octet_list(&mut self, type_code: u8, name: &str, value: &[u8]) -> Option<ThinVec<u32>> {
        if value.is_empty() || value.len() % 4 != 0 {
            self.withdraw(
                type_code,
                UpdateSubcode::AttributeLengthError,
                format!("{name} length {} is not a multiple of 4", value.len()),
            );
            return None;
        }
        let mut v = Cursor::new(value);
        let mut list = ThinVec::with_capacity(value.len() / 4);
        list.extend(std::iter::from_fn(|| v.u32()));
        Some(list)
    }

    /// COMMUNITIES (RFC 1997).
    fn communities(&mut self, value: &[u8]) {
        if let Some(list) = self.four_octet_list(code::COMMUNITIES, "COMMUNITIES", value) {
            self.attrs.communities = list;
        }
    }

    /// LARGE_COMMUNITY (RFC 8092): a non-zero multiple of 12 octets, else treat-as-withdraw
    /// (§6); repeated values are removed (§5).
    fn large_communities(&mut self, value: &[u8]) {
        if value.is_empty() || value.len() % 12 != 0 {
            self.withdraw(
                code::LARGE_COMMUNITY,
                UpdateSubcode::AttributeLengthError,
                format!(
                    "LARGE_COMMUNITY length {} is not a non-zero multiple of 12",
                    value.len()
                ),
            );
            return;
        }
        let mut v = Cursor::new(value);
        let mut list: ThinVec<[u32; 3]> = ThinVec::with_capacity(value.len() / 12);
        while let (Some(a), Some(b), Some(c)) = (v.u32(), v.u32(), v.u32()) {
            if !list.contains(&[a, b, c]) {
                list.push([a, b, c]);
            }
        }
        self.attrs.large_communities = list;
    }

    /// CLUSTER_LIST (RFC 4456).
    fn cluster_list(&mut self, value: &[u8]) {
        if let Some(list) = self.four_octet_list(code::CLUSTER_LIST, "CLUSTER_LIST", value) {
            self.attrs.cluster_list = list.into_iter().map(Ipv4Addr::from).collect();
        }
    }

    /// AS4_PATH (RFC 6793): only from a 2-byte speaker (a 4-byte one must not send it, and
    /// it is ignored, §4.1), without confederation segments; merged in at the end.
    fn as4_path(&mut self, value: &[u8]) {
        if self.ctx.four_octet_as {
            return;
        }
        match parse_segments(value, true) {
            Ok(segs) if segs.iter().any(|s| s.kind.is_confed()) => self.discard(
                code::AS4_PATH,
                UpdateSubcode::MalformedAsPath,
                "AS4_PATH carries confederation segments",
            ),
            Ok(segs) => self.as4_path = Some(segs),
            Err(reason) => self.discard(
                code::AS4_PATH,
                UpdateSubcode::MalformedAsPath,
                format!("AS4_PATH: {reason}"),
            ),
        }
    }

    /// The attributes, with AS4_PATH and AS4_AGGREGATOR of a 2-byte speaker merged in.
    fn finish(self) -> PathAttributes {
        let mut attrs = self.attrs;
        if self.ctx.four_octet_as {
            return attrs;
        }
        // RFC 6793 §4.2.3: AS4_* are ignored when AGGREGATOR does not say AS_TRANS.
        if matches!(attrs.aggregator, Some(a) if a.asn != u32::from(AS_TRANS)) {
            return attrs;
        }
        if let (Some(agg), Some(as4)) = (attrs.aggregator.as_mut(), self.as4_aggregator) {
            *agg = as4;
        }
        if let (Some(path), Some(as4)) = (attrs.as_path.as_mut(), self.as4_path) {
            *path = merge_as4(std::mem::take(path), as4);
        }
        attrs
    }
}

//! Path attributes (RFC 4271 §4.3, §5) with RFC 7606 error handling, AS4_PATH merging
//! (RFC 6793), route reflection attributes (RFC 4456) and multiprotocol NLRI (RFC 4760).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::cursor::Cursor;
use super::error::{AttributeError, DecodeError, EncodeError, ErrorAction};
use super::nlri;
use super::notification::{ErrorCode, UpdateSubcode};
use super::open::{AfiSafi, AS_TRANS};
use super::Context;

/// Attribute flag: optional.
pub const FLAG_OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive.
pub const FLAG_TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial.
pub const FLAG_PARTIAL: u8 = 0x20;
/// Attribute flag: extended (2-byte) length.
pub const FLAG_EXTENDED: u8 = 0x10;

/// Attribute type codes this speaker knows.
pub mod code {
    /// ORIGIN.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC.
    pub const MED: u8 = 4;
    /// LOCAL_PREF.
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456).
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456).
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
}

/// ORIGIN values, in decision-process order (lower is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// 0: learned from an interior protocol.
    Igp,
    /// 1: learned from EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

/// The kind of an AS_PATH segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// 1: unordered set (counts as one AS).
    Set,
    /// 2: ordered sequence.
    Sequence,
    /// 3: confederation sequence (counts as zero).
    ConfedSequence,
    /// 4: confederation set (counts as zero).
    ConfedSet,
}

impl SegmentKind {
    fn from_u8(v: u8) -> Option<SegmentKind> {
        Some(match v {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            SegmentKind::Set => 1,
            SegmentKind::Sequence => 2,
            SegmentKind::ConfedSequence => 3,
            SegmentKind::ConfedSet => 4,
        }
    }

    fn is_confed(self) -> bool {
        matches!(self, SegmentKind::ConfedSequence | SegmentKind::ConfedSet)
    }
}

/// One AS_PATH segment (1 to 255 AS numbers).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Set or sequence.
    pub kind: SegmentKind,
    /// The AS numbers (4-byte, whatever the session encodes).
    pub asns: Vec<u32>,
}

/// An AS_PATH with 4-byte AS numbers (AS4_PATH already merged in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    /// The segments, leftmost first.
    pub segments: Vec<Segment>,
}

impl AsPath {
    /// A path of one sequence.
    pub fn sequence(asns: Vec<u32>) -> AsPath {
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![Segment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// Path length for the decision process: a set counts 1, confederation segments 0
    /// (RFC 4271 §9.1.2.2, RFC 5065).
    pub fn length(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                _ => 0,
            })
            .sum()
    }

    /// The neighbouring AS: the first AS of a leading sequence.
    pub fn first_as(&self) -> Option<u32> {
        self.segments
            .iter()
            .find(|s| !s.kind.is_confed())
            .filter(|s| s.kind == SegmentKind::Sequence)
            .and_then(|s| s.asns.first().copied())
    }

    /// Whether `asn` appears anywhere in the path (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The path with `asn` prepended to its leading sequence.
    pub fn prepended(&self, asn: u32) -> AsPath {
        let mut segments = self.segments.clone();
        match segments.first_mut() {
            Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < 255 => {
                s.asns.insert(0, asn)
            }
            _ => segments.insert(
                0,
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
        AsPath { segments }
    }
}

/// The AGGREGATOR attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The aggregating AS (4-byte, AS4_AGGREGATOR merged).
    pub asn: u32,
    /// The aggregating speaker.
    pub address: Ipv4Addr,
}

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
}

/// MP_UNREACH_NLRI for IPv4 or IPv6 unicast.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family.
    pub family: AfiSafi,
    /// Withdrawn prefixes.
    pub withdrawn: Vec<IpNet>,
}

/// An optional transitive attribute this speaker does not know, passed on as it came.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags (without the extended-length bit, which encoding chooses).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH (4-byte); `None` when the attribute is absent.
    pub as_path: Option<AsPath>,
    /// NEXT_HOP for IPv4 NLRI.
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES.
    pub communities: Vec<u32>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST.
    pub cluster_list: Vec<Ipv4Addr>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<Box<MpReach>>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<Box<MpUnreach>>,
    /// Unknown optional transitive attributes.
    pub unknown: Vec<RawAttribute>,
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
        code::AGGREGATOR | code::COMMUNITIES | code::AS4_PATH | code::AS4_AGGREGATOR => {
            FLAG_OPTIONAL | FLAG_TRANSITIVE
        }
        _ => return None,
    })
}

struct Errors<'a>(&'a mut Vec<AttributeError>);

impl Errors<'_> {
    fn push(&mut self, type_code: u8, action: ErrorAction, sub: UpdateSubcode, reason: String) {
        self.0.push(AttributeError {
            type_code,
            action,
            reason,
            code: ErrorCode::UpdateMessage(sub),
        });
    }

    fn withdraw(&mut self, type_code: u8, sub: UpdateSubcode, reason: impl Into<String>) {
        self.push(type_code, ErrorAction::TreatAsWithdraw, sub, reason.into());
    }

    fn discard(&mut self, type_code: u8, sub: UpdateSubcode, reason: impl Into<String>) {
        self.push(type_code, ErrorAction::AttributeDiscard, sub, reason.into());
    }
}

fn parse_segments(value: &[u8], as_size: usize) -> Result<Vec<Segment>, String> {
    let mut c = Cursor::new(value);
    let mut segments = Vec::new();
    while !c.is_empty() {
        let (Some(kind), Some(count)) = (c.u8(), c.u8()) else {
            return Err("segment header truncated".into());
        };
        let kind = SegmentKind::from_u8(kind).ok_or(format!("segment type {kind} is undefined"))?;
        if count == 0 {
            return Err("segment of zero AS numbers".into());
        }
        let bytes = c
            .take(usize::from(count) * as_size)
            .ok_or("segment overruns the attribute")?;
        let asns = bytes
            .chunks_exact(as_size)
            .map(|b| match as_size {
                2 => u32::from(u16::from_be_bytes([b[0], b[1]])),
                _ => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            })
            .collect();
        segments.push(Segment { kind, asns });
    }
    Ok(segments)
}

/// Merges AS_PATH and AS4_PATH received from a 2-byte speaker (RFC 6793 §4.2.3).
fn merge_as4(as_path: AsPath, as4: Vec<Segment>) -> AsPath {
    let as4 = AsPath { segments: as4 };
    let (n, m) = (as_path.length(), as4.length());
    if n < m {
        return as_path;
    }
    let mut need = n - m;
    let mut segments = Vec::new();
    for seg in as_path.segments {
        if need == 0 && !seg.kind.is_confed() {
            break;
        }
        match seg.kind {
            SegmentKind::Sequence if seg.asns.len() > need => {
                segments.push(Segment {
                    kind: seg.kind,
                    asns: seg.asns[..need].to_vec(),
                });
                need = 0;
            }
            SegmentKind::Sequence => {
                need -= seg.asns.len();
                segments.push(seg);
            }
            SegmentKind::Set => {
                need -= 1;
                segments.push(seg);
            }
            _ => segments.push(seg),
        }
    }
    segments.retain(|s| !s.asns.is_empty());
    segments.extend(as4.segments);
    AsPath { segments }
}

impl PathAttributes {
    /// Decodes the path attributes field of an UPDATE. Errors RFC 7606 handles without a
    /// session reset are appended to `errors`; the others are returned.
    pub(crate) fn decode(
        bytes: &[u8],
        ctx: &Context,
        errors: &mut Vec<AttributeError>,
    ) -> Result<PathAttributes, DecodeError> {
        let mut errs = Errors(errors);
        let mut attrs = PathAttributes::default();
        let mut seen = [false; 256];
        let mut as4_path: Option<Vec<Segment>> = None;
        let mut as4_aggregator: Option<Aggregator> = None;
        let as_size = if ctx.four_octet_as { 4 } else { 2 };
        let mut c = Cursor::new(bytes);
        while !c.is_empty() {
            let (Some(flags), Some(type_code)) = (c.u8(), c.u8()) else {
                errs.withdraw(
                    0,
                    UpdateSubcode::MalformedAttributeList,
                    "attribute header truncated",
                );
                break;
            };
            let len = if flags & FLAG_EXTENDED != 0 {
                c.u16().map(usize::from)
            } else {
                c.u8().map(usize::from)
            };
            let Some(value) = len.and_then(|len| c.take(len)) else {
                if matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                    return Err(DecodeError::MalformedAttributeList(format!(
                        "attribute {type_code} overruns the attribute list"
                    )));
                }
                errs.withdraw(
                    type_code,
                    UpdateSubcode::AttributeLengthError,
                    "attribute length overruns the attribute list",
                );
                break;
            };
            if std::mem::replace(&mut seen[usize::from(type_code)], true) {
                if matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                    return Err(DecodeError::MalformedAttributeList(format!(
                        "attribute {type_code} appears twice"
                    )));
                }
                errs.discard(
                    type_code,
                    UpdateSubcode::MalformedAttributeList,
                    "repeated attribute",
                );
                continue;
            }
            let Some(expected) = expected_flags(type_code) else {
                if flags & FLAG_OPTIONAL == 0 {
                    return Err(DecodeError::UnrecognizedWellKnown(type_code));
                }
                if flags & FLAG_TRANSITIVE != 0 {
                    attrs.unknown.push(RawAttribute {
                        flags: flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE | FLAG_PARTIAL),
                        type_code,
                        value: value.to_vec(),
                    });
                }
                continue;
            };
            if flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) != expected {
                if matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                    return Err(DecodeError::MalformedMultiprotocol {
                        attribute: "MP_(UN)REACH_NLRI",
                        reason: format!("flags {flags:#04x} conflict with the attribute type"),
                    });
                }
                errs.withdraw(
                    type_code,
                    UpdateSubcode::AttributeFlagsError,
                    format!("flags {flags:#04x} conflict with the attribute type"),
                );
                continue;
            }
            let mut v = Cursor::new(value);
            let four = |v: &mut Cursor| if value.len() == 4 { v.u32() } else { None };
            match type_code {
                code::ORIGIN => match (value.len(), value.first()) {
                    (1, Some(0)) => attrs.origin = Some(Origin::Igp),
                    (1, Some(1)) => attrs.origin = Some(Origin::Egp),
                    (1, Some(2)) => attrs.origin = Some(Origin::Incomplete),
                    (1, Some(o)) => errs.withdraw(
                        type_code,
                        UpdateSubcode::InvalidOriginAttribute,
                        format!("ORIGIN value {o} is undefined"),
                    ),
                    _ => errs.withdraw(
                        type_code,
                        UpdateSubcode::AttributeLengthError,
                        format!("ORIGIN length {} is not 1", value.len()),
                    ),
                },
                code::AS_PATH => match parse_segments(value, as_size) {
                    Ok(segments) => attrs.as_path = Some(AsPath { segments }),
                    Err(reason) => errs.withdraw(
                        type_code,
                        UpdateSubcode::MalformedAsPath,
                        format!("AS_PATH: {reason}"),
                    ),
                },
                code::NEXT_HOP => match four(&mut v) {
                    Some(nh) => attrs.next_hop = Some(Ipv4Addr::from(nh)),
                    None => errs.withdraw(
                        type_code,
                        UpdateSubcode::AttributeLengthError,
                        format!("NEXT_HOP length {} is not 4", value.len()),
                    ),
                },
                code::MED | code::LOCAL_PREF => match four(&mut v) {
                    Some(x) if type_code == code::MED => attrs.med = Some(x),
                    Some(x) => attrs.local_pref = Some(x),
                    None => errs.withdraw(
                        type_code,
                        UpdateSubcode::AttributeLengthError,
                        format!("length {} is not 4", value.len()),
                    ),
                },
                code::ATOMIC_AGGREGATE => {
                    if value.is_empty() {
                        attrs.atomic_aggregate = true;
                    } else {
                        errs.discard(
                            type_code,
                            UpdateSubcode::AttributeLengthError,
                            "ATOMIC_AGGREGATE is not empty",
                        );
                    }
                }
                code::AGGREGATOR | code::AS4_AGGREGATOR => {
                    let size = if type_code == code::AGGREGATOR {
                        as_size
                    } else {
                        4
                    };
                    if value.len() != size + 4 {
                        errs.discard(
                            type_code,
                            UpdateSubcode::AttributeLengthError,
                            format!("AGGREGATOR length {} is not {}", value.len(), size + 4),
                        );
                        continue;
                    }
                    let asn = if size == 2 {
                        v.u16().map(u32::from)
                    } else {
                        v.u32()
                    };
                    let (Some(asn), Some(address)) = (asn, v.ipv4()) else {
                        continue;
                    };
                    let agg = Aggregator { asn, address };
                    if type_code == code::AGGREGATOR {
                        attrs.aggregator = Some(agg);
                    } else if !ctx.four_octet_as {
                        as4_aggregator = Some(agg);
                    }
                }
                code::COMMUNITIES => {
                    if value.is_empty() || value.len() % 4 != 0 {
                        errs.withdraw(
                            type_code,
                            UpdateSubcode::AttributeLengthError,
                            format!("COMMUNITIES length {} is not a multiple of 4", value.len()),
                        );
                        continue;
                    }
                    attrs.communities = value
                        .chunks_exact(4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                }
                code::ORIGINATOR_ID => match four(&mut v) {
                    Some(id) => attrs.originator_id = Some(Ipv4Addr::from(id)),
                    None => errs.withdraw(
                        type_code,
                        UpdateSubcode::AttributeLengthError,
                        format!("ORIGINATOR_ID length {} is not 4", value.len()),
                    ),
                },
                code::CLUSTER_LIST => {
                    if value.is_empty() || value.len() % 4 != 0 {
                        errs.withdraw(
                            type_code,
                            UpdateSubcode::AttributeLengthError,
                            format!("CLUSTER_LIST length {} is not a multiple of 4", value.len()),
                        );
                        continue;
                    }
                    attrs.cluster_list = value
                        .chunks_exact(4)
                        .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                        .collect();
                }
                code::MP_REACH_NLRI => attrs.mp_reach = Some(Box::new(decode_mp_reach(value)?)),
                code::MP_UNREACH_NLRI => {
                    attrs.mp_unreach = Some(Box::new(decode_mp_unreach(value)?))
                }
                code::AS4_PATH => {
                    if ctx.four_octet_as {
                        // A 4-byte speaker must not send it; ignore (RFC 6793 §4.1).
                        continue;
                    }
                    match parse_segments(value, 4) {
                        Ok(segs) if segs.iter().any(|s| s.kind.is_confed()) => errs.discard(
                            type_code,
                            UpdateSubcode::MalformedAsPath,
                            "AS4_PATH carries confederation segments",
                        ),
                        Ok(segs) => as4_path = Some(segs),
                        Err(reason) => errs.discard(
                            type_code,
                            UpdateSubcode::MalformedAsPath,
                            format!("AS4_PATH: {reason}"),
                        ),
                    }
                }
                _ => {}
            }
        }
        if !ctx.four_octet_as {
            // RFC 6793 §4.2.3: AS4_* are ignored when AGGREGATOR does not say AS_TRANS.
            let ignore_as4 = matches!(attrs.aggregator, Some(a) if a.asn != u32::from(AS_TRANS));
            if !ignore_as4 {
                if let (Some(agg), Some(as4)) = (attrs.aggregator.as_mut(), as4_aggregator) {
                    *agg = as4;
                }
                if let (Some(path), Some(as4)) = (attrs.as_path.as_mut(), as4_path) {
                    *path = merge_as4(std::mem::take(path), as4);
                }
            }
        }
        Ok(attrs)
    }

    /// Encodes the attributes for a session with the given capabilities.
    pub(crate) fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut tmp = Vec::new();
        if let Some(origin) = self.origin {
            put(out, FLAG_TRANSITIVE, code::ORIGIN, &[origin as u8]);
        }
        let mut as4: Option<Vec<u8>> = None;
        if let Some(path) = &self.as_path {
            tmp.clear();
            let needs_as4 = encode_segments(path, ctx.four_octet_as, &mut tmp)?;
            put(out, FLAG_TRANSITIVE, code::AS_PATH, &tmp);
            if needs_as4 {
                let mut b = Vec::new();
                let non_confed = AsPath {
                    segments: path
                        .segments
                        .iter()
                        .filter(|s| !s.kind.is_confed())
                        .cloned()
                        .collect(),
                };
                encode_segments(&non_confed, true, &mut b)?;
                as4 = Some(b);
            }
        }
        if let Some(nh) = self.next_hop {
            put(out, FLAG_TRANSITIVE, code::NEXT_HOP, &nh.octets());
        }
        if let Some(med) = self.med {
            put(out, FLAG_OPTIONAL, code::MED, &med.to_be_bytes());
        }
        if let Some(lp) = self.local_pref {
            put(out, FLAG_TRANSITIVE, code::LOCAL_PREF, &lp.to_be_bytes());
        }
        if self.atomic_aggregate {
            put(out, FLAG_TRANSITIVE, code::ATOMIC_AGGREGATE, &[]);
        }
        let mut as4_agg = None;
        if let Some(agg) = self.aggregator {
            tmp.clear();
            if ctx.four_octet_as {
                tmp.extend_from_slice(&agg.asn.to_be_bytes());
            } else {
                let short = u16::try_from(agg.asn).unwrap_or(AS_TRANS);
                if u32::from(short) != agg.asn {
                    as4_agg = Some(agg);
                }
                tmp.extend_from_slice(&short.to_be_bytes());
            }
            tmp.extend_from_slice(&agg.address.octets());
            put(out, FLAG_OPTIONAL | FLAG_TRANSITIVE, code::AGGREGATOR, &tmp);
        }
        if !self.communities.is_empty() {
            tmp.clear();
            for c in &self.communities {
                tmp.extend_from_slice(&c.to_be_bytes());
            }
            put(
                out,
                FLAG_OPTIONAL | FLAG_TRANSITIVE,
                code::COMMUNITIES,
                &tmp,
            );
        }
        if let Some(id) = self.originator_id {
            put(out, FLAG_OPTIONAL, code::ORIGINATOR_ID, &id.octets());
        }
        if !self.cluster_list.is_empty() {
            tmp.clear();
            for id in &self.cluster_list {
                tmp.extend_from_slice(&id.octets());
            }
            put(out, FLAG_OPTIONAL, code::CLUSTER_LIST, &tmp);
        }
        if let Some(mp) = &self.mp_reach {
            tmp.clear();
            encode_mp_reach(mp, &mut tmp)?;
            put(out, FLAG_OPTIONAL, code::MP_REACH_NLRI, &tmp);
        }
        if let Some(mp) = &self.mp_unreach {
            tmp.clear();
            tmp.extend_from_slice(&mp.family.afi.to_be_bytes());
            tmp.push(mp.family.safi);
            nlri::encode_family_prefixes(&mp.withdrawn, mp.family, &mut tmp)?;
            put(out, FLAG_OPTIONAL, code::MP_UNREACH_NLRI, &tmp);
        }
        if let Some(b) = as4 {
            put(out, FLAG_OPTIONAL | FLAG_TRANSITIVE, code::AS4_PATH, &b);
        }
        if let Some(agg) = as4_agg {
            tmp.clear();
            tmp.extend_from_slice(&agg.asn.to_be_bytes());
            tmp.extend_from_slice(&agg.address.octets());
            put(
                out,
                FLAG_OPTIONAL | FLAG_TRANSITIVE,
                code::AS4_AGGREGATOR,
                &tmp,
            );
        }
        for raw in &self.unknown {
            put(out, raw.flags & !FLAG_EXTENDED, raw.type_code, &raw.value);
        }
        Ok(())
    }
}

/// Writes one attribute, choosing the extended length when needed.
fn put(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.push(flags | FLAG_EXTENDED);
        out.push(type_code);
        out.extend_from_slice(&(value.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    } else {
        out.push(flags);
        out.push(type_code);
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
}

/// Encodes segments with 4- or 2-byte AS numbers; returns whether a 2-byte encoding had to
/// use AS_TRANS (so AS4_PATH is needed).
fn encode_segments(path: &AsPath, four: bool, out: &mut Vec<u8>) -> Result<bool, EncodeError> {
    let mut lossy = false;
    for seg in &path.segments {
        for chunk in seg.asns.chunks(255) {
            out.push(seg.kind.to_u8());
            out.push(chunk.len() as u8);
            for &asn in chunk {
                if four {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let short = u16::try_from(asn).unwrap_or(AS_TRANS);
                    lossy |= u32::from(short) != asn;
                    out.extend_from_slice(&short.to_be_bytes());
                }
            }
        }
    }
    Ok(lossy)
}

fn mp_error(attribute: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::MalformedMultiprotocol {
        attribute,
        reason: reason.into(),
    }
}

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

fn decode_mp_reach(value: &[u8]) -> Result<MpReach, DecodeError> {
    const NAME: &str = "MP_REACH_NLRI";
    let mut c = Cursor::new(value);
    let (family, fam) = family_of(NAME, &mut c)?;
    let nh_len = c.u8().ok_or_else(|| mp_error(NAME, "next hop truncated"))?;
    let nh = c
        .take(usize::from(nh_len))
        .ok_or_else(|| mp_error(NAME, "next hop truncated"))?;
    let mut n = Cursor::new(nh);
    let next_hop = match (fam, nh_len) {
        (nlri::Family::V4, 4) => MpNextHop {
            global: n.ipv4().map(IpAddr::V4).unwrap_or(IpAddr::V4(0.into())),
            link_local: None,
        },
        // 16: global only; 32: global then link-local (RFC 2545, RFC 8950 for IPv4 NLRI).
        (_, 16) | (_, 32) => MpNextHop {
            global: IpAddr::V6(n.ipv6().unwrap_or(Ipv6Addr::UNSPECIFIED)),
            link_local: n.ipv6(),
        },
        _ => {
            return Err(mp_error(
                NAME,
                format!("next hop length {nh_len} is invalid"),
            ))
        }
    };
    c.u8()
        .ok_or_else(|| mp_error(NAME, "reserved octet missing"))?;
    let nlri = nlri::decode_prefixes(c.rest(), fam).map_err(|r| mp_error(NAME, r))?;
    Ok(MpReach {
        family,
        next_hop,
        nlri,
    })
}

fn decode_mp_unreach(value: &[u8]) -> Result<MpUnreach, DecodeError> {
    const NAME: &str = "MP_UNREACH_NLRI";
    let mut c = Cursor::new(value);
    let (family, fam) = family_of(NAME, &mut c)?;
    let withdrawn = nlri::decode_prefixes(c.rest(), fam).map_err(|r| mp_error(NAME, r))?;
    Ok(MpUnreach { family, withdrawn })
}

fn encode_mp_reach(mp: &MpReach, out: &mut Vec<u8>) -> Result<(), EncodeError> {
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
    nlri::encode_family_prefixes(&mp.nlri, mp.family, out)
}

//! Path attributes (RFC 4271 §4.3, §5) with RFC 7606 error handling, AS4_PATH merging
//! (RFC 6793), route reflection attributes (RFC 4456), multiprotocol NLRI (RFC 4760) and
//! communities (RFC 1997) and large communities (RFC 8092).
//!
//! One module per concern: [`PathAttributes`] and the small attribute types here; the AS
//! path and its 2-/4-byte forms in `as_path`; MP_REACH_NLRI / MP_UNREACH_NLRI in `mp`;
//! reading the attribute list, one small section per attribute, in `decode`; writing it in
//! `encode`.

mod as_path;
mod decode;
mod encode;
mod mp;

use std::net::Ipv4Addr;

pub use thin_vec::{thin_vec, ThinVec};

pub use as_path::{AsPath, Segment, SegmentKind};
pub use mp::{MpNextHop, MpReach, MpUnreach};

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
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITY: u8 = 32;
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

impl Origin {
    /// The attribute's value octet.
    fn to_u8(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }

    /// The origin an attribute value octet names, if any.
    fn from_u8(v: u8) -> Option<Origin> {
        Some(match v {
            0 => Origin::Igp,
            1 => Origin::Egp,
            2 => Origin::Incomplete,
            _ => return None,
        })
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
///
/// The attribute lists are [`ThinVec`]s (one pointer each, the length and capacity kept
/// with the elements, an empty list allocating nothing): the RIB keeps one of these per
/// distinct attribute set, a quarter of a million in a full table, where three-word
/// `Vec`s would cost 64 bytes more each.
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
    pub communities: ThinVec<u32>,
    /// LARGE_COMMUNITY (RFC 8092): global administrator, local data 1 and 2 of each; no
    /// value twice (a receiver removes repeats, §5).
    pub large_communities: ThinVec<[u32; 3]>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST.
    pub cluster_list: ThinVec<Ipv4Addr>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<Box<MpReach>>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<Box<MpUnreach>>,
    /// Unknown optional transitive attributes.
    pub unknown: ThinVec<RawAttribute>,
}

impl PathAttributes {
    /// Gives back the lists' spare capacity, so that a set kept for long (the RIB's
    /// interned sets) holds no more than its elements. The decoder allocates most lists
    /// to their length already; then this changes nothing.
    pub fn shrink_to_fit(&mut self) {
        if let Some(path) = &mut self.as_path {
            path.segments.shrink_to_fit();
            for segment in &mut path.segments {
                segment.asns.shrink_to_fit();
            }
        }
        self.communities.shrink_to_fit();
        self.large_communities.shrink_to_fit();
        self.cluster_list.shrink_to_fit();
        self.unknown.shrink_to_fit();
    }
}

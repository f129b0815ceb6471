//! Writing the path attributes field of an UPDATE for a session's encoding: AS numbers 4 or
//! 2 bytes wide (then AS4_PATH and AS4_AGGREGATOR carry what 2 bytes cannot, RFC 6793), each
//! attribute with the short or the extended length as its value needs.

use super::super::error::EncodeError;
use super::super::open::AS_TRANS;
use super::super::Context;
use super::as_path::encode_segments;
use super::mp::{encode_mp_reach, encode_mp_unreach};
use super::{
    code, Aggregator, AsPath, PathAttributes, FLAG_EXTENDED, FLAG_OPTIONAL, FLAG_TRANSITIVE,
};

/// Optional and transitive.
const OPTIONAL_TRANSITIVE: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;

impl PathAttributes {
    /// Encodes the attributes for a session with the given capabilities.
    pub(crate) fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut tmp = Vec::new();
        if let Some(origin) = self.origin {
            put(out, FLAG_TRANSITIVE, code::ORIGIN, &[origin.to_u8()])?;
        }
        let as4_path = match &self.as_path {
            Some(path) => put_as_path(path, ctx, out)?,
            None => None,
        };
        if let Some(nh) = self.next_hop {
            put(out, FLAG_TRANSITIVE, code::NEXT_HOP, &nh.octets())?;
        }
        if let Some(med) = self.med {
            put(out, FLAG_OPTIONAL, code::MED, &med.to_be_bytes())?;
        }
        if let Some(lp) = self.local_pref {
            put(out, FLAG_TRANSITIVE, code::LOCAL_PREF, &lp.to_be_bytes())?;
        }
        if self.atomic_aggregate {
            put(out, FLAG_TRANSITIVE, code::ATOMIC_AGGREGATE, &[])?;
        }
        let as4_aggregator = match self.aggregator {
            Some(agg) => put_aggregator(agg, ctx, out)?,
            None => None,
        };
        self.put_reflection_and_communities(out)?;
        if let Some(mp) = &self.mp_reach {
            tmp.clear();
            encode_mp_reach(mp, ctx.add_path, &mut tmp)?;
            put(out, FLAG_OPTIONAL, code::MP_REACH_NLRI, &tmp)?;
        }
        if let Some(mp) = &self.mp_unreach {
            tmp.clear();
            encode_mp_unreach(mp, ctx.add_path, &mut tmp)?;
            put(out, FLAG_OPTIONAL, code::MP_UNREACH_NLRI, &tmp)?;
        }
        if let Some(b) = as4_path {
            put(out, OPTIONAL_TRANSITIVE, code::AS4_PATH, &b)?;
        }
        if let Some(agg) = as4_aggregator {
            let value = aggregator_value(agg.asn.to_be_bytes(), agg);
            put(out, OPTIONAL_TRANSITIVE, code::AS4_AGGREGATOR, &value)?;
        }
        if !self.large_communities.is_empty() {
            let value: Vec<u8> = self
                .large_communities
                .iter()
                .flat_map(|c| c.iter().flat_map(|v| v.to_be_bytes()))
                .collect();
            put(out, OPTIONAL_TRANSITIVE, code::LARGE_COMMUNITY, &value)?;
        }
        for raw in &self.unknown {
            put(out, raw.flags & !FLAG_EXTENDED, raw.type_code, &raw.value)?;
        }
        Ok(())
    }

    /// COMMUNITIES, ORIGINATOR_ID and CLUSTER_LIST, in this order, those present.
    fn put_reflection_and_communities(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if !self.communities.is_empty() {
            let value: Vec<u8> = self
                .communities
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect();
            put(out, OPTIONAL_TRANSITIVE, code::COMMUNITIES, &value)?;
        }
        if let Some(id) = self.originator_id {
            put(out, FLAG_OPTIONAL, code::ORIGINATOR_ID, &id.octets())?;
        }
        if !self.cluster_list.is_empty() {
            let value: Vec<u8> = self
                .cluster_list
                .iter()
                .flat_map(|id| id.octets())
                .collect();
            put(out, FLAG_OPTIONAL, code::CLUSTER_LIST, &value)?;
        }
        Ok(())
    }
}

/// Writes AS_PATH; returns the AS4_PATH value to send as well when a 2-byte encoding had to
/// put AS_TRANS in place of AS numbers (the path without confederation segments).
fn put_as_path(
    path: &AsPath,
    ctx: &Context,
    out: &mut Vec<u8>,
) -> Result<Option<Vec<u8>>, EncodeError> {
    let mut value = Vec::new();
    let needs_as4 = encode_segments(path, ctx.four_octet_as, &mut value);
    put(out, FLAG_TRANSITIVE, code::AS_PATH, &value)?;
    if !needs_as4 {
        return Ok(None);
    }
    let non_confed = AsPath {
        segments: path
            .segments
            .iter()
            .filter(|s| !s.kind.is_confed())
            .cloned()
            .collect(),
    };
    let mut as4 = Vec::new();
    encode_segments(&non_confed, true, &mut as4);
    Ok(Some(as4))
}

/// Writes AGGREGATOR; returns the aggregator to send as AS4_AGGREGATOR as well when a
/// 2-byte encoding had to put AS_TRANS in place of its AS number.
fn put_aggregator(
    agg: Aggregator,
    ctx: &Context,
    out: &mut Vec<u8>,
) -> Result<Option<Aggregator>, EncodeError> {
    if ctx.four_octet_as {
        let value = aggregator_value(agg.asn.to_be_bytes(), agg);
        put(out, OPTIONAL_TRANSITIVE, code::AGGREGATOR, &value)?;
        return Ok(None);
    }
    let short = u16::try_from(agg.asn).unwrap_or(AS_TRANS);
    let value = aggregator_value(short.to_be_bytes(), agg);
    put(out, OPTIONAL_TRANSITIVE, code::AGGREGATOR, &value)?;
    Ok((u32::from(short) != agg.asn).then_some(agg))
}

/// An (AS4_)AGGREGATOR value: the AS number as encoded, then the address.
fn aggregator_value<const N: usize>(asn: [u8; N], agg: Aggregator) -> Vec<u8> {
    let mut value = Vec::with_capacity(N + 4);
    value.extend_from_slice(&asn);
    value.extend_from_slice(&agg.address.octets());
    value
}

/// Writes one attribute: flags, type, length (one octet, or two with the extended-length
/// flag when the value is longer than 255 bytes), value.
fn put(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) -> Result<(), EncodeError> {
    match u8::try_from(value.len()) {
        Ok(len) => out.extend_from_slice(&[flags, type_code, len]),
        Err(_) => {
            let len = u16::try_from(value.len()).map_err(|_| EncodeError::Field {
                field: "path attribute",
                reason: format!(
                    "attribute {type_code}: {} bytes exceed the 65535 an attribute can carry",
                    value.len()
                ),
            })?;
            out.extend_from_slice(&[flags | FLAG_EXTENDED, type_code]);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    Ok(())
}

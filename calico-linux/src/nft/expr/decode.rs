//! Reading expressions back from the kernel (untrusted: a rule another program wrote, or
//! a kernel that answers unexpectedly): each decoder checks its attributes and returns a
//! [`WireError`] or `None` (an expression calico-rs never writes), never panics.

use super::super::netlink::{parse_be32, parse_string, Attrs, WireError};
use super::super::proto::*;
use super::{CmpOp, Expr, VerdictCode};

impl Expr {
    /// Reads one `NFTA_LIST_ELEM` payload back. `Ok(None)` for an expression calico-rs never
    /// writes (the rule is then foreign).
    pub fn decode(elem: &[u8]) -> Result<Option<Expr>, WireError> {
        let mut name = None;
        let mut data: &[u8] = &[];
        for a in Attrs::new(elem) {
            match a? {
                (NFTA_EXPR_NAME, d) => name = Some(parse_string(d)?),
                (NFTA_EXPR_DATA, d) => data = d,
                _ => {}
            }
        }
        let name = name.ok_or(WireError("expression without a name"))?;
        let f = Fields::new(data)?;
        match name.as_str() {
            "meta" => decode_meta(&f).map(Some),
            "payload" => decode_payload(&f),
            "cmp" => decode_cmp(&f),
            "range" => decode_range(&f),
            "lookup" => decode_lookup(&f).map(Some),
            "bitwise" => decode_bitwise(&f),
            "ct" => decode_ct(&f),
            "immediate" => decode_immediate(&f),
            "log" => decode_log(&f).map(Some),
            "limit" => decode_limit(&f),
            "notrack" => Ok(Some(Expr::Notrack)),
            "nat" => decode_nat(&f),
            _ => Ok(None),
        }
    }
}

fn decode_meta(f: &Fields) -> Result<Expr, WireError> {
    match (f.u32(NFTA_META_DREG)?, f.u32(NFTA_META_SREG)?) {
        (Some(dreg), _) => Ok(Expr::Meta {
            key: f.req_u32(NFTA_META_KEY)?,
            dreg,
        }),
        (None, Some(sreg)) => Ok(Expr::MetaSet {
            key: f.req_u32(NFTA_META_KEY)?,
            sreg,
        }),
        _ => Err(WireError("meta without register")),
    }
}

fn decode_payload(f: &Fields) -> Result<Option<Expr>, WireError> {
    if f.get(NFTA_PAYLOAD_SREG).is_some() {
        return Ok(None); // payload write: never ours
    }
    Ok(Some(Expr::Payload {
        base: f.req_u32(NFTA_PAYLOAD_BASE)?,
        offset: f.req_u32(NFTA_PAYLOAD_OFFSET)?,
        len: f.req_u32(NFTA_PAYLOAD_LEN)?,
        dreg: f.req_u32(NFTA_PAYLOAD_DREG)?,
    }))
}

fn decode_cmp(f: &Fields) -> Result<Option<Expr>, WireError> {
    let sreg = f.req_u32(NFTA_CMP_SREG)?;
    let Some(op) = parse_op(f.req_u32(NFTA_CMP_OP)?) else {
        return Ok(None);
    };
    let data = f.value(NFTA_CMP_DATA)?;
    Ok(Some(Expr::Cmp { sreg, op, data }))
}

fn decode_range(f: &Fields) -> Result<Option<Expr>, WireError> {
    let sreg = f.req_u32(NFTA_RANGE_SREG)?;
    let Some(op) = parse_op(f.req_u32(NFTA_RANGE_OP)?) else {
        return Ok(None);
    };
    let from = f.value(NFTA_RANGE_FROM_DATA)?;
    let to = f.value(NFTA_RANGE_TO_DATA)?;
    Ok(Some(Expr::Range { sreg, op, from, to }))
}

fn decode_lookup(f: &Fields) -> Result<Expr, WireError> {
    let set = f
        .get(NFTA_LOOKUP_SET)
        .ok_or(WireError("lookup without set"))?;
    Ok(Expr::Lookup {
        set: parse_string(set)?,
        set_id: None,
        sreg: f.req_u32(NFTA_LOOKUP_SREG)?,
        dreg: f.u32(NFTA_LOOKUP_DREG)?,
        invert: f.u32(NFTA_LOOKUP_FLAGS)?.unwrap_or(0) & NFT_LOOKUP_F_INV != 0,
    })
}

fn decode_bitwise(f: &Fields) -> Result<Option<Expr>, WireError> {
    if f.u32(NFTA_BITWISE_OP)?.unwrap_or(0) != 0 {
        return Ok(None); // shifts: never ours
    }
    Ok(Some(Expr::Bitwise {
        sreg: f.req_u32(NFTA_BITWISE_SREG)?,
        dreg: f.req_u32(NFTA_BITWISE_DREG)?,
        mask: f.value(NFTA_BITWISE_MASK)?,
        xor: f.value(NFTA_BITWISE_XOR)?,
    }))
}

fn decode_ct(f: &Fields) -> Result<Option<Expr>, WireError> {
    if f.get(NFTA_CT_DIRECTION).is_some() {
        return Ok(None); // direction-specific keys: never ours
    }
    Ok(Some(Expr::Ct {
        key: f.req_u32(NFTA_CT_KEY)?,
        dreg: f.req_u32(NFTA_CT_DREG)?,
    }))
}

fn decode_immediate(f: &Fields) -> Result<Option<Expr>, WireError> {
    let dreg = f.req_u32(NFTA_IMMEDIATE_DREG)?;
    let data = f
        .get(NFTA_IMMEDIATE_DATA)
        .ok_or(WireError("immediate without data"))?;
    if dreg != NFT_REG_VERDICT {
        let data = decode_value(data)?;
        return Ok(Some(Expr::Immediate { dreg, data }));
    }
    Ok(decode_verdict_data(data)?.map(Expr::Verdict))
}

fn decode_nat(f: &Fields) -> Result<Option<Expr>, WireError> {
    let Some(addr_min) = f.u32(NFTA_NAT_REG_ADDR_MIN)? else {
        return Ok(None); // a NAT to no address (masquerade-like): never ours
    };
    if f.get(NFTA_NAT_REG_PROTO_MIN).is_some() || f.get(NFTA_NAT_REG_PROTO_MAX).is_some() {
        return Ok(None); // port translation: never ours
    }
    Ok(Some(Expr::Nat {
        nat_type: f.req_u32(NFTA_NAT_TYPE)?,
        family: f.req_u32(NFTA_NAT_FAMILY)?,
        addr_min,
        addr_max: f.u32(NFTA_NAT_REG_ADDR_MAX)?,
        flags: f.u32(NFTA_NAT_FLAGS)?,
    }))
}

fn decode_log(f: &Fields) -> Result<Expr, WireError> {
    let prefix = f.get(NFTA_LOG_PREFIX).map(parse_string).transpose()?;
    let group = f
        .get(NFTA_LOG_GROUP)
        .map(|d| <[u8; 2]>::try_from(d).map(u16::from_be_bytes))
        .transpose()
        .map_err(|_| WireError("u16 attribute of wrong length"))?;
    Ok(Expr::Log {
        prefix: prefix.unwrap_or_default(),
        group,
    })
}

fn decode_limit(f: &Fields) -> Result<Option<Expr>, WireError> {
    let be64 = |ty| -> Result<u64, WireError> {
        let d = f
            .get(ty)
            .ok_or(WireError("expression lacks a required attribute"))?;
        <[u8; 8]>::try_from(d)
            .map(u64::from_be_bytes)
            .map_err(|_| WireError("u64 attribute of wrong length"))
    };
    let rate = be64(NFTA_LIMIT_RATE)?;
    let unit = be64(NFTA_LIMIT_UNIT)?;
    let burst = f.u32(NFTA_LIMIT_BURST)?.unwrap_or(0);
    let ty = f.u32(NFTA_LIMIT_TYPE)?.unwrap_or(NFT_LIMIT_PKTS);
    let flags = f.u32(NFTA_LIMIT_FLAGS)?.unwrap_or(0);
    if ty != NFT_LIMIT_PKTS || flags != 0 {
        return Ok(None); // byte limits, `over`: never ours
    }
    Ok(Some(Expr::Limit { rate, unit, burst }))
}

fn parse_op(code: u32) -> Option<CmpOp> {
    match code {
        0 => Some(CmpOp::Eq),
        1 => Some(CmpOp::Neq),
        _ => None,
    }
}

/// Reads a data nest holding `NFTA_DATA_VERDICT`; `None` for verdicts calico-rs never uses.
pub fn decode_verdict_data(data: &[u8]) -> Result<Option<VerdictCode>, WireError> {
    for a in Attrs::new(data) {
        let (ty, d) = a?;
        if ty != NFTA_DATA_VERDICT {
            continue;
        }
        let mut code = None;
        let mut chain = None;
        for a in Attrs::new(d) {
            match a? {
                (NFTA_VERDICT_CODE, c) => code = Some(parse_be32(c)? as i32),
                (NFTA_VERDICT_CHAIN, c) => chain = Some(parse_string(c)?),
                _ => {}
            }
        }
        return Ok(match (code, chain) {
            (Some(NF_ACCEPT), None) => Some(VerdictCode::Accept),
            (Some(NF_DROP), None) => Some(VerdictCode::Drop),
            (Some(NFT_RETURN), None) => Some(VerdictCode::Return),
            (Some(NFT_JUMP), Some(c)) => Some(VerdictCode::Jump(c)),
            (Some(NFT_GOTO), Some(c)) => Some(VerdictCode::Goto(c)),
            _ => None,
        });
    }
    Err(WireError("data without a verdict"))
}

/// Reads a data nest holding `NFTA_DATA_VALUE`.
pub fn decode_value(data: &[u8]) -> Result<Vec<u8>, WireError> {
    for a in Attrs::new(data) {
        if let (NFTA_DATA_VALUE, v) = a? {
            return Ok(v.to_vec());
        }
    }
    Err(WireError("data without a value"))
}

/// The attributes of an expression's data, by type (the first of a type wins).
struct Fields<'a> {
    by_type: Vec<(u16, &'a [u8])>,
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8]) -> Result<Self, WireError> {
        let by_type = Attrs::new(data).collect::<Result<_, _>>()?;
        Ok(Fields { by_type })
    }
    fn get(&self, ty: u16) -> Option<&'a [u8]> {
        self.by_type.iter().find(|(t, _)| *t == ty).map(|(_, d)| *d)
    }
    fn u32(&self, ty: u16) -> Result<Option<u32>, WireError> {
        self.get(ty).map(parse_be32).transpose()
    }
    fn req_u32(&self, ty: u16) -> Result<u32, WireError> {
        self.u32(ty)?
            .ok_or(WireError("expression lacks a required attribute"))
    }
    fn value(&self, ty: u16) -> Result<Vec<u8>, WireError> {
        decode_value(
            self.get(ty)
                .ok_or(WireError("expression lacks a data attribute"))?,
        )
    }
}

//! The nf_tables expressions calico-rs uses, as plain values, with their netlink encoding
//! and decoding.

use super::netlink::{parse_be32, parse_string, Attrs, MsgWriter, WireError};
use super::proto::*;

/// The verdict of an `immediate` expression writing the verdict register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerdictCode {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump <chain>`.
    Jump(String),
    /// `goto <chain>`.
    Goto(String),
}

/// Comparison operator of `cmp` and `range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal (`NFT_CMP_EQ`, `NFT_RANGE_EQ`).
    Eq,
    /// Not equal (`NFT_CMP_NEQ`, `NFT_RANGE_NEQ`).
    Neq,
}

/// One nf_tables expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `meta` load: a meta key into `dreg`.
    Meta {
        /// `NFT_META_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `meta` set: `sreg` into a meta key.
    MetaSet {
        /// `NFT_META_*`.
        key: u32,
        /// Source register.
        sreg: u32,
    },
    /// `payload` load.
    Payload {
        /// `NFT_PAYLOAD_*_HEADER`.
        base: u32,
        /// Byte offset in that header.
        offset: u32,
        /// Bytes.
        len: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `cmp`.
    Cmp {
        /// Source register.
        sreg: u32,
        /// Operator.
        op: CmpOp,
        /// Value.
        data: Vec<u8>,
    },
    /// `range` (both ends included).
    Range {
        /// Source register.
        sreg: u32,
        /// Operator.
        op: CmpOp,
        /// Low end.
        from: Vec<u8>,
        /// High end.
        to: Vec<u8>,
    },
    /// `lookup` in a set (`dreg` set for a map lookup).
    Lookup {
        /// Set name (for an anonymous set being created, `__set%d`).
        set: String,
        /// The set's id within the transaction, for a set created in it.
        set_id: Option<u32>,
        /// Source register.
        sreg: u32,
        /// Destination register of a map lookup.
        dreg: Option<u32>,
        /// Match when absent.
        invert: bool,
    },
    /// `bitwise`: `dreg = (sreg & mask) ^ xor`.
    Bitwise {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// Mask.
        mask: Vec<u8>,
        /// Xor.
        xor: Vec<u8>,
    },
    /// `ct` load.
    Ct {
        /// `NFT_CT_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `immediate` verdict.
    Verdict(VerdictCode),
    /// `log prefix [group]`.
    Log {
        /// Prefix.
        prefix: String,
        /// The netlink log group (NFLOG); `None`: the kernel log.
        group: Option<u16>,
    },
    /// `limit rate <rate>/<unit seconds> burst <burst> packets` (packet limit, not inverted).
    Limit {
        /// Packets per unit.
        rate: u64,
        /// The unit, in seconds.
        unit: u64,
        /// Burst, in packets.
        burst: u32,
    },
    /// `notrack`: conntrack leaves the packet alone (no attributes).
    Notrack,
    /// `immediate` data: `data` into a data register.
    Immediate {
        /// Destination register.
        dreg: u32,
        /// The value.
        data: Vec<u8>,
    },
    /// `nat`: source or destination NAT to the address in a register.
    Nat {
        /// `NFT_NAT_SNAT` or `NFT_NAT_DNAT`.
        nat_type: u32,
        /// `NFPROTO_IPV4` or `NFPROTO_IPV6`.
        family: u32,
        /// The register holding the (lowest) address.
        addr_min: u32,
        /// The register holding the highest address: not written (one address); the
        /// kernel dumps it equal to `addr_min`.
        addr_max: Option<u32>,
        /// `NF_NAT_RANGE_*` flags: not written; the kernel dumps `NF_NAT_RANGE_MAP_IPS`.
        flags: Option<u32>,
    },
}

impl Expr {
    /// The expression's kernel name.
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Range { .. } => "range",
            Expr::Lookup { .. } => "lookup",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Ct { .. } => "ct",
            Expr::Verdict(_) | Expr::Immediate { .. } => "immediate",
            Expr::Nat { .. } => "nat",
            Expr::Log { .. } => "log",
            Expr::Limit { .. } => "limit",
            Expr::Notrack => "notrack",
        }
    }

    /// Writes the expression as one `NFTA_LIST_ELEM` of a rule's expression list.
    pub fn encode(&self, w: &mut MsgWriter) {
        w.nest(NFTA_LIST_ELEM);
        w.string(NFTA_EXPR_NAME, self.name());
        if *self == Expr::Notrack {
            // No data at all, as libnftnl writes it (and the kernel dumps it).
            w.end_nest();
            return;
        }
        w.nest(NFTA_EXPR_DATA);
        match self {
            Expr::Meta { key, dreg } => {
                w.be32(NFTA_META_KEY, *key);
                w.be32(NFTA_META_DREG, *dreg);
            }
            Expr::MetaSet { key, sreg } => {
                w.be32(NFTA_META_KEY, *key);
                w.be32(NFTA_META_SREG, *sreg);
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                w.be32(NFTA_PAYLOAD_DREG, *dreg);
                w.be32(NFTA_PAYLOAD_BASE, *base);
                w.be32(NFTA_PAYLOAD_OFFSET, *offset);
                w.be32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                w.be32(NFTA_CMP_SREG, *sreg);
                w.be32(NFTA_CMP_OP, op_code(*op));
                value(w, NFTA_CMP_DATA, data);
            }
            Expr::Range { sreg, op, from, to } => {
                w.be32(NFTA_RANGE_SREG, *sreg);
                w.be32(NFTA_RANGE_OP, op_code(*op));
                value(w, NFTA_RANGE_FROM_DATA, from);
                value(w, NFTA_RANGE_TO_DATA, to);
            }
            Expr::Lookup {
                set,
                set_id,
                sreg,
                dreg,
                invert,
            } => {
                w.string(NFTA_LOOKUP_SET, set);
                if let Some(id) = set_id {
                    w.be32(NFTA_LOOKUP_SET_ID, *id);
                }
                w.be32(NFTA_LOOKUP_SREG, *sreg);
                if let Some(d) = dreg {
                    w.be32(NFTA_LOOKUP_DREG, *d);
                }
                if *invert {
                    w.be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
                }
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                w.be32(NFTA_BITWISE_SREG, *sreg);
                w.be32(NFTA_BITWISE_DREG, *dreg);
                w.be32(
                    NFTA_BITWISE_LEN,
                    u32::try_from(mask.len()).unwrap_or(u32::MAX),
                );
                value(w, NFTA_BITWISE_MASK, mask);
                value(w, NFTA_BITWISE_XOR, xor);
            }
            Expr::Ct { key, dreg } => {
                w.be32(NFTA_CT_KEY, *key);
                w.be32(NFTA_CT_DREG, *dreg);
            }
            Expr::Verdict(v) => {
                w.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                w.nest(NFTA_IMMEDIATE_DATA);
                encode_verdict(w, v);
                w.end_nest();
            }
            Expr::Log { prefix, group } => {
                w.string(NFTA_LOG_PREFIX, prefix);
                if let Some(g) = group {
                    w.bytes(NFTA_LOG_GROUP, &g.to_be_bytes());
                }
            }
            Expr::Limit { rate, unit, burst } => {
                w.bytes(NFTA_LIMIT_RATE, &rate.to_be_bytes());
                w.bytes(NFTA_LIMIT_UNIT, &unit.to_be_bytes());
                w.be32(NFTA_LIMIT_BURST, *burst);
                w.be32(NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS);
                w.be32(NFTA_LIMIT_FLAGS, 0);
            }
            Expr::Notrack => {}
            Expr::Immediate { dreg, data } => {
                w.be32(NFTA_IMMEDIATE_DREG, *dreg);
                value(w, NFTA_IMMEDIATE_DATA, data);
            }
            Expr::Nat {
                nat_type,
                family,
                addr_min,
                addr_max,
                flags,
            } => {
                w.be32(NFTA_NAT_TYPE, *nat_type);
                w.be32(NFTA_NAT_FAMILY, *family);
                w.be32(NFTA_NAT_REG_ADDR_MIN, *addr_min);
                if let Some(max) = addr_max {
                    w.be32(NFTA_NAT_REG_ADDR_MAX, *max);
                }
                if let Some(f) = flags {
                    w.be32(NFTA_NAT_FLAGS, *f);
                }
            }
        }
        w.end_nest();
        w.end_nest();
    }

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

fn op_code(op: CmpOp) -> u32 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Neq => 1,
    }
}

fn parse_op(code: u32) -> Option<CmpOp> {
    match code {
        0 => Some(CmpOp::Eq),
        1 => Some(CmpOp::Neq),
        _ => None,
    }
}

fn value(w: &mut MsgWriter, ty: u16, data: &[u8]) {
    w.nest(ty);
    w.bytes(NFTA_DATA_VALUE, data);
    w.end_nest();
}

/// Writes an `NFTA_DATA_VERDICT` nest.
pub fn encode_verdict(w: &mut MsgWriter, v: &VerdictCode) {
    w.nest(NFTA_DATA_VERDICT);
    let (code, chain) = match v {
        VerdictCode::Accept => (NF_ACCEPT, None),
        VerdictCode::Drop => (NF_DROP, None),
        VerdictCode::Return => (NFT_RETURN, None),
        VerdictCode::Jump(c) => (NFT_JUMP, Some(c)),
        VerdictCode::Goto(c) => (NFT_GOTO, Some(c)),
    };
    w.be32(NFTA_VERDICT_CODE, code as u32);
    if let Some(c) = chain {
        w.string(NFTA_VERDICT_CHAIN, c);
    }
    w.end_nest();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::netlink::Attrs;

    fn round_trip(e: &Expr) -> Expr {
        let mut w = MsgWriter::new(1);
        e.encode(&mut w);
        let (ty, payload) = Attrs::new(w.finish().unwrap()).next().unwrap().unwrap();
        assert_eq!(ty, NFTA_LIST_ELEM);
        Expr::decode(payload).unwrap().unwrap()
    }

    #[test]
    fn every_expression_decodes_to_itself() {
        let all = [
            Expr::Meta {
                key: NFT_META_L4PROTO,
                dreg: 1,
            },
            Expr::MetaSet {
                key: NFT_META_MARK,
                sreg: 1,
            },
            Expr::Payload {
                base: 1,
                offset: 12,
                len: 4,
                dreg: 8,
            },
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Neq,
                data: vec![6],
            },
            Expr::Range {
                sreg: 1,
                op: CmpOp::Eq,
                from: vec![0, 80],
                to: vec![0, 90],
            },
            Expr::Lookup {
                set: "s".into(),
                set_id: None,
                sreg: 1,
                dreg: Some(0),
                invert: false,
            },
            Expr::Lookup {
                set: "s".into(),
                set_id: None,
                sreg: 8,
                dreg: None,
                invert: true,
            },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: vec![6, 0, 0, 0],
                xor: vec![0; 4],
            },
            Expr::Ct {
                key: NFT_CT_STATE,
                dreg: 1,
            },
            Expr::Verdict(VerdictCode::Accept),
            Expr::Verdict(VerdictCode::Drop),
            Expr::Verdict(VerdictCode::Return),
            Expr::Verdict(VerdictCode::Jump("c".into())),
            Expr::Verdict(VerdictCode::Goto("c".into())),
            Expr::Log {
                prefix: "calico: ".into(),
                group: None,
            },
            Expr::Log {
                prefix: "A pol-in-x 3".into(),
                group: Some(0x1234),
            },
            Expr::Limit {
                rate: 10,
                unit: 1,
                burst: 10,
            },
            Expr::Notrack,
            Expr::Immediate {
                dreg: NFT_REG_1,
                data: vec![10, 0, 0, 1],
            },
            Expr::Nat {
                nat_type: NFT_NAT_DNAT,
                family: u32::from(NFPROTO_IPV4),
                addr_min: NFT_REG_1,
                addr_max: None,
                flags: None,
            },
            Expr::Nat {
                nat_type: NFT_NAT_SNAT,
                family: u32::from(NFPROTO_IPV6),
                addr_min: NFT_REG_1,
                addr_max: Some(NFT_REG_1),
                flags: Some(NF_NAT_RANGE_MAP_IPS),
            },
        ];
        for e in &all {
            assert_eq!(&round_trip(e), e);
        }
    }

    #[test]
    fn malformed_expressions_are_typed_errors() {
        let elem = |f: &dyn Fn(&mut MsgWriter)| {
            let mut w = MsgWriter::new(1);
            f(&mut w);
            w.finish().unwrap().to_vec()
        };
        let no_name = elem(&|w| w.bytes(NFTA_EXPR_DATA, &[]));
        assert_eq!(
            Expr::decode(&no_name),
            Err(WireError("expression without a name"))
        );
        let truncated = elem(&|w| {
            w.string(NFTA_EXPR_NAME, "cmp");
            w.bytes(NFTA_EXPR_DATA, &[8, 0, 1, 0, 0]);
        });
        assert_eq!(
            Expr::decode(&truncated),
            Err(WireError("attribute length out of bounds"))
        );
        let short_register = elem(&|w| {
            w.string(NFTA_EXPR_NAME, "meta");
            w.nest(NFTA_EXPR_DATA);
            w.bytes(NFTA_META_DREG, &[0, 1]);
            w.end_nest();
        });
        assert_eq!(
            Expr::decode(&short_register),
            Err(WireError("u32 attribute of wrong length"))
        );
        let unknown = elem(&|w| w.string(NFTA_EXPR_NAME, "counter"));
        assert_eq!(Expr::decode(&unknown), Ok(None));
    }
}

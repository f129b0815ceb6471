//! The nf_tables expressions calico-rs uses, as plain values, with their netlink encoding
//! and decoding.

use super::netlink::MsgWriter;
use super::proto::*;

mod decode;
#[cfg(test)]
mod tests;

pub use decode::{decode_value, decode_verdict_data};

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
}

fn op_code(op: CmpOp) -> u32 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Neq => 1,
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

//! One IR [`Rule`] ↔ the nf_tables expressions that implement it.
//!
//! Every IR match has one fixed expression pattern, so a rule read back from the kernel
//! parses to exactly the IR it was rendered from; anything else (a rule added by hand, a
//! rule edited in place) does not parse and is reported as foreign, so resync replaces it.
//!
//! | IR                         | expressions (register)                                   |
//! |----------------------------|----------------------------------------------------------|
//! | `Ipv4(v)`                  | `meta nfproto` → 1, `cmp eq 2/10`                        |
//! | `L4Proto`                  | `meta l4proto` → 1, `cmp eq/neq`                         |
//! | `AddrEq`                   | `payload ip(6) saddr/daddr` → 1, `cmp eq/neq` address     |
//! | `AddrInSet`                | `payload ip(6) saddr/daddr` → 1, `lookup [inv]`          |
//! | `AddrProtoPortInSet`       | addr → 8, `meta l4proto` → 9/12, `th port` → 10/13, `lookup` |
//! | `Port` positive            | `th port` → 1, `cmp eq` / `range eq` / anonymous interval set |
//! | `Port` negated             | `th port` → 1, one `cmp neq` / `range neq` per range      |
//! | `Icmp`                     | `meta l4proto` → 2, `cmp eq 1/58`, `th` type(+code) → 2, `cmp` |
//! | `Ct`                       | `ct state` → 1, `bitwise`, `cmp neq 0`                   |
//! | `MarkSet`                  | `meta mark` → 1, `bitwise`, `cmp neq 0`                  |
//! | `Log` / `SetMark` / `ClearMark` | `log prefix` / `meta mark` → 1, `bitwise`, `meta mark set` |
//! | `Dispatch`                 | `meta iifname/oifname` → 1, `lookup` map → verdict       |

use calico_core::dataplane::ir::{CtState, IfaceKey, Match, Rule, Side, Statement, Verdict};

use crate::nft::expr::{CmpOp, Expr, VerdictCode};
use crate::nft::proto::*;

/// An IR rule that this backend cannot express.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule cannot be rendered: {0}")]
pub struct RenderError(pub String);

/// A positive port match over several ranges needs an anonymous interval set created in the
/// same transaction, just before its rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnonPortSet {
    /// The set's id within the transaction.
    pub id: u32,
    /// Port ranges, both ends included.
    pub ranges: Vec<(u16, u16)>,
}

/// The name an anonymous set is created with (the kernel fills the number in).
pub const ANON_SET_NAME: &str = "__set%d";

const REG_ICMP: u32 = 2;

/// Gives the port ranges of an anonymous set read back from the kernel, by its name.
pub type AnonResolver<'a> = dyn Fn(&str) -> Option<Vec<(u16, u16)>> + 'a;

fn nh_addr(side: Side, v4: bool) -> (u32, u32) {
    match (v4, side) {
        (true, Side::Src) => (12, 4),
        (true, Side::Dst) => (16, 4),
        (false, Side::Src) => (8, 16),
        (false, Side::Dst) => (24, 16),
    }
}

/// Loads the IPv4 or IPv6 address on `side` into `dreg`.
fn load_addr(side: Side, v4: bool, dreg: u32) -> Expr {
    let (offset, len) = nh_addr(side, v4);
    Expr::Payload {
        base: NFT_PAYLOAD_NETWORK_HEADER,
        offset,
        len,
        dreg,
    }
}

fn th_port(side: Side) -> u32 {
    match side {
        Side::Src => 0,
        Side::Dst => 2,
    }
}

fn ne32(v: u32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// Renders `rule`. Anonymous port sets the rule needs are appended to `anon`, with ids from
/// `next_id`.
pub fn render(
    rule: &Rule,
    next_id: &mut u32,
    anon: &mut Vec<AnonPortSet>,
) -> Result<Vec<Expr>, RenderError> {
    let family = rule.matches.iter().find_map(|m| match m {
        Match::Ipv4(v) => Some(*v),
        _ => None,
    });
    let need_family = || {
        family.ok_or_else(|| {
            RenderError("an address match needs the rule to match an IP family".into())
        })
    };
    let mut out = Vec::new();
    for m in &rule.matches {
        match m {
            Match::Ipv4(v4) => {
                out.push(Expr::Meta {
                    key: NFT_META_NFPROTO,
                    dreg: NFT_REG_1,
                });
                let p = if *v4 { NFPROTO_IPV4 } else { NFPROTO_IPV6 };
                out.push(Expr::Cmp {
                    sreg: NFT_REG_1,
                    op: CmpOp::Eq,
                    data: vec![p],
                });
            }
            Match::L4Proto { proto, negate } => {
                out.push(Expr::Meta {
                    key: NFT_META_L4PROTO,
                    dreg: NFT_REG_1,
                });
                out.push(Expr::Cmp {
                    sreg: NFT_REG_1,
                    op: op(*negate),
                    data: vec![*proto],
                });
            }
            Match::AddrEq { side, addr, negate } => {
                let v4 = need_family()?;
                if v4 != addr.is_ipv4() {
                    return Err(RenderError(format!(
                        "address {addr} compared in a rule of the other family"
                    )));
                }
                out.push(load_addr(*side, v4, NFT_REG_1));
                out.push(Expr::Cmp {
                    sreg: NFT_REG_1,
                    op: op(*negate),
                    data: match addr {
                        std::net::IpAddr::V4(a) => a.octets().to_vec(),
                        std::net::IpAddr::V6(a) => a.octets().to_vec(),
                    },
                });
            }
            Match::AddrInSet { side, set, negate } => {
                out.push(load_addr(*side, need_family()?, NFT_REG_1));
                out.push(lookup(set, NFT_REG_1, *negate));
            }
            Match::AddrProtoPortInSet { side, set, negate } => {
                let v4 = need_family()?;
                let words = nh_addr(*side, v4).1 / 4;
                out.push(load_addr(*side, v4, NFT_REG32_00));
                out.push(Expr::Meta {
                    key: NFT_META_L4PROTO,
                    dreg: NFT_REG32_00 + words,
                });
                out.push(Expr::Payload {
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: th_port(*side),
                    len: 2,
                    dreg: NFT_REG32_00 + words + 1,
                });
                out.push(lookup(set, NFT_REG32_00, *negate));
            }
            Match::Port {
                side,
                ranges,
                negate,
            } => {
                if ranges.is_empty() {
                    return Err(RenderError("a port match without ports".into()));
                }
                out.push(Expr::Payload {
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: th_port(*side),
                    len: 2,
                    dreg: NFT_REG_1,
                });
                if *negate || ranges.len() == 1 {
                    for (lo, hi) in ranges {
                        out.push(port_cmp(*lo, *hi, op(*negate)));
                    }
                } else {
                    let id = *next_id;
                    *next_id += 1;
                    anon.push(AnonPortSet {
                        id,
                        ranges: ranges.clone(),
                    });
                    out.push(Expr::Lookup {
                        set: ANON_SET_NAME.into(),
                        set_id: Some(id),
                        sreg: NFT_REG_1,
                        dreg: None,
                        invert: false,
                    });
                }
            }
            Match::Icmp {
                v6,
                icmp_type,
                code,
                negate,
            } => {
                out.push(Expr::Meta {
                    key: NFT_META_L4PROTO,
                    dreg: REG_ICMP,
                });
                let proto = calico_core::dataplane::ir::icmp_protocol(*v6);
                out.push(Expr::Cmp {
                    sreg: REG_ICMP,
                    op: CmpOp::Eq,
                    data: vec![proto],
                });
                let mut data = vec![*icmp_type];
                data.extend(code.iter().copied());
                out.push(Expr::Payload {
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: 0,
                    len: data.len() as u32,
                    dreg: REG_ICMP,
                });
                out.push(Expr::Cmp {
                    sreg: REG_ICMP,
                    op: op(*negate),
                    data,
                });
            }
            Match::Ct(state) => {
                let bits = match state {
                    CtState::EstablishedOrRelated => {
                        NF_CT_STATE_ESTABLISHED_BIT | NF_CT_STATE_RELATED_BIT
                    }
                    CtState::Invalid => NF_CT_STATE_INVALID_BIT,
                };
                out.push(Expr::Ct {
                    key: NFT_CT_STATE,
                    dreg: NFT_REG_1,
                });
                out.extend(test_bits(bits));
            }
            Match::MarkSet(bits) => {
                out.push(Expr::Meta {
                    key: NFT_META_MARK,
                    dreg: NFT_REG_1,
                });
                out.extend(test_bits(*bits));
            }
        }
    }
    for s in &rule.statements {
        match s {
            Statement::Log(prefix) => out.push(Expr::Log {
                prefix: prefix.clone(),
            }),
            Statement::SetMark(bits) => out.extend(set_mark(!bits, *bits)),
            Statement::ClearMark(bits) => out.extend(set_mark(!bits, 0)),
        }
    }
    match &rule.verdict {
        None => {}
        Some(Verdict::Accept) => out.push(Expr::Verdict(VerdictCode::Accept)),
        Some(Verdict::Drop) => out.push(Expr::Verdict(VerdictCode::Drop)),
        Some(Verdict::Return) => out.push(Expr::Verdict(VerdictCode::Return)),
        Some(Verdict::Jump(c)) => out.push(Expr::Verdict(VerdictCode::Jump(c.clone()))),
        Some(Verdict::Goto(c)) => out.push(Expr::Verdict(VerdictCode::Goto(c.clone()))),
        Some(Verdict::Dispatch { key, map }) => {
            let key = match key {
                IfaceKey::Input => NFT_META_IIFNAME,
                IfaceKey::Output => NFT_META_OIFNAME,
            };
            out.push(Expr::Meta {
                key,
                dreg: NFT_REG_1,
            });
            out.push(Expr::Lookup {
                set: map.clone(),
                set_id: None,
                sreg: NFT_REG_1,
                dreg: Some(NFT_REG_VERDICT),
                invert: false,
            });
        }
    }
    Ok(out)
}

fn op(negate: bool) -> CmpOp {
    if negate {
        CmpOp::Neq
    } else {
        CmpOp::Eq
    }
}

fn lookup(set: &str, sreg: u32, invert: bool) -> Expr {
    Expr::Lookup {
        set: set.into(),
        set_id: None,
        sreg,
        dreg: None,
        invert,
    }
}

fn port_cmp(lo: u16, hi: u16, op: CmpOp) -> Expr {
    if lo == hi {
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data: lo.to_be_bytes().to_vec(),
        }
    } else {
        Expr::Range {
            sreg: NFT_REG_1,
            op,
            from: lo.to_be_bytes().to_vec(),
            to: hi.to_be_bytes().to_vec(),
        }
    }
}

fn test_bits(bits: u32) -> [Expr; 2] {
    [
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            mask: ne32(bits),
            xor: ne32(0),
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CmpOp::Neq,
            data: ne32(0),
        },
    ]
}

fn set_mark(mask: u32, xor: u32) -> [Expr; 3] {
    [
        Expr::Meta {
            key: NFT_META_MARK,
            dreg: NFT_REG_1,
        },
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            mask: ne32(mask),
            xor: ne32(xor),
        },
        Expr::MetaSet {
            key: NFT_META_MARK,
            sreg: NFT_REG_1,
        },
    ]
}

/// Parses expressions read back from the kernel into the IR rule they render, or `None`
/// when they are not exactly what [`render`] writes. `anon` gives the port ranges of an
/// anonymous set by its kernel name.
pub fn parse(exprs: &[Expr], anon: &AnonResolver) -> Option<Rule> {
    let exprs: Vec<Expr> = exprs.iter().map(canonical_registers).collect();
    let exprs = exprs.as_slice();
    let mut rule = Rule::default();
    let mut family = None;
    let mut i = 0;
    let at = |i: usize| exprs.get(i);
    let u32_of = |d: &[u8]| -> Option<u32> { Some(u32::from_ne_bytes(d.try_into().ok()?)) };
    // Phase 0: matches, 1: statements, 2: verdict seen.
    let mut phase = 0;
    while i < exprs.len() {
        let e = &exprs[i];
        let (m, used): (Option<Match>, usize) = match e {
            Expr::Meta {
                key: NFT_META_NFPROTO,
                dreg: W1,
            } => match at(i + 1)? {
                Expr::Cmp {
                    sreg: W1,
                    op: CmpOp::Eq,
                    data,
                } if data.len() == 1 => {
                    let v4 = match data[0] {
                        NFPROTO_IPV4 => true,
                        NFPROTO_IPV6 => false,
                        _ => return None,
                    };
                    family = Some(v4);
                    (Some(Match::Ipv4(v4)), 2)
                }
                _ => return None,
            },
            Expr::Meta {
                key: NFT_META_L4PROTO,
                dreg: W1,
            } => match at(i + 1)? {
                Expr::Cmp { sreg: W1, op, data } if data.len() == 1 => (
                    Some(Match::L4Proto {
                        proto: data[0],
                        negate: *op == CmpOp::Neq,
                    }),
                    2,
                ),
                _ => return None,
            },
            Expr::Meta {
                key: NFT_META_L4PROTO,
                dreg: W2,
            } => {
                let v6 = match at(i + 1)? {
                    Expr::Cmp {
                        sreg: W2,
                        op: CmpOp::Eq,
                        data,
                    } if data == &[1] => false,
                    Expr::Cmp {
                        sreg: W2,
                        op: CmpOp::Eq,
                        data,
                    } if data == &[58] => true,
                    _ => return None,
                };
                let len = match at(i + 2)? {
                    Expr::Payload {
                        base: NFT_PAYLOAD_TRANSPORT_HEADER,
                        offset: 0,
                        len,
                        dreg: W2,
                    } if *len == 1 || *len == 2 => *len as usize,
                    _ => return None,
                };
                match at(i + 3)? {
                    Expr::Cmp { sreg: W2, op, data } if data.len() == len => (
                        Some(Match::Icmp {
                            v6,
                            icmp_type: data[0],
                            code: data.get(1).copied(),
                            negate: *op == CmpOp::Neq,
                        }),
                        4,
                    ),
                    _ => return None,
                }
            }
            Expr::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset,
                len,
                dreg,
            } => {
                let v4 = family?;
                let side = [Side::Src, Side::Dst]
                    .into_iter()
                    .find(|s| nh_addr(*s, v4) == (*offset, *len))?;
                if *dreg != W1 {
                    return None;
                }
                if let Expr::Cmp { sreg: W1, op, data } = at(i + 1)? {
                    let addr = match data.len() {
                        4 if v4 => std::net::IpAddr::from(<[u8; 4]>::try_from(&data[..]).ok()?),
                        16 if !v4 => std::net::IpAddr::from(<[u8; 16]>::try_from(&data[..]).ok()?),
                        _ => return None,
                    };
                    (
                        Some(Match::AddrEq {
                            side,
                            addr,
                            negate: *op == CmpOp::Neq,
                        }),
                        2,
                    )
                } else if matches!(at(i + 1)?, Expr::Lookup { .. }) {
                    match at(i + 1)? {
                        Expr::Lookup {
                            set,
                            sreg: W1,
                            dreg: None,
                            invert,
                            ..
                        } => (
                            Some(Match::AddrInSet {
                                side,
                                set: set.clone(),
                                negate: *invert,
                            }),
                            2,
                        ),
                        _ => return None,
                    }
                } else {
                    let words = len / 4;
                    match (at(i + 1)?, at(i + 2)?, at(i + 3)?) {
                        (
                            Expr::Meta {
                                key: NFT_META_L4PROTO,
                                dreg: r1,
                            },
                            Expr::Payload {
                                base: NFT_PAYLOAD_TRANSPORT_HEADER,
                                offset: po,
                                len: 2,
                                dreg: r2,
                            },
                            Expr::Lookup {
                                set,
                                sreg: W1,
                                dreg: None,
                                invert,
                                ..
                            },
                        ) if *r1 == W1 + words && *r2 == W1 + words + 1 && *po == th_port(side) => {
                            (
                                Some(Match::AddrProtoPortInSet {
                                    side,
                                    set: set.clone(),
                                    negate: *invert,
                                }),
                                4,
                            )
                        }
                        _ => return None,
                    }
                }
            }
            Expr::Payload {
                base: NFT_PAYLOAD_TRANSPORT_HEADER,
                offset,
                len: 2,
                dreg: W1,
            } => {
                let side = match offset {
                    0 => Side::Src,
                    2 => Side::Dst,
                    _ => return None,
                };
                let mut ranges = Vec::new();
                let mut negate = None;
                let mut j = i + 1;
                while let Some(e) = at(j) {
                    let (range, o) = match e {
                        Expr::Cmp { sreg: W1, op, data } if data.len() == 2 => {
                            let p = u16::from_be_bytes([data[0], data[1]]);
                            ((p, p), *op)
                        }
                        Expr::Range {
                            sreg: W1,
                            op,
                            from,
                            to,
                        } if from.len() == 2 && to.len() == 2 => (
                            (
                                u16::from_be_bytes([from[0], from[1]]),
                                u16::from_be_bytes([to[0], to[1]]),
                            ),
                            *op,
                        ),
                        Expr::Lookup {
                            set,
                            sreg: W1,
                            dreg: None,
                            invert: false,
                            ..
                        } if negate.is_none() && set.starts_with("__set") => {
                            ranges = anon(set)?;
                            negate = Some(false);
                            j += 1;
                            break;
                        }
                        _ => break,
                    };
                    match (negate, o) {
                        (None, o) => negate = Some(o == CmpOp::Neq),
                        (Some(true), CmpOp::Neq) => {}
                        _ => break,
                    }
                    ranges.push(range);
                    j += 1;
                    if negate == Some(false) {
                        break;
                    }
                }
                (
                    Some(Match::Port {
                        side,
                        ranges,
                        negate: negate?,
                    }),
                    j - i,
                )
            }
            Expr::Ct {
                key: NFT_CT_STATE,
                dreg: W1,
            } => {
                let bits = tested_bits(at(i + 1)?, at(i + 2)?, &u32_of)?;
                let state = if bits == NF_CT_STATE_ESTABLISHED_BIT | NF_CT_STATE_RELATED_BIT {
                    CtState::EstablishedOrRelated
                } else if bits == NF_CT_STATE_INVALID_BIT {
                    CtState::Invalid
                } else {
                    return None;
                };
                (Some(Match::Ct(state)), 3)
            }
            Expr::Meta {
                key: NFT_META_MARK,
                dreg: W1,
            } => {
                if let Some(bits) = at(i + 1)
                    .zip(at(i + 2))
                    .and_then(|(b, c)| tested_bits(b, c, &u32_of))
                {
                    (Some(Match::MarkSet(bits)), 3)
                } else {
                    match (at(i + 1)?, at(i + 2)?) {
                        (
                            Expr::Bitwise {
                                sreg: W1,
                                dreg: W1,
                                mask,
                                xor,
                            },
                            Expr::MetaSet {
                                key: NFT_META_MARK,
                                sreg: W1,
                            },
                        ) => {
                            let (mask, xor) = (u32_of(mask)?, u32_of(xor)?);
                            let s = if xor == 0 {
                                Statement::ClearMark(!mask)
                            } else if xor == !mask {
                                Statement::SetMark(xor)
                            } else {
                                return None;
                            };
                            if phase > 1 {
                                return None;
                            }
                            phase = 1;
                            rule.statements.push(s);
                            i += 3;
                            continue;
                        }
                        _ => return None,
                    }
                }
            }
            Expr::Log { prefix } => {
                if phase > 1 {
                    return None;
                }
                phase = 1;
                rule.statements.push(Statement::Log(prefix.clone()));
                i += 1;
                continue;
            }
            Expr::Verdict(v) => {
                if phase > 1 {
                    return None;
                }
                phase = 2;
                rule.verdict = Some(match v {
                    VerdictCode::Accept => Verdict::Accept,
                    VerdictCode::Drop => Verdict::Drop,
                    VerdictCode::Return => Verdict::Return,
                    VerdictCode::Jump(c) => Verdict::Jump(c.clone()),
                    VerdictCode::Goto(c) => Verdict::Goto(c.clone()),
                });
                i += 1;
                continue;
            }
            Expr::Meta { key, dreg: W1 }
                if *key == NFT_META_IIFNAME || *key == NFT_META_OIFNAME =>
            {
                match at(i + 1)? {
                    Expr::Lookup {
                        set,
                        sreg: W1,
                        dreg: Some(WV),
                        invert: false,
                        ..
                    } => {
                        if phase > 1 {
                            return None;
                        }
                        phase = 2;
                        let key = if *key == NFT_META_IIFNAME {
                            IfaceKey::Input
                        } else {
                            IfaceKey::Output
                        };
                        rule.verdict = Some(Verdict::Dispatch {
                            key,
                            map: set.clone(),
                        });
                        i += 2;
                        continue;
                    }
                    _ => return None,
                }
            }
            _ => return None,
        };
        if phase > 0 {
            return None;
        }
        rule.matches.extend(m);
        i += used;
    }
    Some(rule)
}

// Registers as 32-bit word indexes: the kernel reports a 32-bit register that starts a
// 128-bit one by the 128-bit register's number (NFT_REG32_00 reads back as NFT_REG_1).
const WV: u32 = 0;
const W1: u32 = 4;
const W2: u32 = 8;

fn word(reg: u32) -> u32 {
    if reg <= 4 {
        reg * 4
    } else {
        reg - NFT_REG32_00 + 4
    }
}

fn canonical_registers(e: &Expr) -> Expr {
    let mut e = e.clone();
    match &mut e {
        Expr::Meta { dreg: r, .. }
        | Expr::MetaSet { sreg: r, .. }
        | Expr::Payload { dreg: r, .. }
        | Expr::Cmp { sreg: r, .. }
        | Expr::Range { sreg: r, .. }
        | Expr::Ct { dreg: r, .. } => *r = word(*r),
        Expr::Lookup { sreg, dreg, .. } => {
            *sreg = word(*sreg);
            *dreg = dreg.map(word);
        }
        Expr::Bitwise { sreg, dreg, .. } => {
            *sreg = word(*sreg);
            *dreg = word(*dreg);
        }
        Expr::Verdict(_) | Expr::Log { .. } => {}
    }
    e
}

fn tested_bits(b: &Expr, c: &Expr, u32_of: &dyn Fn(&[u8]) -> Option<u32>) -> Option<u32> {
    match (b, c) {
        (
            Expr::Bitwise {
                sreg: W1,
                dreg: W1,
                mask,
                xor,
            },
            Expr::Cmp {
                sreg: W1,
                op: CmpOp::Neq,
                data,
            },
        ) if u32_of(xor)? == 0 && u32_of(data)? == 0 => u32_of(mask),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

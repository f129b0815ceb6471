//! nf_tables expressions read back from the kernel → the IR rule they render: one function
//! per expression pattern of the table in the module documentation. Anything else is not
//! ours, and parses to `None`.

use std::net::IpAddr;

use calico_core::dataplane::ir::{
    icmp_protocol, CtState, IfaceKey, Match, Rule, Side, Statement, Verdict,
};

use super::{nh_addr, th_port, AnonResolver};
use crate::nft::expr::{CmpOp, Expr, VerdictCode};
use crate::nft::proto::*;

// Registers as 32-bit word indexes: the kernel reports a 32-bit register that starts a
// 128-bit one by the 128-bit register's number (NFT_REG32_00 reads back as NFT_REG_1).
const WV: u32 = 0;
const W1: u32 = 4;
const W2: u32 = 8;

/// What a run of expressions parsed into.
enum Item {
    Match(Match),
    Statement(Statement),
    Verdict(Verdict),
}

/// Where in a rule the parser is: matches come first, then statements, then one verdict.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Matches,
    Statements,
    Verdict,
}

/// Parses expressions read back from the kernel into the IR rule they render, or `None`
/// when they are not exactly what [`super::render`] writes. `anon` gives the port ranges of
/// an anonymous set by its kernel name.
pub fn parse(exprs: &[Expr], anon: &AnonResolver) -> Option<Rule> {
    let exprs: Vec<Expr> = exprs.iter().map(canonical_registers).collect();
    let mut rest = exprs.as_slice();
    let mut rule = Rule::default();
    let mut family = None;
    let mut phase = Phase::Matches;
    while !rest.is_empty() {
        let (item, used) = parse_item(rest, family, anon)?;
        match item {
            Item::Match(m) => {
                if phase != Phase::Matches {
                    return None;
                }
                if let Match::Ipv4(v4) = m {
                    family = Some(v4);
                }
                rule.matches.push(m);
            }
            Item::Statement(s) => {
                if phase == Phase::Verdict {
                    return None;
                }
                phase = Phase::Statements;
                rule.statements.push(s);
            }
            Item::Verdict(v) => {
                if phase == Phase::Verdict {
                    return None;
                }
                phase = Phase::Verdict;
                rule.verdict = Some(v);
            }
        }
        rest = rest.get(used..)?;
    }
    Some(rule)
}

/// The item the expressions at the start of `rest` form, and how many they are.
fn parse_item(rest: &[Expr], family: Option<bool>, anon: &AnonResolver) -> Option<(Item, usize)> {
    let matched = |(m, used)| Some((Item::Match(m), used));
    match rest.first()? {
        Expr::Meta {
            key: NFT_META_NFPROTO,
            dreg: W1,
        } => matched((ip_family(rest.get(1)?)?, 2)),
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg: W1,
        } => matched((l4proto(rest.get(1)?)?, 2)),
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg: W2,
        } => matched((icmp(rest)?, 4)),
        Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len,
            dreg,
        } => matched(address(rest, (*offset, *len), *dreg, family?)?),
        Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset,
            len: 2,
            dreg: W1,
        } => matched(ports(rest, *offset, anon)?),
        Expr::Ct {
            key: NFT_CT_STATE,
            dreg: W1,
        } => matched((ct_state(rest)?, 3)),
        Expr::Ct {
            key: NFT_CT_STATUS,
            dreg: W1,
        } => matched((ct_unconfirmed(rest)?, 3)),
        Expr::Meta {
            key: NFT_META_MARK,
            dreg: W1,
        } => mark(rest),
        Expr::Log {
            prefix,
            group: None,
        } => Some((Item::Statement(Statement::Log(prefix.clone())), 1)),
        Expr::Log {
            prefix,
            group: Some(group),
        } => Some((Item::Statement(nflog(*group, prefix, None)), 1)),
        Expr::Limit {
            rate,
            unit: 1,
            burst,
        } => {
            let rate = u32::try_from(*rate).ok().filter(|r| r == burst && *r > 0)?;
            match rest.get(1)? {
                Expr::Log {
                    prefix,
                    group: Some(group),
                } => Some((Item::Statement(nflog(*group, prefix, Some(rate))), 2)),
                _ => None,
            }
        }
        Expr::Notrack => Some((Item::Statement(Statement::NoTrack), 1)),
        Expr::Immediate { dreg: W1, data } => Some((Item::Statement(nat(data, rest.get(1)?)?), 2)),
        Expr::Verdict(v) => Some((Item::Verdict(verdict(v)), 1)),
        Expr::Meta { key, dreg: W1 } if *key == NFT_META_IIFNAME || *key == NFT_META_OIFNAME => {
            Some((Item::Verdict(dispatch(*key, rest.get(1)?)?), 2))
        }
        _ => None,
    }
}

fn nflog(group: u16, prefix: &str, rate: Option<u32>) -> Statement {
    Statement::NfLog {
        group,
        prefix: prefix.to_string(),
        rate,
    }
}

/// An address loaded into register 1, then `nat` from it: as written (no `addr_max`, no
/// flags) or as the kernel dumps it (`addr_max` the same register, the map-IPs flag).
fn nat(data: &[u8], nat: &Expr) -> Option<Statement> {
    let Expr::Nat {
        nat_type,
        family,
        addr_min: W1,
        addr_max,
        flags,
    } = nat
    else {
        return None;
    };
    let addr = match (u8::try_from(*family).ok()?, data.len()) {
        (NFPROTO_IPV4, 4) => IpAddr::from(<[u8; 4]>::try_from(data).ok()?),
        (NFPROTO_IPV6, 16) => IpAddr::from(<[u8; 16]>::try_from(data).ok()?),
        _ => return None,
    };
    if addr_max.is_some_and(|r| r != W1) || flags.is_some_and(|f| f != NF_NAT_RANGE_MAP_IPS) {
        return None;
    }
    match *nat_type {
        NFT_NAT_DNAT => Some(Statement::Dnat(addr)),
        NFT_NAT_SNAT => Some(Statement::Snat(addr)),
        _ => None,
    }
}

/// `meta nfproto` followed by this: `cmp eq ipv4/ipv6`.
fn ip_family(cmp: &Expr) -> Option<Match> {
    let Expr::Cmp {
        sreg: W1,
        op: CmpOp::Eq,
        data,
    } = cmp
    else {
        return None;
    };
    match data.as_slice() {
        [NFPROTO_IPV4] => Some(Match::Ipv4(true)),
        [NFPROTO_IPV6] => Some(Match::Ipv4(false)),
        _ => None,
    }
}

/// `meta l4proto` followed by this: `cmp eq/neq <proto>`.
fn l4proto(cmp: &Expr) -> Option<Match> {
    match cmp {
        Expr::Cmp { sreg: W1, op, data } => match data.as_slice() {
            [proto] => Some(Match::L4Proto {
                proto: *proto,
                negate: *op == CmpOp::Neq,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// `meta l4proto` → 2, `cmp eq 1/58`, `th` type(+code) → 2, `cmp`.
fn icmp(rest: &[Expr]) -> Option<Match> {
    let v6 = match rest.get(1)? {
        Expr::Cmp {
            sreg: W2,
            op: CmpOp::Eq,
            data,
        } => match data.as_slice() {
            [p] if *p == icmp_protocol(false) => false,
            [p] if *p == icmp_protocol(true) => true,
            _ => return None,
        },
        _ => return None,
    };
    let len = match rest.get(2)? {
        Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 0,
            len,
            dreg: W2,
        } if *len == 1 || *len == 2 => *len as usize,
        _ => return None,
    };
    match rest.get(3)? {
        Expr::Cmp { sreg: W2, op, data } if data.len() == len => {
            let (icmp_type, code) = data.split_first()?;
            Some(Match::Icmp {
                v6,
                icmp_type: *icmp_type,
                code: code.first().copied(),
                negate: *op == CmpOp::Neq,
            })
        }
        _ => None,
    }
}

/// An address loaded from the network header (`at` is its offset and length), then
/// compared, looked up, or concatenated with protocol and port and looked up.
fn address(rest: &[Expr], at: (u32, u32), dreg: u32, v4: bool) -> Option<(Match, usize)> {
    let side = [Side::Src, Side::Dst]
        .into_iter()
        .find(|s| nh_addr(*s, v4) == at)?;
    if dreg != W1 {
        return None;
    }
    match rest.get(1)? {
        Expr::Cmp { sreg: W1, op, data } => {
            let addr = if v4 {
                IpAddr::from(<[u8; 4]>::try_from(data.as_slice()).ok()?)
            } else {
                IpAddr::from(<[u8; 16]>::try_from(data.as_slice()).ok()?)
            };
            let negate = *op == CmpOp::Neq;
            Some((Match::AddrEq { side, addr, negate }, 2))
        }
        Expr::Lookup {
            set,
            sreg: W1,
            dreg: None,
            invert,
            ..
        } => {
            let set = set.clone();
            let negate = *invert;
            Some((Match::AddrInSet { side, set, negate }, 2))
        }
        Expr::Lookup { .. } => None,
        _ => Some((addr_proto_port(rest, side, at.1 / 4)?, 4)),
    }
}

/// After an address of `words` 32-bit words: `meta l4proto`, `th port`, each into the
/// next register, and a `lookup` of the whole.
fn addr_proto_port(rest: &[Expr], side: Side, words: u32) -> Option<Match> {
    match (rest.get(1)?, rest.get(2)?, rest.get(3)?) {
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
            Some(Match::AddrProtoPortInSet {
                side,
                set: set.clone(),
                negate: *invert,
            })
        }
        _ => None,
    }
}

/// `th port` → 1, then one `cmp`/`range eq`, one anonymous-set `lookup`, or any number of
/// `cmp`/`range neq`.
fn ports(rest: &[Expr], offset: u32, anon: &AnonResolver) -> Option<(Match, usize)> {
    let side = match offset {
        0 => Side::Src,
        2 => Side::Dst,
        _ => return None,
    };
    let mut ranges = Vec::new();
    let mut negate = None;
    let mut used = 1;
    while let Some(e) = rest.get(used) {
        let (range, op) = match e {
            Expr::Cmp { sreg: W1, op, data } => match be16(data) {
                Some(p) => ((p, p), *op),
                None => break,
            },
            Expr::Range {
                sreg: W1,
                op,
                from,
                to,
            } => match (be16(from), be16(to)) {
                (Some(from), Some(to)) => ((from, to), *op),
                _ => break,
            },
            Expr::Lookup {
                set,
                sreg: W1,
                dreg: None,
                invert: false,
                ..
            } if negate.is_none() && set.starts_with("__set") => {
                ranges = anon(set)?;
                negate = Some(false);
                used += 1;
                break;
            }
            _ => break,
        };
        match (negate, op) {
            (None, op) => negate = Some(op == CmpOp::Neq),
            (Some(true), CmpOp::Neq) => {}
            _ => break,
        }
        ranges.push(range);
        used += 1;
        if negate == Some(false) {
            break;
        }
    }
    let negate = negate?;
    Some((
        Match::Port {
            side,
            ranges,
            negate,
        },
        used,
    ))
}

/// `ct state` → 1, then the bit test.
fn ct_state(rest: &[Expr]) -> Option<Match> {
    let bits = tested_bits(rest.get(1)?, rest.get(2)?)?;
    if bits == NF_CT_STATE_ESTABLISHED_BIT | NF_CT_STATE_RELATED_BIT {
        Some(Match::Ct(CtState::EstablishedOrRelated))
    } else if bits == NF_CT_STATE_INVALID_BIT {
        Some(Match::Ct(CtState::Invalid))
    } else {
        None
    }
}

/// `ct status` → 1, then `& confirmed == 0`.
fn ct_unconfirmed(rest: &[Expr]) -> Option<Match> {
    let bits = masked_cmp_zero(rest.get(1)?, rest.get(2)?, CmpOp::Eq)?;
    (bits == IPS_CONFIRMED).then_some(Match::CtUnconfirmed)
}

/// `meta mark` → 1, then either the bit test (a match) or `bitwise` and `meta mark set`
/// (a statement).
fn mark(rest: &[Expr]) -> Option<(Item, usize)> {
    if let Some(bits) = rest
        .get(1)
        .zip(rest.get(2))
        .and_then(|(b, c)| tested_bits(b, c))
    {
        return Some((Item::Match(Match::MarkSet(bits)), 3));
    }
    match (rest.get(1)?, rest.get(2)?) {
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
            let (mask, xor) = (ne_u32(mask)?, ne_u32(xor)?);
            let s = if xor == 0 {
                Statement::ClearMark(!mask)
            } else if xor == !mask {
                Statement::SetMark(xor)
            } else {
                return None;
            };
            Some((Item::Statement(s), 3))
        }
        _ => None,
    }
}

fn verdict(v: &VerdictCode) -> Verdict {
    match v {
        VerdictCode::Accept => Verdict::Accept,
        VerdictCode::Drop => Verdict::Drop,
        VerdictCode::Return => Verdict::Return,
        VerdictCode::Jump(c) => Verdict::Jump(c.clone()),
        VerdictCode::Goto(c) => Verdict::Goto(c.clone()),
    }
}

/// `meta iifname/oifname` → 1 followed by this: a verdict-map `lookup`.
fn dispatch(key: u32, lookup: &Expr) -> Option<Verdict> {
    match lookup {
        Expr::Lookup {
            set,
            sreg: W1,
            dreg: Some(WV),
            invert: false,
            ..
        } => Some(Verdict::Dispatch {
            key: if key == NFT_META_IIFNAME {
                IfaceKey::Input
            } else {
                IfaceKey::Output
            },
            map: set.clone(),
        }),
        _ => None,
    }
}

/// `bitwise` register 1 with a mask and zero xor, then `cmp neq 0`: the mask's bits.
fn tested_bits(b: &Expr, c: &Expr) -> Option<u32> {
    masked_cmp_zero(b, c, CmpOp::Neq)
}

/// `bitwise` register 1 with a mask and zero xor, then `cmp <op> 0`: the mask's bits.
fn masked_cmp_zero(b: &Expr, c: &Expr, want: CmpOp) -> Option<u32> {
    match (b, c) {
        (
            Expr::Bitwise {
                sreg: W1,
                dreg: W1,
                mask,
                xor,
            },
            Expr::Cmp { sreg: W1, op, data },
        ) if *op == want && ne_u32(xor)? == 0 && ne_u32(data)? == 0 => ne_u32(mask),
        _ => None,
    }
}

fn ne_u32(d: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(d.try_into().ok()?))
}

fn be16(d: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(d.try_into().ok()?))
}

/// A register number as a 32-bit word index.
fn word(reg: u32) -> u32 {
    if reg <= 4 {
        reg * 4
    } else {
        reg.wrapping_sub(NFT_REG32_00).wrapping_add(4)
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
        Expr::Immediate { dreg, .. } => *dreg = word(*dreg),
        Expr::Nat {
            addr_min, addr_max, ..
        } => {
            *addr_min = word(*addr_min);
            *addr_max = addr_max.map(word);
        }
        Expr::Verdict(_) | Expr::Log { .. } | Expr::Limit { .. } | Expr::Notrack => {}
    }
    e
}

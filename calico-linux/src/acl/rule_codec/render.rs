//! IR rule → nf_tables expressions: one function per match, statement and verdict, each
//! writing the fixed pattern of the table in the module documentation.

use std::net::IpAddr;

use calico_core::dataplane::ir::{CtState, IfaceKey, Match, Rule, Side, Statement, Verdict};

use super::{ne32, nh_addr, th_port, AnonPortSet, RenderError, ANON_SET_NAME, REG_ICMP};
use crate::nft::expr::{CmpOp, Expr, VerdictCode};
use crate::nft::proto::*;

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
    let mut out = Vec::new();
    let mut ports = AnonPorts { next_id, anon };
    for m in &rule.matches {
        render_match(m, family, &mut ports, &mut out)?;
    }
    for s in &rule.statements {
        render_statement(s, &mut out)?;
    }
    if let Some(v) = &rule.verdict {
        render_verdict(v, &mut out);
    }
    Ok(out)
}

/// Where a positive port match over several ranges puts its anonymous set.
struct AnonPorts<'a> {
    next_id: &'a mut u32,
    anon: &'a mut Vec<AnonPortSet>,
}

fn render_match(
    m: &Match,
    family: Option<bool>,
    ports: &mut AnonPorts,
    out: &mut Vec<Expr>,
) -> Result<(), RenderError> {
    let need_family = || {
        family.ok_or_else(|| {
            RenderError("an address match needs the rule to match an IP family".into())
        })
    };
    match m {
        Match::Ipv4(v4) => {
            let p = if *v4 { NFPROTO_IPV4 } else { NFPROTO_IPV6 };
            out.extend(meta_cmp(NFT_META_NFPROTO, CmpOp::Eq, p));
        }
        Match::L4Proto { proto, negate } => {
            out.extend(meta_cmp(NFT_META_L4PROTO, op(*negate), *proto));
        }
        Match::AddrEq { side, addr, negate } => {
            out.extend(addr_eq(*side, *addr, *negate, need_family()?)?);
        }
        Match::AddrInSet { side, set, negate } => {
            out.push(load_addr(*side, need_family()?, NFT_REG_1));
            out.push(lookup(set, NFT_REG_1, *negate));
        }
        Match::AddrProtoPortInSet { side, set, negate } => {
            out.extend(addr_proto_port_in_set(*side, set, *negate, need_family()?));
        }
        Match::Port {
            side,
            ranges,
            negate,
        } => port(*side, ranges, *negate, ports, out)?,
        Match::Icmp {
            v6,
            icmp_type,
            code,
            negate,
        } => out.extend(icmp(*v6, *icmp_type, *code, *negate)),
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
            out.extend(masked_cmp_zero(bits, CmpOp::Neq));
        }
        Match::CtUnconfirmed => {
            out.push(Expr::Ct {
                key: NFT_CT_STATUS,
                dreg: NFT_REG_1,
            });
            out.extend(masked_cmp_zero(IPS_CONFIRMED, CmpOp::Eq));
        }
        Match::MarkSet(bits) => {
            out.push(Expr::Meta {
                key: NFT_META_MARK,
                dreg: NFT_REG_1,
            });
            out.extend(masked_cmp_zero(*bits, CmpOp::Neq));
        }
    }
    Ok(())
}

fn render_statement(s: &Statement, out: &mut Vec<Expr>) -> Result<(), RenderError> {
    match s {
        Statement::Log(prefix) => out.push(Expr::Log {
            prefix: prefix.clone(),
            group: None,
        }),
        Statement::SetMark(bits) => out.extend(set_mark(!bits, *bits)),
        Statement::NoTrack => out.push(Expr::Notrack),
        Statement::Dnat(addr) => out.extend(nat(NFT_NAT_DNAT, *addr)),
        Statement::Snat(addr) => out.extend(nat(NFT_NAT_SNAT, *addr)),
        Statement::ClearMark(bits) => out.extend(set_mark(!bits, 0)),
        // The rule's comment (its user data, `super::super::rule_udata`): no expression.
        Statement::FlowRef(_) => {}
        Statement::NfLog {
            group,
            prefix,
            rate,
        } => {
            if let Some(rate) = rate {
                if *rate == 0 {
                    return Err(RenderError("a log rate limit of 0 packets a second".into()));
                }
                // Burst equal to the rate: one second's worth.
                out.push(Expr::Limit {
                    rate: u64::from(*rate),
                    unit: 1,
                    burst: *rate,
                });
            }
            out.push(Expr::Log {
                prefix: prefix.clone(),
                group: Some(*group),
            });
        }
    }
    Ok(())
}

/// `dnat`/`snat <family> to <addr>`: the address into register 1, then the NAT from it
/// (what `nft` writes: no `addr_max`, no flags).
fn nat(nat_type: u32, addr: IpAddr) -> [Expr; 2] {
    let family = if addr.is_ipv4() {
        NFPROTO_IPV4
    } else {
        NFPROTO_IPV6
    };
    [
        Expr::Immediate {
            dreg: NFT_REG_1,
            data: addr_bytes(addr),
        },
        Expr::Nat {
            nat_type,
            family: u32::from(family),
            addr_min: NFT_REG_1,
            addr_max: None,
            flags: None,
        },
    ]
}

/// An address in network byte order, as registers hold it.
fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn render_verdict(v: &Verdict, out: &mut Vec<Expr>) {
    let code = match v {
        Verdict::Accept => VerdictCode::Accept,
        Verdict::Drop => VerdictCode::Drop,
        Verdict::Return => VerdictCode::Return,
        Verdict::Jump(c) => VerdictCode::Jump(c.clone()),
        Verdict::Goto(c) => VerdictCode::Goto(c.clone()),
        Verdict::Dispatch { key, map } => {
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
            return;
        }
    };
    out.push(Expr::Verdict(code));
}

/// `meta <key>` into register 1, compared with one byte.
fn meta_cmp(key: u32, op: CmpOp, byte: u8) -> [Expr; 2] {
    [
        Expr::Meta {
            key,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data: vec![byte],
        },
    ]
}

fn addr_eq(side: Side, addr: IpAddr, negate: bool, v4: bool) -> Result<[Expr; 2], RenderError> {
    if v4 != addr.is_ipv4() {
        return Err(RenderError(format!(
            "address {addr} compared in a rule of the other family"
        )));
    }
    let data = addr_bytes(addr);
    Ok([
        load_addr(side, v4, NFT_REG_1),
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: op(negate),
            data,
        },
    ])
}

/// The address, protocol and port concatenated in the 32-bit registers from `NFT_REG32_00`,
/// looked up together.
fn addr_proto_port_in_set(side: Side, set: &str, negate: bool, v4: bool) -> [Expr; 4] {
    let words = nh_addr(side, v4).1 / 4;
    [
        load_addr(side, v4, NFT_REG32_00),
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg: NFT_REG32_00 + words,
        },
        Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: th_port(side),
            len: 2,
            dreg: NFT_REG32_00 + words + 1,
        },
        lookup(set, NFT_REG32_00, negate),
    ]
}

fn port(
    side: Side,
    ranges: &[(u16, u16)],
    negate: bool,
    ports: &mut AnonPorts,
    out: &mut Vec<Expr>,
) -> Result<(), RenderError> {
    if ranges.is_empty() {
        return Err(RenderError("a port match without ports".into()));
    }
    out.push(Expr::Payload {
        base: NFT_PAYLOAD_TRANSPORT_HEADER,
        offset: th_port(side),
        len: 2,
        dreg: NFT_REG_1,
    });
    if negate || ranges.len() == 1 {
        for (lo, hi) in ranges {
            out.push(port_cmp(*lo, *hi, op(negate)));
        }
    } else {
        let id = *ports.next_id;
        *ports.next_id += 1;
        ports.anon.push(AnonPortSet {
            id,
            ranges: ranges.to_vec(),
        });
        out.push(Expr::Lookup {
            set: ANON_SET_NAME.into(),
            set_id: Some(id),
            sreg: NFT_REG_1,
            dreg: None,
            invert: false,
        });
    }
    Ok(())
}

fn icmp(v6: bool, icmp_type: u8, code: Option<u8>, negate: bool) -> [Expr; 4] {
    let proto = calico_core::dataplane::ir::icmp_protocol(v6);
    let mut data = vec![icmp_type];
    data.extend(code);
    [
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg: REG_ICMP,
        },
        Expr::Cmp {
            sreg: REG_ICMP,
            op: CmpOp::Eq,
            data: vec![proto],
        },
        Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 0,
            len: if code.is_some() { 2 } else { 1 },
            dreg: REG_ICMP,
        },
        Expr::Cmp {
            sreg: REG_ICMP,
            op: op(negate),
            data,
        },
    ]
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

/// Register 1 masked with `bits`, compared with zero by `op` (`neq`: some bit set; `eq`:
/// none).
fn masked_cmp_zero(bits: u32, op: CmpOp) -> [Expr; 2] {
    [
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            mask: ne32(bits),
            xor: ne32(0),
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data: ne32(0),
        },
    ]
}

/// `meta mark set (meta mark & mask) ^ xor`.
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

//! One IR [`Match`] as a compare block: falls through when the match holds, jumps to
//! `fail` when it does not. Every field is re-read from the state (`R7`), never kept in
//! a register across blocks (see [`crate::layout::state`]). The semantics are the mock
//! interpreter's (`calico_mock::interpret`), case by case, including its edge cases: a
//! match on the other address family, or on ports of a packet without them, fails
//! whether negated or not.

use std::net::IpAddr;

use calico_core::dataplane::ir::{icmp_protocol, CtState, Match, SetKey, Side};

use crate::insn::{Alu, Asm, Cond, Helper, Label, MapRef, Reg, Size};
use crate::layout::{ct, state};

use super::counting::Counting;
use super::params;

/// A set a match refers to, as the program knows it: its id and key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetRef {
    /// The id its elements are keyed with.
    pub id: u32,
    /// Its key type.
    pub key: SetKey,
}

/// The scratch key of set lookups: `[R10-32, R10)`.
const KEY: i16 = -32;

fn addr_off(side: Side) -> i16 {
    match side {
        Side::Src => state::SRC,
        Side::Dst => state::DST,
    }
}

fn port_off(side: Side) -> i16 {
    match side {
        Side::Src => state::SPORT,
        Side::Dst => state::DPORT,
    }
}

/// Fails unless the packet is of the family (`v4`).
fn family(a: &mut Asm, v4: bool, fail: Label) {
    a.load(Size::B, Reg::R1, Reg::R7, state::FAMILY);
    a.jmp_imm(Cond::Ne, Reg::R1, if v4 { 4 } else { 6 }, fail);
}

/// Fails unless the packet's ports were read.
fn has_ports(a: &mut Asm, fail: Label) {
    a.load(Size::B, Reg::R1, Reg::R7, state::HAS_PORTS);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, fail);
}

/// Falls through when `inner` (which jumps to its `yes` or `no` label) and `negate`
/// together make the match hold; jumps to `fail` otherwise.
///
/// `inner` should jump on the outcome that leaves the rule (`no`, unless negated) and
/// fall through on the other where it can: the verifier explores a conditional jump's
/// fall-through first and stacks the taken branch, so a rule whose mismatches are jumps
/// leaves at most one pending state behind, whereas one whose matches are jumps leaves
/// one per rule (and the verifier gives up at 8,192).
fn negatable(a: &mut Asm, negate: bool, fail: Label, inner: impl FnOnce(&mut Asm, Label, Label)) {
    let hold = a.label();
    if negate {
        inner(a, fail, hold);
    } else {
        inner(a, hold, fail);
    }
    a.bind(hold);
}

/// Words of an address in the state, as 32-bit loads see them (network-order bytes).
fn words(addr: IpAddr) -> Vec<u32> {
    let bytes: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    bytes
        .chunks(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Where a lookup's set id comes from.
#[derive(Clone, Copy)]
enum Id {
    /// The instruction's immediate.
    Inline,
    /// A slot of the interface's values ([`params`]; address sets only), in a program
    /// counting as given (an interface without values drops).
    Slot(usize, Counting),
}

/// Looks the side's address (and, for `ports`, protocol and port) up in set `id`;
/// jumps to `yes` when found, `no` otherwise.
fn lookup(a: &mut Asm, set: SetRef, id: Id, side: Side, yes: Label, no: Label) {
    let addr = addr_off(side);
    let store_id = |a: &mut Asm| match id {
        Id::Inline => a.store_imm(Size::W, Reg::R10, KEY + 4, be_imm(set.id)),
        Id::Slot(slot, counting) => params::store_set_id(a, slot, KEY + 4, counting),
    };
    let map = match set.key {
        SetKey::Ipv4Addr | SetKey::Ipv4Net => {
            a.store_imm(Size::W, Reg::R10, KEY, 64);
            store_id(a);
            a.load(Size::W, Reg::R1, Reg::R7, addr);
            a.store(Size::W, Reg::R10, KEY + 8, Reg::R1);
            MapRef::SetsV4
        }
        SetKey::Ipv6Addr | SetKey::Ipv6Net => {
            a.store_imm(Size::W, Reg::R10, KEY, 160);
            store_id(a);
            for i in (0..16).step_by(4) {
                a.load(Size::W, Reg::R1, Reg::R7, addr + i);
                a.store(Size::W, Reg::R10, KEY + 8 + i, Reg::R1);
            }
            MapRef::SetsV6
        }
        SetKey::Ipv4AddrProtoPort | SetKey::Ipv6AddrProtoPort => {
            a.store_imm(
                Size::W,
                Reg::R10,
                KEY,
                i32::from_ne_bytes(set.id.to_ne_bytes()),
            );
            // The whole 16 address bytes: an IPv4 state leaves the last 12 zero, as the key.
            for i in (0..16).step_by(4) {
                a.load(Size::W, Reg::R1, Reg::R7, addr + i);
                a.store(Size::W, Reg::R10, KEY + 4 + i, Reg::R1);
            }
            a.load(Size::B, Reg::R1, Reg::R7, state::PROTO);
            a.store(Size::B, Reg::R10, KEY + 20, Reg::R1);
            a.store_imm(Size::B, Reg::R10, KEY + 21, 0);
            a.load(Size::H, Reg::R1, Reg::R7, port_off(side));
            a.store(Size::H, Reg::R10, KEY + 22, Reg::R1);
            MapRef::NamedPorts
        }
    };
    a.load_map(Reg::R1, map);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(KEY));
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Cond::Eq, Reg::R0, 0, no);
    a.ja(yes);
}

/// The set id as a 32-bit store writes it in network order.
fn be_imm(id: u32) -> i32 {
    i32::from_ne_bytes(id.to_be_bytes())
}

/// Emits `m`. `set` resolves a set's name (`None`: no such set, and the match fails as
/// in the interpreter).
pub fn emit(a: &mut Asm, m: &Match, set: &dyn Fn(&str) -> Option<SetRef>, fail: Label) {
    match m {
        Match::Ipv4(v4) => family(a, *v4, fail),
        Match::L4Proto { proto, negate } => {
            a.load(Size::B, Reg::R1, Reg::R7, state::PROTO);
            let cond = if *negate { Cond::Eq } else { Cond::Ne };
            a.jmp_imm(cond, Reg::R1, i32::from(*proto), fail);
        }
        Match::AddrEq { side, addr, negate } => {
            family(a, addr.is_ipv4(), fail);
            let off = addr_off(*side);
            negatable(a, *negate, fail, |a, yes, no| {
                for (i, w) in words(*addr).into_iter().enumerate() {
                    a.load(Size::W, Reg::R1, Reg::R7, off + 4 * i as i16);
                    a.jmp32_imm(Cond::Ne, Reg::R1, w, no);
                }
                a.ja(yes);
            });
        }
        Match::AddrInSet {
            side,
            set: name,
            negate,
        } => {
            let Some(s) = set(name) else {
                a.ja(fail);
                return;
            };
            family(a, s.key.is_ipv4(), fail);
            negatable(a, *negate, fail, |a, yes, no| {
                if s.key.is_concat() {
                    // An address is never an element of a concatenated set.
                    a.ja(no);
                } else {
                    lookup(a, s, Id::Inline, *side, yes, no);
                }
            });
        }
        Match::AddrProtoPortInSet {
            side,
            set: name,
            negate,
        } => {
            let Some(s) = set(name) else {
                a.ja(fail);
                return;
            };
            has_ports(a, fail);
            family(a, s.key.is_ipv4(), fail);
            negatable(a, *negate, fail, |a, yes, no| {
                if s.key.is_concat() {
                    lookup(a, s, Id::Inline, *side, yes, no);
                } else {
                    a.ja(no);
                }
            });
        }
        Match::Port {
            side,
            ranges,
            negate,
        } => {
            has_ports(a, fail);
            let off = port_off(*side);
            negatable(a, *negate, fail, |a, yes, no| {
                // Every range but the last jumps to `yes` when it holds; the last one
                // jumps to `no` when it does not (see `negatable`).
                let Some((&(last_lo, last_hi), rest)) = ranges.split_last() else {
                    a.ja(no);
                    return;
                };
                for &(lo, hi) in rest {
                    a.load(Size::H, Reg::R1, Reg::R7, off);
                    if lo == hi {
                        a.jmp_imm(Cond::Eq, Reg::R1, i32::from(lo), yes);
                    } else {
                        let next = a.label();
                        a.jmp_imm(Cond::Lt, Reg::R1, i32::from(lo), next);
                        a.jmp_imm(Cond::Le, Reg::R1, i32::from(hi), yes);
                        a.bind(next);
                    }
                }
                a.load(Size::H, Reg::R1, Reg::R7, off);
                if last_lo == last_hi {
                    a.jmp_imm(Cond::Ne, Reg::R1, i32::from(last_lo), no);
                } else {
                    a.jmp_imm(Cond::Lt, Reg::R1, i32::from(last_lo), no);
                    a.jmp_imm(Cond::Gt, Reg::R1, i32::from(last_hi), no);
                }
                a.ja(yes);
            });
        }
        Match::Icmp {
            v6,
            icmp_type,
            code,
            negate,
        } => {
            a.load(Size::B, Reg::R1, Reg::R7, state::PROTO);
            a.jmp_imm(Cond::Ne, Reg::R1, i32::from(icmp_protocol(*v6)), fail);
            negatable(a, *negate, fail, |a, yes, no| {
                a.load(Size::B, Reg::R1, Reg::R7, state::HAS_ICMP);
                a.jmp_imm(Cond::Eq, Reg::R1, 0, no);
                a.load(Size::B, Reg::R1, Reg::R7, state::ICMP_TYPE);
                a.jmp_imm(Cond::Ne, Reg::R1, i32::from(*icmp_type), no);
                if let Some(c) = code {
                    a.load(Size::B, Reg::R1, Reg::R7, state::ICMP_CODE);
                    a.jmp_imm(Cond::Ne, Reg::R1, i32::from(*c), no);
                }
                a.ja(yes);
            });
        }
        Match::Ct(CtState::EstablishedOrRelated) => {
            // RELATED is ESTABLISHED + 1: one unsigned range check, no branch to stack.
            const _: () = assert!(ct::RELATED == ct::ESTABLISHED + 1);
            a.load(Size::W, Reg::R1, Reg::R7, state::CT);
            a.alu32_imm(Alu::And, Reg::R1, ct::STATE_MASK as i32);
            a.alu32_imm(Alu::Add, Reg::R1, -(ct::ESTABLISHED as i32));
            a.jmp_imm(Cond::Gt, Reg::R1, 1, fail);
        }
        Match::Ct(CtState::Invalid) => {
            a.load(Size::W, Reg::R1, Reg::R7, state::CT);
            a.alu32_imm(Alu::And, Reg::R1, ct::STATE_MASK as i32);
            a.jmp_imm(Cond::Ne, Reg::R1, ct::INVALID as i32, fail);
        }
        Match::MarkSet(bits) => {
            a.load(Size::W, Reg::R1, Reg::R7, state::MARK);
            a.alu32_imm(Alu::And, Reg::R1, i32::from_ne_bytes(bits.to_ne_bytes()));
            a.jmp_imm(Cond::Eq, Reg::R1, 0, fail);
        }
        Match::CtUnconfirmed => {
            a.load(Size::W, Reg::R1, Reg::R7, state::CT);
            a.alu32_imm(Alu::And, Reg::R1, ct::UNCONFIRMED as i32);
            a.jmp_imm(Cond::Eq, Reg::R1, 0, fail);
        }
    }
}

/// [`emit`] of a match whose per-interface constant is slot `slot` of the interface's
/// values ([`params`]): an `AddrEq`, or an `AddrInSet` of an address set (`set`: its
/// key type; the id is the slot). Other matches are not lifted: `false`, nothing emitted.
/// `counting`: the program's, for the drop of an interface without values.
pub fn emit_lifted(
    a: &mut Asm,
    m: &Match,
    (set, slot): (Option<SetRef>, usize),
    counting: Counting,
    fail: Label,
) -> bool {
    match (m, set) {
        (Match::AddrEq { side, addr, negate }, _) => {
            family(a, addr.is_ipv4(), fail);
            negatable(a, *negate, fail, |a, yes, no| {
                params::addr_eq(a, (*side, addr.is_ipv4()), (slot, counting), yes, no);
            });
            true
        }
        (Match::AddrInSet { side, negate, .. }, Some(s)) if !s.key.is_concat() => {
            family(a, s.key.is_ipv4(), fail);
            negatable(a, *negate, fail, |a, yes, no| {
                lookup(a, s, Id::Slot(slot, counting), *side, yes, no);
            });
            true
        }
        _ => false,
    }
}

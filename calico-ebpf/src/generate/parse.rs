//! The prologue of every policy program: parse the packet's headers into the per-CPU
//! state ([`crate::layout::state`]), copy the mark, get the conntrack word
//! ([`super::conntrack`]), and leave
//! non-IP packets alone (the IR governs IP only, like an nftables `inet` table).
//!
//! Register use after the prologue: `R6` the `__sk_buff`, `R7` the state (both survive
//! helper calls). Stack: `[R10-64, R10)` is scratch.
//!
//! Not handled yet (documented in the README): VLAN tags (a tagged frame is not IP to
//! the prologue and passes), IPv6 extension headers (the protocol is the first
//! next-header), and IPv4 non-first fragments (no ports: port matches fail).

use super::conntrack::{self, Conntrack};
use super::counting::{self, Counting};
use crate::insn::{Alu, Asm, Cond, Helper, Label, MapRef, Reg, Size};
use crate::layout::{counters, skb, state, PORTED_PROTOCOLS};

/// TC's "no opinion" verdict (TCX's `TCX_NEXT`): the packet goes on to the next program
/// of the interface's TCX chain, or on its way when there is none. The accept of the
/// policy programs, so that other programs attached after them still run.
pub const TC_ACT_UNSPEC: i32 = -1;
/// TC's "drop" verdict.
pub const TC_ACT_SHOT: i32 = 2;

/// Where the ethernet header ends.
const ETH_HLEN: i32 = 14;
/// Scratch buffer for headers: 40 bytes (an IPv6 header) at `R10-64`.
const HDR: i16 = -64;
/// Scratch for small loads and the state map's key.
const SMALL: i16 = -8;

/// Emits `R1 = skb, R2 = off_reg + off (or off), R3 = R10 + to, R4 = len; call
/// skb_load_bytes`; jumps to `fail` when it fails.
fn load_bytes(a: &mut Asm, off: Option<Reg>, off_imm: i32, to: i16, len: i32, fail: Label) {
    a.alu64_reg(Alu::Mov, Reg::R1, Reg::R6);
    match off {
        Some(r) => {
            a.alu64_reg(Alu::Mov, Reg::R2, r);
            if off_imm != 0 {
                a.alu64_imm(Alu::Add, Reg::R2, off_imm);
            }
        }
        None => a.alu64_imm(Alu::Mov, Reg::R2, off_imm),
    }
    a.alu64_reg(Alu::Mov, Reg::R3, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R3, i32::from(to));
    a.alu64_imm(Alu::Mov, Reg::R4, len);
    a.call(Helper::SkbLoadBytes);
    a.jmp_imm(Cond::Slt, Reg::R0, 0, fail);
}

/// Copies `len` bytes (a multiple of 4) from the stack at `from` into the state at `to`.
fn copy_words(a: &mut Asm, from: i16, to: i16, len: i16) {
    for i in (0..len).step_by(4) {
        a.load(Size::W, Reg::R1, Reg::R10, from + i);
        a.store(Size::W, Reg::R7, to + i, Reg::R1);
    }
}

/// Emits the prologue. Falls through with the state filled for an IP packet; a non-IP
/// frame exits with `TC_ACT_UNSPEC`, an IP packet too short or malformed to parse exits with
/// `TC_ACT_SHOT` (the kernel's IP input would drop it too).
pub fn emit(a: &mut Asm, conntrack: Conntrack, counting: Counting) {
    let pass = a.label();
    let malformed = a.label();
    let v4 = a.label();
    let v6 = a.label();
    let l4 = a.label();
    let done = a.label();

    lookup_state(a, malformed);
    for off in (0..state::SIZE as i16).step_by(8) {
        a.store_imm(Size::DW, Reg::R7, off, 0);
    }
    a.load(Size::W, Reg::R1, Reg::R6, skb::MARK);
    a.store(Size::W, Reg::R7, state::MARK, Reg::R1);

    // The ethertype, as a little-endian load of its network-order bytes.
    load_bytes(a, None, 12, SMALL, 2, pass);
    a.load(Size::H, Reg::R1, Reg::R10, SMALL);
    a.jmp_imm(Cond::Eq, Reg::R1, 0x0008, v4);
    a.jmp_imm(Cond::Eq, Reg::R1, 0xdd86, v6);
    a.ja(pass);

    // IPv4: version, header length, protocol, addresses, fragment offset. R8 = L4 offset.
    a.bind(v4);
    load_bytes(a, None, ETH_HLEN, HDR, 20, malformed);
    a.load(Size::B, Reg::R1, Reg::R10, HDR);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R1);
    a.alu64_imm(Alu::Rsh, Reg::R1, 4);
    a.jmp_imm(Cond::Ne, Reg::R1, 4, malformed);
    a.alu64_imm(Alu::And, Reg::R2, 0x0f);
    a.jmp_imm(Cond::Lt, Reg::R2, 5, malformed);
    a.alu64_imm(Alu::Lsh, Reg::R2, 2);
    a.alu64_imm(Alu::Add, Reg::R2, ETH_HLEN);
    a.alu64_reg(Alu::Mov, Reg::R8, Reg::R2);
    a.store_imm(Size::B, Reg::R7, state::FAMILY, 4);
    a.load(Size::B, Reg::R1, Reg::R10, HDR + 9);
    a.store(Size::B, Reg::R7, state::PROTO, Reg::R1);
    copy_words(a, HDR + 12, state::SRC, 4);
    copy_words(a, HDR + 16, state::DST, 4);
    // A non-first fragment carries no transport header.
    a.load(Size::H, Reg::R1, Reg::R10, HDR + 6);
    a.be16(Reg::R1);
    a.alu64_imm(Alu::And, Reg::R1, 0x1fff);
    a.jmp_imm(Cond::Ne, Reg::R1, 0, done);
    a.ja(l4);

    // IPv6: version, next header, addresses; the transport header follows the fixed one.
    a.bind(v6);
    load_bytes(a, None, ETH_HLEN, HDR, 40, malformed);
    a.load(Size::B, Reg::R1, Reg::R10, HDR);
    a.alu64_imm(Alu::Rsh, Reg::R1, 4);
    a.jmp_imm(Cond::Ne, Reg::R1, 6, malformed);
    a.store_imm(Size::B, Reg::R7, state::FAMILY, 6);
    a.load(Size::B, Reg::R1, Reg::R10, HDR + 6);
    a.store(Size::B, Reg::R7, state::PROTO, Reg::R1);
    copy_words(a, HDR + 8, state::SRC, 16);
    copy_words(a, HDR + 24, state::DST, 16);
    a.alu64_imm(Alu::Mov, Reg::R8, ETH_HLEN + 40);

    // Ports or ICMP type and code; a transport header too short for them leaves them unset.
    a.bind(l4);
    let ports = a.label();
    let icmp = a.label();
    a.load(Size::B, Reg::R9, Reg::R7, state::PROTO);
    for p in PORTED_PROTOCOLS {
        a.jmp_imm(Cond::Eq, Reg::R9, i32::from(p), ports);
    }
    a.jmp_imm(Cond::Eq, Reg::R9, 1, icmp);
    a.jmp_imm(Cond::Eq, Reg::R9, 58, icmp);
    a.ja(done);

    a.bind(ports);
    load_bytes(a, Some(Reg::R8), 0, SMALL, 4, done);
    a.load(Size::H, Reg::R1, Reg::R10, SMALL);
    a.be16(Reg::R1);
    a.store(Size::H, Reg::R7, state::SPORT, Reg::R1);
    a.load(Size::H, Reg::R1, Reg::R10, SMALL + 2);
    a.be16(Reg::R1);
    a.store(Size::H, Reg::R7, state::DPORT, Reg::R1);
    a.store_imm(Size::B, Reg::R7, state::HAS_PORTS, 1);
    a.load(Size::H, Reg::R1, Reg::R7, state::SPORT);
    a.store(Size::H, Reg::R7, state::FLOW_SPORT, Reg::R1);
    a.load(Size::H, Reg::R1, Reg::R7, state::DPORT);
    a.store(Size::H, Reg::R7, state::FLOW_DPORT, Reg::R1);
    a.store_imm(Size::B, Reg::R7, state::HAS_FLOW, 1);
    if matches!(conntrack, Conntrack::Table(_)) {
        tcp_flags(a, done);
    }
    a.ja(done);

    a.bind(icmp);
    load_bytes(a, Some(Reg::R8), 0, SMALL, 2, done);
    a.load(Size::B, Reg::R1, Reg::R10, SMALL);
    a.store(Size::B, Reg::R7, state::ICMP_TYPE, Reg::R1);
    a.load(Size::B, Reg::R1, Reg::R10, SMALL + 1);
    a.store(Size::B, Reg::R7, state::ICMP_CODE, Reg::R1);
    a.store_imm(Size::B, Reg::R7, state::HAS_ICMP, 1);
    // An echo request's or reply's id is its flow port: first for a request, second for
    // a reply, so that a reply's key reversed is its request's.
    let (request, reply, v6) = (a.label(), a.label(), a.label());
    a.load(Size::B, Reg::R1, Reg::R7, state::ICMP_TYPE);
    a.jmp_imm(Cond::Eq, Reg::R9, 58, v6);
    a.jmp_imm(Cond::Eq, Reg::R1, 8, request);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, reply);
    a.ja(done);
    a.bind(v6);
    a.jmp_imm(Cond::Eq, Reg::R1, 128, request);
    a.jmp_imm(Cond::Eq, Reg::R1, 129, reply);
    a.ja(done);
    for (label, field) in [(request, state::FLOW_SPORT), (reply, state::FLOW_DPORT)] {
        a.bind(label);
        a.alu64_reg(Alu::Mov, Reg::R9, Reg::R8);
        a.alu64_imm(Alu::Add, Reg::R9, 4);
        load_bytes(a, Some(Reg::R9), 0, SMALL, 2, done);
        a.load(Size::H, Reg::R1, Reg::R10, SMALL);
        a.store(Size::H, Reg::R7, field, Reg::R1);
        a.store_imm(Size::B, Reg::R7, state::HAS_FLOW, 1);
        a.ja(done);
    }

    a.bind(pass);
    counting::count_early(a, counting, counters::NOT_IP);
    a.alu64_imm(Alu::Mov, Reg::R0, TC_ACT_UNSPEC);
    a.exit();
    a.bind(malformed);
    counting::count_early(a, counting, counters::MALFORMED);
    a.alu64_imm(Alu::Mov, Reg::R0, TC_ACT_SHOT);
    a.exit();
    a.bind(done);
    conntrack::emit(a, conntrack);
}

/// For TCP (`R9` the protocol, `R8` the transport header's offset), reads the flags into
/// the state (the flow table's TCP state); a header too short leaves them 0.
fn tcp_flags(a: &mut Asm, done: Label) {
    a.jmp_imm(Cond::Ne, Reg::R9, 6, done);
    load_bytes(a, Some(Reg::R8), 13, SMALL, 1, done);
    a.load(Size::B, Reg::R1, Reg::R10, SMALL);
    a.store(Size::B, Reg::R7, state::TCP_FLAGS, Reg::R1);
}

/// Emits `R6` = the context (from `R1`), `R7` = the per-CPU state; jumps to `fail` when
/// the lookup fails (it does not: a per-CPU array's key 0 always exists, but the verifier
/// wants the check all the same).
pub fn lookup_state(a: &mut Asm, fail: Label) {
    a.alu64_reg(Alu::Mov, Reg::R6, Reg::R1);
    a.store_imm(Size::W, Reg::R10, SMALL, 0);
    a.load_map(Reg::R1, MapRef::State);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(SMALL));
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Cond::Eq, Reg::R0, 0, fail);
    a.alu64_reg(Alu::Mov, Reg::R7, Reg::R0);
}

/// Emits the accept exit: the mark the rules left is written back to the packet, and
/// the program returns `TC_ACT_UNSPEC`.
pub fn accept(a: &mut Asm) {
    a.load(Size::W, Reg::R1, Reg::R7, state::MARK);
    a.store(Size::W, Reg::R6, skb::MARK, Reg::R1);
    a.alu64_imm(Alu::Mov, Reg::R0, TC_ACT_UNSPEC);
    a.exit();
}

/// Emits the drop exit: `TC_ACT_SHOT`.
pub fn drop(a: &mut Asm) {
    a.alu64_imm(Alu::Mov, Reg::R0, TC_ACT_SHOT);
    a.exit();
}

/// `bpf_fib_lookup`'s "not forwarded" (a local, broadcast or multicast destination).
const FIB_NOT_FORWARDED: i32 = 4;
/// `BPF_FIB_LKUP_RET_SUCCESS`.
const FIB_SUCCESS: i32 = 0;
/// `BPF_FIB_LKUP_RET_NO_NEIGH`: forwarded, the next hop's neighbour not resolved yet.
const FIB_NO_NEIGH: i32 = 7;
/// `bpf_fib_lookup`'s "forwarding disabled on the interface": only local delivery is left.
const FIB_FORWARDING_DISABLED: i32 = 5;
/// `struct bpf_fib_lookup` on the stack: 64 bytes at `R10-192`.
const FIB: i16 = -192;

/// Jumps to `local` when the kernel's route lookup, from the interface the packet arrived
/// on, would deliver it to the host rather than forward it.
pub fn is_local_destination(a: &mut Asm, local: Label) {
    for off in (0..64).step_by(8) {
        a.store_imm(Size::DW, Reg::R10, FIB + off, 0);
    }
    let v6 = a.label();
    let call = a.label();
    a.load(Size::W, Reg::R1, Reg::R6, skb::IFINDEX);
    a.store(Size::W, Reg::R10, FIB + 8, Reg::R1);
    a.load(Size::B, Reg::R1, Reg::R7, state::FAMILY);
    a.jmp_imm(Cond::Ne, Reg::R1, 4, v6);
    a.store_imm(Size::B, Reg::R10, FIB, libc::AF_INET);
    copy_words_from_state(a, state::SRC, FIB + 16, 4);
    copy_words_from_state(a, state::DST, FIB + 32, 4);
    a.ja(call);
    a.bind(v6);
    a.store_imm(Size::B, Reg::R10, FIB, libc::AF_INET6);
    copy_words_from_state(a, state::SRC, FIB + 16, 16);
    copy_words_from_state(a, state::DST, FIB + 32, 16);
    a.bind(call);
    a.alu64_reg(Alu::Mov, Reg::R1, Reg::R6);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(FIB));
    a.alu64_imm(Alu::Mov, Reg::R3, 64);
    a.alu64_imm(Alu::Mov, Reg::R4, 0);
    a.call(Helper::FibLookup);
    // The interface the packet leaves through, when the lookup found one (also when the
    // next hop's neighbour is not resolved yet: the kernel resolves it and sends it).
    let found = a.label();
    let out_done = a.label();
    a.store_imm(Size::W, Reg::R7, state::OUT_IFINDEX, 0);
    a.jmp_imm(Cond::Eq, Reg::R0, FIB_SUCCESS, found);
    a.jmp_imm(Cond::Ne, Reg::R0, FIB_NO_NEIGH, out_done);
    a.bind(found);
    a.load(Size::W, Reg::R1, Reg::R10, FIB + 8);
    a.store(Size::W, Reg::R7, state::OUT_IFINDEX, Reg::R1);
    a.bind(out_done);
    a.jmp_imm(Cond::Eq, Reg::R0, FIB_NOT_FORWARDED, local);
    a.jmp_imm(Cond::Eq, Reg::R0, FIB_FORWARDING_DISABLED, local);
}

/// Jumps to `local` when the host itself sent the packet (it arrived on no interface).
pub fn is_local_origin(a: &mut Asm, local: Label) {
    a.load(Size::W, Reg::R1, Reg::R6, skb::INGRESS_IFINDEX);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, local);
}

fn copy_words_from_state(a: &mut Asm, from: i16, to: i16, len: i16) {
    for i in (0..len).step_by(4) {
        a.load(Size::W, Reg::R1, Reg::R7, from + i);
        a.store(Size::W, Reg::R10, to + i, Reg::R1);
    }
}

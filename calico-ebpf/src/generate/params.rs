//! Per-interface values made data, so that interfaces whose chains differ only in them
//! share one loaded program.
//!
//! What differs between the programs of two workloads with the same policies is the
//! chain a verdict-map dispatch leads to for each (`wl-eg-<iface>`): the same rules, but
//! the endpoint's own addresses (anti-spoofing) compared inline, or its own-address set's
//! id looked up. Generated with [`super::Sharing::ByInterface`], the address compares
//! and set ids of a chain a dispatch leads to are *slots*: the program reads them from
//! its params map ([`crate::insn::MapRef::Params`], one per loaded program) keyed by
//! the interface it runs at (`skb->ifindex`), and [`super::Generated::params`] holds the
//! values for the interface it was generated for. Two interfaces whose generated
//! programs are equal then run one loaded program, each with its own entry. A packet at
//! an interface without an entry is dropped (the backend writes the entry before it
//! attaches the program).

use std::net::IpAddr;

use calico_core::dataplane::ir::Side;

use crate::insn::{Alu, Asm, Cond, Helper, Label, MapRef, Reg, Size};
use crate::layout::{counters, skb, state};

use super::counting::{self, Counting};
use super::parse;

/// The most slots a program has; a chain needing more keeps the rest inline (correct,
/// only less shared).
pub const SLOTS: usize = 8;
/// Bytes of one slot: an address (IPv4 in the first 4, network order) or a set id (the
/// 4 bytes an LPM key holds it in, network order).
pub const SLOT_SIZE: usize = 16;
/// The size of a params map value.
pub const VALUE_SIZE: u32 = (SLOTS * SLOT_SIZE) as u32;
/// The size of a params map key: the ifindex.
pub const KEY_SIZE: u32 = 4;

/// The params key on the stack: `[R10-248, R10-244)`, below the flow table's scratch.
const KEY: i16 = -248;

/// A slot's bytes for address `addr`.
pub fn addr_slot(addr: IpAddr) -> [u8; SLOT_SIZE] {
    let mut s = [0u8; SLOT_SIZE];
    match addr {
        IpAddr::V4(a) => s[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => s.copy_from_slice(&a.octets()),
    }
    s
}

/// A slot's bytes for set id `id` (as an LPM key holds it).
pub fn set_id_slot(id: u32) -> [u8; SLOT_SIZE] {
    let mut s = [0u8; SLOT_SIZE];
    s[..4].copy_from_slice(&id.to_be_bytes());
    s
}

/// The map value holding `slots` (unused slots zero).
pub fn value(slots: &[[u8; SLOT_SIZE]]) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_SIZE as usize];
    for (i, s) in slots.iter().take(SLOTS).enumerate() {
        v[i * SLOT_SIZE..][..SLOT_SIZE].copy_from_slice(s);
    }
    v
}

/// Offset of word `word` of slot `slot` in the value.
fn at(slot: usize, word: usize) -> i16 {
    (slot * SLOT_SIZE + 4 * word) as i16
}

/// `R0` = this interface's values; drops the packet when it has none (counted as a drop
/// under `counting`). Clobbers `R1`–`R5`.
pub(super) fn lookup(a: &mut Asm, counting: Counting) {
    a.load(Size::W, Reg::R1, Reg::R6, skb::IFINDEX);
    a.store(Size::W, Reg::R10, KEY, Reg::R1);
    a.load_map(Reg::R1, MapRef::Params);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(KEY));
    a.call(Helper::MapLookupElem);
    let found = a.label();
    a.jmp_imm(Cond::Ne, Reg::R0, 0, found);
    counting::count(a, counting, counters::DROPPED);
    parse::drop(a);
    a.bind(found);
}

/// Jumps to `no` unless the side's address (of the family `v4`, already checked) equals
/// slot `slot`; to `yes` when it does.
pub(super) fn addr_eq(
    a: &mut Asm,
    (side, v4): (Side, bool),
    (slot, counting): (usize, Counting),
    yes: Label,
    no: Label,
) {
    lookup(a, counting);
    let off = match side {
        Side::Src => state::SRC,
        Side::Dst => state::DST,
    };
    for w in 0..if v4 { 1 } else { 4 } {
        a.load(Size::W, Reg::R1, Reg::R7, off + 4 * w as i16);
        a.load(Size::W, Reg::R2, Reg::R0, at(slot, w));
        a.jmp_reg(Cond::Ne, Reg::R1, Reg::R2, no);
    }
    a.ja(yes);
}

/// Writes the set id of slot `slot` to the stack at `to` (after [`lookup`]'s `R0`).
pub(super) fn store_set_id(a: &mut Asm, slot: usize, to: i16, counting: Counting) {
    lookup(a, counting);
    a.load(Size::W, Reg::R1, Reg::R0, at(slot, 0));
    a.store(Size::W, Reg::R10, to, Reg::R1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_addresses_and_ids_as_the_program_reads_them() {
        assert_eq!(
            &addr_slot("10.1.2.3".parse().unwrap())[..5],
            &[10, 1, 2, 3, 0]
        );
        assert_eq!(&set_id_slot(7)[..4], &[0, 0, 0, 7]);
        let v = value(&[set_id_slot(1), addr_slot("::1".parse().unwrap())]);
        assert_eq!(v.len(), VALUE_SIZE as usize);
        assert_eq!(v[3], 1);
        assert_eq!(v[2 * SLOT_SIZE - 1], 1);
    }
}

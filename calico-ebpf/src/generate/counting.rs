//! Per-interface counters ([`crate::layout::counters`]): packets and bytes judged, and
//! what became of them, per interface and direction, as Calico's eBPF dataplane keeps
//! them (`calico-node -bpf counters dump`).
//!
//! The prologue looks the interface's row up once and leaves it in `R9` (or null, when
//! the backend wrote none: then nothing is counted); each exit adds one to its counter
//! with three instructions behind a null check, so the count needs no second lookup and
//! no shared exit (a BPF jump reaches only ±32K instructions). `R9` is free after the
//! prologue: nothing else uses it there, and helper calls preserve it.
//!
//! The row is per CPU: no atomic instruction, no cache line shared between CPUs.

use crate::insn::{Alu, Asm, Cond, Helper, MapRef, Reg, Size};
use crate::layout::{counters, skb};

/// Whether, and under which direction, a program counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Counting {
    /// No counters: the program uses no counter map.
    #[default]
    Off,
    /// Counted in the interface's ingress row.
    Ingress,
    /// Counted in the interface's egress row.
    Egress,
}

impl Counting {
    /// The direction in the counter map's key; `None` when off.
    fn direction(self) -> Option<u32> {
        match self {
            Counting::Off => None,
            Counting::Ingress => Some(counters::INGRESS),
            Counting::Egress => Some(counters::EGRESS),
        }
    }
}

/// The counter map's key on the stack: `[R10-256, R10-248)`, below every other use.
const KEY: i16 = -256;

/// `R0` = the interface's counter row, or null. Clobbers `R1`–`R5`.
fn lookup(a: &mut Asm, direction: u32) {
    a.load(Size::W, Reg::R1, Reg::R6, skb::IFINDEX);
    a.store(Size::W, Reg::R10, KEY, Reg::R1);
    a.store_imm(Size::W, Reg::R10, KEY + 4, direction as i32);
    a.load_map(Reg::R1, MapRef::Counters);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(KEY));
    a.call(Helper::MapLookupElem);
}

/// Adds `value` (a register) to counter `field` of the row in `row`, skipped when it is
/// null. Clobbers `R1`.
fn add(a: &mut Asm, row: Reg, field: i16, value: Option<Reg>) {
    let skip = a.label();
    a.jmp_imm(Cond::Eq, row, 0, skip);
    a.load(Size::DW, Reg::R1, row, field);
    match value {
        Some(v) => a.alu64_reg(Alu::Add, Reg::R1, v),
        None => a.alu64_imm(Alu::Add, Reg::R1, 1),
    }
    a.store(Size::DW, row, field, Reg::R1);
    a.bind(skip);
}

/// After the prologue: `R9` = the row (or null), and the packet and its bytes counted.
/// Clobbers `R1`–`R5`.
pub(super) fn start(a: &mut Asm, counting: Counting) {
    let Some(direction) = counting.direction() else {
        return;
    };
    lookup(a, direction);
    a.alu64_reg(Alu::Mov, Reg::R9, Reg::R0);
    add(a, Reg::R9, counters::PACKETS, None);
    a.load(Size::W, Reg::R2, Reg::R6, skb::LEN);
    add(a, Reg::R9, counters::BYTES, Some(Reg::R2));
}

/// In a later piece of a split program ([`super::split`]): `R9` = the row again (or
/// null), nothing counted (the entry counted the packet). Clobbers `R0`–`R5`.
pub(super) fn restore(a: &mut Asm, counting: Counting) {
    let Some(direction) = counting.direction() else {
        return;
    };
    lookup(a, direction);
    a.alu64_reg(Alu::Mov, Reg::R9, Reg::R0);
}

/// At an exit after [`start`]: one more in counter `field` (`ACCEPTED`, `DROPPED`).
/// Clobbers `R1`.
pub(super) fn count(a: &mut Asm, counting: Counting, field: i16) {
    if counting != Counting::Off {
        add(a, Reg::R9, field, None);
    }
}

/// At an exit of the prologue itself (before [`start`]): looks the row up and counts in
/// `field` (`MALFORMED`, `NOT_IP`). Clobbers `R0`–`R5`.
pub(super) fn count_early(a: &mut Asm, counting: Counting, field: i16) {
    let Some(direction) = counting.direction() else {
        return;
    };
    lookup(a, direction);
    add(a, Reg::R0, field, None);
}

//! eBPF instructions and a small assembler with forward labels.
//!
//! Only the instructions the policy generator needs are spelled out. Jumps name a
//! [`Label`]; [`Asm::finish`] resolves every label into the 16-bit relative offset the
//! instruction set has, and fails (never truncates) when a target is out of reach.

use crate::error::GenerateError;

/// A register. `R0` holds return values, `R1`–`R5` are arguments (clobbered by calls),
/// `R6`–`R9` survive calls, `R10` is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
    R6 = 6,
    R7 = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
}

/// One 8-byte eBPF instruction, as the kernel reads it (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    /// Opcode: class, size or operation, source.
    pub code: u8,
    /// Destination register (low nibble) and source register (high nibble).
    pub regs: u8,
    /// Signed offset: memory displacement or jump distance.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (dst as u8) | ((src as u8) << 4),
            off,
            imm,
        }
    }

    /// The instruction's 8 bytes in host order, as `bpf(BPF_PROG_LOAD)` takes them.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

// Instruction classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
// Sizes and modes.
const MEM: u8 = 0x60;
const IMM: u8 = 0x00;
const X: u8 = 0x08;
const BPF_TO_BE: u8 = 0x08;
/// `src_reg` of an `ld_imm64` whose immediate is a map file descriptor.
const PSEUDO_MAP_FD: Reg = Reg::R1;
/// `src_reg` of a call whose immediate is a kernel function's BTF id.
const PSEUDO_KFUNC_CALL: Reg = Reg::R2;

/// Width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

/// An arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Alu {
    Add = 0x00,
    Sub = 0x10,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Rsh = 0x70,
    Mov = 0xb0,
}

/// A jump condition (unsigned comparisons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Cond {
    Eq = 0x10,
    Gt = 0x20,
    Ge = 0x30,
    Set = 0x40,
    Ne = 0x50,
    Lt = 0xa0,
    Le = 0xb0,
    /// Signed less-than.
    Slt = 0xc0,
}

/// A kernel helper function, by its number in `enum bpf_func_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    /// `bpf_map_lookup_elem(map, key)`: the value's address, or 0.
    MapLookupElem = 1,
    /// `bpf_map_update_elem(map, key, value, flags)`: 0, or a negative errno.
    MapUpdateElem = 2,
    /// `bpf_map_delete_elem(map, key)`: 0, or a negative errno.
    MapDeleteElem = 3,
    /// `bpf_ktime_get_ns()`: nanoseconds since boot (`CLOCK_MONOTONIC`).
    KtimeGetNs = 5,
    /// `bpf_skb_load_bytes(skb, offset, to, len)`: 0, or a negative errno.
    SkbLoadBytes = 26,
    /// `bpf_tail_call(ctx, prog_array, index)`: does not return when the slot holds a
    /// program; falls through when it is empty (or the per-packet limit is reached).
    TailCall = 12,
    /// `bpf_fib_lookup(ctx, params, len, flags)`: a `BPF_FIB_LKUP_RET_*` code.
    FibLookup = 69,
}

/// A map a program refers to; its file descriptor is patched in at load time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapRef {
    /// The per-CPU packet state the prologue fills and the rules read.
    State,
    /// The LPM trie of IPv4 set members.
    SetsV4,
    /// The LPM trie of IPv6 set members.
    SetsV6,
    /// The hash of (set, address, protocol, port) members.
    NamedPorts,
    /// The flow table (an LRU hash), for [`crate::generate::Conntrack::Table`].
    Flows,
    /// The program's own per-interface values (a hash keyed by ifindex), for a program
    /// shared between interfaces ([`crate::generate::params`]).
    Params,
    /// The interfaces with an egress program (a hash keyed by ifindex): a forwarded
    /// packet leaving through another completes its path at the ingress program.
    Egress,
    /// The per-interface counters (a per-CPU hash, [`crate::layout::counters`]).
    Counters,
    /// The program array of a policy split into pieces chained with tail calls, one per
    /// loaded chain of pieces ([`crate::generate::split`]).
    Pieces,
}

/// A jump target, bound to an instruction index with [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// An instruction stream under construction.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// Instruction index of each label, once bound.
    labels: Vec<Option<usize>>,
    /// (instruction index, label) of every jump to patch.
    fixups: Vec<(usize, Label)>,
    /// (instruction index, map) of every map load to patch.
    maps: Vec<(usize, MapRef)>,
    /// Places where the stream may be cut into pieces ([`Asm::cut_point`]).
    cuts: Vec<usize>,
    /// Shared exit blocks, `[start, end)` ([`Asm::end_block`]).
    blocks: Vec<(usize, usize)>,
}

/// An [`Asm`] taken apart, for cutting it into pieces ([`crate::generate::split`]).
#[derive(Debug)]
pub(crate) struct Parts {
    /// The instructions.
    pub(crate) insns: Vec<Insn>,
    /// Instruction index of each label, once bound.
    pub(crate) labels: Vec<Option<usize>>,
    /// (instruction index, label) of every jump.
    pub(crate) fixups: Vec<(usize, Label)>,
    /// (instruction index, map) of every map load.
    pub(crate) maps: Vec<(usize, MapRef)>,
    /// The places it may be cut, ascending.
    pub(crate) cuts: Vec<usize>,
    /// Shared exit blocks, `[start, end)`.
    pub(crate) blocks: Vec<(usize, usize)>,
}

impl Label {
    /// The label's index among its assembler's labels.
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

impl Insn {
    /// Whether the instruction is a conditional jump: a branch the verifier may have to
    /// explore both ways (and keep pending while it walks one).
    pub fn is_conditional_jump(&self) -> bool {
        let class = self.code & 0x07;
        let op = self.code & 0xf0;
        (class == JMP || class == JMP32) && !matches!(op, 0x00 | 0x80 | 0x90)
    }
}

/// A finished program: instructions with every jump resolved, and the map loads whose
/// immediates are file descriptors to fill in. Equal programs behave the same given the
/// same maps: the backend shares one loaded copy between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The instructions.
    pub insns: Vec<Insn>,
    /// (instruction index, map) of every `ld_imm64` of a map's file descriptor.
    pub maps: Vec<(usize, MapRef)>,
}

impl Program {
    /// A 64-bit fingerprint of the instructions and map loads, for finding an equal program
    /// among the loaded ones: a multiply-rotate mix per instruction, ~1 ns each, where
    /// SipHash over the derived fields took ~20 times as long on a 13,000-instruction
    /// program. Equal programs have equal fingerprints; the cache compares the programs
    /// whose fingerprints match.
    pub fn fingerprint(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mix = |h: u64, x: u64| (h.rotate_left(5) ^ x).wrapping_mul(K);
        let mut h = mix(0, self.insns.len() as u64);
        for i in &self.insns {
            h = mix(h, u64::from_le_bytes(i.to_bytes()));
        }
        for &(at, map) in &self.maps {
            h = mix(h, at as u64);
            h = mix(h, map as u64);
        }
        h
    }
}

impl Asm {
    /// A fresh, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the next instruction emitted.
    pub fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    /// Instructions emitted so far.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether nothing was emitted yet.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Marks the next instruction as a place where the program may be cut into pieces
    /// chained with tail calls: only `R6` (the context), `R7` (the state) and `R9` (the
    /// counter row) hold anything there, and nothing on the stack is read after it
    /// before being written.
    pub fn cut_point(&mut self) {
        if self.cuts.last() != Some(&self.insns.len()) {
            self.cuts.push(self.insns.len());
        }
    }

    /// Marks the instructions from `start` (an earlier [`Asm::len`]) to here as a shared
    /// exit block: reached only by jumps, ending every path in an exit, jumping only
    /// within itself, and reading only what a cut point keeps (`R6`, `R7`, `R9`). A piece
    /// of a split program that jumps to one gets a copy of its own rather than a tail
    /// call ([`crate::generate::split`]).
    pub fn end_block(&mut self, start: usize) {
        self.blocks.push((start, self.insns.len()));
    }

    /// Conditional jumps emitted so far.
    pub fn branches(&self) -> usize {
        self.insns
            .iter()
            .filter(|i| i.is_conditional_jump())
            .count()
    }

    /// The assembler taken apart.
    pub(crate) fn into_parts(self) -> Parts {
        Parts {
            insns: self.insns,
            labels: self.labels,
            fixups: self.fixups,
            maps: self.maps,
            cuts: self.cuts,
            blocks: self.blocks,
        }
    }

    /// Emits `insn` as it is, its jump (if it is one) going to `to` and, when `map` is
    /// given, its immediate the descriptor of `map` (the first slot of an `ld_imm64`).
    pub(crate) fn copy(&mut self, insn: Insn, to: Option<Label>, map: Option<MapRef>) {
        if let Some(to) = to {
            self.fixups.push((self.insns.len(), to));
        }
        if let Some(map) = map {
            self.maps.push((self.insns.len(), map));
        }
        self.push(insn);
    }

    fn push(&mut self, i: Insn) {
        self.insns.push(i);
    }

    /// `dst = *(size *)(src + off)`.
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(Insn::new(LDX | MEM | size.bits(), dst, src, off, 0));
    }

    /// `*(size *)(dst + off) = src`.
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(Insn::new(STX | MEM | size.bits(), dst, src, off, 0));
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.push(Insn::new(ST | MEM | size.bits(), dst, Reg::R0, off, imm));
    }

    /// 64-bit `dst op= imm`.
    pub fn alu64_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.push(Insn::new(ALU64 | op as u8, dst, Reg::R0, 0, imm));
    }

    /// 64-bit `dst op= src`.
    pub fn alu64_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.push(Insn::new(ALU64 | op as u8 | X, dst, src, 0, 0));
    }

    /// 32-bit `dst op= imm` (the upper half of `dst` becomes 0).
    pub fn alu32_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.push(Insn::new(ALU | op as u8, dst, Reg::R0, 0, imm));
    }

    /// Swaps the low 16 bits of `dst` between network and host order (on little-endian
    /// hosts a byte swap, on big-endian ones a truncation).
    pub fn be16(&mut self, dst: Reg) {
        self.push(Insn::new(ALU | 0xd0 | BPF_TO_BE, dst, Reg::R0, 0, 16));
    }

    /// `dst = &map` (a two-slot `ld_imm64`, its immediate patched at load time).
    pub fn load_map(&mut self, dst: Reg, map: MapRef) {
        self.maps.push((self.insns.len(), map));
        self.push(Insn::new(
            LD | IMM | Size::DW.bits(),
            dst,
            PSEUDO_MAP_FD,
            0,
            0,
        ));
        self.push(Insn::new(0, Reg::R0, Reg::R0, 0, 0));
    }

    /// Calls a helper (clobbers `R1`–`R5`, result in `R0`).
    pub fn call(&mut self, h: Helper) {
        self.push(Insn::new(JMP | 0x80, Reg::R0, Reg::R0, 0, h as i32));
    }

    /// Calls the kernel function of BTF id `btf_id` in vmlinux (a kfunc; clobbers
    /// `R1`–`R5`, result in `R0`).
    pub fn call_kfunc(&mut self, btf_id: u32) {
        self.push(Insn::new(
            JMP | 0x80,
            Reg::R0,
            PSEUDO_KFUNC_CALL,
            0,
            i32::from_ne_bytes(btf_id.to_ne_bytes()),
        ));
    }

    /// Returns `R0`.
    pub fn exit(&mut self) {
        self.push(Insn::new(JMP | 0x90, Reg::R0, Reg::R0, 0, 0));
    }

    /// Unconditional jump.
    pub fn ja(&mut self, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(Insn::new(JMP, Reg::R0, Reg::R0, 0, 0));
    }

    /// 64-bit `if dst cond imm goto to`.
    pub fn jmp_imm(&mut self, cond: Cond, dst: Reg, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(Insn::new(JMP | cond as u8, dst, Reg::R0, 0, imm));
    }

    /// 64-bit `if dst cond src goto to`.
    pub fn jmp_reg(&mut self, cond: Cond, dst: Reg, src: Reg, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(Insn::new(JMP | cond as u8 | X, dst, src, 0, 0));
    }

    /// 32-bit `if (u32)dst cond (u32)imm goto to`.
    pub fn jmp32_imm(&mut self, cond: Cond, dst: Reg, imm: u32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(Insn::new(
            JMP32 | cond as u8,
            dst,
            Reg::R0,
            0,
            i32::from_ne_bytes(imm.to_ne_bytes()),
        ));
    }

    /// Resolves every jump; fails when a label was never bound or a jump is beyond the
    /// ±32K instructions a 16-bit offset reaches. Instructions no path reaches (the
    /// generator's jumps after an unconditional verdict) are dropped first: the verifier
    /// refuses unreachable code.
    pub fn finish(self) -> Result<Program, GenerateError> {
        let n = self.insns.len();
        let mut target: Vec<Option<usize>> = vec![None; n];
        for &(at, label) in &self.fixups {
            let t = self.labels[label.0].ok_or(GenerateError::Internal("unbound label"))?;
            if t >= n {
                return Err(GenerateError::Internal("jump past the last instruction"));
            }
            target[at] = Some(t);
        }
        let live = reachable(&self.insns, &target);
        // new_index[i]: the index of instruction i once dead ones are gone.
        let mut new_index = vec![0usize; n + 1];
        let mut kept = 0;
        for i in 0..n {
            new_index[i] = kept;
            kept += usize::from(live[i]);
        }
        new_index[n] = kept;
        let mut insns = Vec::with_capacity(kept);
        for (i, insn) in self.insns.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let mut insn = *insn;
            if let Some(t) = target[i] {
                let off = new_index[t] as i64 - new_index[i] as i64 - 1;
                insn.off = i16::try_from(off).map_err(|_| GenerateError::JumpTooFar {
                    from: new_index[i],
                    to: new_index[t],
                })?;
            }
            insns.push(insn);
        }
        let maps = self
            .maps
            .iter()
            .filter(|(at, _)| live[*at])
            .map(|&(at, m)| (new_index[at], m))
            .collect();
        Ok(Program { insns, maps })
    }
}

/// Which instructions a path from the first reaches.
fn reachable(insns: &[Insn], target: &[Option<usize>]) -> Vec<bool> {
    let n = insns.len();
    let mut live = vec![false; n];
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        if i >= n || live[i] {
            continue;
        }
        live[i] = true;
        let code = insns[i].code;
        let class = code & 0x07;
        let op = code & 0xf0;
        let is_jump = class == JMP || class == JMP32;
        if code == (LD | IMM | Size::DW.bits()) {
            // The second slot of an ld_imm64 belongs to it.
            if i + 1 < n {
                live[i + 1] = true;
            }
            todo.push(i + 2);
        } else if is_jump && op == 0x90 {
            // exit
        } else if is_jump && op == 0x00 {
            todo.extend(target[i]);
        } else if is_jump && op != 0x80 {
            todo.push(i + 1);
            todo.extend(target[i]);
        } else {
            todo.push(i + 1);
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_programs_have_equal_fingerprints_and_any_change_changes_it() {
        let program = |imm: i32, map: MapRef| {
            let mut a = Asm::default();
            a.load_map(Reg::R1, map);
            a.alu64_imm(Alu::Mov, Reg::R0, imm);
            a.exit();
            a.finish().unwrap()
        };
        let p = program(2, MapRef::State);
        assert_eq!(p.fingerprint(), program(2, MapRef::State).fingerprint());
        assert_ne!(p.fingerprint(), program(3, MapRef::State).fingerprint());
        assert_ne!(p.fingerprint(), program(2, MapRef::Params).fingerprint());
    }

    #[test]
    fn encodes_as_the_kernel_reads_it() {
        let mut a = Asm::default();
        a.alu64_imm(Alu::Mov, Reg::R0, 2);
        a.exit();
        let p = a.finish().unwrap();
        // mov64 r0, 2 = b7 00 0000 02000000; exit = 95 00 0000 00000000.
        assert_eq!(p.insns[0].to_bytes(), [0xb7, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(p.insns[1].to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn forward_and_backward_labels_resolve() {
        let mut a = Asm::default();
        let end = a.label();
        let top = a.label();
        a.bind(top);
        a.jmp_imm(Cond::Eq, Reg::R1, 0, end);
        a.ja(top);
        a.bind(end);
        a.exit();
        let p = a.finish().unwrap();
        assert_eq!(p.insns[0].off, 1);
        assert_eq!(p.insns[1].off, -2);
    }

    #[test]
    fn unreachable_instructions_are_dropped_and_jumps_follow() {
        let mut a = Asm::default();
        let end = a.label();
        a.jmp_imm(Cond::Eq, Reg::R1, 0, end);
        a.ja(end);
        // Dead: after an unconditional jump, and no jump lands here.
        a.ja(end);
        a.alu64_imm(Alu::Mov, Reg::R0, 1);
        a.load_map(Reg::R1, MapRef::State);
        a.bind(end);
        a.alu64_imm(Alu::Mov, Reg::R0, 0);
        a.exit();
        let p = a.finish().unwrap();
        assert_eq!(p.insns.len(), 4);
        assert_eq!(p.insns[0].off, 1);
        assert_eq!(p.insns[1].off, 0);
        assert!(p.maps.is_empty());
    }

    #[test]
    fn map_loads_take_two_slots_and_are_recorded() {
        let mut a = Asm::default();
        a.load_map(Reg::R1, MapRef::SetsV4);
        let p = a.finish().unwrap();
        assert_eq!(p.insns.len(), 2);
        assert_eq!(p.maps, vec![(0, MapRef::SetsV4)]);
        assert_eq!(p.insns[0].regs, 0x11);
    }

    #[test]
    fn unreachable_targets_are_an_error_not_a_truncation() {
        let mut a = Asm::default();
        let end = a.label();
        a.jmp_imm(Cond::Eq, Reg::R1, 0, end);
        for _ in 0..40_000 {
            a.alu64_imm(Alu::Mov, Reg::R0, 0);
        }
        a.bind(end);
        a.exit();
        assert!(matches!(a.finish(), Err(GenerateError::JumpTooFar { .. })));
    }
}

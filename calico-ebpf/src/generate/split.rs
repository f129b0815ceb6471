//! A policy too large for one BPF program, as several programs chained with tail calls.
//!
//! What limits one program (measured on kernel 6.18 with rules of a protocol and a port
//! match and a drop, 9 instructions and 3 conditional jumps each): the verifier keeps a
//! pending branch for each conditional jump on the path it walks and gives up at 8,192
//! ("the sequence of 8193 jumps is too complex"): between 4,000 rules (36K instructions,
//! loaded in ~0.95 s) and 5,000; and a jump reaches only ±32K instructions, so an
//! `Accept` early in a base chain of more than ~4,000 rules cannot reach the next base
//! chain ([`GenerateError::JumpTooFar`]).
//!
//! The generator marks the places between rules where only `R6` (the context), `R7`
//! (the per-CPU state) and `R9` (the interface's counter row, [`super::counting`]) are
//! live ([`Asm::cut_point`]); [`split`] cuts the instruction
//! stream at some of them so that each piece stays within a [`PieceBudget`]. Piece 0 is
//! the entry (the program attached); the others sit in a program array
//! ([`MapRef::Pieces`]) at their index. A jump into a later piece (the fall-through at a
//! cut, an `Accept` going to the next base chain, a `Return` or the end of an inlined
//! chain, a plan's branch) becomes a trampoline in its own piece: it writes the target's
//! position in the unsplit stream to [`state::RESUME`] and tail-calls the target's
//! piece, whose prologue looks the state (and the counter row) up again and dispatches
//! on that position. A jump to a shared exit block (the drop and accept exits every
//! verdict of the policy jumps to, [`Asm::end_block`]) is not such a jump: each piece
//! that jumps to one gets a copy of its own. The
//! per-CPU state survives a tail call (same packet, same CPU, no preemption), and every
//! jump goes forward, so a packet makes at most one tail call per piece it enters: the
//! kernel's 33 tail calls per packet, less the one the dispatcher makes to reach the
//! entry ([`crate::dispatch`]), allow [`MAX_PIECES`]. A tail call that fails (an empty
//! slot) drops the packet.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::GenerateError;
use crate::insn::{Alu, Asm, Cond, Helper, Label, MapRef, Parts, Program, Reg, Size};
use crate::layout::state;

use super::counting::{self, Counting};
use super::parse;

/// The kernel's limit of tail calls a packet may make (`MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALLS: usize = 33;
/// The tail calls a packet makes before it reaches a policy's entry: the dispatcher's
/// ([`crate::dispatch`]).
pub const DISPATCH_TAIL_CALLS: usize = 1;
/// The most pieces a policy is split into: the entry, then one per tail call left after
/// the dispatcher's (33 in all).
pub const MAX_PIECES: usize = MAX_TAIL_CALLS - DISPATCH_TAIL_CALLS + 1;

/// How large one piece may grow (its body: the resume prologue and the trampolines come
/// on top, a few instructions each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceBudget {
    /// Instructions.
    pub insns: usize,
    /// Conditional jumps.
    pub branches: usize,
}

impl PieceBudget {
    /// The budget the backend uses: 16,384 instructions, half of what a jump's 16-bit
    /// offset reaches, so that no jump inside a piece is out of reach even with its
    /// trampolines; and 4,096 conditional jumps, half of the verifier's 8,192 pending
    /// branches (since every jump goes forward, a path visits each conditional jump of
    /// a piece at most once, so it never has more pending than the piece has). Calico's
    /// own dataplane splits at about 8,000 jumps. A piece of 4,096 rules' branches loads
    /// in about 0.2 s (README).
    pub const DEFAULT: PieceBudget = PieceBudget {
        insns: 16_384,
        branches: 4_096,
    };
    /// No splitting: one program whatever its size, as before pieces existed (it may
    /// fail with [`GenerateError::JumpTooFar`], or be refused by the verifier).
    pub const UNSPLIT: PieceBudget = PieceBudget {
        insns: usize::MAX,
        branches: usize::MAX,
    };
}

impl Default for PieceBudget {
    fn default() -> PieceBudget {
        PieceBudget::DEFAULT
    }
}

/// A policy program as the kernel runs it: one program, or pieces chained with tail
/// calls through a program array (piece 0 is the entry). Equal pieces behave the same
/// given the same maps: the backend shares one loaded chain between them. (The default,
/// a program of no instructions, is only a placeholder.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pieces(Vec<Program>);

impl Default for Pieces {
    fn default() -> Pieces {
        Pieces(vec![Program {
            insns: Vec::new(),
            maps: Vec::new(),
        }])
    }
}

impl Pieces {
    /// The pieces, the entry first (never empty).
    pub fn all(&self) -> &[Program] {
        &self.0
    }

    /// The entry: the program attached.
    pub fn entry(&self) -> &Program {
        &self.0[0]
    }

    /// How many pieces.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: there is an entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Instructions in all pieces.
    pub fn insns(&self) -> usize {
        self.0.iter().map(|p| p.insns.len()).sum()
    }

    /// A fingerprint of every piece ([`Program::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        let first = self.0[0].fingerprint();
        let rest = self.0[1..].iter().map(Program::fingerprint);
        rest.fold(first, |h, f| {
            (h.rotate_left(7) ^ f).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        })
    }

    /// The one program, or [`GenerateError::Split`] when there are several.
    pub fn single(mut self) -> Result<Program, GenerateError> {
        if self.0.len() > 1 {
            return Err(GenerateError::Split {
                pieces: self.0.len(),
                insns: self.insns(),
            });
        }
        Ok(self.0.remove(0))
    }
}

/// Finishes `a` as one program when it fits `budget`, as pieces otherwise (which count
/// under `counting`, as `a` does).
pub(super) fn split(
    a: Asm,
    budget: PieceBudget,
    counting: Counting,
) -> Result<Pieces, GenerateError> {
    if a.len() <= budget.insns && a.branches() <= budget.branches {
        return Ok(Pieces(vec![a.finish()?]));
    }
    let parts = a.into_parts();
    let starts = cuts(&parts, budget)?;
    let plan = Plan::new(&parts, starts)?;
    let pieces = (0..plan.starts.len())
        .map(|k| plan.piece(&parts, k, counting))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Pieces(pieces))
}

/// Where the pieces start (0 first): greedily, each piece as long as the budget allows.
fn cuts(parts: &Parts, budget: PieceBudget) -> Result<Vec<usize>, GenerateError> {
    let n = parts.insns.len();
    // branches[i]: conditional jumps before instruction i.
    let mut branches = vec![0usize; n + 1];
    for (i, insn) in parts.insns.iter().enumerate() {
        branches[i + 1] = branches[i] + usize::from(insn.is_conditional_jump());
    }
    let fits =
        |s: usize, e: usize| e - s <= budget.insns && branches[e] - branches[s] <= budget.branches;
    let mut starts = vec![0];
    let mut last_fit = None;
    let candidates = parts.cuts.iter().copied().filter(|&c| c > 0 && c < n);
    for c in candidates.chain(std::iter::once(n)) {
        let s = *starts.last().unwrap_or(&0);
        if fits(s, c) {
            last_fit = Some(c);
            continue;
        }
        let Some(cut) = last_fit.filter(|&f| f > s) else {
            return Err(GenerateError::PieceTooLarge {
                at: s,
                insns: c - s,
                branches: branches[c] - branches[s],
                budget_insns: budget.insns,
                budget_branches: budget.branches,
            });
        };
        starts.push(cut);
        if starts.len() > MAX_PIECES {
            return Err(too_many(parts, budget, &branches));
        }
        // The candidate may still not fit the new piece: look at it again.
        if !fits(cut, c) {
            return Err(GenerateError::PieceTooLarge {
                at: cut,
                insns: c - cut,
                branches: branches[c] - branches[cut],
                budget_insns: budget.insns,
                budget_branches: budget.branches,
            });
        }
        last_fit = Some(c);
    }
    Ok(starts)
}

/// The error for a program needing more than [`MAX_PIECES`] pieces, with a lower bound
/// of the pieces it needs.
fn too_many(parts: &Parts, budget: PieceBudget, branches: &[usize]) -> GenerateError {
    let by_insns = parts.insns.len().div_ceil(budget.insns.max(1));
    let by_branches = branches[parts.insns.len()].div_ceil(budget.branches.max(1));
    GenerateError::TooManyPieces {
        pieces: by_insns.max(by_branches).max(MAX_PIECES + 1),
        insns: parts.insns.len(),
        limit: MAX_PIECES,
        tail_calls: MAX_TAIL_CALLS,
    }
}

/// Where each jump goes, in pieces.
struct Plan {
    /// Where each piece starts.
    starts: Vec<usize>,
    /// The jump target of each instruction that is a jump.
    target: Vec<Option<usize>>,
    /// The map of each instruction that loads one.
    map: Vec<Option<MapRef>>,
    /// Per piece, the positions earlier pieces resume it at.
    entries: Vec<BTreeSet<usize>>,
}

impl Plan {
    fn new(parts: &Parts, starts: Vec<usize>) -> Result<Plan, GenerateError> {
        let n = parts.insns.len();
        let mut target = vec![None; n];
        for &(at, label) in &parts.fixups {
            let t = parts.labels[label.index()].ok_or(GenerateError::Internal("unbound label"))?;
            if t >= n {
                return Err(GenerateError::Internal("jump past the last instruction"));
            }
            target[at] = Some(t);
        }
        let mut map = vec![None; n];
        for &(at, m) in &parts.maps {
            map[at] = Some(m);
        }
        let mut plan = Plan {
            entries: vec![BTreeSet::new(); starts.len()],
            starts,
            target,
            map,
        };
        for k in 1..plan.starts.len() {
            // The fall-through from the piece before.
            plan.entries[k].insert(plan.starts[k]);
        }
        for at in 0..n {
            let Some(t) = plan.target[at] else { continue };
            let (from, to) = (plan.piece_of(at), plan.piece_of(t));
            if to < from {
                return Err(GenerateError::Internal("a jump back across a cut"));
            }
            // A shared exit block is copied into the pieces that jump to it.
            if to > from && block_at(parts, t).is_none() {
                plan.entries[to].insert(t);
            }
        }
        Ok(plan)
    }

    /// The piece instruction `at` is in.
    fn piece_of(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at) - 1
    }

    /// Where piece `k` ends.
    fn end(&self, k: usize, n: usize) -> usize {
        self.starts.get(k + 1).copied().unwrap_or(n)
    }

    /// Assembles piece `k`: the resume prologue (not for the entry), its instructions,
    /// then a trampoline for each position in a later piece it jumps to.
    fn piece(&self, parts: &Parts, k: usize, counting: Counting) -> Result<Program, GenerateError> {
        let n = parts.insns.len();
        let (start, end) = (self.starts[k], self.end(k, n));
        let mut a = Asm::default();
        // Labels of the positions jumped to: in this piece, and (trampolines) beyond it.
        let mut local: BTreeMap<usize, Label> = BTreeMap::new();
        let mut far: BTreeMap<usize, Label> = BTreeMap::new();
        for at in start..end {
            if let Some(t) = self.target[at] {
                let labels = if t < end { &mut local } else { &mut far };
                labels.entry(t).or_insert_with(|| a.label());
            }
        }
        for &t in &self.entries[k] {
            local.entry(t).or_insert_with(|| a.label());
        }
        if k > 0 {
            resume(&mut a, &self.entries[k], &local, counting);
        }
        self.copy(&mut a, parts, (start, end), &local, &far);
        if end < n {
            // The fall-through into the next piece.
            let next = *far.entry(end).or_insert_with(|| a.label());
            a.ja(next);
        }
        for (&t, &label) in &far {
            a.bind(label);
            match block_at(parts, t) {
                Some(block) => self.copy_block(&mut a, parts, block),
                None => trampoline(&mut a, t, self.piece_of(t)),
            }
        }
        a.finish()
    }

    /// Emits a copy of the shared exit block `[start, end)`, its jumps (all within it)
    /// going to the copy's own labels.
    fn copy_block(&self, a: &mut Asm, parts: &Parts, (start, end): (usize, usize)) {
        let mut local = BTreeMap::new();
        for at in start..end {
            if let Some(t) = self.target[at] {
                local.entry(t).or_insert_with(|| a.label());
            }
        }
        self.copy(a, parts, (start, end), &local, &BTreeMap::new());
    }

    /// Emits instructions `start..end` with their jumps going to `local` or `far` labels.
    fn copy(
        &self,
        a: &mut Asm,
        parts: &Parts,
        (start, end): (usize, usize),
        local: &BTreeMap<usize, Label>,
        far: &BTreeMap<usize, Label>,
    ) {
        for at in start..end {
            if let Some(&l) = local.get(&at) {
                a.bind(l);
            }
            let to = self.target[at].and_then(|t| local.get(&t).or_else(|| far.get(&t)));
            a.copy(parts.insns[at], to.copied(), self.map[at]);
        }
    }
}

/// The shared exit block starting at `t`, if one does ([`Asm::end_block`]).
fn block_at(parts: &Parts, t: usize) -> Option<(usize, usize)> {
    parts.blocks.iter().copied().find(|&(start, _)| start == t)
}

/// A later piece's prologue: `R6` the context, `R7` the state, `R9` the counter row
/// under `counting`, then a jump to the position the state's resume word names (drop
/// when it names none of `entries`).
fn resume(
    a: &mut Asm,
    entries: &BTreeSet<usize>,
    local: &BTreeMap<usize, Label>,
    counting: Counting,
) {
    let fail = a.label();
    parse::lookup_state(a, fail);
    counting::restore(a, counting);
    a.load(Size::W, Reg::R1, Reg::R7, state::RESUME);
    for t in entries {
        a.jmp32_imm(Cond::Eq, Reg::R1, *t as u32, local[t]);
    }
    a.bind(fail);
    parse::drop(a);
}

/// Resumes at position `t`, in piece `piece`: the position written to the state, then a
/// tail call; a failed one drops the packet.
fn trampoline(a: &mut Asm, t: usize, piece: usize) {
    a.store_imm(Size::W, Reg::R7, state::RESUME, t as i32);
    a.alu64_reg(Alu::Mov, Reg::R1, Reg::R6);
    a.load_map(Reg::R2, MapRef::Pieces);
    a.alu64_imm(Alu::Mov, Reg::R3, piece as i32);
    a.call(Helper::TailCall);
    parse::drop(a);
}

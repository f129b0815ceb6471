//! The policy program generator: the IR's chains of one hook, for one interface binding,
//! as one eBPF program, generated at run time.
//!
//! Shape: the prologue ([`parse`]) fills the per-CPU state; then each base chain of the
//! hook, in the interpreter's order (priority, then name), as fall-through compare
//! blocks, one per rule ([`matches`]). Verdicts are jumps: `Accept` ends the base chain
//! (later base chains of the hook still run; in the last one it goes to the shared accept
//! exit), `Drop` goes to the shared drop exit (the exits are emitted once, at the end; a
//! split program's pieces get a copy each, so no jump leaves its piece), `Jump` inlines the
//! target chain with its end returning after the rule, `Goto` inlines it with its end
//! being the current chain's, `Return` jumps to the current chain's end. A verdict-map
//! dispatch is resolved now, for the interfaces the program is generated for
//! ([`Bindings`]), so it costs nothing per packet. Sets are not in the program: a match
//! looks the address up in the set maps by the set's id, so a member change is a map
//! write ([`crate::sets`]).
//!
//! A program larger than a [`PieceBudget`] is cut between rules into pieces chained with
//! tail calls ([`split`]); [`Generated::pieces`] holds them.
//!
//! Everything the backend does not implement yet is refused with a [`GenerateError`]
//! naming it, and only when the program would reach it.

pub mod conntrack;
mod counting;
pub mod flow_table;
mod matches;
pub mod params;
pub mod parse;
pub mod split;

use std::collections::BTreeMap;

use calico_core::dataplane::ir::{
    BaseChain, ChainPolicy, ChainType, Hook, IfaceKey, Match, Ruleset, Statement, Verdict,
};
use calico_core::dataplane::validate::MAX_JUMP_DEPTH;

use crate::error::GenerateError;
use crate::insn::{Alu, Asm, Cond, Label, Program, Reg, Size};
use crate::layout::{counters, ct, state};
pub use conntrack::{Conntrack, CtKfuncs};
pub use counting::Counting;
pub use flow_table::FlowTimeouts;
pub use matches::SetRef;
pub use split::{PieceBudget, Pieces, DISPATCH_TAIL_CALLS, MAX_PIECES, MAX_TAIL_CALLS};

/// The most instructions a privileged program may have (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_INSNS: usize = 1_000_000;

/// The interfaces a program is generated for: a dispatch on a bound interface is resolved
/// at generation time; one on an unbound interface is a [`GenerateError::UnboundDispatch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bindings {
    /// The input interface (`iifname`).
    pub iif: Option<String>,
    /// The output interface (`oifname`).
    pub oif: Option<String>,
}

/// What to do with the IR's log statements, which the backend cannot emit yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Logs {
    /// Refuse a reachable `log` or netlink-log statement
    /// ([`GenerateError::UnsupportedStatement`]).
    #[default]
    Refuse,
    /// Generate the rule without its log statements. A log never changes a verdict, so
    /// verdicts stay exact; only the log lines are missing. For tests and measurements.
    Omit,
}

/// Whether per-interface constants are in the instructions or read from a map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sharing {
    /// Every constant inline: the program serves the interfaces it was generated for.
    #[default]
    Inline,
    /// The address compares and address-set ids of the chains a verdict-map dispatch
    /// leads to are read from the program's params map, keyed by the interface it runs
    /// at ([`params`]); [`Generated::params`] holds their values. Interfaces whose
    /// programs come out equal can share one loaded program.
    ByInterface,
}

/// Generation options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Log statements.
    pub logs: Logs,
    /// Where the conntrack word comes from.
    pub conntrack: Conntrack,
    /// Whether per-interface constants are data.
    pub sharing: Sharing,
    /// Whether the program counts its packets per interface, and in which direction's
    /// row ([`crate::layout::counters`]).
    pub counting: Counting,
    /// How large one program may grow before the policy is split into pieces.
    pub pieces: PieceBudget,
}

/// One hook a program evaluates, for packets with the interfaces `bindings`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The hook whose base chains run.
    pub hook: Hook,
    /// The interfaces dispatches resolve for.
    pub bindings: Bindings,
}

/// Generates the program evaluating every base chain of `hook` in `ruleset` for packets
/// with the interfaces `bindings`. `set_ids` gives the id of every set of the ruleset in
/// the set maps. One program: a policy the options' budget splits is
/// [`GenerateError::Split`] ([`generate`] gives its pieces).
pub fn hook_program(
    ruleset: &Ruleset,
    hook: Hook,
    bindings: &Bindings,
    set_ids: &BTreeMap<String, u32>,
    options: Options,
) -> Result<Program, GenerateError> {
    let stage = Stage {
        hook,
        bindings: bindings.clone(),
    };
    program(ruleset, std::slice::from_ref(&stage), set_ids, options)
}

/// Generates one program evaluating `stages` in order, as the kernel would run their hooks
/// one after the other on one packet: a packet a stage accepts goes on to the next stage
/// with the mark it has; one a stage drops is dropped. (Prerouting then forward, say, at
/// the ingress of a workload's interface.)
pub fn program(
    ruleset: &Ruleset,
    stages: &[Stage],
    set_ids: &BTreeMap<String, u32>,
    options: Options,
) -> Result<Program, GenerateError> {
    let plan = Plan::Always(stages.to_vec());
    generate(ruleset, &plan, set_ids, options)?.pieces.single()
}

/// Which stages a packet meets, decided per packet where a TC program cannot know it in
/// advance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// These stages, for every packet.
    Always(Vec<Stage>),
    /// At an interface's ingress: `local` for a packet the host itself receives (the
    /// kernel's route lookup from this interface says it is not forwarded: a local,
    /// broadcast or multicast destination, or an interface that does not forward),
    /// `forwarded` for the others.
    ByDestination {
        /// Stages of a packet to the host.
        local: Vec<Stage>,
        /// Stages of a forwarded packet.
        forwarded: Vec<Stage>,
    },
    /// At an interface's egress: `local` for a packet the host itself sent (it came in
    /// through no interface), `forwarded` for the others.
    ByOrigin {
        /// Stages of a packet from the host.
        local: Vec<Stage>,
        /// Stages of a forwarded packet.
        forwarded: Vec<Stage>,
    },
}

/// A generated program, and the chains it reached (it must be generated again when one of
/// them changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// The program: one, or pieces chained with tail calls.
    pub pieces: Pieces,
    /// Every chain the program evaluates.
    pub chains: std::collections::BTreeSet<String>,
    /// Every set its rules look up (the program holds their ids).
    pub sets: std::collections::BTreeSet<String>,
    /// With [`Sharing::ByInterface`]: the values of the program's slots for the
    /// interfaces it was generated for, in slot order ([`params::value`] makes the map
    /// value). Empty otherwise.
    pub params: Vec<[u8; params::SLOT_SIZE]>,
}

/// The base chains of a ruleset, by name: what a program's stages start from. A host's
/// ruleset has a handful among thousands of chains (two per local endpoint), so a caller
/// generating many programs finds them once ([`generate_with`]), and again only when a
/// change adds or deletes a base chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseChains(Vec<(String, BaseChain)>);

impl BaseChains {
    /// The base chains of `ruleset`.
    pub fn of(ruleset: &Ruleset) -> BaseChains {
        let bases = ruleset.chains.iter();
        BaseChains(
            bases
                .filter_map(|(n, c)| Some((n.clone(), c.base?)))
                .collect(),
        )
    }
}

/// Generates the program of `plan`.
pub fn generate(
    ruleset: &Ruleset,
    plan: &Plan,
    set_ids: &BTreeMap<String, u32>,
    options: Options,
) -> Result<Generated, GenerateError> {
    generate_with((ruleset, &BaseChains::of(ruleset)), plan, set_ids, options)
}

/// [`generate`] with the ruleset's base chains found already (`bases` must be
/// [`BaseChains::of`] `ruleset`).
pub fn generate_with(
    ruleset: (&Ruleset, &BaseChains),
    plan: &Plan,
    set_ids: &BTreeMap<String, u32>,
    options: Options,
) -> Result<Generated, GenerateError> {
    let (a, mut g) = emit(ruleset, plan, set_ids, options)?;
    g.pieces = split::split(a, options.pieces, options.counting)?;
    Ok(g)
}

/// The chains the program of `plan` reaches, without assembling it (so whatever the
/// number of pieces it would need): what [`Generated::chains`] would be.
pub(crate) fn reached(
    ruleset: &Ruleset,
    plan: &Plan,
    set_ids: &BTreeMap<String, u32>,
    options: Options,
) -> Result<std::collections::BTreeSet<String>, GenerateError> {
    let bases = BaseChains::of(ruleset);
    Ok(emit((ruleset, &bases), plan, set_ids, options)?.1.chains)
}

/// The instructions of `plan`, not assembled, and what they reached (the pieces left
/// empty).
fn emit(
    (ruleset, bases): (&Ruleset, &BaseChains),
    plan: &Plan,
    set_ids: &BTreeMap<String, u32>,
    options: Options,
) -> Result<(Asm, Generated), GenerateError> {
    let mut a = Asm::default();
    let accept = a.label();
    let exits = Exits::new(&mut a);
    let no_bindings = Bindings::default();
    let mut g = Gen {
        a,
        ruleset,
        bindings: &no_bindings,
        options,
        set_ids,
        accept,
        completes: true,
        chains: Default::default(),
        used_sets: Default::default(),
        params: Vec::new(),
        bases: &bases.0,
        exits,
    };
    parse::emit(&mut g.a, options.conntrack, options.counting);
    counting::start(&mut g.a, options.counting);
    // Whether an accept of the stages completes the packet's path through the programs
    // (a forwarded packet at an ingress meets the egress program next).
    match plan {
        Plan::Always(stages) => g.stages(stages, true)?,
        Plan::ByDestination { local, forwarded } => {
            let to_host = g.a.label();
            parse::is_local_destination(&mut g.a, to_host);
            g.stages(forwarded, false)?;
            g.a.bind(to_host);
            g.stages(local, true)?;
        }
        Plan::ByOrigin { local, forwarded } => {
            let from_host = g.a.label();
            parse::is_local_origin(&mut g.a, from_host);
            g.stages(forwarded, true)?;
            g.a.bind(from_host);
            g.stages(local, true)?;
        }
    }
    g.exit_blocks();
    if g.a.len() > MAX_INSNS {
        return Err(GenerateError::ProgramTooLarge {
            insns: g.a.len(),
            limit: MAX_INSNS,
        });
    }
    let chains = g.chains.iter().map(|c| c.to_string()).collect();
    let sets = std::mem::take(&mut g.used_sets);
    let params = std::mem::take(&mut g.params);
    let generated = Generated {
        pieces: Pieces::default(),
        chains,
        sets,
        params,
    };
    Ok((g.a, generated))
}

/// Where the verdicts of the chain being emitted lead.
struct Frame {
    /// Where `Return` and the end of the chain go.
    end: Label,
    /// Where `Accept` goes: the next base chain of the hook.
    accept: Label,
}

struct Gen<'a> {
    a: Asm,
    ruleset: &'a Ruleset,
    bindings: &'a Bindings,
    options: Options,
    /// The id of every set in the set maps. Looked up only for the sets a reached rule
    /// matches: a program reaches a few of a host's hundreds of sets.
    set_ids: &'a BTreeMap<String, u32>,
    /// The final accept of the stages being emitted.
    accept: Label,
    /// Whether that accept completes the packet's path through the programs.
    completes: bool,
    /// Every chain reached so far.
    chains: std::collections::BTreeSet<&'a str>,
    /// Every set looked up so far.
    used_sets: std::collections::BTreeSet<String>,
    /// The values of the slots used so far ([`Sharing::ByInterface`]).
    params: Vec<[u8; params::SLOT_SIZE]>,
    /// The ruleset's base chains ([`BaseChains`]).
    bases: &'a [(String, BaseChain)],
    /// The shared exits every verdict jumps to.
    exits: Exits,
}

/// The program's shared exit blocks ([`Asm::end_block`]), emitted once at its end when
/// used: a verdict is one jump, rather than an inline copy of the exit (the flow record
/// alone is ~45 instructions), and the verifier, finding the same state at an exit it has
/// walked, prunes it. A split program's pieces each get a copy of the exits they use.
struct Exits {
    /// The drop.
    drop: (Label, bool),
    /// The accept that completes the packet's path through the programs.
    accept: (Label, bool),
    /// The accept of a forwarded packet at an ingress (the egress program may judge it).
    accept_forwarded: (Label, bool),
}

impl Exits {
    fn new(a: &mut Asm) -> Exits {
        Exits {
            drop: (a.label(), false),
            accept: (a.label(), false),
            accept_forwarded: (a.label(), false),
        }
    }
}

impl<'a> Gen<'a> {
    /// Emits `stages` in order, ending with the accept exit; `completes`: their accept
    /// ends the packet's path through the programs.
    fn stages(&mut self, stages: &'a [Stage], completes: bool) -> Result<(), GenerateError> {
        let accept = self.a.label();
        self.accept = accept;
        self.completes = completes;
        // Every base chain of every stage, in order, each with its stage's bindings.
        let mut bases = Vec::new();
        for stage in stages {
            let mut of_hook: Vec<_> = self
                .bases
                .iter()
                .filter(|(_, b)| b.hook == stage.hook)
                .map(|(n, b)| (b.priority, n, *b))
                .collect();
            of_hook.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)));
            bases.extend(of_hook.into_iter().map(|(_, n, b)| (n, b, &stage.bindings)));
        }
        let last = bases.len().saturating_sub(1);
        for (i, (name, base, bindings)) in bases.into_iter().enumerate() {
            self.bindings = bindings;
            // The last base chain's accept is the program's.
            let next = if i == last { accept } else { self.a.label() };
            if base.kind == ChainType::Nat {
                // NAT chains see a connection's first packet only.
                self.a.load(Size::W, Reg::R1, Reg::R7, state::CT);
                self.a.alu32_imm(Alu::And, Reg::R1, ct::STATE_MASK as i32);
                self.a.jmp_imm(Cond::Ne, Reg::R1, ct::NEW as i32, next);
            }
            let end = self.a.label();
            self.chain(name, &Frame { end, accept: next }, 0, false)?;
            self.a.bind(end);
            if base.policy == ChainPolicy::Drop {
                self.drop_here();
            }
            if i != last {
                self.a.bind(next);
            }
        }
        self.a.bind(accept);
        self.accept_exit();
        Ok(())
    }

    /// Goes to the accept exit of the stages being emitted.
    fn accept_exit(&mut self) {
        let exit = match self.completes {
            true => &mut self.exits.accept,
            false => &mut self.exits.accept_forwarded,
        };
        exit.1 = true;
        let to = exit.0;
        self.a.ja(to);
    }

    /// Drops the packet: a jump to the drop exit.
    fn drop_here(&mut self) {
        self.exits.drop.1 = true;
        let to = self.exits.drop.0;
        self.a.ja(to);
    }

    /// Emits the exits used, each a shared block: the drop; the accept, recording a new
    /// flow first where the program keeps a flow table and the accept completes the
    /// packet's path: always, or (a forwarded packet at an ingress) when the interface
    /// it leaves through has no egress program to judge it next, such as the uplink to
    /// another host.
    fn exit_blocks(&mut self) {
        let counting = self.options.counting;
        let table = matches!(self.options.conntrack, Conntrack::Table(_));
        let Exits {
            drop,
            accept,
            accept_forwarded,
        } = self.exits;
        let a = &mut self.a;
        if drop.1 {
            a.bind(drop.0);
            let start = a.len();
            counting::count(a, counting, counters::DROPPED);
            parse::drop(a);
            a.end_block(start);
        }
        for (exit, completes) in [(accept, true), (accept_forwarded, false)] {
            if !exit.1 {
                continue;
            }
            a.bind(exit.0);
            let start = a.len();
            match (table, completes) {
                (true, true) => flow_table::emit_record(a),
                (true, false) => flow_table::emit_record_unless_egress_program(a),
                (false, _) => {}
            }
            counting::count(a, counting, counters::ACCEPTED);
            parse::accept(a);
            a.end_block(start);
        }
    }

    /// Goes where an `Accept` of the current base chain leads: the accept exit for the
    /// last base chain, the next base chain otherwise.
    fn accept_to(&mut self, to: Label) {
        if to == self.accept {
            self.accept_exit();
        } else {
            self.a.ja(to);
        }
    }

    /// Emits chain `name`; `lifted`: it is the target of a dispatch, whose address
    /// constants are slots under [`Sharing::ByInterface`].
    fn chain(
        &mut self,
        name: &'a str,
        frame: &Frame,
        depth: usize,
        lifted: bool,
    ) -> Result<(), GenerateError> {
        // As the interpreter: a dangling chain or a too deep one drops (a validated
        // ruleset has neither).
        self.chains.insert(name);
        let Some(chain) = self.ruleset.chains.get(name) else {
            self.drop_here();
            return Ok(());
        };
        if depth > MAX_JUMP_DEPTH {
            self.drop_here();
            return Ok(());
        }
        if self.a.len() > MAX_INSNS {
            return Err(GenerateError::ProgramTooLarge {
                insns: self.a.len(),
                limit: MAX_INSNS,
            });
        }
        for (i, rule) in chain.rules.iter().enumerate() {
            self.a.cut_point();
            let next = self.a.label();
            for m in &rule.matches {
                let set = match m {
                    Match::AddrInSet { set, .. } | Match::AddrProtoPortInSet { set, .. } => {
                        if !self.used_sets.contains(set) {
                            self.used_sets.insert(set.clone());
                        }
                        self.set_ref(set)?
                    }
                    _ => None,
                };
                if !(lifted && self.lift(m, set, next)) {
                    matches::emit(&mut self.a, m, &|_| set, next);
                }
            }
            for s in &rule.statements {
                self.statement(s, name, i)?;
            }
            let dispatched = matches!(rule.verdict, Some(Verdict::Dispatch { .. }));
            let verdict = match &rule.verdict {
                Some(Verdict::Dispatch { key, map }) => {
                    let (iface, key_name) = match key {
                        IfaceKey::Input => (&self.bindings.iif, "input"),
                        IfaceKey::Output => (&self.bindings.oif, "output"),
                    };
                    let Some(iface) = iface else {
                        return Err(GenerateError::UnboundDispatch {
                            chain: name.into(),
                            rule: i,
                            map: map.clone(),
                            key: key_name,
                        });
                    };
                    self.ruleset
                        .maps
                        .get(map)
                        .and_then(|m| m.elements.get(iface))
                }
                v => v.as_ref(),
            };
            match verdict {
                None => {}
                Some(Verdict::Accept) => self.accept_to(frame.accept),
                Some(Verdict::Drop) => self.drop_here(),
                Some(Verdict::Return) => self.a.ja(frame.end),
                Some(Verdict::Jump(target)) => {
                    let back = self.a.label();
                    let inner = Frame {
                        end: back,
                        accept: frame.accept,
                    };
                    self.chain(target, &inner, depth + 1, dispatched)?;
                    self.a.bind(back);
                }
                Some(Verdict::Goto(target)) => {
                    let inner = Frame {
                        end: frame.end,
                        accept: frame.accept,
                    };
                    self.chain(target, &inner, depth + 1, dispatched)?;
                    self.a.ja(frame.end);
                }
                // A map holding a dispatch: invalid, and the interpreter drops.
                Some(Verdict::Dispatch { .. }) => self.drop_here(),
            }
            self.a.bind(next);
        }
        self.a.ja(frame.end);
        Ok(())
    }

    /// The set `name` as the program refers to it: `None` when the ruleset has no such set
    /// (the match fails, as in the interpreter), an error when it has no id.
    fn set_ref(&self, name: &str) -> Result<Option<SetRef>, GenerateError> {
        let Some(set) = self.ruleset.sets.get(name) else {
            return Ok(None);
        };
        let id = *self
            .set_ids
            .get(name)
            .ok_or_else(|| GenerateError::SetWithoutId { set: name.into() })?;
        Ok(Some(SetRef { id, key: set.key }))
    }

    /// Emits `m` with its per-interface constant in a new slot, when sharing is on, a
    /// slot is left and the match is one that has such a constant; `false` otherwise
    /// (nothing emitted).
    fn lift(&mut self, m: &Match, set: Option<SetRef>, fail: Label) -> bool {
        if self.options.sharing != Sharing::ByInterface || self.params.len() >= params::SLOTS {
            return false;
        }
        let (value, set) = match (m, set) {
            (Match::AddrEq { addr, .. }, _) => (params::addr_slot(*addr), None),
            (Match::AddrInSet { .. }, Some(s)) => (params::set_id_slot(s.id), Some(s)),
            _ => return false,
        };
        let slot = (set, self.params.len());
        let lifted = matches::emit_lifted(&mut self.a, m, slot, self.options.counting, fail);
        if lifted {
            self.params.push(value);
        }
        lifted
    }

    fn statement(&mut self, s: &Statement, chain: &str, rule: usize) -> Result<(), GenerateError> {
        let unsupported = |feature| GenerateError::UnsupportedStatement {
            chain: chain.into(),
            rule,
            feature,
        };
        match s {
            Statement::SetMark(bits) => {
                self.a.load(Size::W, Reg::R1, Reg::R7, state::MARK);
                self.a
                    .alu32_imm(Alu::Or, Reg::R1, i32::from_ne_bytes(bits.to_ne_bytes()));
                self.a.store(Size::W, Reg::R7, state::MARK, Reg::R1);
            }
            Statement::ClearMark(bits) => {
                self.a.load(Size::W, Reg::R1, Reg::R7, state::MARK);
                self.a
                    .alu32_imm(Alu::And, Reg::R1, i32::from_ne_bytes((!bits).to_ne_bytes()));
                self.a.store(Size::W, Reg::R7, state::MARK, Reg::R1);
            }
            Statement::Log(_) | Statement::NfLog { .. } if self.options.logs == Logs::Omit => {}
            Statement::Log(_) => return Err(unsupported("log")),
            Statement::NfLog { .. } => return Err(unsupported("log group (flow logs)")),
            // A comment naming the rule for flow logs: nothing to run (the logs themselves
            // are refused above).
            Statement::FlowRef(_) => {}
            Statement::NoTrack => return Err(unsupported("notrack")),
            Statement::Dnat(_) => return Err(unsupported("dnat")),
            Statement::Snat(_) => return Err(unsupported("snat")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

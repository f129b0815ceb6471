//! Typed errors: what could not be generated, and what the kernel refused.

/// Why the IR could not be turned into a policy program. Every IR feature this backend
/// does not implement yet is refused here, by name, rather than given a wrong verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// A statement the eBPF backend does not implement yet, in a chain the program reaches.
    #[error(
        "chain {chain} rule #{rule}: statement {feature} is not supported by the eBPF backend yet"
    )]
    UnsupportedStatement {
        /// The chain.
        chain: String,
        /// The rule's index in the chain.
        rule: usize,
        /// The statement, e.g. `log`, `dnat`, `notrack`.
        feature: &'static str,
    },
    /// A verdict-map dispatch on an interface the program was not generated for: a program
    /// is generated for one interface binding and resolves dispatches at generation time.
    #[error("chain {chain} rule #{rule}: dispatch on the {key} interface through map {map}, but the program is generated without a binding for it")]
    UnboundDispatch {
        /// The chain.
        chain: String,
        /// The rule's index in the chain.
        rule: usize,
        /// The map.
        map: String,
        /// `input` or `output`.
        key: &'static str,
    },
    /// A set's element does not fit its key type (the ruleset is invalid).
    #[error("set {set}: element {element} does not fit the set's key type")]
    BadSetElement {
        /// The set.
        set: String,
        /// The element, as debug text.
        element: String,
    },
    /// A set a reached rule matches was given no id in the set maps (a caller's bug).
    #[error("set {set} has no id in the set maps")]
    SetWithoutId {
        /// The set.
        set: String,
    },
    /// The program needs more set ids than a `u32` holds.
    #[error("too many sets")]
    TooManySets,
    /// A jump spans more instructions than a 16-bit offset reaches: a program generated
    /// unsplit ([`crate::generate::PieceBudget::UNSPLIT`]) too large for one program, or a
    /// piece with a budget above what a jump reaches.
    #[error(
        "jump from instruction {from} to {to} is beyond the 32K instructions a BPF jump reaches"
    )]
    JumpTooFar {
        /// The jump's index.
        from: usize,
        /// Its target's index.
        to: usize,
    },
    /// The program is larger than the kernel loads.
    #[error("program of {insns} instructions exceeds the kernel's limit of {limit}")]
    ProgramTooLarge {
        /// Its size.
        insns: usize,
        /// The limit.
        limit: usize,
    },
    /// The policy needs several programs chained with tail calls, and the caller asked
    /// for one ([`crate::generate::Pieces::single`]): load it with
    /// [`crate::program::Loaded::load_pieces`].
    #[error("the policy needs {pieces} programs chained with tail calls ({insns} instructions in all), not one")]
    Split {
        /// How many pieces.
        pieces: usize,
        /// Instructions in all pieces.
        insns: usize,
    },
    /// What lies between two places the program may be cut (one rule, with the chains it
    /// inlines up to their first rule) is larger than one piece may be.
    #[error("the rules from instruction {at} on need {insns} instructions and {branches} conditional jumps without a place to cut them, over the piece budget of {budget_insns} instructions and {budget_branches} conditional jumps")]
    PieceTooLarge {
        /// Where the stretch starts, in the unsplit program.
        at: usize,
        /// Its instructions.
        insns: usize,
        /// Its conditional jumps.
        branches: usize,
        /// The budget's instructions.
        budget_insns: usize,
        /// The budget's conditional jumps.
        budget_branches: usize,
    },
    /// The policy needs more pieces than a packet may tail-call through.
    #[error("the policy ({insns} instructions) needs at least {pieces} programs chained with tail calls; the kernel allows {tail_calls} tail calls per packet, one of which the dispatcher makes, so at most {limit} programs")]
    TooManyPieces {
        /// A lower bound of the pieces it needs.
        pieces: usize,
        /// Its instructions, unsplit.
        insns: usize,
        /// The most pieces.
        limit: usize,
        /// The kernel's tail calls per packet.
        tail_calls: usize,
    },
    /// A bug in the generator.
    #[error("internal generator error: {0}")]
    Internal(&'static str),
}

/// A `bpf(2)` operation the kernel refused, with what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysError {
    /// The syscall failed.
    #[error("bpf({op}) failed: {source}")]
    Bpf {
        /// The command and its object, e.g. `BPF_MAP_CREATE calico_v4_sets`.
        op: String,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// The verifier rejected a program; its log says why.
    #[error("the verifier rejected program {name}: {source}\n{log}")]
    Verifier {
        /// The program's name.
        name: String,
        /// The errno.
        #[source]
        source: std::io::Error,
        /// The verifier's log (its tail, when long).
        log: String,
    },
    /// A program's output did not have the size the caller expects.
    #[error("{what}: {reason}")]
    Unexpected {
        /// What was being done.
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Generation failed.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// The kernel refused something.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// A change the IR's rules refuse (adding what exists, removing what does not, an
    /// element of the wrong kind, overlapping CIDRs); nothing of it was written.
    #[error("change refused: {0}")]
    Refused(String),
}

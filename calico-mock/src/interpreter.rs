//! Evaluates a packet against an IR [`Ruleset`] exactly as nftables evaluates the table it
//! maps to: base chains of the hook in priority order, rules in order, all matches must
//! hold, statements then verdict; `jump` returns, `goto` does not, `return` or the end of a
//! regular chain resumes after the last jump, the end of a base chain applies its policy.
//!
//! NAT base chains see only a connection's first packet ([`ConnState::New`]), as in the
//! kernel; a `dnat`/`snat` rewrites the packet's destination/source, accepts it at that base
//! chain, and later base chains of the hook (and the caller, through
//! [`Outcome::packet`]) see the rewritten packet. Conntrack's translation of a connection's
//! later packets and replies is the caller's (calico-mock's network keeps it per host).

use std::net::IpAddr;

use calico_core::dataplane::ir::{
    ChainPolicy, ChainType, CtState, Hook, IfaceKey, Match, Ruleset, SetElement, Side, Statement,
    Verdict,
};
use calico_core::eval::Packet;

/// Connection-tracking state of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// The first packet of a flow.
    New,
    /// A packet of a flow conntrack has seen both ways.
    Established,
    /// Related to a known flow (e.g. an ICMP error).
    Related,
    /// Conntrack could not make sense of it.
    Invalid,
}

/// A packet at a hook, with its interfaces and conntrack state.
#[derive(Clone, Debug)]
pub struct PacketContext<'a> {
    /// The packet.
    pub packet: &'a Packet,
    /// Input interface name (`iifname`).
    pub iif: &'a str,
    /// Output interface name (`oifname`).
    pub oif: &'a str,
    /// Conntrack state.
    pub ct: ConnState,
}

/// The outcome of one hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the packet goes on.
    pub accepted: bool,
    /// The chain and rule index that decided (`None`: a base chain's policy).
    pub decided_by: Option<(String, usize)>,
    /// Every rule that matched, as `chain#index`, in order.
    pub trace: Vec<String>,
    /// Log statements hit, by prefix.
    pub logged: Vec<String>,
    /// Netlink log statements hit (flow logs), as `(group, prefix)`. A rate limit never
    /// applies to the one packet interpreted.
    pub flow_logged: Vec<(u16, String)>,
    /// Flow-log references (`A <chain> <index>`) of the rules that matched a connection's
    /// first packet ([`Statement::FlowRef`], the index, and the chain the rule is in; none
    /// for later packets): what the agent names an allowed connection by, replaying its
    /// first packet.
    pub flow_refs: Vec<String>,
    /// The packet mark the packet leaves the hook with.
    pub mark: u32,
    /// The packet as it leaves the hook: its addresses rewritten by NAT, if a NAT chain
    /// translated it.
    pub packet: Packet,
}

/// Deepest jump stack followed before giving up (nftables allows 16 levels).
const MAX_DEPTH: usize = calico_core::dataplane::validate::MAX_JUMP_DEPTH;

enum Flow {
    /// Fell off the end or returned.
    Continue,
    Accept(String, usize),
    Drop(String, usize),
}

struct Run<'a> {
    ruleset: &'a Ruleset,
    ctx: &'a PacketContext<'a>,
    /// The packet, as NAT statements rewrote it so far.
    packet: Packet,
    mark: u32,
    trace: Vec<String>,
    logged: Vec<String>,
    flow_logged: Vec<(u16, String)>,
    flow_refs: Vec<String>,
}

/// Runs the packet through every base chain of `hook`.
pub fn interpret(ruleset: &Ruleset, hook: Hook, ctx: &PacketContext<'_>) -> Outcome {
    interpret_marked(ruleset, hook, ctx, 0)
}

/// [`interpret`] for a packet that reaches `hook` carrying the packet mark `mark` (what
/// an earlier hook left on it: the kernel keeps the mark across hooks); the outcome
/// holds the mark it leaves.
pub fn interpret_marked(
    ruleset: &Ruleset,
    hook: Hook,
    ctx: &PacketContext<'_>,
    mark: u32,
) -> Outcome {
    // NAT chains see a connection's first packet only.
    let sees = |kind: ChainType| kind != ChainType::Nat || ctx.ct == ConnState::New;
    let mut bases: Vec<(&String, i32, ChainPolicy)> = ruleset
        .chains
        .iter()
        .filter_map(|(n, c)| {
            c.base
                .filter(|b| b.hook == hook && sees(b.kind))
                .map(|b| (n, b.priority, b.policy))
        })
        .collect();
    bases.sort_by_key(|(n, p, _)| (*p, (*n).clone()));
    let mut run = Run {
        ruleset,
        ctx,
        packet: ctx.packet.clone(),
        mark,
        trace: Vec::new(),
        logged: Vec::new(),
        flow_logged: Vec::new(),
        flow_refs: Vec::new(),
    };
    let mut decided_by = None;
    for (name, _, policy) in bases {
        match run.chain(name, 0) {
            Flow::Drop(c, i) => return run.outcome(false, Some((c, i))),
            Flow::Accept(c, i) => decided_by = Some((c, i)),
            Flow::Continue if policy == ChainPolicy::Drop => return run.outcome(false, None),
            Flow::Continue => {}
        }
    }
    run.outcome(true, decided_by)
}

impl Run<'_> {
    fn outcome(self, accepted: bool, decided_by: Option<(String, usize)>) -> Outcome {
        Outcome {
            accepted,
            decided_by,
            trace: self.trace,
            logged: self.logged,
            flow_logged: self.flow_logged,
            flow_refs: self.flow_refs,
            mark: self.mark,
            packet: self.packet,
        }
    }

    fn chain(&mut self, name: &str, depth: usize) -> Flow {
        let Some(chain) = self.ruleset.chains.get(name) else {
            // A dangling reference: nftables would have refused the ruleset.
            return Flow::Drop(name.to_string(), usize::MAX);
        };
        if depth > MAX_DEPTH {
            return Flow::Drop(name.to_string(), usize::MAX);
        }
        for (i, rule) in chain.rules.iter().enumerate() {
            if !rule.matches.iter().all(|m| self.holds(m)) {
                continue;
            }
            self.trace.push(format!("{name}#{i}"));
            for s in &rule.statements {
                match s {
                    Statement::Log(prefix) => self.logged.push(prefix.clone()),
                    Statement::SetMark(bits) => self.mark |= bits,
                    // Whether conntrack tracks the packet changes nothing the one packet
                    // interpreted meets.
                    Statement::NoTrack => {}
                    Statement::ClearMark(bits) => self.mark &= !bits,
                    Statement::NfLog { group, prefix, .. } => {
                        self.flow_logged.push((*group, prefix.clone()));
                    }
                    Statement::FlowRef(index) if self.ctx.ct == ConnState::New => {
                        self.flow_refs.push(format!("A {name} {index}"));
                    }
                    Statement::FlowRef(_) => {}
                    // The NAT expression sets the verdict: accepted at this base chain.
                    Statement::Dnat(addr) => {
                        self.packet.dst = *addr;
                        return Flow::Accept(name.to_string(), i);
                    }
                    Statement::Snat(addr) => {
                        self.packet.src = *addr;
                        return Flow::Accept(name.to_string(), i);
                    }
                }
            }
            let Some(verdict) = &rule.verdict else {
                continue;
            };
            let verdict = match verdict {
                Verdict::Dispatch { key, map } => {
                    let iface = match key {
                        IfaceKey::Input => self.ctx.iif,
                        IfaceKey::Output => self.ctx.oif,
                    };
                    match self
                        .ruleset
                        .maps
                        .get(map)
                        .and_then(|m| m.elements.get(iface))
                    {
                        Some(v) => v,
                        None => continue,
                    }
                }
                v => v,
            };
            match verdict {
                Verdict::Accept => return Flow::Accept(name.to_string(), i),
                Verdict::Drop => return Flow::Drop(name.to_string(), i),
                Verdict::Return => return Flow::Continue,
                Verdict::Jump(c) => match self.chain(c, depth + 1) {
                    Flow::Continue => continue,
                    terminal => return terminal,
                },
                // A goto's chain replaces this one: its end returns to our caller.
                Verdict::Goto(c) => return self.chain(c, depth + 1),
                Verdict::Dispatch { .. } => return Flow::Drop(name.to_string(), i),
            }
        }
        Flow::Continue
    }

    fn addr(&self, side: Side) -> IpAddr {
        match side {
            Side::Src => self.packet.src,
            Side::Dst => self.packet.dst,
        }
    }

    fn port(&self, side: Side) -> Option<u16> {
        match side {
            Side::Src => self.packet.src_port,
            Side::Dst => self.packet.dst_port,
        }
    }

    fn holds(&self, m: &Match) -> bool {
        let p = &self.packet;
        match m {
            Match::Ipv4(v4) => p.is_ipv4() == *v4,
            Match::L4Proto { proto, negate } => (p.protocol.0 == *proto) != *negate,
            Match::AddrEq { side, addr, negate } => {
                let a = self.addr(*side);
                // Like a payload load in an `inet` table: no match on the other family.
                a.is_ipv4() == addr.is_ipv4() && (a == *addr) != *negate
            }
            Match::AddrInSet { side, set, negate } => {
                let Some(s) = self.ruleset.sets.get(set) else {
                    return false;
                };
                let a = self.addr(*side);
                if s.key.is_ipv4() != a.is_ipv4() {
                    return false;
                }
                let found = if s.key.is_interval() {
                    s.elements
                        .iter()
                        .any(|e| matches!(e, SetElement::Net(n) if n.contains(&a)))
                } else {
                    s.elements.contains(&SetElement::Addr(a))
                };
                found != *negate
            }
            Match::AddrProtoPortInSet { side, set, negate } => {
                let (Some(s), Some(port)) = (self.ruleset.sets.get(set), self.port(*side)) else {
                    return false;
                };
                let a = self.addr(*side);
                if s.key.is_ipv4() != a.is_ipv4() {
                    return false;
                }
                s.elements
                    .contains(&SetElement::AddrProtoPort(a, p.protocol.0, port))
                    != *negate
            }
            Match::Port {
                side,
                ranges,
                negate,
            } => match self.port(*side) {
                Some(port) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)) != *negate,
                None => false,
            },
            Match::Icmp {
                v6,
                icmp_type,
                code,
                negate,
            } => {
                let proto = calico_core::dataplane::ir::icmp_protocol(*v6);
                if p.protocol.0 != proto {
                    return false;
                }
                let eq =
                    p.icmp_type == Some(*icmp_type) && code.is_none_or(|c| p.icmp_code == Some(c));
                eq != *negate
            }
            Match::Ct(CtState::EstablishedOrRelated) => {
                matches!(self.ctx.ct, ConnState::Established | ConnState::Related)
            }
            Match::Ct(CtState::Invalid) => self.ctx.ct == ConnState::Invalid,
            Match::MarkSet(bits) => self.mark & bits != 0,
            // The mock has no conntrack table: a packet sent as a connection's first is its
            // first, whatever came before.
            Match::CtUnconfirmed => self.ctx.ct == ConnState::New,
        }
    }
}

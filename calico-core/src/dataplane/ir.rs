//! The dataplane-neutral intermediate representation of the ACLs of one host.
//!
//! A [`Ruleset`] is a plain value (deterministic, comparable, hashable) that maps one-to-one
//! onto a single nftables `inet` table owned by the agent:
//!
//! * [`Set`]s are named nftables sets with a typed key (`ipv4_addr`, `ipv6_addr`, the same
//!   with the `interval` flag for CIDRs, or the concatenation `addr . inet_proto .
//!   inet_service` for named ports);
//! * [`VerdictMap`]s are named maps from an interface name to a verdict (`ifname : verdict`),
//!   used for constant-time dispatch to per-endpoint chains;
//! * [`Chain`]s are regular or base chains holding [`Rule`]s. A base chain filters
//!   ([`ChainType::Filter`]) or translates addresses ([`ChainType::Nat`]: the 1:1 NAT of
//!   floating IPs, seen by the first packet of each connection only).
//!
//! Evaluation is exactly nftables': a packet traverses each base chain of its hook in
//! priority order; in a chain, rules are tried in order; a rule applies when *all* its
//! matches hold, then runs its statements, then its verdict (if any). `Accept` and `Drop` end
//! the evaluation at this hook; `Jump` pushes a return point and enters the chain; `Goto`
//! enters the chain without a return point; `Return`, or falling off the end of a regular
//! chain, resumes after the last `Jump`; falling off the end of a base chain applies its
//! policy. A map lookup whose key is absent does nothing (evaluation goes on with the next
//! rule).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

/// IP protocol number of ICMP, the IPv4 one.
pub const IPPROTO_ICMP: u8 = 1;

/// IP protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// The L4 protocol an ICMP match of one family is about ([`Match::Icmp`]'s `v6`): ICMPv6
/// (58) for IPv6, ICMP (1) for IPv4. The one place that mapping is written.
pub fn icmp_protocol(v6: bool) -> u8 {
    if v6 {
        IPPROTO_ICMPV6
    } else {
        IPPROTO_ICMP
    }
}

/// The whole ACL state of one host: one table's worth of sets, maps and chains.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ruleset {
    /// Named sets, by name.
    pub sets: BTreeMap<String, Set>,
    /// Verdict maps, by name.
    pub maps: BTreeMap<String, VerdictMap>,
    /// Chains, by name.
    pub chains: BTreeMap<String, Chain>,
}

/// The key type of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKey {
    /// Single IPv4 addresses (`ipv4_addr`).
    Ipv4Addr,
    /// Single IPv6 addresses (`ipv6_addr`).
    Ipv6Addr,
    /// IPv4 CIDRs (`ipv4_addr`, flags interval). Elements never overlap.
    Ipv4Net,
    /// IPv6 CIDRs (`ipv6_addr`, flags interval). Elements never overlap.
    Ipv6Net,
    /// IPv4 address, L4 protocol and port (`ipv4_addr . inet_proto . inet_service`).
    Ipv4AddrProtoPort,
    /// IPv6 address, L4 protocol and port (`ipv6_addr . inet_proto . inet_service`).
    Ipv6AddrProtoPort,
}

impl SetKey {
    /// Whether the key is IPv4.
    pub fn is_ipv4(self) -> bool {
        matches!(
            self,
            SetKey::Ipv4Addr | SetKey::Ipv4Net | SetKey::Ipv4AddrProtoPort
        )
    }

    /// Whether elements are CIDR intervals.
    pub fn is_interval(self) -> bool {
        matches!(self, SetKey::Ipv4Net | SetKey::Ipv6Net)
    }

    /// Whether the key is the address . protocol . port concatenation.
    pub fn is_concat(self) -> bool {
        matches!(self, SetKey::Ipv4AddrProtoPort | SetKey::Ipv6AddrProtoPort)
    }
}

/// One element of a set; its form must agree with the set's [`SetKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetElement {
    /// An address (`Ipv4Addr`/`Ipv6Addr` sets).
    Addr(IpAddr),
    /// A CIDR (`Ipv4Net`/`Ipv6Net` sets).
    Net(IpNet),
    /// Address, protocol number and port (concatenated-key sets).
    AddrProtoPort(IpAddr, u8, u16),
}

impl SetElement {
    /// Whether the element fits a set keyed by `key`.
    pub fn fits(&self, key: SetKey) -> bool {
        match (self, key) {
            (SetElement::Addr(a), SetKey::Ipv4Addr) => a.is_ipv4(),
            (SetElement::Addr(a), SetKey::Ipv6Addr) => a.is_ipv6(),
            (SetElement::Net(n), SetKey::Ipv4Net) => matches!(n, IpNet::V4(_)),
            (SetElement::Net(n), SetKey::Ipv6Net) => matches!(n, IpNet::V6(_)),
            (SetElement::AddrProtoPort(a, _, _), SetKey::Ipv4AddrProtoPort) => a.is_ipv4(),
            (SetElement::AddrProtoPort(a, _, _), SetKey::Ipv6AddrProtoPort) => a.is_ipv6(),
            _ => false,
        }
    }
}

/// A named set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Set {
    /// Key type.
    pub key: SetKey,
    /// Elements.
    pub elements: BTreeSet<SetElement>,
}

/// Which interface a verdict map is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IfaceKey {
    /// The input interface (`iifname`).
    Input,
    /// The output interface (`oifname`).
    Output,
}

/// A map from interface name to verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VerdictMap {
    /// Interface name → verdict (`Jump` or `Goto` a chain).
    pub elements: BTreeMap<String, Verdict>,
}

/// Netfilter hooks the agent's base chains attach to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// Every packet arriving at the host, before routing and before DNAT (when the chain's
    /// priority is below nftables' `dstnat`, -100).
    Prerouting,
    /// Forwarded traffic (workload to workload, workload to/from outside).
    Forward,
    /// Traffic to the host itself.
    Input,
    /// Traffic from the host itself.
    Output,
    /// Every packet leaving the host, after routing (where source NAT happens: nftables'
    /// `srcnat` priority, 100).
    Postrouting,
}

/// What a base chain is for (nftables' chain type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainType {
    /// `type filter`: sees every packet; the agent's policy.
    Filter,
    /// `type nat`: sees only the first packet of each connection, and may hold
    /// [`Statement::Dnat`] (prerouting, output) or [`Statement::Snat`] (postrouting, input);
    /// conntrack applies the translation to the connection's later packets and reverses it
    /// on its replies. Never on the forward hook.
    Nat,
}

/// nftables' `dstnat` priority: destination NAT, after conntrack (-200) and before filter
/// (0), so policy sees the translated destination.
pub const PRIORITY_DSTNAT: i32 = -100;

/// nftables' `srcnat` priority: source NAT, after filter.
pub const PRIORITY_SRCNAT: i32 = 100;

/// What a base chain does with a packet that falls off its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainPolicy {
    /// Accept.
    Accept,
    /// Drop.
    Drop,
}

/// Makes a chain a base chain attached to a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// The hook.
    pub hook: Hook,
    /// The priority (lower runs first; nftables' `filter` is 0).
    pub priority: i32,
    /// The policy.
    pub policy: ChainPolicy,
    /// Filter or NAT.
    pub kind: ChainType,
}

impl BaseChain {
    /// A base chain of `kind` on `hook` at `priority` whose policy accepts.
    pub fn accepting(kind: ChainType, hook: Hook, priority: i32) -> BaseChain {
        BaseChain {
            hook,
            priority,
            policy: ChainPolicy::Accept,
            kind,
        }
    }
}

/// A chain: an ordered list of rules, attached to a hook when `base` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Chain {
    /// Set for base chains.
    pub base: Option<BaseChain>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
}

/// Which address or port of the packet a match looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Source.
    Src,
    /// Destination.
    Dst,
}

/// Connection-tracking states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtState {
    /// `ct state established,related`.
    EstablishedOrRelated,
    /// `ct state invalid`.
    Invalid,
}

/// One condition of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Match {
    /// The packet is IPv4 (`meta nfproto ipv4`) or IPv6 (`meta nfproto ipv6`).
    Ipv4(bool),
    /// `meta l4proto == proto` (or `!=` when negated).
    L4Proto {
        /// Protocol number.
        proto: u8,
        /// Negated.
        negate: bool,
    },
    /// The address on `side` is (or, negated, is not) `addr` (`ip saddr != 10.0.0.1`): one
    /// address needs no set. The address's family must be the rule's family.
    AddrEq {
        /// Which address.
        side: Side,
        /// The address.
        addr: std::net::IpAddr,
        /// Negated.
        negate: bool,
    },
    /// The address on `side` is (or, negated, is not) in the named address or CIDR set. The
    /// set's family must be the rule's family.
    AddrInSet {
        /// Which address.
        side: Side,
        /// Set name.
        set: String,
        /// Negated.
        negate: bool,
    },
    /// `addr . meta l4proto . port` of `side` is (not) in the named concatenated set.
    AddrProtoPortInSet {
        /// Which address and port.
        side: Side,
        /// Set name.
        set: String,
        /// Negated.
        negate: bool,
    },
    /// The transport port on `side` (`th sport`/`th dport`) is (not) in one of the ranges
    /// (both ends included). The rule must also match an L4 protocol with ports.
    Port {
        /// Which port.
        side: Side,
        /// Ranges, sorted and non-overlapping.
        ranges: Vec<(u16, u16)>,
        /// Negated.
        negate: bool,
    },
    /// ICMP (`v6 == false`) or ICMPv6 type and optionally code equal (or, negated, not both
    /// equal) the given values.
    Icmp {
        /// ICMPv6 rather than ICMP.
        v6: bool,
        /// Type.
        icmp_type: u8,
        /// Code, if matched.
        code: Option<u8>,
        /// Negated.
        negate: bool,
    },
    /// The connection-tracking state.
    Ct(CtState),
    /// `meta mark & bits != 0`.
    MarkSet(u32),
    /// The packet's conntrack entry is not confirmed yet (`ct status ! confirmed`): the
    /// first packet of a connection, before the kernel commits the entry at the end of the
    /// hooks. A connection's later packets are confirmed whether or not a reply was seen
    /// (unlike `ct state new`, which holds for every packet of a one-way UDP flow).
    CtUnconfirmed,
}

/// A side effect of a rule that matched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Statement {
    /// Log the packet with a prefix (`log prefix "..."`).
    Log(String),
    /// `meta mark set meta mark | bits`.
    SetMark(u32),
    /// `meta mark set meta mark & ~bits`.
    ClearMark(u32),
    /// `notrack`: conntrack leaves the packet alone (no entry, `ct state untracked`). Only
    /// in chains that run before conntrack: prerouting and output base chains of priority
    /// below -200 (`raw`), and the chains they call.
    NoTrack,
    /// `dnat to <addr>`: the packet's destination becomes `addr` for the whole connection.
    /// Ends the evaluation of the base chain (the packet is accepted at this hook), so it is
    /// the last statement of a rule without verdict; only in [`ChainType::Nat`] chains of
    /// the prerouting and output hooks (and the chains they call); `addr` of the rule's
    /// family.
    Dnat(IpAddr),
    /// `snat to <addr>`: the packet's source becomes `addr` for the whole connection. As
    /// [`Statement::Dnat`], but on the postrouting and input hooks.
    Snat(IpAddr),
    /// Hands the packet to the netlink log group `group` with `prefix` (nftables `log
    /// prefix "..." group N`, read by NFLOG listeners: the agent's flow logs). With `rate`,
    /// at most `rate` packets a second (burst `rate`) are logged (`limit rate N/second`
    /// before the log). nftables' limit ends the rule for a packet over it, so a
    /// rate-limited log is the last statement of a rule without verdict (compiled rulesets
    /// keep this; [`super::validate::check`]). No effect on the packet.
    NfLog {
        /// The netlink log group.
        group: u16,
        /// The prefix, at most [`MAX_LOG_PREFIX`] bytes, no NUL.
        prefix: String,
        /// Packets a second, when rate-limited.
        rate: Option<u32>,
    },
    /// Names the rule in flow logs: the index of the user rule it allows for (the compiler's;
    /// with the chain the rule is in, the flow-log reference `A <chain> <index>`). No effect
    /// on the packet and no expression in the kernel, where it is the rule's comment
    /// (`comment "..."`, the rule's user data). A connection's first packet is logged by one
    /// shared rule per hook after the policy ([`crate::compile::FlowLogConfig`]); the agent
    /// replays that packet through the rules it programmed, and the rules carrying one that
    /// the packet matched are what decided. At most [`MAX_LOG_PREFIX`] bytes, no NUL; the
    /// last statement of its rule, at most one a rule.
    FlowRef(String),
}

/// The longest log prefix nftables takes (`NF_LOG_PREFIXLEN` less the NUL).
pub const MAX_LOG_PREFIX: usize = 127;

/// A verdict.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Accept the packet at this hook.
    Accept,
    /// Drop the packet.
    Drop,
    /// Resume after the last jump.
    Return,
    /// Enter a chain, coming back after it.
    Jump(String),
    /// Enter a chain without coming back.
    Goto(String),
    /// Look the interface up in a verdict map; apply the verdict found, or go on if absent.
    Dispatch {
        /// Which interface is the key.
        key: IfaceKey,
        /// The map's name.
        map: String,
    },
}

/// A rule: all matches must hold; then the statements run and the verdict applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Conditions, all of which must hold.
    pub matches: Vec<Match>,
    /// Side effects.
    pub statements: Vec<Statement>,
    /// Verdict; `None` goes on with the next rule.
    pub verdict: Option<Verdict>,
}

impl Rule {
    /// A rule with matches and a verdict.
    pub fn new(matches: Vec<Match>, verdict: Verdict) -> Self {
        Rule {
            matches,
            statements: Vec::new(),
            verdict: Some(verdict),
        }
    }
}

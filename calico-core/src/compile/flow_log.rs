//! Flow logs from the kernel: the compiled rules report their verdicts to a netlink log group
//! (nftables `log group`, NFLOG), each with a short reference to the rule that decided.
//!
//! * An allowed connection is logged once, by its first packet (`ct status ! confirmed`),
//!   after the policy: one shared rule per hook ([`first_packet_chains`], prefix
//!   `F <hook>`), in a base chain right after the agent's own. The rules that allow carry
//!   the index of their user rule as their comment instead ([`Statement::FlowRef`]; with the
//!   chain they are in, the reference `A <chain> <index>`), which costs the kernel no
//!   expression to program or to run; the agent replays the logged packet through the rules
//!   it programmed, and the references of the allowing rules the packet matched, once per
//!   direction of policy it crossed, name what allowed it. The comment is the index alone
//!   because every byte of it makes each rule larger in the kernel's memory, which its
//!   validation of the whole table at each endpoint add walks: the whole reference as the
//!   comment made the ACL benchmark's endpoint add 7-9 % slower, the index alone costs
//!   nothing measurable. A reference written into the packet instead (a log expression in
//!   each allow rule, or a conntrack mark or label) costs the kernel an expression per
//!   allow rule to program: measured, 7 % more time to program the ACL benchmark's table
//!   for the log expressions of its TCP allows alone, and 19 % with a log rule before each
//!   other allow.
//! * Policy evaluated before DNAT (pre-DNAT host-endpoint policy) logs its allows in its
//!   own rules ([`AllowLogs::Logged`]): the packet the shared rules log has been translated.
//!   A TCP connection reaches the policy rules with its SYN alone, so a rule allowing TCP
//!   only logs in itself; a packet of any other protocol stays `ct state new` until a reply
//!   is seen, so its allow rule gets a log rule before it, with the same matches and
//!   `ct status ! confirmed` (one log rule per port range when the rule matches a list of
//!   ports: see [`split_port_lists`]).
//! * A denied packet is logged, rate-limited, just before the rule that drops it: a policy
//!   or profile `Deny` rule, the endpoint's default deny when no policy allowed (`end`), the
//!   profiles' default deny. So is a connection a staged policy would deny (`S`, once per
//!   connection: [`super::staged`]).
//! * A spoofed packet (anti-spoofing, `spoof`) goes from its endpoint's chain to one chain
//!   shared by all ([`SPOOF_DROP_CHAIN`]) that logs it, rate-limited for the whole host,
//!   and drops it; its input interface names the endpoint ([`LogRef::attributed_to`]).
//!
//! The prefix ([`LogRef`]) is `<A|D> <chain> <rule index | end | spoof>`: the chain's name
//! and, in a policy or profile chain, the user's rule index; [`super::describe`] turns it
//! back into names.
//!
//! With flow logs off ([`CompileConfig::flow_logs`] `None`, the default) the compiler emits
//! exactly the rules it emits without this module.

use std::fmt;

use super::names::endpoint_chain;
use crate::dataplane::ir::{BaseChain, Chain, ChainType, Hook, Match, Rule, Statement, Verdict};
use crate::model::{Action, PolicyType};

#[cfg(doc)]
use super::CompileConfig;

/// Flow-log settings of the compiler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowLogConfig {
    /// The netlink log group the rules log to.
    pub group: u16,
    /// Denied packets logged per second by each denying rule, at most (by the anti-spoofing
    /// drop all endpoints share: for the whole host).
    pub deny_rate: u32,
    /// The packet-mark bit staged policies set once one of them allowed or denied (the
    /// staged evaluation is closed).
    pub staged_mark: u32,
    /// The packet-mark bit a staged policy's `Pass` sets (the staged policies left in its
    /// tier are skipped).
    pub staged_pass_mark: u32,
}

impl Default for FlowLogConfig {
    /// Group 20, 10 denied packets a second per rule; staged marks 0x0010_0000 and
    /// 0x0020_0000 (next to the host-endpoint marks, in Felix's default mark mask).
    fn default() -> Self {
        FlowLogConfig {
            group: 20,
            deny_rate: 10,
            staged_mark: 0x0010_0000,
            staged_pass_mark: 0x0020_0000,
        }
    }
}

/// Whether a logged packet was allowed or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogVerdict {
    /// Allowed (`A`).
    Allow,
    /// Denied (`D`).
    Deny,
    /// A staged policy would have denied it (`S`); the packet's verdict is another log's.
    StagedDeny,
}

/// Which rule of its chain decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogRule {
    /// The user's rule with this index, in a policy or profile chain.
    Rule(usize),
    /// The default deny at the end of an endpoint's policies or profiles (`end`).
    End,
    /// The endpoint's anti-spoofing (`spoof`).
    Spoof,
}

/// What a flow-log prefix says: the verdict, the chain and the rule that decided.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogRef {
    /// The verdict.
    pub verdict: LogVerdict,
    /// The deciding chain's name.
    pub chain: String,
    /// The deciding rule.
    pub rule: LogRule,
}

/// Why a flow-log prefix could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("flow-log prefix {prefix:?}: {reason}")]
pub struct LogRefError {
    /// The prefix (clipped to 64 characters).
    pub prefix: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl LogRef {
    /// The reference a report names, for a packet that came in by the interface
    /// `in_interface`: a spoofed packet's (logged by the shared [`SPOOF_DROP_CHAIN`], with
    /// the interface known) becomes the anti-spoofing of that interface's endpoint chain,
    /// the one that sent it there; any other is returned as it is.
    pub fn attributed_to(self, in_interface: Option<&str>) -> LogRef {
        match in_interface {
            Some(iface) if self.chain == SPOOF_DROP_CHAIN && !iface.is_empty() => LogRef {
                chain: endpoint_chain(iface, PolicyType::Egress),
                ..self
            },
            _ => self,
        }
    }
}

impl fmt::Display for LogRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.verdict {
            LogVerdict::Allow => 'A',
            LogVerdict::Deny => 'D',
            LogVerdict::StagedDeny => 'S',
        };
        write!(f, "{v} {} ", self.chain)?;
        match self.rule {
            LogRule::Rule(i) => write!(f, "{i}"),
            LogRule::End => f.write_str("end"),
            LogRule::Spoof => f.write_str("spoof"),
        }
    }
}

impl std::str::FromStr for LogRef {
    type Err = LogRefError;

    /// Reads what [`LogRef`]'s `Display` writes (a prefix from the kernel: untrusted).
    fn from_str(s: &str) -> Result<Self, LogRefError> {
        let err = |reason| LogRefError {
            prefix: s.chars().take(64).collect(),
            reason,
        };
        let mut parts = s.split(' ');
        let verdict = match parts.next() {
            Some("A") => LogVerdict::Allow,
            Some("D") => LogVerdict::Deny,
            Some("S") => LogVerdict::StagedDeny,
            _ => return Err(err("does not start with A, D or S")),
        };
        let chain = parts
            .next()
            .filter(|c| !c.is_empty())
            .ok_or(err("no chain"))?;
        let rule = match parts.next() {
            Some("end") => LogRule::End,
            Some("spoof") => LogRule::Spoof,
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                LogRule::Rule(n.parse().map_err(|_| err("rule index out of range"))?)
            }
            _ => return Err(err("no rule index, end or spoof")),
        };
        if parts.next().is_some() {
            return Err(err("trailing fields"));
        }
        Ok(LogRef {
            verdict,
            chain: chain.to_string(),
            rule,
        })
    }
}

pub(super) fn nflog(cfg: &FlowLogConfig, r: LogRef, rate: Option<u32>) -> Statement {
    Statement::NfLog {
        group: cfg.group,
        prefix: r.to_string(),
        rate,
    }
}

/// How the rules that allow report the connections they allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AllowLogs {
    /// Each carries its user rule's index as its comment ([`Statement::FlowRef`]); the
    /// shared rules of [`first_packet_chains`] log the connection's first packet.
    Referenced,
    /// Each logs the connection's first packet itself (policy evaluated before DNAT).
    Logged,
}

/// The log prefix of the shared rule logging a connection's first packet at `hook`.
fn first_packet_prefix(hook: Hook) -> &'static str {
    match hook {
        Hook::Prerouting => "F prerouting",
        Hook::Forward => "F forward",
        Hook::Input => "F input",
        Hook::Output => "F output",
        Hook::Postrouting => "F postrouting",
    }
}

/// The hook a first-packet log prefix (`F <hook>`, from the kernel: untrusted) names.
pub fn first_packet_hook(prefix: &str) -> Option<Hook> {
    [Hook::Forward, Hook::Input, Hook::Output]
        .into_iter()
        .find(|&h| first_packet_prefix(h) == prefix)
}

/// The shared chains logging each connection's first packet after the policy, by name:
/// with flow logs (`cfg`), one base chain per hook where the agent's filter chains allow
/// (forward, input, output), one priority after `filter_priority`, theirs, with one rule:
/// `ct status ! confirmed` logs, unlimited, with the prefix `F <hook>`; without, none. A
/// packet the policy dropped never reaches them; an untracked packet has no conntrack
/// status and is not logged.
pub(super) fn first_packet_chains(
    cfg: Option<&FlowLogConfig>,
    filter_priority: i32,
) -> [(&'static str, Option<Chain>); 3] {
    let priority = filter_priority.saturating_add(1);
    [
        (FIRST_PACKET_FORWARD_CHAIN, Hook::Forward),
        (FIRST_PACKET_INPUT_CHAIN, Hook::Input),
        (FIRST_PACKET_OUTPUT_CHAIN, Hook::Output),
    ]
    .map(|(name, hook)| {
        let Some(cfg) = cfg else {
            return (name, None);
        };
        let log = Rule {
            matches: vec![Match::CtUnconfirmed],
            statements: vec![Statement::NfLog {
                group: cfg.group,
                prefix: first_packet_prefix(hook).into(),
                rate: None,
            }],
            verdict: None,
        };
        let chain = Chain {
            base: Some(BaseChain::accepting(ChainType::Filter, hook, priority)),
            rules: vec![log],
        };
        (name, Some(chain))
    })
}

/// The chain shared by every workload endpoint's anti-spoofing with flow logs: it logs a
/// spoofed packet, rate-limited host-wide, as `D spoof-drop spoof`, and drops it. The
/// agent names the endpoint by the packet's input interface (the spoofing workload's).
///
/// One chain instead of a log rule beside each endpoint's anti-spoofing rules: those were
/// two rules more in every endpoint chain, a ninth more to program at each endpoint add.
pub const SPOOF_DROP_CHAIN: &str = "spoof-drop";

/// The shared anti-spoofing drop ([`SPOOF_DROP_CHAIN`]) with flow logs (`cfg`); none
/// without.
pub(super) fn spoof_drop_chain(cfg: Option<&FlowLogConfig>) -> (&'static str, Option<Chain>) {
    let chain = cfg.map(|cfg| {
        let log_ref = LogRef {
            verdict: LogVerdict::Deny,
            chain: SPOOF_DROP_CHAIN.into(),
            rule: LogRule::Spoof,
        };
        Chain {
            base: None,
            rules: vec![
                denied_log(cfg, log_ref, vec![]),
                Rule::new(vec![], Verdict::Drop),
            ],
        }
    });
    (SPOOF_DROP_CHAIN, chain)
}

/// What an endpoint's anti-spoofing rules do with a spoofed packet: drop it, or with flow
/// logs (`cfg`) go to [`SPOOF_DROP_CHAIN`], which logs and drops it.
pub(super) fn spoofed_verdict(cfg: Option<&FlowLogConfig>) -> Verdict {
    match cfg {
        Some(_) => Verdict::Goto(SPOOF_DROP_CHAIN.into()),
        None => Verdict::Drop,
    }
}

/// The shared first-packet log chain of the forward hook.
pub const FIRST_PACKET_FORWARD_CHAIN: &str = "flow-log-forward";
/// ... of the input hook.
pub const FIRST_PACKET_INPUT_CHAIN: &str = "flow-log-input";
/// ... of the output hook.
pub const FIRST_PACKET_OUTPUT_CHAIN: &str = "flow-log-output";

/// Adds flow logging to the IR rules one user rule (`index` in `chain`, action `action`)
/// compiled to: an Allow names itself in its comment ([`AllowLogs::Referenced`]), or logs
/// in its own rule (TCP only) or gets log rules with the same matches for a connection's
/// first packet before it ([`AllowLogs::Logged`]); a Deny gets a rate-limited log rule with
/// the same matches before it.
pub(super) fn user_rule(
    cfg: &FlowLogConfig,
    chain: &str,
    index: usize,
    action: Action,
    rules: Vec<Rule>,
    allows: AllowLogs,
) -> Vec<Rule> {
    let log_ref = |verdict| LogRef {
        verdict,
        chain: chain.to_string(),
        rule: LogRule::Rule(index),
    };
    match action {
        Action::Allow if allows == AllowLogs::Referenced => rules
            .into_iter()
            .map(|mut r| {
                r.statements.push(Statement::FlowRef(index.to_string()));
                r
            })
            .collect(),
        Action::Allow => rules
            .into_iter()
            .flat_map(|mut r| {
                if tcp_only(&r) {
                    r.statements
                        .push(nflog(cfg, log_ref(LogVerdict::Allow), None));
                    return vec![r];
                }
                let mut logs = first_packet_logs(cfg, log_ref(LogVerdict::Allow), &r.matches);
                logs.push(r);
                logs
            })
            .collect(),
        Action::Deny => rules
            .into_iter()
            .flat_map(|r| {
                let log = denied_log(cfg, log_ref(LogVerdict::Deny), r.matches.clone());
                [log, r]
            })
            .collect(),
        Action::Pass | Action::Log => rules,
    }
}

/// Rules logging (without rate limit) the first packet of each connection matching
/// `matches` (`ct status ! confirmed`), one per port range of a port list.
pub(super) fn first_packet_logs(cfg: &FlowLogConfig, r: LogRef, matches: &[Match]) -> Vec<Rule> {
    split_port_lists(matches)
        .into_iter()
        .map(|mut matches| {
            matches.push(Match::CtUnconfirmed);
            Rule {
                matches,
                statements: vec![nflog(cfg, r.clone(), None)],
                verdict: None,
            }
        })
        .collect()
}

/// A rule logging denied packets (rate-limited) that match `matches`.
fn denied_log(cfg: &FlowLogConfig, r: LogRef, matches: Vec<Match>) -> Rule {
    Rule {
        matches,
        statements: vec![nflog(cfg, r, Some(cfg.deny_rate))],
        verdict: None,
    }
}

/// Adds a rate-limited log before each drop of an endpoint chain or a profile-list chain:
/// `end` for an unconditional drop (a default deny), `spoof` for a conditional one (the
/// anti-spoofing of an endpoint chain compiled without [`spoofed_verdict`]'s shared chain).
/// The invalid-state drop is not a policy verdict and is not logged.
pub(super) fn chain_drops(cfg: &FlowLogConfig, chain: &str, rules: Vec<Rule>) -> Vec<Rule> {
    let mut out = Vec::with_capacity(rules.len() + 3);
    for r in rules {
        let invalid = r.matches.iter().any(|m| matches!(m, Match::Ct(_)));
        if r.verdict == Some(Verdict::Drop) && !invalid {
            let rule = if r.matches.is_empty() {
                LogRule::End
            } else {
                LogRule::Spoof
            };
            let log_ref = LogRef {
                verdict: LogVerdict::Deny,
                chain: chain.to_string(),
                rule,
            };
            out.push(denied_log(cfg, log_ref, r.matches.clone()));
        }
        out.push(r);
    }
    out
}

/// `matches` as match lists without a positive port match over several ranges: such a
/// match becomes one list per range (the product, when both ports have one). The ranges are
/// disjoint, so a packet matches exactly one of the lists when it matches `matches`.
///
/// An allowed connection's log rule repeats its allow rule's matches; a port list there would
/// be a second anonymous set in the kernel, and the kernel names and finds sets by walking the
/// table's list of sets, so programming a table slows down with the square of its sets (4,000
/// port lists more made the ACL benchmark's table take 3.8 times as long, `nft -f` alike).
fn split_port_lists(matches: &[Match]) -> Vec<Vec<Match>> {
    let mut lists = vec![Vec::with_capacity(matches.len() + 1)];
    for m in matches {
        match m {
            Match::Port {
                side,
                ranges,
                negate: false,
            } if ranges.len() > 1 => {
                lists = lists
                    .iter()
                    .flat_map(|l| {
                        ranges.iter().map(move |r| {
                            let mut l = l.clone();
                            l.push(Match::Port {
                                side: *side,
                                ranges: vec![*r],
                                negate: false,
                            });
                            l
                        })
                    })
                    .collect();
            }
            m => lists.iter_mut().for_each(|l| l.push(m.clone())),
        }
    }
    lists
}

/// Whether `rule` matches TCP only. An allowed TCP connection reaches the policy rules with
/// its SYN alone (a SYN retransmitted before the answer, too): the rule can log in itself,
/// without a log rule before it, which would cost the kernel a rule to validate and program.
pub(super) fn tcp_only(rule: &Rule) -> bool {
    rule.matches.contains(&Match::L4Proto {
        proto: 6,
        negate: false,
    })
}

/// How many IR rules `rules`, one user rule's with `action`, become with flow logs on (what
/// [`user_rule`] makes of them with `allows`, counted).
pub(super) fn expanded_len(action: Action, rules: &[Rule], allows: AllowLogs) -> usize {
    user_rule(
        &FlowLogConfig::default(),
        "",
        0,
        action,
        rules.to_vec(),
        allows,
    )
    .len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::ir::Side;

    #[test]
    fn port_lists_split_into_one_match_list_per_range_and_other_matches_stay() {
        let port = |side, ranges: &[(u16, u16)], negate| Match::Port {
            side,
            ranges: ranges.to_vec(),
            negate,
        };
        let matches = [
            Match::L4Proto {
                proto: 6,
                negate: false,
            },
            port(Side::Src, &[(1, 2), (5, 5)], false),
            port(Side::Dst, &[(80, 80), (443, 443), (8000, 8080)], false),
            port(Side::Dst, &[(22, 22), (23, 23)], true),
        ];
        let lists = split_port_lists(&matches);
        assert_eq!(lists.len(), 6);
        for l in &lists {
            assert_eq!(l[0], matches[0]);
            assert_eq!(l[3], matches[3], "a negated list needs no set and stays");
            for m in &l[1..3] {
                assert!(matches!(m, Match::Port { ranges, .. } if ranges.len() == 1));
            }
        }
        let distinct: std::collections::HashSet<_> = lists.iter().collect();
        assert_eq!(distinct.len(), 6);
        let rule = Rule {
            matches: matches.to_vec(),
            statements: vec![],
            verdict: Some(Verdict::Accept),
        };
        let logged = AllowLogs::Logged;
        assert_eq!(
            expanded_len(Action::Allow, std::slice::from_ref(&rule), logged),
            1,
            "TCP logs in itself"
        );
        let mut udp = rule.clone();
        udp.matches[0] = Match::L4Proto {
            proto: 17,
            negate: false,
        };
        assert_eq!(expanded_len(Action::Allow, &[udp.clone()], logged), 7);
        assert_eq!(
            expanded_len(Action::Allow, &[udp], AllowLogs::Referenced),
            1,
            "a referenced allow is its rule alone"
        );
        for allows in [logged, AllowLogs::Referenced] {
            assert_eq!(
                expanded_len(Action::Deny, std::slice::from_ref(&rule), allows),
                2
            );
            assert_eq!(
                expanded_len(Action::Pass, std::slice::from_ref(&rule), allows),
                1
            );
        }
    }

    /// The first-packet chains follow the filter chains, even at the highest priority
    /// (they share it then, not wrap around to run first), and exist only with flow logs.
    #[test]
    fn first_packet_chains_follow_the_filter_chains() {
        let cfg = FlowLogConfig::default();
        for (filter, want) in [(0, 1), (-5, -4), (i32::MAX, i32::MAX)] {
            for (name, chain) in first_packet_chains(Some(&cfg), filter) {
                let base = chain.unwrap().base.unwrap();
                assert_eq!(base.priority, want, "{name} after {filter}");
            }
        }
        assert!(first_packet_chains(None, 0)
            .iter()
            .all(|(_, c)| c.is_none()));
        let hooks: Vec<_> = first_packet_chains(Some(&cfg), 0)
            .iter()
            .map(|(_, c)| c.as_ref().unwrap().base.unwrap().hook)
            .collect();
        assert_eq!(hooks, [Hook::Forward, Hook::Input, Hook::Output]);
        for hook in hooks {
            assert_eq!(first_packet_hook(first_packet_prefix(hook)), Some(hook));
        }
        assert_eq!(first_packet_hook("F prerouting"), None);
    }

    #[test]
    fn prefixes_read_back_and_junk_is_a_typed_error() {
        for r in [
            LogRef {
                verdict: LogVerdict::Allow,
                chain: "pol-in-abcdefghijklm".into(),
                rule: LogRule::Rule(12),
            },
            LogRef {
                verdict: LogVerdict::Deny,
                chain: "wl-eg-abcdefghijklm".into(),
                rule: LogRule::Spoof,
            },
            LogRef {
                verdict: LogVerdict::Deny,
                chain: "prl-in-x".into(),
                rule: LogRule::End,
            },
        ] {
            assert_eq!(r.to_string().parse::<LogRef>(), Ok(r));
        }
        for bad in [
            "",
            "A",
            "X c 1",
            "A  1",
            "A c",
            "A c -1",
            "A c 1 2",
            "A c 99999999999999999999999",
        ] {
            assert!(bad.parse::<LogRef>().is_err(), "{bad:?} parsed");
        }
    }
}

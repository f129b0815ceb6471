//! Staged policies in the kernel: chains that judge a packet and report, through the flow
//! logs, what a staged policy would have denied, without changing the packet's fate. The
//! semantics are [`crate::eval::staged_denials`]'; they need flow logs, and without them
//! ([`super::CompileConfig::flow_logs`] `None`) staged policies are not rendered at all.
//!
//! A staged policy's chain is called from its tier's list chain, in its place among the
//! enforced policies, and only ever returns. Two packet-mark bits carry the staged
//! evaluation across chains ([`FlowLogConfig::staged_mark`], `staged_pass_mark`), cleared
//! by the endpoint chain before the tiers:
//!
//! * the chain first returns at once when either bit is set (the staged evaluation is
//!   closed, or a staged `Pass` skips the rest of the tier);
//! * a `Deny` rule logs `S <chain> <rule>` for a connection's first packet (inline for a
//!   TCP-only rule, whose SYN alone reaches policy), then sets the staged mark and returns;
//!   an `Allow` sets the staged mark, a `Pass` the staged-pass mark, and returns; a `Log`
//!   rule has no effect in a staged policy and is left out;
//! * a tier that only staged policies bring in and that denies by default ends, in its
//!   list chain, with [`tier_end`]: with neither bit set, each of its staged chains is
//!   logged `S <chain> end`, and the staged mark set.

use super::flow_log::{self, FlowLogConfig, LogRef, LogRule, LogVerdict};
use super::rules::{compile_rule, SetSpec, Verdicts};
use super::shared_chains::Listed;
use crate::dataplane::ir::{Chain, Match, Rule, Statement, Verdict};
use crate::model::{Action, Rule as UserRule};

fn log_ref(chain: &str, rule: LogRule) -> LogRef {
    LogRef {
        verdict: LogVerdict::StagedDeny,
        chain: chain.to_string(),
        rule,
    }
}

/// The rule every staged chain starts with: return when the staged evaluation is closed or
/// passed in this tier.
fn skip_when_decided(cfg: &FlowLogConfig) -> Rule {
    Rule::new(
        vec![Match::MarkSet(cfg.staged_mark | cfg.staged_pass_mark)],
        Verdict::Return,
    )
}

/// The verdicts a staged policy's rules compile to (a `Deny`'s is rewritten by
/// [`staged_rule`]).
fn verdicts(cfg: &FlowLogConfig) -> Verdicts {
    Verdicts {
        allow: (vec![Statement::SetMark(cfg.staged_mark)], Verdict::Return),
        pass: (
            vec![Statement::SetMark(cfg.staged_pass_mark)],
            Verdict::Return,
        ),
        log_prefix: String::new(),
    }
}

/// The chain `name` of a staged policy's `rules` in one direction (of a policy in
/// `namespace`); the sets the rules use are added to `specs`.
pub(super) fn staged_chain(
    name: &str,
    rules: &[UserRule],
    namespace: Option<&str>,
    cfg: &FlowLogConfig,
    specs: &mut Vec<SetSpec>,
) -> Chain {
    let v = verdicts(cfg);
    let mut chain = Chain::default();
    chain.rules.push(skip_when_decided(cfg));
    for (i, rule) in rules.iter().enumerate() {
        let (ir, sets) = compile_rule(rule, namespace, &v);
        chain
            .rules
            .extend(staged_rule(cfg, name, i, rule.action, ir));
        specs.extend(sets);
    }
    chain
}

/// The IR rules one user rule (`index` in `chain`) becomes in a staged chain, from the
/// rules [`compile_rule`] made of it with [`verdicts`].
fn staged_rule(
    cfg: &FlowLogConfig,
    chain: &str,
    index: usize,
    action: Action,
    ir: Vec<Rule>,
) -> Vec<Rule> {
    match action {
        Action::Log => Vec::new(),
        Action::Allow | Action::Pass => ir,
        Action::Deny => ir
            .into_iter()
            .flat_map(|mut r| {
                let denial = log_ref(chain, LogRule::Rule(index));
                r.verdict = Some(Verdict::Return);
                r.statements = vec![Statement::SetMark(cfg.staged_mark)];
                if flow_log::tcp_only(&r) {
                    r.statements.insert(0, flow_log::nflog(cfg, denial, None));
                    return vec![r];
                }
                let mut out = flow_log::first_packet_logs(cfg, denial, &r.matches);
                out.push(r);
                out
            })
            .collect(),
    }
}

/// The staged mark bits a chain clears before it enters a tier listing `listed`: none when
/// no staged policy is among them (or flow logs are off, `cfg` `None`); else the
/// staged-pass mark, and the staged mark too when `first` (no earlier tier of the chain had
/// staged policies: the staged evaluation starts here).
pub(super) fn marks_to_clear(cfg: Option<&FlowLogConfig>, listed: &[Listed], first: bool) -> u32 {
    match cfg {
        Some(cfg) if listed.iter().any(|p| p.staged) => {
            cfg.staged_pass_mark | if first { cfg.staged_mark } else { 0 }
        }
        _ => 0,
    }
}

/// How many IR rules a staged chain holds for one user rule with `action` whose rules
/// compile to `ir` (what [`staged_rule`] makes of them, counted).
pub(super) fn expanded_len(action: Action, ir: &[Rule]) -> usize {
    staged_rule(&FlowLogConfig::default(), "", 0, action, ir.to_vec()).len()
}

/// The number of rules a staged chain starts with before its user rules.
pub(super) const CHAIN_HEAD: usize = 1;

/// The end of a tier list chain when only staged policies bring the tier in and it denies
/// by default: with the staged evaluation open, each of the tier's staged chains (`staged`,
/// in order) would deny at the end of the tier.
pub(super) fn tier_end(cfg: &FlowLogConfig, staged: &[&str]) -> Vec<Rule> {
    let mut rules = vec![skip_when_decided(cfg)];
    for chain in staged {
        rules.push(Rule {
            matches: vec![Match::CtUnconfirmed],
            statements: vec![flow_log::nflog(cfg, log_ref(chain, LogRule::End), None)],
            verdict: None,
        });
    }
    rules.push(Rule {
        matches: vec![],
        statements: vec![Statement::SetMark(cfg.staged_mark)],
        verdict: None,
    });
    rules
}

#[cfg(test)]
mod tests {
    use crate::compile::{CompileConfig, Compiler, FlowLogConfig};
    use crate::model::{parse_resources, Model};

    /// The warnings a compile of `text` logs, with flow logs when `flow_logs`.
    fn warnings(text: &str, flow_logs: bool) -> Vec<String> {
        let model = Model::from_resources(parse_resources(text).unwrap()).unwrap();
        let config = CompileConfig {
            flow_logs: flow_logs.then(FlowLogConfig::default),
            ..CompileConfig::new("h1")
        };
        let log = crate::test_log::logged(|| {
            Compiler::from_model(config, &model);
        });
        log.lines()
            .filter(|l| l.contains("WARN"))
            .map(str::to_string)
            .collect()
    }

    /// An operator who stages a policy learns when nothing will be reported for it.
    #[test]
    fn a_staged_policy_without_a_preview_is_warned_about() {
        let set = "kind: Policy\nname: staged:p\nstagedAction: Set\nselector: all()\ningress: [{action: Deny}]\n";
        let delete = "kind: Policy\nname: staged:p\nstagedAction: Delete\nselector: all()\n";
        let w = warnings(set, false);
        assert!(w.len() == 1 && w[0].contains("flow logs"), "{w:?}");
        assert!(warnings(set, true).is_empty());
        for flow_logs in [false, true] {
            let w = warnings(delete, flow_logs);
            assert!(w.len() == 1 && w[0].contains("not previewed"), "{w:?}");
            assert!(w[0].contains("staged:p"), "{w:?}");
        }
    }
}

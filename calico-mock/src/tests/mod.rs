//! Unit tests of the mock backends, the interpreter and the simulated network.

mod acl;
mod interpreter;
mod network;
mod routing;

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainPolicy, Hook, Match, Rule, Ruleset, Set, SetElement, SetKey, Side,
    Verdict,
};

/// A base chain on the forward hook.
fn base(priority: i32, policy: ChainPolicy, rules: Vec<Rule>) -> Chain {
    Chain {
        base: Some(BaseChain {
            hook: Hook::Forward,
            priority,
            policy,
            kind: calico_core::dataplane::ir::ChainType::Filter,
        }),
        rules,
    }
}

/// A regular chain.
fn regular(rules: Vec<Rule>) -> Chain {
    Chain { base: None, rules }
}

/// A rule with no match and a verdict.
fn always(v: Verdict) -> Rule {
    Rule::new(vec![], v)
}

/// A rule matching TCP destination port `port`.
fn dport(port: u16, v: Verdict) -> Rule {
    Rule::new(
        vec![
            Match::L4Proto {
                proto: 6,
                negate: false,
            },
            Match::Port {
                side: Side::Dst,
                ranges: vec![(port, port)],
                negate: false,
            },
        ],
        v,
    )
}

fn jump(c: &str) -> Verdict {
    Verdict::Jump(c.into())
}

fn goto(c: &str) -> Verdict {
    Verdict::Goto(c.into())
}

/// A set of the given key holding `elements`.
fn set(key: SetKey, elements: &[SetElement]) -> Set {
    Set {
        key,
        elements: elements.iter().copied().collect(),
    }
}

fn ruleset(chains: Vec<(&str, Chain)>) -> Ruleset {
    Ruleset {
        chains: chains
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect(),
        ..Ruleset::default()
    }
}

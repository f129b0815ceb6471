//! What a change set reaches: the plans of an interface's programs, what the backend
//! refuses, and which interfaces' programs a change touches.

use std::collections::{BTreeMap, BTreeSet};

use calico_core::dataplane::ir::{ChainPolicy, ChainType, Hook, Match, Ruleset, Verdict};
use calico_core::dataplane::{BackendError, Change, ChangeSet};

use super::from_generate;
use super::hooked::Hooked;
use crate::generate::{
    reached, Bindings, Conntrack, Counting, Logs, Options, PieceBudget, Plan, Sharing, Stage,
};

/// A name no interface has (`/` is not allowed in interface names): the bindings of an
/// interface without programs.
const UNATTACHED: &str = "/unattached";

/// The two plans of `iface`.
pub(super) fn plans(iface: &str) -> (Plan, Plan) {
    let stage = |hook, iif: &str, oif: &str| Stage {
        hook,
        bindings: Bindings {
            iif: Some(iif.into()),
            oif: Some(oif.into()),
        },
    };
    let ingress = Plan::ByDestination {
        local: vec![
            stage(Hook::Prerouting, iface, ""),
            stage(Hook::Input, iface, ""),
        ],
        forwarded: vec![
            stage(Hook::Prerouting, iface, ""),
            stage(Hook::Forward, iface, ""),
        ],
    };
    let egress = Plan::ByOrigin {
        local: vec![stage(Hook::Output, "", iface)],
        forwarded: vec![stage(Hook::Forward, "", iface)],
    };
    (ingress, egress)
}

/// Refuses what the backend cannot enforce, naming it. The chains it had to look at:
/// only a change to them, or to the base chains, can change its answer.
pub(super) fn check_supported(r: &Ruleset) -> Result<BTreeSet<String>, BackendError> {
    for (name, chain) in &r.chains {
        let Some(base) = chain.base else { continue };
        if base.kind == ChainType::Nat {
            return Err(BackendError::Unsupported(format!(
                "NAT chain {name} (floating IPs): the eBPF backend has no NAT yet"
            )));
        }
        if base.hook == Hook::Postrouting {
            return Err(BackendError::Unsupported(format!(
                "postrouting chain {name}: the eBPF backend filters at prerouting, input, forward and output only"
            )));
        }
    }
    // What an interface without programs would meet must not drop: it is not filtered.
    // Rules that need a mark only this backend's programs set are exempt.
    let stage = |hook| Stage {
        hook,
        bindings: Bindings {
            iif: Some(UNATTACHED.into()),
            oif: Some(UNATTACHED.into()),
        },
    };
    let plan = Plan::Always(
        [Hook::Prerouting, Hook::Input, Hook::Forward, Hook::Output]
            .into_iter()
            .map(stage)
            .collect(),
    );
    let ids: BTreeMap<String, u32> = r.sets.keys().map(|n| (n.clone(), 0)).collect();
    let options = Options {
        logs: Logs::Omit,
        conntrack: Conntrack::Context,
        sharing: Sharing::Inline,
        counting: Counting::Off,
        pieces: PieceBudget::DEFAULT,
    };
    let reached = reached(r, &plan, &ids, options).map_err(from_generate)?;
    for name in &reached {
        let Some(chain) = r.chains.get(name) else {
            continue;
        };
        if chain.base.is_some_and(|b| b.policy == ChainPolicy::Drop) {
            return Err(BackendError::Unsupported(format!(
                "base chain {name} drops by policy what interfaces without programs carry: the eBPF backend filters only the interfaces it attaches to"
            )));
        }
        for (i, rule) in chain.rules.iter().enumerate() {
            let marked = rule.matches.iter().any(|m| matches!(m, Match::MarkSet(_)));
            if rule.verdict == Some(Verdict::Drop) && !marked {
                return Err(BackendError::Unsupported(format!(
                    "chain {name} rule #{i} drops traffic of interfaces the ruleset names in no map (a wildcard host endpoint?): the eBPF backend filters only the interfaces it attaches to"
                )));
            }
        }
    }
    Ok(reached)
}

/// What a change set touches that programs depend on.
pub(super) struct Touched {
    pub(super) chains: BTreeSet<String>,
    pub(super) sets: BTreeSet<String>,
    pub(super) ifaces: BTreeSet<String>,
    pub(super) base_chains: bool,
}

/// What `changes` touches of the programs generated from `before`. Chains and sets it
/// adds are left out: a valid ruleset refers to no chain or set that does not exist, so
/// no program reached them (nor do rules set in chains it adds).
pub(super) fn touched(changes: &ChangeSet, before: &Ruleset) -> Touched {
    let mut t = Touched {
        chains: BTreeSet::new(),
        sets: BTreeSet::new(),
        ifaces: BTreeSet::new(),
        base_chains: false,
    };
    for c in &changes.changes {
        match c {
            Change::AddChain { base, .. } => t.base_chains |= base.is_some(),
            Change::DelChain { name } => {
                t.base_chains |= before.chains.get(name).is_some_and(|c| c.base.is_some());
                t.chains.insert(name.clone());
            }
            Change::SetRules { chain, .. } if before.chains.contains_key(chain) => {
                t.chains.insert(chain.clone());
            }
            Change::DelSet { name } => {
                t.sets.insert(name.clone());
            }
            Change::AddMapElements { elements, .. } => {
                t.ifaces.extend(elements.iter().map(|(k, _)| k.clone()));
            }
            Change::DelMapElements { keys, .. } => t.ifaces.extend(keys.iter().cloned()),
            Change::DelMap { name } => {
                let keys = before.maps.get(name).into_iter();
                t.ifaces
                    .extend(keys.flat_map(|m| m.elements.keys().cloned()));
            }
            Change::SetRules { .. }
            | Change::AddSet { .. }
            | Change::AddElements { .. }
            | Change::DelElements { .. }
            | Change::AddMap { .. } => {}
        }
    }
    t
}

impl Touched {
    /// Whether programs can be reached through chains or sets (rather than only through
    /// the interfaces it names).
    pub(super) fn reaches_programs(&self) -> bool {
        self.base_chains || !self.chains.is_empty() || !self.sets.is_empty()
    }

    pub(super) fn affects(&self, iface: &str, h: &Hooked) -> bool {
        self.base_chains
            || self.ifaces.contains(iface)
            || !self.chains.is_disjoint(&h.chains)
            || !self.sets.is_disjoint(&h.sets)
    }
}

#[cfg(test)]
mod tests {
    use calico_core::compile::{compile, CompileConfig};
    use calico_core::dataplane::ir::{BaseChain, Chain, Rule};
    use calico_core::model::Model;

    use super::*;

    fn with_base(hook: Hook, kind: ChainType, rules: Vec<Rule>) -> Ruleset {
        let mut r = compile(&CompileConfig::new("h1"), &Model::default());
        r.chains.insert(
            "extra".into(),
            Chain {
                base: Some(BaseChain::accepting(kind, hook, 5)),
                rules,
            },
        );
        r
    }

    fn refusal(r: &Ruleset) -> String {
        match check_supported(r) {
            Err(BackendError::Unsupported(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_compilers_base_ruleset_is_supported() {
        let r = compile(&CompileConfig::new("h1"), &Model::default());
        assert!(check_supported(&r).is_ok());
    }

    #[test]
    fn what_cannot_be_enforced_is_refused_by_name() {
        let nat = with_base(Hook::Prerouting, ChainType::Nat, vec![]);
        assert!(refusal(&nat).contains("NAT chain extra"));
        let post = with_base(Hook::Postrouting, ChainType::Filter, vec![]);
        assert!(refusal(&post).contains("postrouting chain extra"));
        // A drop every interface meets: interfaces without programs would not enforce it.
        let wildcard = with_base(
            Hook::Forward,
            ChainType::Filter,
            vec![Rule::new(vec![], Verdict::Drop)],
        );
        assert!(refusal(&wildcard).contains("chain extra rule #0 drops"));
        let log = with_base(
            Hook::Input,
            ChainType::Filter,
            vec![Rule {
                statements: vec![calico_core::dataplane::ir::Statement::NoTrack],
                ..Rule::default()
            }],
        );
        assert!(refusal(&log).contains("notrack"));
    }

    #[test]
    fn a_drop_that_needs_a_mark_only_programs_set_is_not_refused() {
        let marked = with_base(
            Hook::Forward,
            ChainType::Filter,
            vec![Rule::new(vec![Match::MarkSet(0x10)], Verdict::Drop)],
        );
        assert!(check_supported(&marked).is_ok());
    }

    #[test]
    fn programs_are_regenerated_only_where_a_change_reaches() {
        let hooked = |chains: &[&str], sets: &[&str]| {
            (
                chains
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<BTreeSet<_>>(),
                sets.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            )
        };
        let mut before = Ruleset::default();
        before.chains.insert("pol-a".into(), Default::default());
        let t = touched(
            &ChangeSet {
                changes: vec![
                    Change::SetRules {
                        chain: "pol-a".into(),
                        rules: vec![],
                    },
                    Change::AddElements {
                        set: "s".into(),
                        elements: vec![],
                    },
                ],
            },
            &before,
        );
        let affects = |(chains, sets): (BTreeSet<String>, BTreeSet<String>)| {
            t.base_chains || !t.chains.is_disjoint(&chains) || !t.sets.is_disjoint(&sets)
        };
        assert!(affects(hooked(&["fw", "pol-a"], &[])));
        assert!(
            !affects(hooked(&["fw", "pol-b"], &["s"])),
            "a member change is a map write"
        );
        let added = touched(
            &ChangeSet {
                changes: vec![Change::AddMapElements {
                    map: "m".into(),
                    elements: vec![("cali1".into(), Verdict::Accept)],
                }],
            },
            &before,
        );
        assert!(added.ifaces.contains("cali1") && !added.base_chains);
    }
}

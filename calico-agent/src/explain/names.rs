//! The IR's chains named as the user wrote what they hold ([`calico_core::compile::describe`]),
//! and the user's own rule names for the evaluator's steps.

use calico_core::calc::effective;
use calico_core::compile::{describe, describe_with_interfaces, ChainNames as Described};
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::InterfaceAddresses;
use calico_core::eval::{Direction, RuleSource};
use calico_core::model::Model;

/// Names the chains of a ruleset (compiled or read back) for one node.
pub struct ChainNames(Described);

impl ChainNames {
    /// The names of `ruleset`'s chains, as compiled from `model` for `node`.
    pub fn new(model: &Model, node: &str, ruleset: &Ruleset) -> ChainNames {
        ChainNames(describe(model, node, ruleset))
    }

    /// [`Self::new`] for a ruleset compiled with the interface addresses `addrs`: the
    /// chains of host endpoints found by their `expectedIPs` are named too.
    pub fn with_interfaces(
        model: &Model,
        node: &str,
        addrs: &InterfaceAddresses,
        ruleset: &Ruleset,
    ) -> ChainNames {
        ChainNames(describe_with_interfaces(model, node, addrs, ruleset))
    }

    /// Rule `index` of `chain`, named (`policy shop/web ingress rule 1 ("http")`); a chain
    /// or rule the model does not explain says so.
    pub fn describe(&self, chain: &str, index: usize) -> String {
        match (self.0.rule(chain, index), self.0.chain(chain)) {
            (Some(rule), _) if rule.rule.is_none() && rule.detail.is_none() => {
                // A rule of a policy or profile chain that is not what the model compiles
                // to: the chain was changed.
                format!("{rule}: IR rule {index}, not one the model compiles to (drift?)")
            }
            (Some(rule), _) => rule.to_string(),
            (None, Some(owner)) => {
                format!("{owner}: IR rule {index}, not one the model compiles to (drift?)")
            }
            (None, None) => {
                format!("chain {chain} rule {index}: not explained by the model (drift?)")
            }
        }
    }
}

/// The user's own name of rule `index` of `source` in `direction`, if it has one.
pub fn rule_name(
    model: &Model,
    source: &RuleSource,
    direction: Direction,
    index: usize,
) -> Option<String> {
    let dir = direction.policy_type();
    let rules = match source {
        RuleSource::Policy(name) => model
            .policies
            .values()
            .find(|p| effective::policy_name(p) == *name)?
            .rules(dir),
        RuleSource::Profile(name) => model.profiles.get(name)?.rules(dir),
        _ => return None,
    };
    rules.get(index)?.name().map(str::to_string)
}

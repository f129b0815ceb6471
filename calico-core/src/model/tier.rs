//! Tiers: ordered groups of policies (Calico's `Tier`).
//!
//! Semantics, as Calico's (`projectcalico.org/v3` `Tier`, and Felix's rendering of tiers):
//!
//! * Every policy is in one tier (`tier`, default [`DEFAULT_TIER`]). Tiers apply in
//!   increasing `order` (a tier without an order after all ordered ones), ties broken by
//!   name; within a tier its policies apply in their own order.
//! * A tier *applies* to an endpoint in a direction when at least one of its policies
//!   selects the endpoint and governs the direction; a tier that does not apply is skipped.
//! * In a tier that applies, `Allow` and `Deny` end the evaluation; `Pass` skips the rest
//!   of the tier and goes on with the next tier. When no rule of its policies decided, the
//!   tier's `defaultAction` applies: `Deny` drops the packet, `Pass` goes on with the next
//!   tier.
//! * After the last tier (every applicable tier passed, or none applied) the endpoint's
//!   profiles decide.
//!
//! Calico always has three tiers whether or not they are written down ([`builtin_tier`]):
//! `default` (order 1,000,000, `Deny`) and the tiers of Kubernetes admin policies, named
//! `adminnetworkpolicy` (order 1,000, `Pass`) and `baselineadminnetworkpolicy` (order
//! 10,000,000, `Pass`) up to Calico 3.31, `kube-admin` and `kube-baseline` (same orders)
//! since 3.32. calico-rs knows all five: a tier holding no policy has no effect.
//!
//! A policy naming a tier that does not exist is *held*: it stays in the model but applies
//! nowhere until the tier appears ([`super::Model::held_policies`]); the validated update
//! path ([`super::Model::apply`]) refuses such a policy, and refuses removing a tier that
//! policies still name, as Calico's API server does.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::error::ValidationError;
use super::resource::ResourceKind;
use super::validate::Check;

/// The tier of policies that name none.
pub const DEFAULT_TIER: &str = "default";
/// The tier of Kubernetes AdminNetworkPolicy (Calico 3.29–3.31).
pub const ADMIN_NETWORK_POLICY_TIER: &str = "adminnetworkpolicy";
/// The tier of Kubernetes BaselineAdminNetworkPolicy (Calico 3.30–3.31).
pub const BASELINE_ADMIN_NETWORK_POLICY_TIER: &str = "baselineadminnetworkpolicy";
/// The tier of Kubernetes admin ClusterNetworkPolicy (Calico 3.32 and later).
pub const KUBE_ADMIN_TIER: &str = "kube-admin";
/// The tier of Kubernetes baseline ClusterNetworkPolicy (Calico 3.32 and later).
pub const KUBE_BASELINE_TIER: &str = "kube-baseline";

/// The order of the default tier.
pub const DEFAULT_TIER_ORDER: f64 = 1_000_000.0;
/// The order of the admin tiers.
pub const ADMIN_TIER_ORDER: f64 = 1_000.0;
/// The order of the baseline tiers.
pub const BASELINE_TIER_ORDER: f64 = 10_000_000.0;

/// The longest tier name (a DNS-1123 label, as Calico requires: tier names appear in
/// Kubernetes labels).
pub const MAX_TIER_NAME: usize = 63;

/// What a tier does with a packet none of its applicable policies decided.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum TierAction {
    /// Drop it (Calico's default).
    #[default]
    Deny,
    /// Go on with the next tier (then the profiles).
    Pass,
}

/// A tier: an ordered group of policies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tier {
    /// Name: a DNS-1123 label (no dots: it prefixes policy names in Calico up to 3.31).
    pub name: String,
    /// Tiers apply in increasing order; unset means after all ordered ones; ties are broken
    /// by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// What happens when none of the tier's applicable policies decided.
    #[serde(default)]
    pub default_action: TierAction,
}

/// The built-in tier `name` as Calico creates it, if it is one.
pub fn builtin_tier(name: &str) -> Option<Tier> {
    let (order, default_action) = match name {
        DEFAULT_TIER => (DEFAULT_TIER_ORDER, TierAction::Deny),
        ADMIN_NETWORK_POLICY_TIER | KUBE_ADMIN_TIER => (ADMIN_TIER_ORDER, TierAction::Pass),
        BASELINE_ADMIN_NETWORK_POLICY_TIER | KUBE_BASELINE_TIER => {
            (BASELINE_TIER_ORDER, TierAction::Pass)
        }
        _ => return None,
    };
    Some(Tier {
        name: name.to_string(),
        order: Some(order),
        default_action,
    })
}

/// The order tiers apply in: `order` ascending, tiers without one after all others, ties
/// broken by name.
pub fn tier_order(a: &Tier, b: &Tier) -> Ordering {
    let key = |t: &Tier| t.order.unwrap_or(f64::INFINITY);
    key(a).total_cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
}

impl Tier {
    /// Checks the tier against Calico's rules: a DNS-1123 label name, a finite order, and
    /// the built-in tiers keep their orders.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::Tier, self.name.clone());
        tier_name(&c, "name", &self.name)?;
        if let Some(order) = self.order {
            if !order.is_finite() {
                return Err(c.invalid("order", format!("{order} is not a finite number")));
            }
        }
        if let Some(builtin) = builtin_tier(&self.name) {
            if self.order != builtin.order {
                let want = builtin.order.unwrap_or_default();
                return Err(c.invalid(
                    "order",
                    format!("the {} tier's order must be {want}", self.name),
                ));
            }
        }
        Ok(())
    }
}

/// Checks a tier name (of a tier, or a policy's `tier`): a DNS-1123 label.
pub(super) fn tier_name(c: &Check, field: &str, name: &str) -> Result<(), ValidationError> {
    c.name(field, name)?;
    if name.contains('.') {
        return Err(c.invalid(
            field,
            format!("{name:?} is not a valid tier name: no '.' (tier names prefix policy names)"),
        ));
    }
    if name.len() > MAX_TIER_NAME {
        return Err(c.err(
            field,
            super::error::Reason::TooLong {
                len: name.len(),
                limit: MAX_TIER_NAME,
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_resources, Resource};

    fn one(text: &str) -> Result<Tier, String> {
        match parse_resources(text).map_err(|e| e.to_string())?.pop() {
            Some(Resource::Tier(t)) => Ok(t),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_a_tier_with_calicos_defaults() {
        let t = one("kind: Tier\nname: security\norder: 100\n").unwrap();
        assert_eq!(t.default_action, TierAction::Deny);
        assert_eq!(t.order, Some(100.0));
        let t = one("kind: Tier\nname: platform\ndefaultAction: Pass\n").unwrap();
        assert_eq!((t.order, t.default_action), (None, TierAction::Pass));
    }

    #[test]
    fn bad_tiers_are_refused_naming_the_field() {
        let e = one("kind: Tier\nname: t\ndefaultAction: Allow\n").unwrap_err();
        assert!(e.contains("defaultAction") && e.contains("Allow"), "{e}");
        let e = one("kind: Tier\nname: a.b\n").unwrap_err();
        assert!(e.contains("field name") && e.contains("no '.'"), "{e}");
        let e = one("kind: Tier\nname: default\norder: 5\n").unwrap_err();
        assert!(e.contains("field order") && e.contains("1000000"), "{e}");
        let e = one(&format!("kind: Tier\nname: {}\n", "t".repeat(64))).unwrap_err();
        assert!(e.contains("field name") && e.contains("63"), "{e}");
        assert!(one("kind: Tier\nname: default\norder: 1000000\ndefaultAction: Pass\n").is_ok());
    }

    #[test]
    fn tiers_sort_by_order_then_name_unordered_last() {
        let t = |n: &str, o: Option<f64>| Tier {
            name: n.into(),
            order: o,
            default_action: TierAction::Deny,
        };
        let mut v = [
            t("z", None),
            t("b", Some(5.0)),
            t("a", Some(5.0)),
            t("c", Some(1.0)),
            t("y", None),
        ];
        v.sort_by(tier_order);
        let names: Vec<&str> = v.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["c", "a", "b", "y", "z"]);
        let admin = builtin_tier(ADMIN_NETWORK_POLICY_TIER).unwrap();
        let default = builtin_tier(DEFAULT_TIER).unwrap();
        let baseline = builtin_tier(BASELINE_ADMIN_NETWORK_POLICY_TIER).unwrap();
        assert_eq!(tier_order(&admin, &default), Ordering::Less);
        assert_eq!(tier_order(&default, &baseline), Ordering::Less);
        assert_eq!(baseline.default_action, TierAction::Pass);
    }
}

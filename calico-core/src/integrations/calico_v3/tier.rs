//! `Tier` ↔ [`Tier`], both ways, and the `tier` of policies.
//!
//! Calico's fields: `metadata.name` (a DNS-1123 label), `spec.order` (unset: after all
//! ordered tiers), `spec.defaultAction` (`Deny`, the default, or `Pass`). A policy names
//! its tier in `spec.tier` (empty or unset: `default`). Up to Calico 3.31 the API server
//! required a policy of a tier other than `default` to be named `<tier>.<name>`; since 3.32
//! any name (at most one `.`) goes with any tier. calico-rs reads both: a name is kept as
//! written, and only its tier decides where the policy applies.

use serde::Deserialize;
use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;

use super::read::{typed, Meta};
use super::write::{finite_order, Parts};
use crate::integrations::TranslateError;
use crate::model::{Resource, Tier, TierAction};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TierSpec {
    #[serde(default)]
    order: Option<f64>,
    #[serde(default)]
    default_action: Option<TierAction>,
}

/// Reads a `Tier`.
pub(super) fn read(meta: Meta, spec: Value, obj: &str) -> Result<Resource, TranslateError> {
    let s: TierSpec = typed(spec, "spec", obj)?;
    if meta.namespace.is_some() {
        return Err(TranslateError::new(
            obj,
            "metadata.namespace",
            "a Tier has no namespace",
        ));
    }
    Ok(Resource::Tier(Tier {
        name: meta.name,
        order: s.order,
        default_action: s.default_action.unwrap_or_default(),
    }))
}

/// Writes a tier as the v3 object Calico holds (`defaultAction` always written, as Calico
/// defaults it).
pub(super) fn write(t: &Tier) -> Result<Parts<'_>, TranslateError> {
    let mut spec = Map::new();
    if let Some(order) = t.order {
        spec.insert("order".into(), finite_order("Tier", &t.name, order)?);
    }
    let action = match t.default_action {
        TierAction::Deny => "Deny",
        TierAction::Pass => "Pass",
    };
    spec.insert("defaultAction".into(), Json::String(action.into()));
    Ok(("Tier", None, t.name.clone(), None, Json::Object(spec)))
}

/// A policy's tier as `spec.tier` holds it: unset or empty is `default`.
pub(super) fn policy_tier(tier: Option<String>) -> String {
    tier.filter(|t| !t.is_empty())
        .unwrap_or_else(|| crate::model::DEFAULT_TIER.to_string())
}

#[cfg(test)]
mod tests {
    use crate::integrations::calico_v3::{parse_v3, to_v3};
    use crate::model::{Resource, TierAction};

    fn one(text: &str) -> Result<Resource, String> {
        let mut v = parse_v3(text).map_err(|e| e.to_string())?;
        assert_eq!(v.len(), 1);
        Ok(v.remove(0))
    }

    const TIER: &str = "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\nspec: {order: 100, defaultAction: Pass}\n";

    #[test]
    fn tiers_read_and_write_back() {
        let r = one(TIER).unwrap();
        let Resource::Tier(t) = &r else {
            panic!("{r:?}")
        };
        assert_eq!((t.order, t.default_action), (Some(100.0), TierAction::Pass));
        let v3 = to_v3(&r).unwrap();
        assert_eq!(v3.value["spec"]["defaultAction"], "Pass");
        assert_eq!(v3.value["spec"]["order"], 100);
        assert_eq!(one(&serde_json::to_string(&v3.value).unwrap()).unwrap(), r);
        let d = one("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\n");
        let Ok(Resource::Tier(d)) = d else {
            panic!("{d:?}")
        };
        assert_eq!((d.order, d.default_action), (None, TierAction::Deny));
    }

    #[test]
    fn bad_tiers_are_refused_naming_the_field() {
        let e = one(&TIER.replace("Pass", "Allow")).unwrap_err();
        assert!(e.contains("spec.defaultAction"), "{e}");
        let e = one(&TIER.replace("security", "sec.urity")).unwrap_err();
        assert!(e.contains("name") && e.contains("no '.'"), "{e}");
        let e = one(&TIER.replace("order: 100", "prder: 100")).unwrap_err();
        assert!(e.contains("prder"), "{e}");
    }

    #[test]
    fn policies_name_their_tier_in_both_calico_forms() {
        let gnp = |name: &str, tier: &str| {
            format!("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {{tier: {tier}, selector: all()}}\n")
        };
        // Up to 3.31: the name carries the tier; since 3.32 it need not.
        for name in ["security.block", "block"] {
            let Ok(Resource::Policy(p)) = one(&gnp(name, "security")) else {
                panic!()
            };
            assert_eq!((p.name.as_str(), p.tier.as_str()), (name, "security"));
            let v3 = to_v3(&Resource::Policy(p.clone())).unwrap();
            assert_eq!(v3.value["spec"]["tier"], "security");
            let back = one(&serde_json::to_string(&v3.value).unwrap()).unwrap();
            assert_eq!(back, Resource::Policy(p));
        }
        let Ok(Resource::Policy(p)) = one(&gnp("x", "''")) else {
            panic!()
        };
        assert_eq!(p.tier, "default");
        let v3 = to_v3(&Resource::Policy(p)).unwrap();
        assert!(v3.value["spec"].get("tier").is_none(), "{v3:?}");
        let e = one(&gnp("x", "Bad")).unwrap_err();
        assert!(e.contains("tier"), "{e}");
    }
}

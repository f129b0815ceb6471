//! Policies from `projectcalico.org/v3`: `NetworkPolicy`, `GlobalNetworkPolicy`, their
//! staged kinds, and `StagedKubernetesNetworkPolicy`.

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::integrations::TranslateError;
use crate::model::{Policy, PolicyType, Resource, Rule, StagedAction, STAGED_PREFIX};
use crate::selector::Selector;

use super::read::{typed, Meta};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicySpec {
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    order: Option<f64>,
    #[serde(default)]
    selector: Option<Selector>,
    #[serde(default)]
    namespace_selector: Option<Selector>,
    #[serde(default)]
    service_account_selector: Option<Selector>,
    #[serde(default)]
    types: Vec<PolicyType>,
    #[serde(default)]
    ingress: Vec<Rule>,
    #[serde(default)]
    egress: Vec<Rule>,
    #[serde(default)]
    apply_on_forward: bool,
    #[serde(default, rename = "preDNAT")]
    pre_dnat: bool,
    #[serde(default)]
    do_not_track: bool,
    #[serde(default)]
    staged_action: Option<StagedAction>,
}

/// A `NetworkPolicy` or `GlobalNetworkPolicy`, or their staged kinds (named
/// `staged:<name>`, [`crate::model::STAGED_PREFIX`]; `stagedAction` `Set` by default).
pub(super) fn policy(
    kind: &str,
    meta: Meta,
    spec: Value,
    obj: &str,
) -> Result<Resource, TranslateError> {
    let ns = meta.namespace.clone();
    let s: PolicySpec = typed(spec, "spec", obj)?;
    let staged = kind.starts_with("Staged");
    let namespaced = matches!(kind, "NetworkPolicy" | "StagedNetworkPolicy");
    if namespaced && s.namespace_selector.is_some() {
        return Err(TranslateError::new(
            obj,
            "spec.namespaceSelector",
            "only GlobalNetworkPolicy has a namespaceSelector",
        ));
    }
    if !staged && s.staged_action.is_some() {
        return Err(TranslateError::new(
            obj,
            "spec.stagedAction",
            "only a staged policy (StagedNetworkPolicy, StagedGlobalNetworkPolicy) has a stagedAction",
        ));
    }
    let (name, staged_action) = if staged {
        let action = s.staged_action.unwrap_or(StagedAction::Set);
        (format!("{STAGED_PREFIX}{}", meta.name), Some(action))
    } else {
        (meta.name, None)
    };
    let mut selector = s.selector.unwrap_or_default();
    if let Some(nss) = s.namespace_selector {
        // The same reading as a rule's `namespaceSelector`: `all()` is "any namespaced
        // endpoint", not "everything".
        selector = selector.and(&crate::calc::effective::namespaces_matching(&nss));
    }
    if let Some(sas) = s.service_account_selector {
        selector = selector.and(&service_accounts_matching(&sas, namespaced));
    }
    Ok(Resource::Policy(Policy {
        name,
        namespace: if namespaced {
            Some(ns.unwrap_or_else(|| "default".into()))
        } else {
            None
        },
        tier: super::tier::policy_tier(s.tier),
        order: s.order,
        selector,
        types: s.types,
        ingress: s.ingress,
        egress: s.egress,
        apply_on_forward: s.apply_on_forward,
        pre_dnat: s.pre_dnat,
        do_not_track: s.do_not_track,
        staged_action,
    }))
}

/// A `StagedKubernetesNetworkPolicy`: a Kubernetes `NetworkPolicy` spec and a
/// `stagedAction`, translated as the Kubernetes driver translates the policy
/// (`knp.default.<name>`), then staged (`staged:knp.default.<name>`, as Calico names it).
pub(super) fn staged_kubernetes_policy(
    meta: Meta,
    spec: Value,
    obj: &str,
) -> Result<Resource, TranslateError> {
    use crate::integrations::kubernetes::{translate_policy, NetworkPolicy, ObjectMeta};
    let mut spec = spec;
    let action = match spec.as_mapping_mut().and_then(|m| m.remove("stagedAction")) {
        Some(v) => typed(v, "spec.stagedAction", obj)?,
        None => StagedAction::Set,
    };
    let np = NetworkPolicy {
        metadata: ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            labels: meta.labels.into_iter().collect(),
        },
        spec: typed(spec, "spec", obj)?,
    };
    let mut p = translate_policy(&np).map_err(|e| TranslateError::new(obj, e.field, e.reason))?;
    p.name = format!("{STAGED_PREFIX}{}", p.name);
    p.staged_action = Some(action);
    Ok(Resource::Policy(p))
}

/// The endpoints whose service account a policy's `serviceAccountSelector` picks: the
/// selector over the `pcsa.` labels of their `ksa.` profile. As in Calico, `all()` in a
/// `GlobalNetworkPolicy` means "any endpoint with a service account"; in a `NetworkPolicy`
/// it stays `all()` (libcalico-go's policy update processors differ there).
fn service_accounts_matching(sas: &Selector, namespaced: bool) -> Selector {
    if sas.is_all() && !namespaced {
        Selector::has(crate::model::LABEL_SERVICE_ACCOUNT)
    } else {
        sas.with_key_prefix(crate::model::SERVICE_ACCOUNT_LABEL_PREFIX)
    }
}

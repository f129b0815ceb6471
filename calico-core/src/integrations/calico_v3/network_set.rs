//! `NetworkSet` and `GlobalNetworkSet` ↔ [`NetworkSet`], both ways.
//!
//! Calico's fields: `metadata.name`, `metadata.namespace` (namespaced kind only, default
//! `default` as for the other namespaced kinds), `metadata.labels`, `spec.nets` (CIDRs or
//! bare addresses, IPv4 and IPv6).

use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use serde_yaml_ng::Value;

use super::read::{typed, Meta};
use super::write::Parts;
use crate::integrations::TranslateError;
use crate::model::{NetworkSet, Resource};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NetworkSetSpec {
    #[serde(default)]
    nets: Vec<String>,
}

/// Reads a `NetworkSet` (namespaced) or `GlobalNetworkSet`.
pub(super) fn read(
    kind: &str,
    meta: Meta,
    spec: Value,
    obj: &str,
) -> Result<Resource, TranslateError> {
    let s: NetworkSetSpec = typed(spec, "spec", obj)?;
    let namespaced = kind == "NetworkSet";
    if !namespaced && meta.namespace.is_some() {
        return Err(TranslateError::new(
            obj,
            "metadata.namespace",
            "a GlobalNetworkSet has no namespace (use a NetworkSet)",
        ));
    }
    let nets = s
        .nets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            crate::model::parse_cidr_or_address(t)
                .map_err(|why| TranslateError::new(obj, format!("spec.nets[{i}]"), why))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let namespace = namespaced.then(|| meta.namespace.unwrap_or_else(|| "default".into()));
    Ok(Resource::NetworkSet(NetworkSet {
        name: meta.name,
        namespace,
        labels: meta.labels,
        nets,
    }))
}

/// Writes a network set as the v3 object Calico holds.
pub(super) fn write(s: &NetworkSet) -> Parts<'_> {
    let kind = match s.namespace {
        Some(_) => "NetworkSet",
        None => "GlobalNetworkSet",
    };
    let mut spec = Map::new();
    if !s.nets.is_empty() {
        let nets: Vec<String> = s.nets.iter().map(|n| n.to_string()).collect();
        spec.insert("nets".into(), json!(nets));
    }
    (
        kind,
        s.namespace.clone(),
        s.name.clone(),
        Some(&s.labels),
        Json::Object(spec),
    )
}

#[cfg(test)]
mod tests {
    use crate::integrations::calico_v3::{parse_v3, to_v3};
    use crate::model::Resource;

    #[test]
    fn both_kinds_read_and_write_back() {
        let text = r#"
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: external-database, namespace: staging, labels: {role: db}}
spec:
  nets: [198.51.100.0/28, 203.0.113.9, "2001:db8::/48"]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: a-name-for-the-set, labels: {role: external-database}}
spec: {nets: [198.51.100.0/28]}
"#;
        let rs = parse_v3(text).unwrap();
        let Resource::NetworkSet(ns) = &rs[0] else {
            panic!("{rs:?}")
        };
        assert_eq!(ns.namespace.as_deref(), Some("staging"));
        assert_eq!(ns.nets.len(), 3);
        assert_eq!(ns.nets[1].to_string(), "203.0.113.9/32");
        let Resource::NetworkSet(g) = &rs[1] else {
            panic!("{rs:?}")
        };
        assert_eq!(g.namespace, None);
        for r in &rs {
            let v3 = to_v3(r).unwrap();
            assert_eq!(parse_v3(&v3.value.to_string()).unwrap(), vec![r.clone()]);
        }
        assert_eq!(to_v3(&rs[1]).unwrap().kind, "GlobalNetworkSet");
    }

    #[test]
    fn bad_network_sets_name_the_field() {
        let e = parse_v3("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: g}\nspec: {nets: [10.0.0.0/8, nope]}\n").unwrap_err();
        assert!(e.to_string().contains("spec.nets[1]"), "{e}");
        let e = parse_v3("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: g, namespace: x}\n").unwrap_err();
        assert!(e.to_string().contains("metadata.namespace"), "{e}");
        let e = parse_v3("apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: g}\nspec: {nets: [], allowed: 1}\n").unwrap_err();
        assert!(e.to_string().contains("spec.allowed"), "{e}");
        let e = parse_v3("apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: g, labels: {projectcalico.org/namespace: x}}\n").unwrap_err();
        assert!(e.to_string().contains("projectcalico.org/namespace"), "{e}");
    }
}

//! `BGPFilter` ↔ [`BgpFilter`], both ways, and the route-policy fields of `BGPConfiguration`
//! (`communities`, `prefixAdvertisements`) and `BGPPeer` (`filters`).
//!
//! Calico's fields: `metadata.name`; `spec.exportV4`, `importV4`, `exportV6`, `importV6`,
//! each a list of rules `{cidr, prefixLength: {min, max}, matchOperator, source, interface,
//! action}`. The model uses the same names, so a spec reads straight into it.

use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use serde_yaml_ng::Value;

use super::read::{typed, Meta};
use super::write::Parts;
use crate::integrations::TranslateError;
use crate::model::{BgpFilter, BgpFilterRule, CommunityDef, PrefixAdvertisement, Resource};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BgpFilterSpec {
    #[serde(default, rename = "exportV4")]
    export_v4: Vec<BgpFilterRule>,
    #[serde(default, rename = "importV4")]
    import_v4: Vec<BgpFilterRule>,
    #[serde(default, rename = "exportV6")]
    export_v6: Vec<BgpFilterRule>,
    #[serde(default, rename = "importV6")]
    import_v6: Vec<BgpFilterRule>,
}

/// Reads a `BGPFilter`.
pub(super) fn read(meta: Meta, spec: Value, obj: &str) -> Result<Resource, TranslateError> {
    let s: BgpFilterSpec = typed(spec, "spec", obj)?;
    Ok(Resource::BgpFilter(BgpFilter {
        name: meta.name,
        export_v4: s.export_v4,
        import_v4: s.import_v4,
        export_v6: s.export_v6,
        import_v6: s.import_v6,
    }))
}

/// Writes a filter as the v3 object Calico holds.
pub(super) fn write(f: &BgpFilter) -> Parts<'_> {
    let mut spec = Map::new();
    let lists = [
        ("exportV4", &f.export_v4),
        ("importV4", &f.import_v4),
        ("exportV6", &f.export_v6),
        ("importV6", &f.import_v6),
    ];
    for (key, rules) in lists {
        if !rules.is_empty() {
            spec.insert(key.into(), json!(rules));
        }
    }
    ("BGPFilter", None, f.name.clone(), None, Json::Object(spec))
}

/// Adds `communities` and `prefixAdvertisements` of a `BGPConfiguration` to its v3 spec.
pub(super) fn write_communities(
    spec: &mut Map<String, Json>,
    defs: &[CommunityDef],
    ads: &[PrefixAdvertisement],
) {
    if !defs.is_empty() {
        spec.insert("communities".into(), json!(defs));
    }
    if !ads.is_empty() {
        spec.insert("prefixAdvertisements".into(), json!(ads));
    }
}

#[cfg(test)]
mod tests;

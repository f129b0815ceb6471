//! Validation of `BGPFilter` resources and of the community fields of `BGPConfiguration`.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::{
    resolve_community, BgpFilter, BgpFilterRule, Community, CommunityDef, MatchOperator,
    PrefixAdvertisement,
};
use crate::model::error::{Reason, ValidationError};
use crate::model::resource::ResourceKind;
use crate::model::validate::{Check, MAX_RULES_PER_DIRECTION};

impl BgpFilter {
    /// Checks the filter against Calico's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::BgpFilter, self.name.clone());
        c.name("name", &self.name)?;
        let lists = [
            ("exportV4", &self.export_v4, true),
            ("importV4", &self.import_v4, true),
            ("exportV6", &self.export_v6, false),
            ("importV6", &self.import_v6, false),
        ];
        for (field, rules, v4) in lists {
            if rules.len() > MAX_RULES_PER_DIRECTION {
                let (len, limit) = (rules.len(), MAX_RULES_PER_DIRECTION);
                return Err(c.err(field, Reason::TooMany { len, limit }));
            }
            for (i, rule) in rules.iter().enumerate() {
                check_rule(&c, &format!("{field}[{i}]"), rule, v4)?;
            }
        }
        Ok(())
    }
}

fn check_rule(
    c: &Check,
    field: &str,
    rule: &BgpFilterRule,
    v4: bool,
) -> Result<(), ValidationError> {
    if let Some(iface) = &rule.interface {
        check_interface(c, &format!("{field}.interface"), iface)?;
    }
    let Some(cidr) = rule.cidr else {
        if rule.match_operator.is_some() {
            return Err(c.err(
                format!("{field}.matchOperator"),
                Reason::Requires("cidr".into()),
            ));
        }
        if rule.prefix_length.is_some() {
            return Err(c.err(
                format!("{field}.prefixLength"),
                Reason::Requires("cidr".into()),
            ));
        }
        return Ok(());
    };
    if cidr.addr().is_ipv4() != v4 {
        let version = if v4 { 4 } else { 6 };
        let value = cidr.to_string();
        return Err(c.err(
            format!("{field}.cidr"),
            Reason::IpVersionMismatch { value, version },
        ));
    }
    if cidr.trunc() != cidr {
        return Err(c.invalid(
            format!("{field}.cidr"),
            format!("{cidr} has host bits set; did you mean {}?", cidr.trunc()),
        ));
    }
    let Some(op) = rule.match_operator else {
        return Err(c.err(
            format!("{field}.matchOperator"),
            Reason::Requires("a value with cidr".into()),
        ));
    };
    if let Some(len) = &rule.prefix_length {
        if matches!(op, MatchOperator::Equal | MatchOperator::NotEqual) {
            return Err(c.err(
                format!("{field}.prefixLength"),
                Reason::Requires("matchOperator In or NotIn".into()),
            ));
        }
        check_lengths(c, &format!("{field}.prefixLength"), len, &cidr)?;
    }
    Ok(())
}

/// Calico's rule for a filter's interface: 1 to 15 of `a-z A-Z 0-9 _ . - *`.
fn check_interface(c: &Check, field: &str, iface: &str) -> Result<(), ValidationError> {
    let allowed = |ch: char| ch.is_ascii_alphanumeric() || "_.-*".contains(ch);
    if iface.is_empty() || iface.len() > 15 || !iface.chars().all(allowed) {
        return Err(c.invalid(
            field,
            format!(
                "{iface:?}: an interface name (or pattern with `*`) of 1 to 15 letters, \
                 digits and `_.-*`"
            ),
        ));
    }
    Ok(())
}

fn check_lengths(
    c: &Check,
    field: &str,
    len: &super::PrefixLength,
    cidr: &IpNet,
) -> Result<(), ValidationError> {
    let full = i64::from(cidr.max_prefix_len());
    for (name, v) in [("min", len.min), ("max", len.max)] {
        if let Some(v) = v {
            if !(0..=full).contains(&i64::from(v)) {
                let range = Reason::OutOfRange {
                    value: v.into(),
                    min: 0,
                    max: full,
                };
                return Err(c.err(format!("{field}.{name}"), range));
            }
        }
    }
    if let (Some(min), Some(max)) = (len.min, len.max) {
        if min > max {
            return Err(c.invalid(field, format!("min {min} is above max {max}")));
        }
    }
    if let Some(max) = len.max {
        if max < i32::from(cidr.prefix_len()) {
            return Err(c.invalid(
                format!("{field}.max"),
                format!("{max} is shorter than {cidr}: the rule could never match"),
            ));
        }
    }
    Ok(())
}

/// Checks `communities` and `prefixAdvertisements` of a `BGPConfiguration`: names unique
/// and valid, values well formed, every entry of an advertisement a defined name or a value.
pub(crate) fn check_communities(
    c: &Check,
    defs: &[CommunityDef],
    ads: &[PrefixAdvertisement],
) -> Result<(), ValidationError> {
    let mut names = BTreeSet::new();
    for (i, d) in defs.iter().enumerate() {
        c.name(&format!("communities[{i}].name"), &d.name)?;
        if !names.insert(&d.name) {
            return Err(c.err(
                format!("communities[{i}].name"),
                Reason::Duplicate(d.name.clone()),
            ));
        }
        if let Err(why) = d.value.parse::<Community>() {
            return Err(c.invalid(format!("communities[{i}].value"), why));
        }
    }
    for (i, ad) in ads.iter().enumerate() {
        if ad.cidr.trunc() != ad.cidr {
            return Err(c.invalid(
                format!("prefixAdvertisements[{i}].cidr"),
                format!(
                    "{} has host bits set; did you mean {}?",
                    ad.cidr,
                    ad.cidr.trunc()
                ),
            ));
        }
        if ad.communities.is_empty() {
            return Err(c.err(
                format!("prefixAdvertisements[{i}].communities"),
                Reason::Empty,
            ));
        }
        for (j, entry) in ad.communities.iter().enumerate() {
            if let Err(why) = resolve_community(defs, entry) {
                let field = format!("prefixAdvertisements[{i}].communities[{j}]");
                return Err(c.invalid(field, why));
            }
        }
    }
    Ok(())
}

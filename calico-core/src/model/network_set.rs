//! Network sets: labelled lists of CIDRs that rule selectors match like endpoints.
//!
//! As in Calico, a rule's `selector` (or `notSelector`) picks the addresses of the endpoints
//! it matches *and* the CIDRs of the network sets it matches; a packet's address matches
//! when it is one of the former or falls in one of the latter. A namespaced set (Calico's
//! `NetworkSet`) carries the implicit `projectcalico.org/namespace` label and inherits the
//! labels of its namespace's `kns.<namespace>` profile, so the rules of a namespaced policy
//! see only the sets of their own namespace; a global one (`GlobalNetworkSet`) carries only
//! its own labels.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::{Reason, ValidationError};
use super::resource::ResourceKind;
use super::validate::Check;
use crate::labels::{Labels, LABEL_NAMESPACE};

/// A labelled set of networks (Calico's `NetworkSet` when `namespace` is set, its
/// `GlobalNetworkSet` otherwise).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSet {
    /// Name of the set, unique within its namespace (or globally).
    pub name: String,
    /// Namespace of a namespaced set; `None` for a global one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The set's labels, which rule selectors match.
    #[serde(default)]
    pub labels: Labels,
    /// The networks, IPv4 and IPv6. A bare address means that address alone (/32 or /128),
    /// as Calico reads it.
    #[serde(default, deserialize_with = "cidrs_or_addresses")]
    pub nets: Vec<IpNet>,
}

/// The key of a network set: namespace (`None` for a global set) and name.
pub type NetworkSetKey = (Option<String>, String);

impl NetworkSet {
    /// `namespace/name`, or `name` for a global set.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The networks with their host bits cleared: what the set contributes to selector sets.
    pub fn networks(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.nets.iter().map(IpNet::trunc)
    }

    /// Checks the set against Calico's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::NetworkSet, self.qualified_name());
        c.name("name", &self.name)?;
        if let Some(ns) = &self.namespace {
            c.name("namespace", ns)?;
        }
        c.labels("labels", &self.labels)?;
        if self.labels.contains_key(LABEL_NAMESPACE) {
            // Calico reserves it for the set's real namespace.
            return Err(c.invalid(
                format!("labels.{LABEL_NAMESPACE}"),
                format!("{LABEL_NAMESPACE} is not a valid label name"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, net) in self.networks().enumerate() {
            if !seen.insert(net) {
                return Err(c.err(format!("nets[{i}]"), Reason::Duplicate(net.to_string())));
            }
        }
        Ok(())
    }
}

/// Reads CIDRs, taking a bare address as a single-address network.
fn cidrs_or_addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| parse_cidr_or_address(t).map_err(serde::de::Error::custom))
        .collect()
}

/// A CIDR, or a bare address as its /32 or /128.
pub fn parse_cidr_or_address(text: &str) -> Result<IpNet, String> {
    if text.contains('/') {
        return text.parse().map_err(|_| format!("{text:?} is not a CIDR"));
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is neither a CIDR nor an address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_resources, Resource};

    fn one(text: &str) -> Result<NetworkSet, String> {
        match parse_resources(text).map_err(|e| e.to_string())?.pop() {
            Some(Resource::NetworkSet(s)) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_cidrs_and_bare_addresses_of_both_families() {
        let s = one("kind: NetworkSet\nname: ext\nnamespace: shop\nlabels: {role: db}\nnets: [198.51.100.0/28, 192.0.2.7, 'fd00::/64', 'fd00:1::1']\n").unwrap();
        let nets: Vec<String> = s.networks().map(|n| n.to_string()).collect();
        assert_eq!(
            nets,
            [
                "198.51.100.0/28",
                "192.0.2.7/32",
                "fd00::/64",
                "fd00:1::1/128"
            ]
        );
        assert_eq!(s.qualified_name(), "shop/ext");
    }

    #[test]
    fn bad_sets_are_refused_naming_the_field() {
        let e = one("kind: NetworkSet\nname: ext\nnets: [10.0.0.0/33]\n").unwrap_err();
        assert!(e.contains("nets") && e.contains("not a CIDR"), "{e}");
        let e = one("kind: NetworkSet\nname: ext\nnets: [banana]\n").unwrap_err();
        assert!(e.contains("neither a CIDR nor an address"), "{e}");
        let e = one("kind: NetworkSet\nname: ext\nnets: [10.0.0.0/8, 10.1.0.0/8]\n").unwrap_err();
        assert!(
            e.contains("field nets[1]") && e.contains("10.0.0.0/8"),
            "{e}"
        );
        let e = one("kind: NetworkSet\nname: Ext\n").unwrap_err();
        assert!(e.contains("field name"), "{e}");
        let e = one("kind: NetworkSet\nname: e\nlabels: {projectcalico.org/namespace: x}\n")
            .unwrap_err();
        assert!(e.contains("labels.projectcalico.org/namespace"), "{e}");
        let e = one("kind: NetworkSet\nname: e\nnamespace: Shop\n").unwrap_err();
        assert!(e.contains("field namespace"), "{e}");
    }
}

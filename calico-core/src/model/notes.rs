//! What the model accepts but the dataplane does not act on, said out loud: a log line
//! when such a resource first appears, and notes an orchestrator or the agent's status can
//! show.
//!
//! Today: policies held because their tier does not exist ([`Model::notes`]), and, in the
//! agent's status, a host endpoint without an `interfaceName` none of whose `expectedIPs`
//! is on an interface of the host ([`HostEndpoint::address_note`]): Felix finds its
//! interfaces by those addresses, and until one holds them its policy applies nowhere.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::endpoint::HostEndpoint;
use super::policy::Policy;
use super::store::Model;

/// Why a host endpoint without an interface name has no effect yet.
pub const HOST_ENDPOINT_NOT_ENFORCED: &str = "host-endpoint policy is not enforced for it \
     yet: it names no interfaceName, and no interface of the host holds one of its \
     expectedIPs (it applies to every interface that does, as soon as one does)";

impl HostEndpoint {
    /// One line, naming it, when this host endpoint names no interface and none of the
    /// host's interfaces (`addrs`, by name; `None` when they cannot be read, the `reason`
    /// given) holds one of its expected addresses; `None` otherwise.
    pub fn address_note(
        &self,
        addrs: Result<&BTreeMap<String, BTreeSet<IpAddr>>, &str>,
    ) -> Option<String> {
        if self.interface_name.is_some() {
            return None;
        }
        let what = format!("host endpoint {} (node {})", self.name, self.node);
        match addrs {
            Ok(addrs) => {
                let held = addrs
                    .values()
                    .any(|h| self.expected_ips.iter().any(|ip| h.contains(ip)));
                (!held).then(|| format!("{what}: {HOST_ENDPOINT_NOT_ENFORCED}"))
            }
            Err(reason) => Some(format!(
                "{what}: host-endpoint policy is NOT enforced for it: it names no \
                 interfaceName and the host's interface addresses cannot be read ({reason}); \
                 set interfaceName (or \"*\" for all interfaces)"
            )),
        }
    }
}

impl Model {
    /// Notes on resources the model holds but the dataplane does not enforce, one per
    /// resource, for status pages and validation reports.
    pub fn notes(&self) -> Vec<String> {
        self.held_policies().map(held_note).collect()
    }
}

/// One line saying that a policy is held because its tier does not exist.
fn held_note(p: &Policy) -> String {
    format!(
        "policy {} names tier {:?}, which does not exist: held (applies nowhere) until the tier is created",
        crate::calc::effective::policy_name(p),
        p.tier
    )
}

/// Logs that a policy entering the model names a tier that does not exist.
pub(super) fn policy_held(p: &Policy) {
    tracing::warn!("{}", held_note(p));
}

#[cfg(test)]
mod tests {

    use super::*;

    /// A host endpoint without an interface name (found by its expected IPs).
    fn hep(name: &str) -> HostEndpoint {
        HostEndpoint {
            name: name.into(),
            node: "host-a".into(),
            interface_name: None,
            expected_ips: vec!["192.0.2.10".parse().unwrap()],
            labels: Default::default(),
            profiles: vec![],
            ports: vec![],
        }
    }

    #[test]
    fn a_host_endpoint_by_address_is_noted_while_no_interface_holds_its_address() {
        let mut addrs = BTreeMap::new();
        addrs.insert(
            "eth0".to_string(),
            BTreeSet::from(["192.0.2.9".parse().unwrap()]),
        );
        let note = hep("a-eth0").address_note(Ok(&addrs)).unwrap();
        assert!(
            note.starts_with("host endpoint a-eth0 (node host-a)"),
            "{note}"
        );
        assert!(note.contains(HOST_ENDPOINT_NOT_ENFORCED), "{note}");
        // Held by an interface: enforced there, no note.
        addrs.insert(
            "eth1".into(),
            BTreeSet::from(["192.0.2.10".parse().unwrap()]),
        );
        assert_eq!(hep("a-eth0").address_note(Ok(&addrs)), None);
        // The addresses cannot be read: said, with the reason.
        let note = hep("a-eth0").address_note(Err("no netlink")).unwrap();
        assert!(
            note.contains("NOT enforced") && note.contains("no netlink"),
            "{note}"
        );
        // Named interfaces are enforced whatever the addresses.
        let mut named = hep("a-eth0");
        named.interface_name = Some("eth0".into());
        assert_eq!(named.address_note(Err("no netlink")), None);
    }

    #[test]
    fn host_endpoints_without_an_interface_are_not_model_notes() {
        let model = Model::from_resources([crate::model::Resource::HostEndpoint(hep("a"))]);
        assert!(model.unwrap().notes().is_empty());
    }
}

//! What the model accepts but the dataplane does not act on, said out loud: a log line
//! when such a resource first appears, and notes an orchestrator or the agent's status can
//! show.
//!
//! Today: a host endpoint without an `interfaceName` (Felix finds its interface by
//! `expectedIPs`; calico-rs programs host endpoints by interface name only), and policies
//! held because their tier does not exist.

use super::endpoint::HostEndpoint;
use super::policy::Policy;
use super::store::Model;

/// Why a host endpoint without an interface name has no effect.
pub const HOST_ENDPOINT_NOT_ENFORCED: &str = "host-endpoint policy is NOT enforced for it: \
     it names no interfaceName, and calico-rs finds a host endpoint's interface by name \
     only (not by expectedIPs); set interfaceName (or \"*\" for all interfaces)";

impl HostEndpoint {
    /// One line saying that this host endpoint's policy is not enforced and why, naming it;
    /// `None` when it is (it names its interface).
    pub fn enforcement_note(&self) -> Option<String> {
        if self.interface_name.is_some() {
            return None;
        }
        Some(format!(
            "host endpoint {} (node {}): {HOST_ENDPOINT_NOT_ENFORCED}",
            self.name, self.node,
        ))
    }
}

impl Model {
    /// Notes on resources the model holds but the dataplane does not enforce, one per
    /// resource, for status pages and validation reports.
    pub fn notes(&self) -> Vec<String> {
        let heps = self
            .host_endpoints
            .values()
            .filter_map(HostEndpoint::enforcement_note);
        heps.chain(self.held_policies().map(held_note)).collect()
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

/// Logs, once when a host endpoint first enters the model, that its policy is not
/// enforced, when it is not.
pub(super) fn host_endpoint_added(ep: &HostEndpoint) {
    if let Some(note) = ep.enforcement_note() {
        tracing::warn!(host_endpoint = %ep.name, node = %ep.node, "{note}");
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::model::{Resource, ResourceKey, Update};

    /// A host endpoint without an interface name (found by its expected IPs in Felix).
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
    fn each_host_endpoint_is_logged_once_as_not_enforced() {
        let mut model = Model::new();
        let text = crate::test_log::logged(|| {
            model
                .apply(Update::Upsert(Resource::HostEndpoint(hep("a-eth0"))))
                .unwrap();
            // An update of the same endpoint is not a new warning.
            let mut changed = hep("a-eth0");
            changed.expected_ips.push("192.0.2.11".parse().unwrap());
            model.apply_valid(Update::Upsert(Resource::HostEndpoint(changed)));
            model.apply_valid(Update::Upsert(Resource::HostEndpoint(hep("a-eth1"))));
            // Removed and added again: it is new again.
            model.apply_valid(Update::Remove(ResourceKey::HostEndpoint("a-eth1".into())));
            model.apply_valid(Update::Upsert(Resource::HostEndpoint(hep("a-eth1"))));
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines
                .iter()
                .all(|l| l.contains("WARN") && l.contains("NOT enforced")),
            "{text}"
        );
        assert!(lines[0].contains("host endpoint a-eth0") && lines[1].contains("a-eth1"));
    }

    #[test]
    fn the_model_lists_a_note_per_host_endpoint() {
        let model = Model::from_resources([
            Resource::HostEndpoint(hep("a-eth0")),
            Resource::HostEndpoint(hep("a-eth1")),
        ])
        .unwrap();
        let notes = model.notes();
        assert_eq!(notes.len(), 2);
        assert!(notes[0].starts_with("host endpoint a-eth0 (node host-a)"));
        assert!(notes[1].contains(HOST_ENDPOINT_NOT_ENFORCED));
        assert!(Model::new().notes().is_empty());
        // Named interfaces are enforced: no note.
        let mut named = hep("a-eth0");
        named.interface_name = Some("eth0".into());
        let model = Model::from_resources([Resource::HostEndpoint(named)]).unwrap();
        assert!(model.notes().is_empty());
    }
}

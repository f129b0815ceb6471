//! What the model accepts but the dataplane does not act on yet, said out loud: a log
//! line when such a resource first appears, and notes an orchestrator or the agent's
//! status can show.
//!
//! Today that is host endpoints: their policy is compiled, but nothing attaches it to
//! the host's input/output/forward paths, so traffic to and from the host is not
//! filtered (issue 17 tracks the enforcement).

use super::endpoint::HostEndpoint;
use super::policy::Policy;
use super::store::Model;

/// Why host-endpoint policy has no effect yet.
pub const HOST_ENDPOINT_NOT_ENFORCED: &str = "host-endpoint policy is NOT enforced yet: \
     its rules are compiled but not attached to the host's input/output/forward paths, \
     so traffic to and from the host is not filtered";

impl HostEndpoint {
    /// One line saying that this host endpoint's policy is not enforced, naming it.
    pub fn enforcement_note(&self) -> String {
        format!(
            "host endpoint {} (node {}, interface {}): {HOST_ENDPOINT_NOT_ENFORCED}",
            self.name,
            self.node,
            self.interface_name
                .as_deref()
                .unwrap_or("(by expected IPs)"),
        )
    }
}

impl Model {
    /// Notes on resources the model holds but the dataplane does not enforce, one per
    /// resource (today: one per host endpoint), for status pages and validation reports.
    pub fn notes(&self) -> Vec<String> {
        let heps = self
            .host_endpoints
            .values()
            .map(HostEndpoint::enforcement_note);
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

/// Logs, once when a host endpoint first enters the model, that its policy is not enforced.
pub(super) fn host_endpoint_added(ep: &HostEndpoint) {
    tracing::warn!(
        host_endpoint = %ep.name,
        node = %ep.node,
        "{}",
        ep.enforcement_note()
    );
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::model::{Resource, ResourceKey, Update};

    fn hep(name: &str) -> HostEndpoint {
        HostEndpoint {
            name: name.into(),
            node: "host-a".into(),
            interface_name: Some("eth0".into()),
            expected_ips: vec![],
            labels: Default::default(),
            profiles: vec![],
            ports: vec![],
        }
    }

    /// A `tracing` writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_host_endpoint_is_logged_once_as_not_enforced() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let mut model = Model::new();
        tracing::subscriber::with_default(subscriber, || {
            model
                .apply(Update::Upsert(Resource::HostEndpoint(hep("a-eth0"))))
                .unwrap();
            // An update of the same endpoint is not a new warning.
            let mut changed = hep("a-eth0");
            changed.expected_ips = vec!["192.0.2.11".parse().unwrap()];
            model.apply_valid(Update::Upsert(Resource::HostEndpoint(changed)));
            model.apply_valid(Update::Upsert(Resource::HostEndpoint(hep("a-eth1"))));
            // Removed and added again: it is new again.
            model.apply_valid(Update::Remove(ResourceKey::HostEndpoint("a-eth1".into())));
            model.apply_valid(Update::Upsert(Resource::HostEndpoint(hep("a-eth1"))));
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
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
        assert!(notes[0].starts_with("host endpoint a-eth0 (node host-a, interface eth0)"));
        assert!(notes[1].contains(HOST_ENDPOINT_NOT_ENFORCED));
        assert!(Model::new().notes().is_empty());
    }
}

//! Labels: the key/value pairs selectors match on, and the implicit labels Calico gives
//! endpoints. At the bottom of the crate: the selector language and the model both use them.

use std::collections::BTreeMap;

/// A set of labels. Ordered, so that printing and hashing are deterministic.
pub type Labels = BTreeMap<String, String>;

/// Implicit label carrying a workload endpoint's namespace (as in Calico).
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";

/// Implicit label carrying a workload endpoint's orchestrator (as in Calico).
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";

/// Prefix of the namespace labels endpoints inherit from their `kns.<namespace>` profile.
pub const NAMESPACE_LABEL_PREFIX: &str = "pcns.";

/// Label carrying a Kubernetes workload's service account name (as in Calico).
pub const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";

/// Prefix of the service-account labels endpoints inherit from their `ksa.<namespace>.<name>`
/// profile (as in Calico; `pcsa.projectcalico.org/name` holds the account's name).
pub const SERVICE_ACCOUNT_LABEL_PREFIX: &str = "pcsa.";

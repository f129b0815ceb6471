//! Labels: the key/value pairs selectors match on.

use std::collections::BTreeMap;

/// A set of labels. Ordered, so that printing and hashing are deterministic.
pub type Labels = BTreeMap<String, String>;

/// Implicit label carrying a workload endpoint's namespace (as in Calico).
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";

/// Implicit label carrying a workload endpoint's orchestrator (as in Calico).
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";

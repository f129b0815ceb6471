//! Translations from orchestrators' own objects into calico-rs resources.
//!
//! Each translation is behind a cargo feature:
//!
//! * `kubernetes`: `networking.k8s.io/v1` NetworkPolicy, Pods and Namespaces, with Kubernetes
//!   semantics (a pod selected by any policy is isolated; `ipBlock` with `except`; named
//!   ports; `endPort`);
//! * `neutron`: OpenStack Neutron ports and security groups as the Neutron API returns them;
//! * `calico-v3`: `projectcalico.org/v3` YAML as `calicoctl` users write it.
//!
//! Errors name the source object and the field, and say why.

#[cfg(feature = "calico-v3")]
pub mod calico_v3;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
#[cfg(feature = "neutron")]
pub mod neutron;

/// An orchestrator object could not be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{object}: field {field}: {reason}")]
pub struct TranslateError {
    /// The source object, e.g. `NetworkPolicy shop/allow-web` or `port 1f2e...`.
    pub object: String,
    /// Path of the offending field in the source object.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl TranslateError {
    pub(crate) fn new(
        object: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        TranslateError {
            object: object.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Quotes a label value for selector text, refusing values the selector language cannot
/// carry (a value holding both quote characters).
#[cfg(any(feature = "kubernetes", feature = "neutron"))]
pub(crate) fn quote(value: &str) -> Option<String> {
    if !value.contains('"') {
        Some(format!("\"{value}\""))
    } else if !value.contains('\'') {
        Some(format!("'{value}'"))
    } else {
        None
    }
}

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
//!
//! The drivers (`neutron_driver`, `kubernetes_driver`) write the translations through a
//! datastore's [`ResourceWriter`](crate::datastore::ResourceWriter) as the orchestrator's
//! objects change, and read the hosts' status reports back
//! ([`StatusStore`](crate::datastore::status::StatusStore)).

#[cfg(feature = "calico-v3")]
pub mod calico_v3;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
#[cfg(feature = "kubernetes")]
pub mod kubernetes_driver;
#[cfg(feature = "neutron")]
pub mod neutron;
#[cfg(feature = "neutron")]
pub mod neutron_driver;

/// An orchestrator driver's write or read failed: the object did not translate, or the
/// datastore refused or could not be reached.
#[cfg(any(feature = "kubernetes", feature = "neutron"))]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The orchestrator's object does not translate.
    #[error(transparent)]
    Translate(#[from] TranslateError),
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] crate::datastore::DatastoreError),
}

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
#[cfg(feature = "kubernetes")]
pub(crate) fn quote(value: &str) -> Option<String> {
    if !value.contains('"') {
        Some(format!("\"{value}\""))
    } else if !value.contains('\'') {
        Some(format!("'{value}'"))
    } else {
        None
    }
}

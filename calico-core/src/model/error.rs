//! The error every resource validation returns.

use std::fmt;

use super::resource::ResourceKind;

/// Which resource an error is about: its kind and its (namespaced) name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    /// The kind of resource.
    pub kind: ResourceKind,
    /// `namespace/name` for namespaced resources, `name` otherwise.
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// Why a field was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// A list is longer than Calico allows.
    #[error("has {len} entries, more than the limit of {limit}")]
    TooMany {
        /// Entries given.
        len: usize,
        /// Entries allowed.
        limit: usize,
    },
    /// A required value is empty.
    #[error("must not be empty")]
    Empty,
    /// A value is outside its allowed range or form.
    #[error("{0}")]
    Invalid(String),
}

/// A resource failed validation. Names the resource, the field (a path such as
/// `ingress[2].source.ports[0]`) and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: field {field}: {reason}")]
pub struct ValidationError {
    /// The resource that was rejected.
    pub resource: ResourceRef,
    /// Path of the offending field, in wire (camelCase) names.
    pub field: String,
    /// What is wrong with it.
    pub reason: Reason,
}

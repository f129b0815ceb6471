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
    /// A string is longer than allowed.
    #[error("is {len} bytes long, more than the limit of {limit}")]
    TooLong {
        /// Bytes given.
        len: usize,
        /// Bytes allowed.
        limit: usize,
    },
    /// A number is outside its allowed range.
    #[error("{value} is outside the range {min}-{max}")]
    OutOfRange {
        /// The value given.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// A value appears twice where it must be unique.
    #[error("{0} appears more than once")]
    Duplicate(String),
    /// A network of the wrong family for the rule's `ipVersion`.
    #[error("{value} is not an IPv{version} network, but the rule's ipVersion is {version}")]
    IpVersionMismatch {
        /// The offending value.
        value: String,
        /// The rule's IP version (4 or 6).
        version: u8,
    },
    /// A field that needs another field set to a certain value.
    #[error("requires {0}")]
    Requires(String),
    /// Two fields that cannot be used together.
    #[error("cannot be used together with {0}")]
    Conflicts(String),
    /// A value is outside its allowed form.
    #[error("{0}")]
    Invalid(String),
}

/// A resource failed validation. Names the resource, the field (a path such as
/// `ingress[2].source.ports[0]`) and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: field {}: {}", clip(&.resource.to_string(), MAX_SHOWN), clip(.field, MAX_SHOWN), clip(&.reason.to_string(), MAX_SHOWN))]
pub struct ValidationError {
    /// The resource that was rejected.
    pub resource: ResourceRef,
    /// Path of the offending field, in wire (camelCase) names.
    pub field: String,
    /// What is wrong with it.
    pub reason: Reason,
}

/// Longest part of a [`ValidationError`] message: a rejected value is echoed so that an
/// operator can find it, but a 50 MB label must not become a 50 MB log line.
pub const MAX_SHOWN: usize = 200;

/// At most `max` characters of `text`, with the length of what was cut: for messages that
/// echo a value from untrusted input.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_value_is_clipped_in_the_message() {
        let e = ValidationError {
            resource: ResourceRef {
                kind: crate::model::ResourceKind::Profile,
                name: "p".into(),
            },
            field: "labels.a".into(),
            reason: Reason::Invalid(format!(
                "{:?} is not a valid label value",
                "v".repeat(1 << 20)
            )),
        };
        let text = e.to_string();
        assert!(text.len() < 400, "{} bytes", text.len());
        assert!(text.contains("bytes in all)"), "{text}");
    }
}

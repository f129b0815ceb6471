//! What a datastore operation can fail with.

use super::Revision;

/// A datastore operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatastoreError {
    /// A create found the key taken.
    #[error("{key}: already exists")]
    AlreadyExists {
        /// The datastore key.
        key: String,
    },
    /// An update or delete found no entry.
    #[error("{key}: not found")]
    NotFound {
        /// The datastore key.
        key: String,
    },
    /// An update or delete found the entry modified since the revision the writer read.
    #[error("{key}: modified since revision {expected} (now at {})", actual.map_or("deleted".to_string(), |a| a.to_string()))]
    Conflict {
        /// The datastore key.
        key: String,
        /// The revision the writer expected.
        expected: Revision,
        /// The entry's revision now, `None` if it was deleted.
        actual: Option<Revision>,
    },
    /// The history from `revision` on is gone: read a new snapshot.
    #[error("revision {revision} is compacted (history starts after {compacted}); a new snapshot is needed")]
    Compacted {
        /// The revision asked for.
        revision: Revision,
        /// The datastore's compaction revision.
        compacted: Revision,
    },
    /// A resource cannot be stored (a name the key layout cannot hold, a kind it has no
    /// place for) or a stored value cannot be read.
    #[error("{key}: {reason}")]
    Invalid {
        /// The datastore key, or the resource when it has no key.
        key: String,
        /// Why, naming the field.
        reason: String,
    },
    /// The datastore cannot be reached or answered with an error.
    #[error("{endpoint}: {reason}")]
    Unavailable {
        /// The datastore's address.
        endpoint: String,
        /// The transport's or the server's error.
        reason: String,
    },
    /// The source or writer was closed.
    #[error("the datastore connection is closed")]
    Closed,
}

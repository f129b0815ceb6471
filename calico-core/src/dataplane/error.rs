//! The one error type every backend operation returns.

/// Why a backend operation failed. Carries enough for an operator to act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The dataplane refused an operation.
    #[error("{op} failed: {reason}")]
    Dataplane {
        /// What was being done, e.g. `add route 10.0.0.1/32 dev cali1`.
        op: String,
        /// What the dataplane said.
        reason: String,
    },
    /// The interface a change refers to does not exist (yet).
    #[error("interface {0:?} does not exist")]
    MissingInterface(String),
    /// The input cannot be expressed by this backend.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The backend (a daemon, a socket) is not reachable.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

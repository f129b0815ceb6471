//! Selector syntax errors.

/// A selector could not be parsed. Says where (byte offset) and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("selector {text:?}: at byte {position}: expected {expected} but found {found}")]
pub struct SelectorError {
    /// The selector text.
    pub text: String,
    /// Byte offset of the problem.
    pub position: usize,
    /// What the parser expected there.
    pub expected: String,
    /// What it found instead.
    pub found: String,
}

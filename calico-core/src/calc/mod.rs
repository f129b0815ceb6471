//! The incremental calculation index: which selectors match which endpoints, kept up to date
//! one change at a time.
//!
//! [`SelectorIndex`] answers, after every update, which endpoints each selector matches, and
//! reports the changes as a stream of [`MembershipChange`]s. A label change on one endpoint
//! tests only the selectors whose [label restrictions](crate::selector::Selector::label_restrictions)
//! make them candidates for its old or new labels, not every selector; a new selector tests
//! only the endpoints carrying the label it requires.
//!
//! The rule compiler uses two of them: one over every endpoint of the cluster for the
//! selectors in rules (whose members become IP-set elements), one over this node's endpoints
//! for the policies' own selectors (which policies apply to which local endpoint).

pub mod effective;
mod selector_index;

pub use selector_index::{MembershipChange, SelectorIndex};

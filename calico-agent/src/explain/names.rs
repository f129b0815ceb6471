//! The IR's chains named as the user wrote what they hold.

use calico_core::model::Model;

/// Names the chains of the IR compiled for one node.
pub struct ChainNames {}

impl ChainNames {
    /// The names of the chains compiled from `model` for `node`.
    pub fn new(_model: &Model, _node: &str) -> ChainNames {
        ChainNames {}
    }

    /// Rule `index` of `chain`, named.
    pub fn describe(&self, chain: &str, index: usize) -> String {
        format!("{chain} rule {index}")
    }
}

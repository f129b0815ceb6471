//! Map entries owned by the backend: deleted when their owner drops them, or left in place
//! for the programs that go on reading them once the backend is gone.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::SysError;
use crate::sys;

/// Entries written to one map, deleted when dropped unless kept (an interface's egress
/// mark, its counter rows).
#[derive(Debug)]
pub struct MapEntries {
    map: Arc<OwnedFd>,
    keys: Vec<Vec<u8>>,
    /// Whether dropping leaves the entries in place.
    kept: bool,
}

impl MapEntries {
    /// No entries yet, of `map`.
    pub(crate) fn new(map: Arc<OwnedFd>) -> MapEntries {
        MapEntries {
            map,
            keys: Vec::new(),
            kept: false,
        }
    }

    /// Writes `key → value`; the entry is then one of these.
    pub(crate) fn write(&mut self, key: &[u8], value: &[u8]) -> Result<(), SysError> {
        sys::map_update(&self.map, key, value)?;
        self.keys.push(key.to_vec());
        Ok(())
    }

    /// Leaves the entries in place when dropped: the programs, attached by filters that
    /// outlive the backend, go on reading them.
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for MapEntries {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // A failed delete leaves the entry. An egress mark left behind makes forwarded
        // packets out of its ifindex go unrecorded at the ingress (their replies are
        // judged as new): fail closed. A counter row left behind is counted in by no
        // program.
        for key in &self.keys {
            let _ = sys::map_delete(&self.map, key);
        }
    }
}

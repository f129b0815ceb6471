//! The later pieces of a policy split into programs chained with tail calls
//! ([`crate::generate::split`]), loaded, in their program array.
//!
//! The pieces are loaded last first and each is put in its slot as soon as it is
//! loaded, all before the entry is loaded (and so before anything can run it): a packet
//! never meets an empty slot. Each loaded chain has a program array of its own, so a
//! policy change loads a new chain beside the old one and swaps the entry atomically
//! (the backend's filter replace); the old chain's slots are emptied when it is dropped
//! ([`Tail`]'s drop), which the backend does only once the kernel has released the old
//! entry ([`crate::shared::ProgramCache::purge`]). The backend pins each array
//! ([`crate::pins`]) so that the pieces outlive it.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::SysError;
use crate::generate::Pieces;
use crate::program::load_one;
use crate::sets::Maps;
use crate::sys::{self, MapType};

/// The pieces after the entry, loaded, and the program array holding them. Dropping it
/// empties the slots (the pieces are unloaded then, unless a packet is in one) and
/// unpins the array, unless [`Tail::keep`] was called.
#[derive(Debug)]
pub struct Tail {
    /// The program array; slot `i` holds piece `i` (slot 0, the entry's, stays empty).
    array: OwnedFd,
    /// The kernel ids of the pieces after the entry, in slot order.
    ids: Vec<u32>,
    /// Their descriptors (the array holds the pieces too; these are for the ids' sake).
    _fds: Vec<OwnedFd>,
    /// Where the array is pinned.
    pin: Option<PathBuf>,
    /// Whether dropping leaves the slots filled and the pin in place.
    kept: AtomicBool,
}

impl Tail {
    /// Loads pieces 1.. of `pieces` (named `<name>_<i>`), last first, each put in its slot
    /// of a new program array as soon as it is loaded. Nothing is left of it when a load
    /// fails.
    pub(crate) fn load(
        name: &str,
        pieces: &Pieces,
        maps: &Maps,
        params: Option<&OwnedFd>,
        license: &CStr,
    ) -> Result<Tail, SysError> {
        let n = pieces.len();
        let slots = u32::try_from(n).map_err(|_| SysError::Unexpected {
            what: "program array",
            reason: format!("{n} pieces"),
        })?;
        let array = sys::map_create(MapType::ProgArray, "cali_pieces", 4, 4, slots, 0)?;
        let mut tail = Tail {
            array,
            ids: Vec::with_capacity(n - 1),
            _fds: Vec::with_capacity(n - 1),
            pin: None,
            kept: AtomicBool::new(false),
        };
        for (i, piece) in pieces.all().iter().enumerate().skip(1).rev() {
            let piece_name = format!("{name}_{i}");
            let fd = load_one(&piece_name, piece, maps, params, Some(&tail.array), license)?;
            let id = sys::prog_id(&fd)?;
            let slot = (i as u32).to_ne_bytes();
            sys::map_update(&tail.array, &slot, &(fd.as_raw_fd() as u32).to_ne_bytes())?;
            tail.ids.push(id);
            tail._fds.push(fd);
        }
        tail.ids.reverse();
        tail._fds.reverse();
        Ok(tail)
    }

    /// The program array the entry tail-calls through.
    pub(crate) fn array(&self) -> &OwnedFd {
        &self.array
    }

    /// The kernel ids of the pieces after the entry, in slot order.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Pins the array in `dir` (created if need be) as `<name>_<first piece's id>`, so
    /// that its slots stay filled when this process's descriptors close.
    pub(crate) fn pin(&mut self, dir: &Path, name: &str) -> Result<(), SysError> {
        std::fs::create_dir_all(dir).map_err(|e| SysError::Unexpected {
            what: "pin a program array",
            reason: format!("create {}: {e}", dir.display()),
        })?;
        let first = self.ids.first().copied().unwrap_or_default();
        let path = dir.join(format!("{name}_{first}"));
        sys::obj_pin(&self.array, &path)?;
        self.pin = Some(path);
        Ok(())
    }

    /// Leaves the slots filled and the pin in place when dropped: the entry, attached by
    /// a filter that outlives the backend, goes on tail-calling the pieces.
    pub(crate) fn keep(&self) {
        self.kept.store(true, Ordering::Relaxed);
    }
}

impl Drop for Tail {
    /// Empties the slots now, rather than when the kernel gets round to it after the
    /// array's last descriptor is closed.
    fn drop(&mut self) {
        if self.kept.load(Ordering::Relaxed) {
            return;
        }
        if let Some(pin) = &self.pin {
            // Gone already (removed by hand): nothing to undo.
            let _ = std::fs::remove_file(pin);
        }
        for i in 1..=self.ids.len() as u32 {
            // An empty slot already (a failed load) is nothing to undo.
            let _ = sys::map_delete(&self.array, &i.to_ne_bytes());
        }
    }
}

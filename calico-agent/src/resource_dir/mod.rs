//! The resource directory: the single-host source of resources, read as an operator would
//! want it read.
//!
//! * **Only resource files.** `*.yaml` and `*.yml`, not hidden (editors' swap files and the
//!   `.name.tmp` of a write-then-rename are skipped). Each must be a regular file (a symlink
//!   to one is fine) of at most `--max-file-bytes`; a FIFO, a device or a socket is refused
//!   without being read, and reads run off the agent's main loop.
//! * **Nothing is read half-written.** A changed file counts only once two reads at least
//!   the settle time apart (`--settle-ms`) see the same content; a removed file counts only
//!   once it has stayed removed as long. An empty file is taken as being written: its
//!   previous version stays (delete the file to remove its resources).
//! * **One bad file blocks only itself.** A file that does not parse, or that defines a
//!   resource another file defines, is refused as a whole and its last good version stays
//!   in force; the other files' changes go on. The refusal is logged once, counted
//!   (`calico_agent_resource_file_rejections_total`) and shown in `/status` until fixed.
//! * **No mass deletion by accident.** A change that would remove all applied resources, or
//!   more than `--max-delete-fraction` of them (and at least `--delete-guard-min`), is held:
//!   the additions and edits of the same change are applied, the removals are not, and
//!   `/status` and the log say so. Creating the file [`CONFIRM_FILE`] in the directory
//!   confirms them (the agent removes it once they are applied). A directory that empties,
//!   is replaced by an empty one or vanishes thus removes nothing by itself.
//! * **Every edit is seen.** inotify wakes the agent at each change; a full re-read every
//!   `--rescan-secs` compares content (not size and mtime), so an edit that keeps both is
//!   seen too.

pub mod read;
pub mod source;
pub mod state;
pub mod watch;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use read::ReadError;
pub use state::{clip, DirState, FileStatus, HeldDeletion, Observed, Plan, Settings};

/// The file whose presence in the resource directory confirms held removals.
pub const CONFIRM_FILE: &str = ".calico-confirm-deletions";

/// One read of the directory: every resource file's text (or why it could not be read),
/// and whether removals are confirmed. Blocking: run it off the async loop.
#[derive(Debug)]
pub struct DirRead {
    /// Resource files by name.
    pub files: BTreeMap<String, Observed>,
    /// Whether [`CONFIRM_FILE`] is present.
    pub confirm: bool,
}

/// Reads `dir`'s resource files, each of at most `cap` bytes; those last modified at least
/// `settle` ago are [`Observed::Quiet`].
pub fn read_dir(dir: &Path, cap: u64, settle: Duration) -> Result<DirRead, ReadError> {
    let mut files = BTreeMap::new();
    for path in read::list(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let observed = match read::read_text(&path, cap) {
            Ok((text, age)) if age >= settle => Observed::Quiet(text),
            Ok((text, _)) => Observed::Text(text),
            Err(e) => Observed::Unreadable(e.to_string()),
        };
        files.insert(name.to_string(), observed);
    }
    Ok(DirRead {
        files,
        confirm: dir.join(CONFIRM_FILE).exists(),
    })
}

#[cfg(test)]
mod tests;

//! One agent per nftables table per network namespace: two agents programming the same
//! table would undo each other's work at every resync. The lock is an advisory `flock` on a
//! file named after the namespace and the table; the kernel releases it when the process
//! ends, however it ends, so a stale lock never blocks a restart.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{path}: another calico-agent{holder} already programs nftables table {table:?} in this \
         network namespace; stop it first (one agent per table and namespace)"
    )]
    Held {
        /// The lock file.
        path: String,
        /// The table.
        table: String,
        /// ` (pid N)` when the file says.
        holder: String,
    },
    /// The lock file could not be made or locked.
    #[error("{path}: cannot take the agent lock: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The lock, held while this value lives.
#[derive(Debug)]
pub struct AgentLock {
    _file: File,
    path: PathBuf,
}

impl AgentLock {
    /// Takes the lock for `table` in the current network namespace, in `dir` (created 0700
    /// if missing); fails at once if another process holds it.
    pub fn acquire(dir: &Path, table: &str) -> Result<AgentLock, LockError> {
        let netns = std::fs::metadata("/proc/self/ns/net")
            .map(|m| m.ino())
            .unwrap_or(0);
        let path = dir.join(format!("agent-netns{netns}-{table}.lock"));
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    path: path.display().to_string(),
                    table: table.to_string(),
                    holder: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(AgentLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_table_is_refused_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = AgentLock::acquire(dir.path(), "calico").unwrap();
        let err = AgentLock::acquire(dir.path(), "calico").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        // Another table is another lock.
        let _other = AgentLock::acquire(dir.path(), "calico2").unwrap();
        drop(first);
        AgentLock::acquire(dir.path(), "calico").unwrap();
    }
}

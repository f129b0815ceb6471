//! Reading the resource directory without trusting it: only regular files, only up to a size
//! cap, never blocking on a FIFO or a device, and never following the directory's listing into
//! files it does not name as resources.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why one resource file could not be read. Its `Display` names the file and says what an
/// operator can do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The directory itself could not be listed.
    #[error("{dir}: cannot list the resource directory: {source}")]
    Dir {
        /// The directory.
        dir: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Opening or reading failed.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The name (or what a symlink points to) is not a regular file: a FIFO, a device, a
    /// socket or a directory. Such files are never read (a FIFO would block, `/dev/zero`
    /// never ends).
    #[error("{path}: not a regular file ({kind}); resource files must be regular files")]
    NotRegular {
        /// The file.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// The file is larger than the cap.
    #[error("{path}: {size} bytes or more, over the {cap}-byte cap (--max-file-bytes)")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size, or at least how much was read before giving up.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// The content is not UTF-8.
    #[error("{path}: not UTF-8 text")]
    NotText {
        /// The file.
        path: String,
    },
}

/// Whether `name` is a resource file's name: `*.yaml` or `*.yml`, not hidden. Hidden names
/// are skipped so that editors' swap files and the `.name.tmp` of a write-then-rename are
/// never read half-written.
pub fn is_resource_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// The resource files of `dir` by name, in name order (the types are checked when each is
/// read).
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ReadError::Dir {
        dir: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_resource_name))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads one resource file: a regular file (a symlink to one is fine) of at most `cap`
/// bytes, as UTF-8 text, with the time since it was last modified (zero if in the future). The file is opened non-blocking, so a FIFO does not block the open,
/// and its type is checked on the open descriptor before any byte is read.
pub fn read_text(path: &Path, cap: u64) -> Result<(String, Duration), ReadError> {
    let shown = || path.display().to_string();
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| ReadError::Io {
            path: shown(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| ReadError::Io {
        path: shown(),
        source,
    })?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "not a file"
        };
        return Err(ReadError::NotRegular {
            path: shown(),
            kind,
        });
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge {
            path: shown(),
            size: meta.len(),
            cap,
        });
    }
    // The file may grow between the stat and the read: read at most one byte over the cap.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: shown(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            path: shown(),
            size: bytes.len() as u64,
            cap,
        });
    }
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or_default();
    let text = String::from_utf8(bytes).map_err(|_| ReadError::NotText { path: shown() })?;
    Ok((text, age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_resource_name("a.yaml"));
        assert!(is_resource_name("b.yml"));
        assert!(!is_resource_name(".a.yaml"));
        assert!(!is_resource_name(".a.yaml.tmp"));
        assert!(!is_resource_name("a.yaml~"));
        assert!(!is_resource_name("README"));
    }

    #[test]
    fn a_symlink_to_dev_zero_is_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read_text(&link, 1 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::NotRegular {
                    kind: "a character device",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yaml");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let err = read_text(&fifo, 1 << 20).unwrap_err();
        assert!(
            matches!(err, ReadError::NotRegular { kind: "a FIFO", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; 2048]).unwrap();
        assert!(matches!(
            read_text(&big, 1024),
            Err(ReadError::TooLarge {
                size: 2048,
                cap: 1024,
                ..
            })
        ));
        assert_eq!(read_text(&big, 4096).unwrap().0.len(), 2048);
    }
}

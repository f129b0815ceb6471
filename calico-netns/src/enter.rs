//! Running a piece of work inside a network namespace.
//!
//! The work runs on a fresh, short-lived thread that enters the namespace with `setns(2)` and
//! ends right after: no other thread (in particular none of an async runtime) ever changes
//! namespace. What the work opens (sockets, `/proc/sys/net` files) stays in that namespace.
//!
//! ```no_run
//! use std::net::TcpListener;
//! let listener = calico_netns::enter_path("/var/run/netns/blue".as_ref(), || {
//!     TcpListener::bind("0.0.0.0:179")
//! })??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A network namespace could not be opened or entered.
#[derive(Debug, thiserror::Error)]
#[error("cannot enter network namespace {name}: {source}")]
pub struct EnterError {
    /// The namespace (its path, or its name for a fixture).
    pub name: String,
    /// The OS error.
    pub source: std::io::Error,
}

/// Runs `work` on a new thread inside the network namespace `netns` (an open
/// `/var/run/netns/<name>` or `/proc/<pid>/ns/net`), and returns its result. A panic in
/// `work` is resumed on the calling thread.
pub fn run_in<T: Send>(netns: &File, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns with a valid namespace fd only changes this thread's network
                // namespace; the thread ends when `work` returns.
                let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(work())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `work` on a new thread that has entered the network namespace at `path` (e.g.
/// `/var/run/netns/NAME` or `/proc/PID/ns/net`), and returns its result. Sockets `work`
/// opens belong to that namespace for their whole life.
pub fn enter_path<T: Send>(path: &Path, work: impl FnOnce() -> T + Send) -> Result<T, EnterError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| EnterError {
        name: name.clone(),
        source,
    })?;
    run_in(&file, work).map_err(|source| EnterError { name, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_an_error_naming_it() {
        let err = enter_path(Path::new("/nonexistent/netns/x"), || ()).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
        assert!(err.to_string().contains("/nonexistent/netns/x"), "{err}");
    }

    #[test]
    fn work_runs_in_our_own_namespace_when_entered_again() {
        let ours = Path::new("/proc/self/ns/net");
        // Entering needs CAP_SYS_ADMIN; without it the error is reported, not a panic.
        match enter_path(ours, || 42) {
            Ok(v) => assert_eq!(v, 42),
            Err(e) => assert_eq!(e.source.kind(), std::io::ErrorKind::PermissionDenied),
        }
    }
}

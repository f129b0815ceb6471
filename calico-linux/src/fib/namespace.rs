//! Running a piece of work inside the network namespace the FIB programs.
//!
//! Netlink sockets and `/proc/sys/net` files belong to the namespace of the thread that
//! opens them. The work runs on a fresh, short-lived thread that enters the namespace with
//! `setns(2)` and ends right after, so no thread of the async runtime ever changes namespace.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Runs `work` on a new thread inside the network namespace `netns` (an open
/// `/var/run/netns/<name>` or `/proc/<pid>/ns/net`), and returns its result.
pub(crate) fn run_in<T: Send>(netns: &File, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
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

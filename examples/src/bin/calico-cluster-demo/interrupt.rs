//! Ctrl-C and SIGTERM: the demo stops at its next step and removes what it made.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT/SIGTERM: the demo stops at the next step and removes what it made.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C (or SIGTERM) ends the demo through its normal clean-up: agents stopped,
/// namespaces (and BIRD in them) and files removed.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

pub fn interrupted() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted: cleaning up".into())
    } else {
        Ok(())
    }
}

//! Kernel event subscriptions that tell a backend someone else changed what it owns.
//!
//! A [`DriftListener`] holds a netlink socket opened when the backend is created (so it is
//! bound to the backend's network namespace) and, on the first [`DriftListener::drift`]
//! call, joins the multicast groups and starts a tokio task reading it. Every datagram goes
//! through a filter (the backend's: "is this about my state, and not my own doing?"); a
//! yes bumps the counter of a `watch` channel, the drift signal of the dataplane contract.
//! Lost events (the socket's receive buffer overran, `ENOBUFS`) count as drift too: what
//! was lost may have been about us. The task ends when the listener is dropped.

use std::sync::Mutex;

use rtnetlink::sys::Socket;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Decides whether one received datagram reports drift of the backend's state.
pub(crate) type Filter = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// Room for one datagram of notifications.
const DATAGRAM_BYTES: usize = 256 << 10;
/// Receive buffer asked for: room for the events of a burst of changes.
const RCVBUF_BYTES: usize = 4 << 20;

/// A lazily started subscription to kernel events (see the module docs).
pub(crate) struct DriftListener {
    /// What it listens to, for logs ("nf_tables", "rtnetlink").
    what: &'static str,
    state: Mutex<State>,
}

enum State {
    /// The socket is open; nothing read yet.
    Opened {
        socket: Socket,
        groups: &'static [u32],
        filter: Filter,
    },
    /// The socket could not be opened (the reason is logged on the first `drift` call).
    Unavailable(String),
    /// The reading task runs.
    Running {
        rx: watch::Receiver<u64>,
        task: JoinHandle<()>,
    },
    /// Starting failed (logged once): no drift signal.
    Failed,
}

impl std::fmt::Debug for DriftListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftListener")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl Drop for DriftListener {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let State::Running { task, .. } = state {
            task.abort();
        }
    }
}

impl DriftListener {
    /// Opens a netlink socket of `protocol` in the calling thread's network namespace, to
    /// join `groups` later. A failure is kept and reported by the first `drift` call.
    pub(crate) fn open(
        what: &'static str,
        protocol: isize,
        groups: &'static [u32],
        filter: Filter,
    ) -> DriftListener {
        let state = match open_socket(protocol) {
            Ok(socket) => State::Opened {
                socket,
                groups,
                filter,
            },
            Err(e) => State::Unavailable(format!("cannot open a netlink socket: {e}")),
        };
        DriftListener {
            what,
            state: Mutex::new(state),
        }
    }

    /// A listener that never reports (when the backend could not open one at all).
    pub(crate) fn unavailable(what: &'static str, reason: String) -> DriftListener {
        DriftListener {
            what,
            state: Mutex::new(State::Unavailable(reason)),
        }
    }

    /// The drift counter, starting the reading task on the first call. `None` (after one
    /// warning) if the subscription cannot be made: the periodic resync still repairs.
    pub(crate) fn drift(&self) -> Option<watch::Receiver<u64>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let State::Running { rx, .. } = &*state {
            return Some(rx.clone());
        }
        let next = match std::mem::replace(&mut *state, State::Failed) {
            State::Opened {
                socket,
                groups,
                filter,
            } => start(self.what, socket, groups, filter),
            State::Unavailable(reason) => Err(reason),
            running @ State::Running { .. } => Ok(running),
            State::Failed => return None,
        };
        match next {
            Ok(running) => {
                *state = running;
                match &*state {
                    State::Running { rx, .. } => Some(rx.clone()),
                    _ => None,
                }
            }
            Err(reason) => {
                tracing::warn!(
                    events = self.what,
                    %reason,
                    "cannot subscribe to kernel events: drift is repaired by the periodic \
                     resync only"
                );
                None
            }
        }
    }
}

fn open_socket(protocol: isize) -> std::io::Result<Socket> {
    let mut socket = Socket::new(protocol)?;
    socket.bind_auto()?;
    Ok(socket)
}

/// Joins the groups and spawns the reading task on the current tokio runtime.
fn start(
    what: &'static str,
    socket: Socket,
    groups: &'static [u32],
    filter: Filter,
) -> Result<State, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "not inside a tokio runtime".to_string())?;
    for group in groups {
        socket
            .add_membership(*group)
            .map_err(|e| format!("cannot join multicast group {group}: {e}"))?;
    }
    raise_receive_buffer(what, &socket);
    socket
        .set_non_blocking(true)
        .map_err(|e| format!("cannot make the socket non-blocking: {e}"))?;
    let _context = runtime.enter();
    // SAFETY: the `Socket` owns its descriptor, keeps it open until it is dropped (with the
    // `AsyncFd`, which owns it) and always returns that same descriptor.
    let fd = unsafe { AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) }
        .map_err(|e| format!("cannot register the socket: {e}"))?;
    let (tx, rx) = watch::channel(0);
    let task = runtime.spawn(listen(what, fd, filter, tx));
    tracing::debug!(events = what, "listening to kernel events for drift");
    Ok(State::Running { rx, task })
}

/// Asks for room for the events of a burst of changes (the agent's own bulk programming
/// sends thousands; an overrun costs one needless pass): `SO_RCVBUFFORCE` works for root
/// beyond `net.core.rmem_max`, otherwise `SO_RCVBUF` gets what the limit allows.
fn raise_receive_buffer(what: &str, socket: &Socket) {
    use std::os::fd::AsRawFd;
    let size = RCVBUF_BYTES as libc::c_int;
    // SAFETY: setsockopt on an open socket with a pointer to a live c_int of the given
    // length.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced && socket.set_rx_buf_sz(RCVBUF_BYTES).is_err() {
        tracing::debug!(
            events = what,
            "cannot raise the event socket's receive buffer"
        );
    }
}

/// Reads datagrams until the socket fails; bumps `tx` for each one the filter accepts.
async fn listen(
    what: &'static str,
    fd: AsyncFd<Socket>,
    mut filter: Filter,
    tx: watch::Sender<u64>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(DATAGRAM_BYTES);
    let bump = |why: &str| {
        tracing::debug!(events = what, why, "drift");
        tx.send_modify(|n| *n = n.wrapping_add(1));
    };
    loop {
        let mut guard = match fd.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!(events = what, error = %e, "event socket failed: drift is repaired by the periodic resync only");
                return;
            }
        };
        buf.clear();
        match guard.try_io(|fd| fd.get_ref().recv(&mut buf, 0)) {
            Err(_would_block) => continue,
            Ok(Ok(_)) => {
                if filter(&buf) {
                    bump("event");
                }
            }
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => bump("events lost"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => {
                tracing::warn!(events = what, error = %e, "event socket failed: drift is repaired by the periodic resync only");
                return;
            }
        }
    }
}

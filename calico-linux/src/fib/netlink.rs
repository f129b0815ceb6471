//! One rtnetlink socket, opened in the namespace the FIB programs, and the three ways the FIB
//! talks over it: batches of acknowledged changes, dumps, and single requests.
//!
//! Batches are what makes programming fast: many route messages go out in one datagram (one
//! `sendmsg`), the kernel handles them in order and acknowledges each one. Every message asks
//! for an ACK, so each gets its own outcome; the acknowledgements of a batch come back in
//! sequence-number order. The number of acknowledgements outstanding is bounded by the
//! socket's receive buffer: the kernel drops an ACK that does not fit (ENOBUFS), and a lost
//! ACK would leave its request waiting for ever, so every wait also has a time limit.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;

use futures::StreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use rtnetlink::proto::ConnectionHandle;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, SocketAddr};

use calico_core::dataplane::BackendError;

/// Receive buffer asked for (as root, `SO_RCVBUFFORCE`): room for a few thousand ACKs.
const RCVBUF_BYTES: i32 = 8 << 20;
/// What one queued ACK costs in the receive buffer (skb overhead included), with margin.
const ACK_TRUESIZE: usize = 2048;
/// Messages per datagram.
const MAX_BATCH: usize = 256;

/// Why one message of a batch did not take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The kernel refused it with this errno.
    Errno(i32),
    /// No answer came in time (or the ACK was lost): the outcome is unknown.
    NoAnswer,
    /// The connection's task ended.
    Closed,
    /// The table changed while it was being dumped (`NLM_F_DUMP_INTR`): the answer may be
    /// inconsistent, ask again.
    Interrupted,
}

impl Failure {
    /// Text for an operator.
    pub(crate) fn describe(self) -> String {
        match self {
            Failure::Errno(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
            Failure::NoAnswer => "no acknowledgement from the kernel in time".to_string(),
            Failure::Closed => "the rtnetlink connection is closed".to_string(),
            Failure::Interrupted => "the table kept changing while it was read".to_string(),
        }
    }

    /// The error for a failed operation `op` as a whole: a dead connection makes the backend
    /// unavailable (the next call opens a new one); the rest is the dataplane's answer.
    pub(crate) fn into_error(self, op: String) -> BackendError {
        match self {
            Failure::Closed => BackendError::Unavailable(format!("{op}: {}", self.describe())),
            _ => BackendError::Dataplane {
                op,
                reason: self.describe(),
            },
        }
    }
}

/// A connection to the kernel's routing netlink in one network namespace.
#[derive(Debug)]
pub(crate) struct Netlink {
    handle: ConnectionHandle<RouteNetlinkMessage>,
    timeout: Duration,
    batch: usize,
    in_flight: usize,
    /// The socket's netlink port id: the `nlmsg_pid` of notifications about its own changes.
    portid: u32,
    /// The connection's task: it ends when the socket fails.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        // The task would otherwise keep the socket open until the next message arrives.
        self.task.abort();
    }
}

impl Netlink {
    /// Opens a socket in the current namespace, or in `netns` (the socket is created on a
    /// short-lived thread that entered it, and stays bound to it). The connection's task is
    /// spawned on the current tokio runtime.
    pub(crate) fn open(netns: Option<&File>, timeout: Duration) -> Result<Netlink, BackendError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            BackendError::Unavailable("LinuxFib must be created inside a tokio runtime".into())
        })?;
        let open = || {
            let _context = runtime.enter();
            rtnetlink::proto::new_connection::<RouteNetlinkMessage>(NETLINK_ROUTE)
        };
        let opened = match netns {
            None => open(),
            Some(ns) => calico_netns::run_in(ns, open)
                .map_err(|e| BackendError::Unavailable(format!("cannot enter namespace: {e}")))?,
        };
        let (mut connection, handle, _unsolicited) = opened.map_err(|e| {
            BackendError::Unavailable(format!("cannot open an rtnetlink socket: {e}"))
        })?;
        // Batches count ACKs to match outcomes to messages; a dump is complete only with its
        // DONE (a stream that just ends means the connection died mid-way).
        connection.set_forward_ack(true);
        connection.set_forward_done(true);
        let socket = connection.socket_mut().socket_mut();
        let unavailable =
            |what: &str, e: std::io::Error| BackendError::Unavailable(format!("{what}: {e}"));
        // Bound now (rather than on the first send) so that its port id is known.
        let portid = socket
            .bind_auto()
            .map_err(|e| unavailable("cannot bind the rtnetlink socket", e))?
            .port_number();
        // Without strict checking the kernel ignores the table and protocol filters of dumps.
        socket
            .set_netlink_get_strict_chk(true)
            .map_err(|e| unavailable("cannot enable NETLINK_GET_STRICT_CHK", e))?;
        // Error ACKs carry only the header of the refused message, not all of it.
        socket
            .set_cap_ack(true)
            .map_err(|e| unavailable("cannot enable NETLINK_CAP_ACK", e))?;
        raise_receive_buffer(socket.as_raw_fd());
        let rcvbuf = socket
            .get_rx_buf_sz()
            .map_err(|e| unavailable("cannot read SO_RCVBUF", e))?;
        let outstanding = (rcvbuf / ACK_TRUESIZE).max(1);
        let batch = outstanding.clamp(1, MAX_BATCH);
        let in_flight = (outstanding / batch).max(1);
        tracing::debug!(rcvbuf, batch, in_flight, "rtnetlink connection open");
        let task = runtime.spawn(connection);
        Ok(Netlink {
            handle,
            timeout,
            batch,
            in_flight,
            portid,
            task,
        })
    }

    /// The socket's netlink port id.
    pub(crate) fn portid(&self) -> u32 {
        self.portid
    }

    /// Whether the connection's task has ended (its socket failed): a new one is needed.
    pub(crate) fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Sends change messages (each gets `NLM_F_REQUEST | NLM_F_ACK` added to `flags`) in
    /// batches, and returns one outcome per message, in order.
    pub(crate) async fn execute_all(
        &self,
        messages: Vec<(RouteNetlinkMessage, u16)>,
    ) -> Vec<Result<(), Failure>> {
        let mut chunks = Vec::with_capacity(messages.len().div_ceil(self.batch));
        let mut messages = messages.into_iter().peekable();
        while messages.peek().is_some() {
            let chunk: Vec<NetlinkMessage<RouteNetlinkMessage>> = messages
                .by_ref()
                .take(self.batch)
                .map(|(payload, flags)| {
                    let mut message = NetlinkMessage::from(payload);
                    message.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
                    message
                })
                .collect();
            chunks.push(chunk);
        }
        futures::stream::iter(chunks)
            .map(|chunk| self.execute_batch(chunk))
            .buffered(self.in_flight)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    async fn execute_batch(
        &self,
        chunk: Vec<NetlinkMessage<RouteNetlinkMessage>>,
    ) -> Vec<Result<(), Failure>> {
        let n = chunk.len();
        let responses = match self.handle.request_batch(chunk, SocketAddr::new(0, 0)) {
            Ok(responses) => responses,
            Err(_) => return vec![Err(Failure::Closed); n],
        };
        let Ok(responses) = tokio::time::timeout(self.timeout, responses.collect::<Vec<_>>()).await
        else {
            tracing::warn!(messages = n, "rtnetlink batch not acknowledged in time");
            return vec![Err(Failure::NoAnswer); n];
        };
        let mut acks: Vec<(u32, i32)> = responses
            .into_iter()
            .filter_map(|m| match m.payload {
                NetlinkPayload::Error(e) => Some((m.header.sequence_number, e.raw_code())),
                _ => None,
            })
            .collect();
        if acks.len() != n {
            tracing::warn!(
                expected = n,
                received = acks.len(),
                "rtnetlink acknowledgements lost (receive buffer overrun?)"
            );
            return vec![Err(Failure::NoAnswer); n];
        }
        // Sequence numbers of one batch are consecutive, in the order of the messages.
        acks.sort_unstable_by_key(|(seq, _)| *seq);
        acks.into_iter()
            .map(|(_, code)| match code {
                0 => Ok(()),
                code => Err(Failure::Errno(code.abs())),
            })
            .collect()
    }

    /// Sends a dump request and returns every message of the answer. A dump the kernel marks
    /// interrupted (the table changed meanwhile) is asked again, a few times.
    pub(crate) async fn dump(
        &self,
        request: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut attempts = 0;
        loop {
            match self.request(request.clone(), NLM_F_DUMP).await {
                Err(Failure::Interrupted) if attempts < 4 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Sends one request (`NLM_F_REQUEST` plus `flags`) and returns the messages of the
    /// answer, or the kernel's refusal. An answer that is cut short is an error, never a
    /// shorter answer.
    pub(crate) async fn request(
        &self,
        request: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut message = NetlinkMessage::from(request);
        message.header.flags = NLM_F_REQUEST | flags;
        let responses = self
            .handle
            .request(message, SocketAddr::new(0, 0))
            .map_err(|_| Failure::Closed)?;
        let responses = tokio::time::timeout(self.timeout, responses.collect::<Vec<_>>())
            .await
            .map_err(|_| Failure::NoAnswer)?;
        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut complete = false;
        let mut interrupted = false;
        let mut out = Vec::with_capacity(responses.len());
        for response in responses {
            interrupted |= response.header.flags & NLM_F_DUMP_INTR != 0;
            match response.payload {
                NetlinkPayload::InnerMessage(inner) => {
                    out.push(inner);
                    complete |= !is_dump && flags & NLM_F_ACK == 0;
                }
                NetlinkPayload::Error(e) if e.raw_code() != 0 => {
                    return Err(Failure::Errno(e.raw_code().abs()))
                }
                NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => complete = true,
                NetlinkPayload::Overrun(_) => return Err(Failure::NoAnswer),
                _ => {}
            }
        }
        if interrupted {
            return Err(Failure::Interrupted);
        }
        if !complete {
            return Err(Failure::Closed);
        }
        Ok(out)
    }
}

/// Asks for a receive buffer big enough for many outstanding ACKs: `SO_RCVBUFFORCE` works for
/// root (CAP_NET_ADMIN) beyond `net.core.rmem_max`; otherwise `SO_RCVBUF` gets what the limit
/// allows. The batch size follows from what was granted.
fn raise_receive_buffer(fd: i32) {
    let size = RCVBUF_BYTES;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on an open socket with a pointer to a live c_int of the given
        // length.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&size as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
    tracing::debug!("cannot raise the rtnetlink receive buffer; using smaller batches");
}

//! The tokio task that runs one peering's [`Fsm`] over TCP: it connects (with the FSM's
//! back-off), takes connections the shared listener accepted, reads and decodes messages,
//! writes what the FSM and the RIB want sent, and keeps the timers.
//!
//! Each connection has a reader task (decoding frames) and a writer task (draining a
//! queue; both in `io/conn.rs`), so the peering task itself never blocks on a socket: two speakers sending full
//! tables to each other cannot deadlock. The queue takes every message, but when the bytes
//! waiting in it pass the peering's limit it reports [`PeerEvent::Stalled`], and
//! [`PeerEvent::Drained`] once they are written (see `queue.rs`): the owner is to stop
//! sending UPDATEs meanwhile, so that a peer reading slowly neither holds the others back
//! nor makes the queue grow without bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use calico_core::dataplane::PeerState;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use super::fsm::{Action, Direction, Event, Fsm, Negotiated, SessionConfig, SessionDown, Timer};
use super::inbound::{InboundWindow, ReadCredit, INBOUND_WINDOW};
use super::queue::SendQueue;
use crate::packet::notification::CeaseSubcode;
use crate::packet::{AfiSafi, Context, DecodeError, Message};
use crate::rib::{Importer, InboundBatch};
use crate::speaker::socket::SocketFactory;
use conn::{read_loop, write_loop};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Encoded messages, shared: the same UPDATE bytes go to every peer of an update group.
pub type SharedBytes = Arc<[u8]>;

/// What the owner of a peering tells it.
#[derive(Debug)]
#[non_exhaustive]
pub enum PeerCommand {
    /// The listener accepted a connection from this peer.
    Accepted(TcpStream),
    /// Encoded messages to send on the established connection.
    Send(SharedBytes),
    /// Stop the peering (with a Cease of this subcode) and end the task.
    Stop(CeaseSubcode),
    /// End the current session with a Cease of this subcode, for this reason (an
    /// operator's error text), and connect again as after any failure.
    Reset(CeaseSubcode, String),
    /// Close the connections without a NOTIFICATION (we restart gracefully: the peer is to
    /// keep our routes) and end the task.
    StopForRestart,
}

/// What a peering reports to its owner.
// UPDATEs dominate; boxing them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The FSM state or last error changed.
    State {
        /// New state.
        state: PeerState,
        /// Last error.
        last_error: Option<String>,
    },
    /// The session is established.
    Up {
        /// What was negotiated.
        negotiated: Negotiated,
        /// Our end of the connection.
        local: SocketAddr,
        /// The interface holding our end (see [`crate::speaker::interface`]).
        interface: Option<String>,
    },
    /// The established session went down.
    Down(SessionDown),
    /// UPDATEs arrived (as many as were read at once, in order), prepared for the RIB
    /// ([`Importer::prepare_into`]).
    Updates(InboundBatch),
    /// The peer asked for a family again.
    Refresh(AfiSafi),
    /// The established connection's send queue passed its limit: the peer reads slower
    /// than it is sent to.
    Stalled,
    /// The send queue that [`PeerEvent::Stalled`] reported has drained.
    Drained,
    /// Follows the UPDATEs of the messages the connection's reader passed on with it: drop
    /// it once they are handled, and the reader may read that many bytes more
    /// ([`super::inbound`]).
    Credit(ReadCredit),
}

/// A running peering.
#[derive(Debug)]
pub struct PeerHandle {
    commands: mpsc::UnboundedSender<PeerCommand>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// Starts a peering task for the peer at `remote`. Events go to `events` tagged with
    /// `tag`. A connection whose send queue holds more than `queue_limit` bytes not yet
    /// written reports [`PeerEvent::Stalled`]. Received UPDATEs are prepared with
    /// `importer` (the RIB's) as they are decoded, so that their attributes are interned
    /// here rather than on the RIB's thread.
    pub fn spawn<T: Copy + Send + 'static>(
        tag: T,
        (config, importer): (SessionConfig, Importer),
        remote: SocketAddr,
        sockets: SocketFactory,
        (events, queue_limit): (mpsc::UnboundedSender<(T, PeerEvent)>, usize),
    ) -> PeerHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = PeerTask {
            fsm: Fsm::new(config),
            remote,
            sockets,
            events: Box::new(move |e| events.send((tag, e)).is_ok()),
            connections: [None, None],
            generation: 0,
            connect: None,
            timers: HashMap::new(),
            reported: (PeerState::Idle, None),
            closing: Vec::new(),
            queue_limit,
            credits: Vec::new(),
            importer,
            received: InboundBatch::default(),
        };
        let task = tokio::spawn(task.run(rx));
        PeerHandle { commands: tx, task }
    }

    /// Sends a command (ignored when the task has ended).
    pub fn send(&self, command: PeerCommand) {
        let _ = self.commands.send(command);
    }

    /// Waits until the task has ended (after [`PeerCommand::Stop`] or
    /// [`PeerCommand::StopForRestart`]); by then what it had to send is written and its
    /// connections are closed, or [`CLOSE_TIMEOUT`] has passed.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// How long a stopping peering waits for its last messages to be written.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

struct Connection {
    generation: u64,
    writer: mpsc::UnboundedSender<Option<SharedBytes>>,
    queue: Arc<SendQueue>,
    writer_task: JoinHandle<()>,
    reader: AbortHandle,
    local: SocketAddr,
}

#[allow(clippy::large_enum_variant)]
enum ConnEvent {
    Connected(TcpStream),
    ConnectFailed(String),
    Messages(Received, ReadCredit),
    Malformed(DecodeError),
    Closed(String),
    /// The writer emptied a stalled send queue.
    Drained,
}

/// The messages a connection's reader passes on from one read, in order: the UPDATEs
/// prepared for the RIB where they were decoded, the others as they are.
#[derive(Debug, Default)]
struct Received {
    /// The UPDATEs, prepared ([`Importer::prepare_into`]).
    updates: InboundBatch,
    /// The other messages, each with how many of the UPDATEs came before it.
    others: Vec<(usize, Message)>,
}

impl Received {
    /// How many messages it holds.
    fn len(&self) -> usize {
        self.updates.len() + self.others.len()
    }

    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type EventSink = Box<dyn Fn(PeerEvent) -> bool + Send>;

struct PeerTask {
    fsm: Fsm,
    remote: SocketAddr,
    sockets: SocketFactory,
    events: EventSink,
    connections: [Option<Connection>; 2],
    generation: u64,
    connect: Option<(u64, AbortHandle)>,
    timers: HashMap<Timer, Instant>,
    reported: (PeerState, Option<String>),
    /// Writers of closed connections still sending their last bytes.
    closing: Vec<JoinHandle<()>>,
    /// Bytes a connection's send queue may hold before it reports a stall.
    queue_limit: usize,
    /// Credits of the messages handled since the last [`PeerTask::perform`], passed on
    /// behind what they produced.
    credits: Vec<ReadCredit>,
    /// Prepares received UPDATEs for the RIB (in the connections' readers).
    importer: Importer,
    /// The UPDATEs of the messages handled since the last [`PeerTask::perform`], each
    /// delivered there in turn on [`Action::DeliverReceived`].
    received: InboundBatch,
}

fn index(dir: Direction) -> usize {
    match dir {
        Direction::Outbound => 0,
        Direction::Inbound => 1,
    }
}

impl PeerTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PeerCommand>) {
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<(Direction, u64, ConnEvent)>();
        let mut actions = Vec::new();
        self.fsm.handle(Event::Start, &mut actions);
        self.perform(&mut actions, &conn_tx);
        loop {
            let next = self.timers.values().min().copied();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(PeerCommand::Accepted(stream)) => {
                        if let Err(e) = self.sockets.secure_accepted(&stream) {
                            tracing::warn!(peer = %self.remote, error = %e, "cannot apply TTL security to an incoming connection; closing it");
                            continue;
                        }
                        if self.connections[index(Direction::Inbound)].is_some() {
                            self.fsm.handle(Event::Closed(Direction::Inbound, "replaced by a new connection".into()), &mut actions);
                            self.perform(&mut actions, &conn_tx);
                        }
                        self.attach(Direction::Inbound, stream, &conn_tx);
                        self.fsm.handle(Event::Connected(Direction::Inbound), &mut actions);
                    }
                    Some(PeerCommand::Send(bytes)) => {
                        if let Some(n) = self.fsm.established() {
                            if let Some(c) = &self.connections[index(n.direction)] {
                                if c.queue.pushed(bytes.len()) {
                                    tracing::debug!(peer = %self.remote, "send queue full: UPDATEs held back until it drains");
                                    (self.events)(PeerEvent::Stalled);
                                }
                                let _ = c.writer.send(Some(bytes));
                            }
                        }
                    }
                    Some(PeerCommand::Stop(subcode)) => {
                        self.fsm.handle(Event::Stop(subcode), &mut actions);
                        self.perform(&mut actions, &conn_tx);
                        break;
                    }
                    Some(PeerCommand::Reset(subcode, reason)) => {
                        self.fsm.handle(Event::Reset(subcode, reason), &mut actions);
                    }
                    Some(PeerCommand::StopForRestart) => {
                        self.fsm.handle(Event::StopForRestart, &mut actions);
                        self.perform(&mut actions, &conn_tx);
                        break;
                    }
                    None => {
                        self.fsm.handle(Event::Stop(CeaseSubcode::AdministrativeShutdown), &mut actions);
                        self.perform(&mut actions, &conn_tx);
                        break;
                    }
                },
                Some((dir, generation, event)) = conn_rx.recv() => {
                    self.connection_event(dir, generation, event, &conn_tx, &mut actions);
                }
                _ = sleep_until(next), if next.is_some() => {
                    let now = Instant::now();
                    let due: Vec<Timer> = self.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
                    for timer in due {
                        self.timers.remove(&timer);
                        self.fsm.handle(Event::TimerExpired(timer), &mut actions);
                    }
                }
            }
            self.perform(&mut actions, &conn_tx);
        }
        if let Some((_, abort)) = self.connect.take() {
            abort.abort();
        }
        let writers = std::mem::take(&mut self.closing);
        let flushed = async {
            for w in writers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, flushed).await.is_err() {
            tracing::debug!(peer = %self.remote, "connection not closed within {CLOSE_TIMEOUT:?}");
        }
    }

    fn connection_event(
        &mut self,
        dir: Direction,
        generation: u64,
        event: ConnEvent,
        conn_tx: &mpsc::UnboundedSender<(Direction, u64, ConnEvent)>,
        actions: &mut Vec<Action>,
    ) {
        match event {
            ConnEvent::Connected(stream) => {
                if self.connect.as_ref().map(|c| c.0) != Some(generation) {
                    return;
                }
                self.connect = None;
                self.attach(Direction::Outbound, stream, conn_tx);
                self.fsm
                    .handle(Event::Connected(Direction::Outbound), actions);
            }
            ConnEvent::ConnectFailed(reason) => {
                if self.connect.as_ref().map(|c| c.0) != Some(generation) {
                    return;
                }
                self.connect = None;
                tracing::debug!(peer = %self.remote, %reason, "connect failed");
                self.fsm.handle(Event::ConnectFailed(reason), actions);
            }
            other => {
                let current = self.connections[index(dir)]
                    .as_ref()
                    .is_some_and(|c| c.generation == generation);
                if !current {
                    return;
                }
                let event = match other {
                    ConnEvent::Messages(received, credit) => {
                        self.received(dir, received, actions);
                        self.credits.push(credit);
                        return;
                    }
                    ConnEvent::Malformed(e) => {
                        tracing::warn!(peer = %self.remote, error = %e, "malformed message; closing the session");
                        Event::Malformed(dir, e)
                    }
                    ConnEvent::Closed(reason) => Event::Closed(dir, reason),
                    ConnEvent::Drained => {
                        // Only the established connection's queue is the owner's concern.
                        if self.fsm.established().is_some_and(|n| n.direction == dir) {
                            (self.events)(PeerEvent::Drained);
                        }
                        return;
                    }
                    ConnEvent::Connected(_) | ConnEvent::ConnectFailed(_) => return,
                };
                self.fsm.handle(event, actions);
            }
        }
    }

    /// Hands a reader's messages to the FSM in order (an UPDATE as
    /// [`Event::UpdateReceived`]) and keeps the UPDATEs for [`PeerTask::perform`].
    fn received(&mut self, dir: Direction, received: Received, actions: &mut Vec<Action>) {
        let Received { updates, others } = received;
        let mut handed = 0;
        let mut updates_until = |fsm: &mut Fsm, n: usize, actions: &mut Vec<Action>| {
            for _ in handed..n {
                fsm.handle(Event::UpdateReceived(dir), actions);
            }
            handed = handed.max(n);
        };
        for (before, message) in others {
            updates_until(&mut self.fsm, before, actions);
            self.fsm.handle(Event::Received(dir, message), actions);
        }
        updates_until(&mut self.fsm, updates.len(), actions);
        self.received.append(updates);
    }

    fn attach(
        &mut self,
        dir: Direction,
        stream: TcpStream,
        conn_tx: &mpsc::UnboundedSender<(Direction, u64, ConnEvent)>,
    ) {
        self.generation += 1;
        let generation = self.generation;
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (read, write) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        let remote = self.remote;
        let queue = Arc::new(SendQueue::new(self.queue_limit));
        let drained = {
            let tx = conn_tx.clone();
            move || {
                let _ = tx.send((dir, generation, ConnEvent::Drained));
            }
        };
        let writer_task = tokio::spawn(write_loop(
            write,
            wrx,
            queue.clone(),
            drained,
            move |reason| {
                // Not reported as the end of the connection: the peer may have sent a
                // NOTIFICATION just before closing, still unread, and it decides whether the
                // close is graceful (RFC 4724). The reader reaches it, then the end, and reports
                // both in order; the hold timer covers a connection that never ends.
                tracing::debug!(peer = %remote, direction = ?dir, %reason, "writing to the peer failed; the reader reports the connection's end");
            },
        ));
        let tx = conn_tx.clone();
        let config = self.fsm.config().clone();
        let window = InboundWindow::new(INBOUND_WINDOW);
        let importer = self.importer.clone();
        let reader = tokio::spawn(read_loop(read, (config, importer), window, move |e| {
            tx.send((dir, generation, e)).is_ok()
        }))
        .abort_handle();
        if let Some(old) = self.connections[index(dir)].replace(Connection {
            generation,
            writer: wtx,
            queue,
            writer_task,
            reader,
            local,
        }) {
            self.close(old);
        }
    }

    /// Stops reading a connection; its writer sends what is queued, then closes it.
    fn close(&mut self, c: Connection) {
        c.reader.abort();
        let _ = c.writer.send(None);
        self.closing.retain(|w| !w.is_finished());
        self.closing.push(c.writer_task);
    }

    fn perform(
        &mut self,
        actions: &mut Vec<Action>,
        conn_tx: &mpsc::UnboundedSender<(Direction, u64, ConnEvent)>,
    ) {
        let mut updates = InboundBatch::default();
        // The UPDATEs kept from the messages just handled, and how many of them are to be
        // delivered and not passed on yet. The FSM delivers a prefix of them: one it does
        // not deliver closes the connection, and the rest are ignored.
        let mut received = std::mem::take(&mut self.received);
        let mut accepted = 0;
        for action in actions.drain(..) {
            match action {
                Action::Connect => {
                    self.generation += 1;
                    let generation = self.generation;
                    let (remote, sockets, tx) =
                        (self.remote, self.sockets.clone(), conn_tx.clone());
                    let task = tokio::spawn(async move {
                        let event = match connect(&sockets, remote).await {
                            Ok(stream) => ConnEvent::Connected(stream),
                            Err(e) => ConnEvent::ConnectFailed(e.to_string()),
                        };
                        let _ = tx.send((Direction::Outbound, generation, event));
                    });
                    self.connect = Some((generation, task.abort_handle()));
                }
                Action::Send(dir, message) => {
                    let ctx = self
                        .fsm
                        .established()
                        .map_or_else(Context::default, Negotiated::send_context);
                    match message.encode(&ctx) {
                        Ok(bytes) => {
                            if let Some(c) = &self.connections[index(dir)] {
                                let established =
                                    self.fsm.established().is_some_and(|n| n.direction == dir);
                                if c.queue.pushed(bytes.len()) && established {
                                    (self.events)(PeerEvent::Stalled);
                                }
                                let _ = c.writer.send(Some(bytes.into()));
                            }
                        }
                        Err(e) => {
                            tracing::error!(peer = %self.remote, error = %e, "cannot encode message")
                        }
                    }
                }
                Action::Close(dir) => {
                    if let Some(c) = self.connections[index(dir)].take() {
                        self.close(c);
                    }
                }
                Action::StartTimer(timer, after) => {
                    self.timers.insert(timer, Instant::now() + after);
                }
                Action::StopTimer(timer) => {
                    self.timers.remove(&timer);
                }
                Action::Up(negotiated) => {
                    let local = self.connections[index(negotiated.direction)]
                        .as_ref()
                        .map(|c| c.local)
                        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                    tracing::info!(peer = %self.remote, hold = negotiated.hold_time, "session established");
                    let interface = self.sockets.interface_of(self.remote.ip(), local);
                    (self.events)(PeerEvent::Up {
                        negotiated,
                        local,
                        interface,
                    });
                }
                Action::Down(down) => {
                    updates.append(received.take_front(std::mem::take(&mut accepted)));
                    if !updates.is_empty() {
                        (self.events)(PeerEvent::Updates(std::mem::take(&mut updates)));
                    }
                    tracing::warn!(peer = %self.remote, reason = %down.reason, graceful = down.graceful, "session down");
                    (self.events)(PeerEvent::Down(down));
                }
                Action::Deliver(update) => {
                    updates.append(received.take_front(std::mem::take(&mut accepted)));
                    self.importer.prepare_into(update, &mut updates);
                }
                Action::DeliverReceived => accepted += 1,
                Action::Refresh(family) => {
                    (self.events)(PeerEvent::Refresh(family));
                }
            }
        }
        updates.append(received.take_front(accepted));
        if !updates.is_empty() {
            (self.events)(PeerEvent::Updates(updates));
        }
        for credit in self.credits.drain(..) {
            (self.events)(PeerEvent::Credit(credit));
        }
        let now = (self.fsm.state(), self.fsm.last_error().map(str::to_string));
        if now != self.reported {
            self.reported = now.clone();
            (self.events)(PeerEvent::State {
                state: now.0,
                last_error: now.1,
            });
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn connect(sockets: &SocketFactory, remote: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = sockets.connecting_socket(&remote)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(remote)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

mod conn;
#[cfg(test)]
mod tests;

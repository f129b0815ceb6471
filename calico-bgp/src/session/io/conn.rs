//! A connection's two tasks: the writer draining the peering's send queue into the socket,
//! and the reader decoding what arrives into batches for the peering task.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::{ConnEvent, Received, SharedBytes};
use crate::packet::{self, Context, Message, HEADER_LEN};
use crate::rib::{Importer, InboundBatch};
use crate::session::fsm::SessionConfig;
use crate::session::inbound::InboundWindow;
use crate::session::negotiation::receive_context;
use crate::session::queue::SendQueue;

/// Writes what is queued, in order; calls `drained` when a stalled `accounting` has
/// drained.
pub(super) async fn write_loop(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Option<SharedBytes>>,
    accounting: Arc<SendQueue>,
    drained: impl Fn(),
    closed: impl FnOnce(String),
) {
    while let Some(item) = queue.recv().await {
        let Some(bytes) = item else {
            let _ = write.shutdown().await;
            return;
        };
        if let Err(e) = write.write_all(&bytes).await {
            closed(format!("write failed: {e}"));
            return;
        }
        if accounting.written(bytes.len()) {
            drained();
        }
    }
}

/// Reads frames; decodes each with the encoding negotiated in the peer's OPEN and our
/// `config` (4-byte AS numbers when the peer offered them: we always do; path identifiers
/// on the families where we offered to receive them and the peer to send), and prepares
/// each UPDATE for the RIB with `importer` as it is decoded (one task and no copy of the
/// message between decoding and preparing). Every message complete in one read is passed
/// on in one batch (a full table is hundreds of thousands of small messages), with a
/// credit of `window` for its bytes: the reader waits for room in the window before
/// passing a batch on and reading more ([`super::inbound`]).
pub(super) async fn read_loop(
    mut read: OwnedReadHalf,
    (config, importer): (SessionConfig, Importer),
    window: InboundWindow,
    emit: impl Fn(ConnEvent) -> bool,
) {
    let mut ctx = Context::plain(false);
    let mut buf: Vec<u8> = Vec::with_capacity(128 * 1024);
    // UPDATEs and prefixes in the last batch: room for as many in the next one, rather
    // than growing lists of thousands by doubling, copying them each time.
    let mut last_batch = (0, 0);
    loop {
        let mut batch = Received {
            updates: InboundBatch::with_capacity(last_batch.0, last_batch.1),
            others: Vec::new(),
        };
        let mut start = 0;
        let mut failure = None;
        // A batch is at most the window's size (or one message, should a message be bigger),
        // so that what is passed on and not yet handled never exceeds the window.
        let mut full = false;
        while let Some(header) = buf
            .get(start..start + HEADER_LEN)
            .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
        {
            let len = match packet::header_length(header) {
                Ok(len) => len,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if start > 0 && start + len > window.size() {
                full = true;
                break;
            }
            let Some(body) = buf.get(start + HEADER_LEN..start + len) else {
                break;
            };
            match packet::decode_body(header[18], body, &ctx) {
                Ok(Message::Update(update)) => importer.prepare_into(update, &mut batch.updates),
                Ok(message) => {
                    if let Message::Open(open) = &message {
                        ctx = receive_context(&config, open);
                    }
                    batch.others.push((batch.updates.len(), message));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            start += len;
        }
        last_batch = (batch.updates.len(), batch.updates.prepared_prefixes());
        if !batch.is_empty() {
            let credit = window.take(start).await;
            if !emit(ConnEvent::Messages(batch, credit)) {
                return;
            }
            // Let the peering task pass the batch on now: tokio runs the task the reader
            // woke (on this worker, and no other worker may take it) only once the reader
            // gives the worker up, and with data waiting the reader decoded on until its
            // window was full. The RIB then got the batches in bursts, decoding and
            // applying taking turns rather than overlapping (a full table took a quarter
            // longer).
            tokio::task::yield_now().await;
        }
        if let Some(e) = failure {
            emit(ConnEvent::Malformed(e));
            return;
        }
        buf.drain(..start);
        if full {
            // More complete messages may be waiting in the buffer: no read before them.
            continue;
        }
        if buf.capacity() - buf.len() < packet::MAX_LEN {
            buf.reserve(64 * 1024);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => {
                emit(ConnEvent::Closed("closed by peer".into()));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                emit(ConnEvent::Closed(format!("read failed: {e}")));
                return;
            }
        }
    }
}

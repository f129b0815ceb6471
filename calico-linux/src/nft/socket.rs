//! A `NETLINK_NETFILTER` socket: one call sends a whole nf_tables transaction as a single
//! datagram (so the kernel applies all of it or none of it) or runs a dump.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::netlink::{EncodeError, Msg, MsgWriter, Msgs, WireError};
use super::proto::*;

/// Why a transaction or a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum NlError {
    /// The socket failed.
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused message `seq` of a transaction (or a request).
    #[error("kernel refused message {seq}: {}{}", io::Error::from_raw_os_error(*errno), ext_ack.as_ref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Refused {
        /// Sequence number of the refused message.
        seq: u32,
        /// The positive errno.
        errno: i32,
        /// The kernel's extended-ACK message, if it gave one.
        ext_ack: Option<String>,
    },
    /// The kernel's reply did not parse.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The request could not be encoded (nothing was sent).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The ruleset changed while it was being dumped; try again.
    #[error("dump interrupted by a concurrent change")]
    Interrupted,
}

const NLM_F_DUMP_INTR: u16 = 0x10;
const RECV_BUF: usize = 1 << 20;

/// An nfnetlink socket bound to the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct NfSocket {
    fd: OwnedFd,
    seq: u32,
    sndbuf: usize,
    buf: Vec<u8>,
}

impl NfSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<NfSocket, NlError> {
        // SAFETY: plain socket(2); the fd is owned from here on.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sock = NfSocket {
            fd,
            seq: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(1),
            sndbuf: 0,
            buf: vec![0; RECV_BUF],
        };
        sock.bind()?;
        // Errors answer with the header only, plus the kernel's text explaining them.
        sock.setsockopt(libc::SOL_NETLINK, NETLINK_CAP_ACK, 1)?;
        sock.setsockopt(libc::SOL_NETLINK, NETLINK_EXT_ACK, 1)?;
        // Dumps of big rulesets arrive faster than they are read: keep room for them.
        if sock
            .setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20)
            .is_err()
        {
            sock.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, 8 << 20)?;
        }
        Ok(sock)
    }

    /// Binds the socket to a port id the kernel picks (what it would do on the first send),
    /// so that [`NfSocket::portid`] is known from the start.
    fn bind(&self) -> Result<(), io::Error> {
        // SAFETY: an all-zero sockaddr_nl is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is valid for the duration of the call and its size is passed.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The socket's netlink port id: the `nlmsg_pid` of the notifications the kernel sends
    /// about this socket's own transactions.
    pub fn portid(&self) -> Result<u32, io::Error> {
        // SAFETY: an all-zero sockaddr_nl is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: addr and len are valid for the duration of the call; len holds addr's size.
        let rc = unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_nl).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(addr.nl_pid)
    }

    fn setsockopt(&self, level: i32, name: i32, value: i32) -> Result<(), io::Error> {
        // SAFETY: value outlives the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// A writer for a transaction: starts with the batch-begin message. Add messages, then
    /// pass it to [`NfSocket::commit`].
    pub fn transaction(&mut self) -> MsgWriter {
        let mut w = MsgWriter::new(self.seq);
        w.begin(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES);
        w.end();
        w
    }

    /// Sends the transaction in one datagram and waits for the kernel's verdict on it. On
    /// error the kernel has applied nothing of it. A transaction with no message besides the
    /// batch markers is not sent.
    pub fn commit(&mut self, mut w: MsgWriter) -> Result<(), NlError> {
        if w.count() <= 1 {
            return Ok(());
        }
        // Ask for an ACK on the last message only: errors come for any failing message
        // anyway, and thousands of ACKs would overflow the receive buffer.
        w.add_flags_to_last(NLM_F_ACK);
        let last = w.next_seq().wrapping_sub(1);
        let first = self.seq;
        w.begin(NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES);
        w.end();
        self.seq = w.next_seq();
        self.send(w.finish()?)?;
        // Errors come for any failing message; the ACK of the last one ends the answer.
        self.answers(first, last, |msg| msg.seq == last)
    }

    /// A writer for standalone requests (not a transaction): add messages that ask for an
    /// ACK (`NLM_F_ACK`), then pass it to [`NfSocket::requests`].
    pub fn request_writer(&self) -> MsgWriter {
        MsgWriter::new(self.seq)
    }

    /// Sends standalone requests written by a [`NfSocket::request_writer`], each asking
    /// for an ACK, in one datagram, and waits for every answer. The kernel handles each
    /// on its own (what one changed stays when a later one fails); the first refusal is
    /// returned.
    pub fn requests(&mut self, w: MsgWriter) -> Result<(), NlError> {
        let (first, count) = (self.seq, w.count() as u32);
        if count == 0 {
            return Ok(());
        }
        self.seq = w.next_seq();
        self.send(w.finish()?)?;
        let mut answered = 0u32;
        self.answers(first, first.wrapping_add(count - 1), |_| {
            answered += 1;
            answered == count
        })
    }

    /// Reads the kernel's answers (`NLMSG_ERROR`: an ACK or a refusal) to the messages
    /// numbered `first..=last`, until `enough` says so of one; the first refusal is
    /// returned. Anything else is left over from an earlier exchange and skipped.
    fn answers(
        &mut self,
        first: u32,
        last: u32,
        mut enough: impl FnMut(&Msg) -> bool,
    ) -> Result<(), NlError> {
        let mut first_error = None;
        self.receive(|msg| {
            let ours = msg.seq.wrapping_sub(first) <= last.wrapping_sub(first);
            if msg.ty != NLMSG_ERROR || !ours {
                return Ok(false);
            }
            let (code, ext_ack) = msg.error()?;
            if code != 0 && first_error.is_none() {
                first_error = Some(NlError::Refused {
                    seq: msg.seq,
                    errno: -code,
                    ext_ack,
                });
            }
            Ok(enough(msg))
        })?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs a dump request (`NFT_MSG_GET*` with `NLM_F_DUMP`) whose attributes `attrs`
    /// writes, calling `each` for every message of the answer.
    pub fn dump(
        &mut self,
        msg: u16,
        attrs: impl FnOnce(&mut MsgWriter),
        mut each: impl FnMut(&Msg) -> Result<(), NlError>,
    ) -> Result<(), NlError> {
        let mut w = MsgWriter::new(self.seq);
        let seq = w.begin_nft(msg, NLM_F_DUMP);
        attrs(&mut w);
        w.end();
        self.seq = w.next_seq();
        self.send(w.finish()?)?;
        let mut interrupted = false;
        let mut failure = None;
        self.receive(|m| {
            if m.seq != seq {
                return Ok(false);
            }
            if m.flags & NLM_F_DUMP_INTR != 0 {
                interrupted = true;
            }
            match m.ty {
                NLMSG_DONE => Ok(true),
                NLMSG_ERROR => {
                    let (code, ext_ack) = m.error()?;
                    if code != 0 {
                        failure = Some(NlError::Refused {
                            seq,
                            errno: -code,
                            ext_ack,
                        });
                    }
                    Ok(true)
                }
                _ => {
                    if failure.is_none() {
                        if let Err(e) = each(m) {
                            failure = Some(e);
                        }
                    }
                    Ok(false)
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if interrupted {
            return Err(NlError::Interrupted);
        }
        Ok(())
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), NlError> {
        let need = bytes.len() + 4096;
        if need > self.sndbuf {
            let size = need.next_power_of_two().min(i32::MAX as usize) as i32;
            if self
                .setsockopt(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, size)
                .is_err()
            {
                self.setsockopt(libc::SOL_SOCKET, libc::SO_SNDBUF, size)?;
            }
            self.sndbuf = need.next_power_of_two();
        }
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        loop {
            // SAFETY: bytes and addr are valid for the duration of the call.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    0,
                    (&addr as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
    }

    /// Reads datagrams, calling `each` per message until it returns `true`.
    fn receive(
        &mut self,
        mut each: impl FnMut(&Msg) -> Result<bool, NlError>,
    ) -> Result<(), NlError> {
        loop {
            // SAFETY: the buffer is valid for its whole length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            let buf = std::mem::take(&mut self.buf);
            let datagram = usize::try_from(n).ok().and_then(|n| buf.get(..n));
            let Some(datagram) = datagram else {
                self.buf = buf;
                return Err(WireError("netlink datagram larger than the receive buffer").into());
            };
            let mut done = false;
            let mut result = Ok(());
            for m in Msgs::new(datagram) {
                match m.map_err(NlError::from).and_then(|m| each(&m)) {
                    Ok(true) => {
                        done = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        result = Err(e);
                        done = true;
                        break;
                    }
                }
            }
            self.buf = buf;
            result?;
            if done {
                return Ok(());
            }
        }
    }
}

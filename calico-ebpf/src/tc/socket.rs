//! The `NETLINK_ROUTE` socket of [`super`]: requests sent, the kernel's answers read
//! and turned into values or typed errors.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::*;

/// A `NETLINK_ROUTE` socket, acting on the network namespace it was opened in.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

/// What a request's errors name.
pub(super) struct Ctx<'a> {
    op: &'static str,
    what: String,
    iface: &'a str,
    direction: Option<Direction>,
}

impl Ctx<'_> {
    pub(super) fn kernel(&self, errno: i32, extack: Option<String>) -> TcError {
        TcError::Kernel {
            op: self.op,
            what: self.what.clone(),
            iface: self.iface.to_string(),
            direction: self.direction,
            source: io::Error::from_raw_os_error(errno),
            extack,
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> TcError {
        TcError::Malformed {
            op: self.op,
            reason: reason.into(),
        }
    }
}

/// One of the kernel's answers to a request: a message, or an error message decoded
/// (errno, 0 for an acknowledgement, and the kernel's extended message).
enum Reply<'m, 'b> {
    Message(&'m Message<'b>),
    Error(i32, Option<String>),
}

pub(super) fn filter_ctx<'a>(op: &'static str, dev: Dev<'a>, direction: Direction) -> Ctx<'a> {
    Ctx {
        op,
        what: format!("the {direction} filter of {dev}"),
        iface: dev.name,
        direction: Some(direction),
    }
}

fn block_ctx(op: &'static str, block: u32) -> Ctx<'static> {
    Ctx {
        op,
        what: format!("the filter of shared tc block {block}"),
        iface: "",
        direction: None,
    }
}

fn clsact_ctx<'a>(op: &'static str, dev: Dev<'a>) -> Ctx<'a> {
    Ctx {
        op,
        what: format!("the clsact qdisc of {dev}"),
        iface: dev.name,
        direction: None,
    }
}

/// The largest datagram read at once (dumps are sent in parts smaller than this).
const RECV_SIZE: usize = 1 << 16;

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, TcError> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(TcError::Socket(io::Error::last_os_error()));
        }
        // SAFETY: a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            let one: libc::c_int = 1;
            // SAFETY: an int option of the size given. Failing leaves errors without the
            // kernel's message or with the request echoed: both still parsed.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    opt,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(Netlink { fd, seq: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Adds the clsact qdisc to `dev`; whether it was added (`false`: it had one).
    pub fn add_clsact(&mut self, dev: Dev) -> Result<bool, TcError> {
        let seq = self.next_seq();
        match self.ack(
            &encode_add_clsact(seq, dev.index),
            seq,
            &clsact_ctx("add", dev),
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds the clsact qdisc to `dev` with its hooks bound to the shared `blocks`;
    /// whether it was added (`false`: it had a clsact qdisc, bound or not).
    pub fn add_clsact_shared(&mut self, dev: Dev, blocks: Blocks) -> Result<bool, TcError> {
        let seq = self.next_seq();
        let msg = encode_add_clsact_blocks(seq, dev.index, blocks);
        match self.ack(&msg, seq, &clsact_ctx("add", dev)) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The clsact qdisc of `dev` with its blocks; `None` when it has none (another qdisc,
    /// or none, at the place; or no such interface).
    pub fn clsact(&mut self, dev: Dev) -> Result<Option<Clsact>, TcError> {
        let seq = self.next_seq();
        let ctx = clsact_ctx("look up", dev);
        // The kernel sends the qdisc's message, or nothing when what is at the place is
        // a built-in (the no-op qdisc left by a deleted clsact), then the acknowledgement.
        let mut found = None;
        self.exchange(
            &encode_get_clsact(seq, dev.index),
            seq,
            &ctx,
            |reply| match reply {
                Reply::Message(m) if m.kind == RTM_NEWQDISC => {
                    found = parse_clsact(m.payload);
                    Ok(None)
                }
                Reply::Message(_) => Ok(None),
                Reply::Error(0 | libc::ENOENT | libc::EINVAL | libc::ENODEV, _) => Ok(Some(())),
                Reply::Error(e, extack) => Err(ctx.kernel(e, extack)),
            },
        )?;
        Ok(found)
    }

    /// Every clsact qdisc in the namespace, with its blocks.
    pub fn clsacts(&mut self) -> Result<Vec<Clsact>, TcError> {
        let seq = self.next_seq();
        let ctx = Ctx {
            op: "dump",
            what: "the qdiscs".into(),
            iface: "",
            direction: None,
        };
        let mut out = Vec::new();
        self.dump(&encode_dump_qdiscs(seq), seq, &ctx, |m| {
            if m.kind != RTM_NEWQDISC {
                return Ok(());
            }
            parse_qdisc(m.payload).ok_or_else(|| ctx.malformed("qdisc"))?;
            out.extend(parse_clsact(m.payload));
            Ok(())
        })?;
        Ok(out)
    }

    /// Puts the backend's filter on shared block `block`, running `program_fd` named
    /// `name`. `EINVAL` when no qdisc is bound to the block (the kernel makes a block
    /// at its first bind and deletes it, with its filters, at its last unbind).
    pub fn set_block_filter(
        &mut self,
        block: u32,
        program: (i32, &str),
        existing: Existing,
    ) -> Result<(), TcError> {
        let seq = self.next_seq();
        let ctx = block_ctx("set", block);
        self.ack(
            &encode_set_block_filter(seq, block, program, existing),
            seq,
            &ctx,
        )
    }

    /// The filters of shared block `block` (none when it does not exist), without the
    /// entries a dump gives each priority itself.
    pub fn block_filters(&mut self, block: u32) -> Result<Vec<Filter>, TcError> {
        let seq = self.next_seq();
        let ctx = block_ctx("dump", block);
        match self.dump_filters(&encode_dump_block_filters(seq, block), seq, &ctx) {
            Ok(out) => Ok(out),
            Err(e) if matches!(e.errno(), Some(libc::EINVAL | libc::ENOENT)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the clsact qdisc of `dev`, and every filter on it.
    pub fn del_clsact(&mut self, dev: Dev) -> Result<(), TcError> {
        let seq = self.next_seq();
        self.ack(
            &encode_del_clsact(seq, dev.index),
            seq,
            &clsact_ctx("delete", dev),
        )
    }

    /// Puts a filter as `spec` says on `dev` (whose index `spec` holds).
    pub fn set_filter(
        &mut self,
        dev: Dev,
        spec: &FilterSpec,
        existing: Existing,
    ) -> Result<(), TcError> {
        let seq = self.next_seq();
        let ctx = filter_ctx("set", dev, spec.direction);
        self.ack(&encode_set_filter(seq, spec, existing), seq, &ctx)
    }

    /// Deletes the `bpf` filter at (`priority`, [`HANDLE`]) of the direction of `dev`;
    /// whether there was one. No such filter, no clsact qdisc (`EINVAL`, "parent qdisc
    /// doesn't exist") and no such interface are all "there was none".
    pub fn del_filter(
        &mut self,
        dev: Dev,
        direction: Direction,
        priority: u16,
    ) -> Result<bool, TcError> {
        let seq = self.next_seq();
        let msg = encode_del_filter(seq, dev.index, direction, priority);
        match self.ack(&msg, seq, &filter_ctx("delete", dev, direction)) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ENODEV | libc::EINVAL)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The filters of one direction of `dev`, without the entries a dump gives each
    /// priority itself (handle 0).
    pub fn filters(&mut self, dev: Dev, direction: Direction) -> Result<Vec<Filter>, TcError> {
        let seq = self.next_seq();
        let ctx = filter_ctx("dump", dev, direction);
        self.dump_filters(&encode_dump_filters(seq, dev.index, direction), seq, &ctx)
    }

    /// The filters a filter dump request `msg` lists, without the entries a dump gives
    /// each priority itself (handle 0).
    fn dump_filters(&mut self, msg: &[u8], seq: u32, ctx: &Ctx) -> Result<Vec<Filter>, TcError> {
        let mut out = Vec::new();
        self.dump(msg, seq, ctx, |m| {
            if m.kind != RTM_NEWTFILTER {
                return Ok(());
            }
            let f = parse_filter(m.payload).ok_or_else(|| ctx.malformed("filter message"))?;
            if f.handle != 0 {
                out.push(f);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The index of the interface named `name` in the socket's namespace; 0 when there is
    /// none (a name no interface can have included). Any other failure is an error.
    pub fn ifindex(&mut self, name: &str) -> Result<u32, TcError> {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
            return Ok(0);
        }
        let seq = self.next_seq();
        let ctx = Ctx {
            op: "look up",
            what: format!("the index of {name}"),
            iface: name,
            direction: None,
        };
        self.exchange(
            &encode_get_link(seq, name),
            seq,
            &ctx,
            |reply| match reply {
                Reply::Message(m) if m.kind == RTM_NEWLINK => parse_link_index(m.payload)
                    .map(Some)
                    .ok_or_else(|| ctx.malformed("link message")),
                Reply::Message(_) => Ok(None),
                Reply::Error(libc::ENODEV, _) => Ok(Some(0)),
                Reply::Error(0, _) => Err(ctx.malformed("acknowledged without the link")),
                Reply::Error(e, extack) => Err(ctx.kernel(e, extack)),
            },
        )
    }

    /// Sends `msg` (sequence number `seq`) and waits for its acknowledgement.
    fn ack(&mut self, msg: &[u8], seq: u32, ctx: &Ctx) -> Result<(), TcError> {
        self.exchange(msg, seq, ctx, |reply| match reply {
            Reply::Message(_) => Ok(None),
            Reply::Error(0, _) => Ok(Some(())),
            Reply::Error(e, extack) => Err(ctx.kernel(e, extack)),
        })
    }

    /// Sends the dump request `msg` and hands each message of the answer to `each`, up to
    /// `NLMSG_DONE`.
    fn dump(
        &mut self,
        msg: &[u8],
        seq: u32,
        ctx: &Ctx,
        mut each: impl FnMut(&Message) -> Result<(), TcError>,
    ) -> Result<(), TcError> {
        self.exchange(msg, seq, ctx, |reply| match reply {
            Reply::Message(m) if m.kind == NLMSG_DONE => Ok(Some(())),
            Reply::Message(m) => each(m).map(|()| None),
            Reply::Error(0, _) => Ok(None),
            Reply::Error(e, extack) => Err(ctx.kernel(e, extack)),
        })
    }

    /// Sends `msg` and reads the kernel's answers to it (sequence number `seq`), handing
    /// each to `on` until `on` returns a value: the one receive loop of the requests above.
    /// An error message (an acknowledgement when its errno is 0) is decoded first.
    fn exchange<T>(
        &mut self,
        msg: &[u8],
        seq: u32,
        ctx: &Ctx,
        mut on: impl FnMut(Reply<'_, '_>) -> Result<Option<T>, TcError>,
    ) -> Result<T, TcError> {
        self.send(msg)?;
        let mut buf = vec![0u8; RECV_SIZE];
        loop {
            let n = self.recv(&mut buf)?;
            let messages = parse_messages(&buf[..n]).map_err(|r| ctx.malformed(r))?;
            for m in messages.iter().filter(|m| m.seq == seq) {
                let reply = if m.kind == NLMSG_ERROR {
                    let (errno, extack) =
                        parse_error(m).ok_or_else(|| ctx.malformed("error message"))?;
                    Reply::Error(errno, extack)
                } else {
                    Reply::Message(m)
                };
                if let Some(value) = on(reply)? {
                    return Ok(value);
                }
            }
        }
    }

    fn send(&self, msg: &[u8]) -> Result<(), TcError> {
        // SAFETY: a zeroed sockaddr_nl is a valid address (the kernel, pid 0) once its
        // family is set.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and the address outlive the call, with the sizes given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &to as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        match n {
            n if n < 0 => Err(TcError::Socket(io::Error::last_os_error())),
            n if n as usize != msg.len() => Err(TcError::Socket(io::Error::other(
                "netlink request sent in part",
            ))),
            _ => Ok(()),
        }
    }

    /// Reads one datagram into `buf`; its length. A datagram larger than `buf` is an
    /// error rather than a truncated reply.
    fn recv(&self, buf: &mut [u8]) -> Result<usize, TcError> {
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(TcError::Socket(e));
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(TcError::Socket(io::Error::other(format!(
                    "netlink datagram of {n} bytes exceeds the {}-byte buffer",
                    buf.len()
                ))));
            }
            return Ok(n);
        }
    }
}

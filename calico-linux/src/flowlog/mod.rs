//! Reads the packets nftables logs to a netlink log group (`log group N`, NFLOG): the
//! kernel half of the agent's flow logs.
//!
//! [`FlowLogReader::open`] binds a `NETLINK_NETFILTER` socket to the group, in the network
//! namespace of the calling thread, and asks for the first [`COPY_RANGE`] bytes of each
//! packet (enough for the IP and transport headers). [`FlowLogReader::recv`] returns the
//! packets of one datagram, parsed ([`parse`]). Only one socket may bind a group at a time.

pub mod parse;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub use parse::{FiveTuple, LogPacket, Message, ParseError};

/// Bytes of each logged packet copied to the reader: IPv6 and TCP headers fit.
pub const COPY_RANGE: u32 = 128;

const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;

/// Why the reader failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowLogError {
    /// A socket call failed.
    #[error("NFLOG socket: {op}: {source}")]
    Io {
        /// The call.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The kernel refused the group's configuration (EBUSY: another reader has the group).
    #[error("NFLOG group {group}: configuring {what} refused: {source}")]
    Config {
        /// The group.
        group: u16,
        /// What was configured.
        what: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
}

/// A socket bound to one netlink log group.
#[derive(Debug)]
pub struct FlowLogReader {
    fd: OwnedFd,
    /// A datagram socket of the same namespace, which names interfaces by index.
    names: OwnedFd,
    group: u16,
    buf: Vec<u8>,
    /// Datagrams lost because the socket's buffer overflowed (ENOBUFS), so far.
    pub overruns: u64,
}

fn io_err(op: &'static str) -> FlowLogError {
    FlowLogError::Io {
        op,
        source: io::Error::last_os_error(),
    }
}

impl FlowLogReader {
    /// Binds `group` in the calling thread's network namespace. `recv` waits at most
    /// `timeout` for a datagram (so a reading thread can notice it should stop).
    pub fn open(group: u16, timeout: Duration) -> Result<Self, FlowLogError> {
        // SAFETY: plain socket call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io_err("socket"));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_nl is valid; family set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a valid sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io_err("bind"));
        }
        set_opt(&fd, libc::SO_RCVBUFFORCE, 4 << 20)
            .or_else(|_| set_opt(&fd, libc::SO_RCVBUF, 4 << 20))?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        set_raw_opt(&fd, libc::SO_RCVTIMEO, &tv)?;
        // SAFETY: plain socket call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io_err("socket (interface names)"));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let names = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut r = FlowLogReader {
            fd,
            names,
            group,
            buf: vec![0; 1 << 16],
            overruns: 0,
        };
        r.configure("bind", NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])?;
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend([NFULNL_COPY_PACKET, 0]);
        r.configure("copy mode", NFULA_CFG_MODE, &mode)?;
        // Flush batches every 50 ms or 64 packets, whichever comes first.
        r.configure("timeout", NFULA_CFG_TIMEOUT, &5u32.to_be_bytes())?;
        r.configure("queue threshold", NFULA_CFG_QTHRESH, &64u32.to_be_bytes())?;
        Ok(r)
    }

    /// The group this reader is bound to.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// The name of the interface with index `ifindex` in the reader's namespace (where it
    /// was opened), now; `None` when there is none (it went away since the packet).
    pub fn interface_name(&self, ifindex: u32) -> Option<String> {
        // SAFETY: a zeroed ifreq is valid; the index goes in its union.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_ifru.ifru_ifindex = i32::try_from(ifindex).ok()?;
        // SAFETY: SIOCGIFNAME reads the index and writes the name into `req`, a valid ifreq.
        let rc = unsafe { libc::ioctl(self.names.as_raw_fd(), libc::SIOCGIFNAME, &mut req) };
        if rc < 0 {
            return None;
        }
        let name: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(name).ok()
    }

    fn configure(&mut self, what: &'static str, ty: u16, data: &[u8]) -> Result<(), FlowLogError> {
        let msg = config_message(self.group, ty, data);
        // SAFETY: msg is a valid buffer of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io_err("send"));
        }
        loop {
            let len = self.recv_raw()?.ok_or_else(|| FlowLogError::Config {
                group: self.group,
                what,
                source: io::Error::from(io::ErrorKind::TimedOut),
            })?;
            for m in parse::parse_datagram(&self.buf[..len]) {
                if let Ok(Message::Ack(errno)) = m {
                    return match errno {
                        0 => Ok(()),
                        e => Err(FlowLogError::Config {
                            group: self.group,
                            what,
                            source: io::Error::from_raw_os_error(e),
                        }),
                    };
                }
            }
        }
    }

    /// One datagram's bytes, `None` on timeout; an overrun is counted and skipped.
    fn recv_raw(&mut self) -> Result<Option<usize>, FlowLogError> {
        loop {
            // SAFETY: buf is a valid writable buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(None),
                Some(libc::EINTR) => continue,
                Some(libc::ENOBUFS) => {
                    self.overruns += 1;
                    continue;
                }
                _ => {
                    return Err(FlowLogError::Io {
                        op: "recv",
                        source: e,
                    })
                }
            }
        }
    }

    /// The packets of the next datagram (empty after `timeout` without one). Malformed
    /// messages are skipped and returned as errors beside the packets.
    pub fn recv(&mut self) -> Result<(Vec<LogPacket>, Vec<ParseError>), FlowLogError> {
        let Some(len) = self.recv_raw()? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut packets = Vec::new();
        let mut errors = Vec::new();
        for m in parse::parse_datagram(&self.buf[..len]) {
            match m {
                Ok(Message::Packet(p)) => packets.push(p),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        Ok((packets, errors))
    }
}

fn config_message(group: u16, ty: u16, data: &[u8]) -> Vec<u8> {
    let attr_len = 4 + data.len();
    let mut body = vec![libc::AF_UNSPEC as u8, 0];
    body.extend(group.to_be_bytes());
    body.extend(u16::try_from(attr_len).unwrap_or(u16::MAX).to_ne_bytes());
    body.extend(ty.to_ne_bytes());
    body.extend(data);
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend(
        u32::try_from(16 + body.len())
            .unwrap_or(u32::MAX)
            .to_ne_bytes(),
    );
    m.extend((parse::NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG).to_ne_bytes());
    m.extend(((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    m.extend(1u32.to_ne_bytes());
    m.extend(0u32.to_ne_bytes());
    m.extend(body);
    m
}

fn set_opt(fd: &OwnedFd, opt: libc::c_int, v: libc::c_int) -> Result<(), FlowLogError> {
    set_raw_opt(fd, opt, &v)
}

fn set_raw_opt<T>(fd: &OwnedFd, opt: libc::c_int, v: &T) -> Result<(), FlowLogError> {
    // SAFETY: v points to a valid T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    };
    if rc < 0 {
        return Err(io_err("setsockopt"));
    }
    Ok(())
}

//! Attaching programs with tc over rtnetlink: a `clsact` qdisc on the interface and a
//! `bpf` classifier in direct-action mode on its ingress or egress hook, as Calico's own
//! eBPF dataplane does (and `tc filter add dev X ingress bpf da` would); or the qdisc's
//! hooks bound to shared blocks whose filters serve every interface bound to them
//! ([`Blocks`], the backend's way).
//!
//! Unlike a TCX link, a filter is not a file descriptor: it stays when the process that
//! made it exits, and creating or replacing one does not wait for an RCU grace period.
//! The backend's filters are recognised by their place ([`PRIORITY`], [`HANDLE`]) and
//! their name's prefix ([`NAME_PREFIX`]); replacing a program is one `RTM_NEWTFILTER` on
//! the same place (`NLM_F_REPLACE`), which the kernel swaps atomically.
//!
//! [`Netlink`] is the socket (opened in the namespace it acts on, which it keeps); the
//! message encoders and the reply parsers are plain functions over bytes, tested without
//! a kernel, and the parsers return `None` or an error on anything malformed, never
//! panic.

use std::io;

mod block;
mod socket;

pub use block::{
    encode_add_clsact_blocks, encode_dump_block_filters, encode_get_clsact,
    encode_set_block_filter, parse_clsact, Blocks, Clsact,
};
pub use socket::Netlink;

/// The priority of the backend's filters (`tc filter ... pref`), the same on every
/// interface and in both directions. Lower runs first; the programs return
/// `TC_ACT_UNSPEC` for what they accept, so filters after them still run.
pub const PRIORITY: u16 = 0xca1;
/// The handle of the backend's filters.
pub const HANDLE: u32 = 0xca1;
/// The priority of the start-up probe's filter: not [`PRIORITY`], so that probing never
/// touches a filter a previous backend left.
pub const PROBE_PRIORITY: u16 = 0xca2;
/// What the name of each of the backend's filters starts with (`TCA_BPF_NAME`, what
/// `tc filter show` prints after `bpf`).
pub const NAME_PREFIX: &str = "calico-rs:";

const NETLINK_ROUTE: i32 = 0;
const SOL_NETLINK: i32 = 270;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ECHO: u16 = 0x8;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
/// In an error message: the original request is not echoed beyond its header.
const NLM_F_CAPPED: u16 = 0x100;
/// In an error message: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

const IFLA_IFNAME: u16 = 3;
/// `IFNAMSIZ`, the NUL included.
const IFNAMSIZ: usize = 16;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_ID: u16 = 11;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
/// Attribute type bits (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER` masked off).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `TC_H_CLSACT` (= `TC_H_INGRESS`): the clsact qdisc's parent.
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// The clsact qdisc's handle, `ffff:`.
const CLSACT_HANDLE: u32 = 0xffff_0000;
/// `ETH_P_ALL`, in network order as `tcm_info` holds it.
const ETH_P_ALL_BE: u16 = 0x0003u16.to_be();

const NLMSG_HDR: usize = 16;
const TCMSG: usize = 20;

/// Which hook of the interface a filter is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Packets the interface receives (parent `ffff:fff2`).
    Ingress,
    /// Packets the interface sends (parent `ffff:fff3`).
    Egress,
}

impl Direction {
    /// Both, ingress first.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// The filter's parent: the clsact qdisc's ingress or egress class.
    pub fn parent(self) -> u32 {
        match self {
            Direction::Ingress => 0xffff_fff2,
            Direction::Egress => 0xffff_fff3,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// An interface as the tc calls name it: its name (for errors) and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dev<'a> {
    /// The interface's name.
    pub name: &'a str,
    /// Its index in the socket's namespace.
    pub index: u32,
}

impl std::fmt::Display for Dev<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name {
            "" => write!(f, "ifindex {}", self.index),
            name => write!(f, "{name} (ifindex {})", self.index),
        }
    }
}

/// A tc operation the kernel refused, or a reply that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcError {
    /// The kernel answered the request with an error.
    #[error("tc: cannot {op} {what}: {source}{}", extack.as_ref().map(|m| format!(" (kernel: {m})")).unwrap_or_default())]
    Kernel {
        /// What was asked: `add the clsact qdisc`, `set the filter`, ...
        op: &'static str,
        /// The object, naming the interface and direction, e.g. `the ingress filter of
        /// calia (ifindex 7)`.
        what: String,
        /// The interface's name.
        iface: String,
        /// The direction, for a filter.
        direction: Option<Direction>,
        /// The kernel's errno.
        #[source]
        source: io::Error,
        /// The kernel's extended-ack message, when it gave one.
        extack: Option<String>,
    },
    /// The netlink socket could not be opened, written or read.
    #[error("tc: netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// A reply was not what netlink sends.
    #[error("tc: malformed netlink reply to {op}: {reason}")]
    Malformed {
        /// The request.
        op: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

impl TcError {
    /// The kernel's errno, for [`TcError::Kernel`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            TcError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A filter as a dump reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The interface's index.
    pub ifindex: u32,
    /// The parent (see [`Direction::parent`]).
    pub parent: u32,
    /// The filter's handle (0 for the entry a dump gives each priority itself).
    pub handle: u32,
    /// The priority.
    pub priority: u16,
    /// The protocol, in network order.
    pub protocol: u16,
    /// The classifier (`bpf`).
    pub kind: String,
    /// `TCA_BPF_NAME`.
    pub name: Option<String>,
    /// The kernel's id of the program it runs (`TCA_BPF_ID`).
    pub program_id: Option<u32>,
    /// `TCA_BPF_FLAGS`.
    pub flags: u32,
}

impl Filter {
    /// Whether the filter is one of the backend's: at its place, with its name.
    pub fn is_ours(&self) -> bool {
        self.kind == "bpf"
            && self.priority == PRIORITY
            && self.handle == HANDLE
            && self
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(NAME_PREFIX))
    }

    /// Its direction, from its parent.
    pub fn direction(&self) -> Option<Direction> {
        Direction::BOTH
            .into_iter()
            .find(|d| d.parent() == self.parent)
    }
}

// ---------------------------------------------------------------------------------------
// Encoding.

/// A netlink message under construction: header, then the family header and attributes
/// appended; the length is fixed by [`Msg::finish`].
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        Msg { buf }
    }

    fn tcmsg(mut self, ifindex: u32, handle: u32, parent: u32, info: u32) -> Msg {
        self.buf.extend_from_slice(&[0, 0, 0, 0]); // family AF_UNSPEC, padding
        for word in [ifindex, handle, parent, info] {
            self.buf.extend_from_slice(&word.to_ne_bytes());
        }
        self
    }

    fn attr(mut self, kind: u16, value: &[u8]) -> Msg {
        put_attr(&mut self.buf, kind, value);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// Appends one attribute (header, value, padding to 4 bytes).
fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = (4 + value.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align(buf.len()), 0);
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// A NUL-terminated string attribute's value.
fn cstr(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s.bytes().filter(|&b| b != 0).collect();
    v.push(0);
    v
}

/// `tcm_info` of a filter: priority and protocol.
fn filter_info(priority: u16) -> u32 {
    (u32::from(priority) << 16) | u32::from(ETH_P_ALL_BE)
}

/// `RTM_NEWQDISC clsact` on `ifindex`, failing with `EEXIST` when it has one.
pub fn encode_add_clsact(seq: u32, ifindex: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    Msg::new(RTM_NEWQDISC, flags, seq)
        .tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
        .attr(TCA_KIND, &cstr("clsact"))
        .finish()
}

/// `RTM_DELQDISC` of the clsact qdisc of `ifindex` (its filters go with it).
pub fn encode_del_clsact(seq: u32, ifindex: u32) -> Vec<u8> {
    Msg::new(RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK, seq)
        .tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
        .attr(TCA_KIND, &cstr("clsact"))
        .finish()
}

/// `RTM_GETQDISC` dump of every interface's qdiscs.
pub fn encode_dump_qdiscs(seq: u32) -> Vec<u8> {
    Msg::new(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .tcmsg(0, 0, 0, 0)
        .finish()
}

/// How [`encode_set_filter`] treats a filter already at the place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replaced, atomically (`NLM_F_CREATE | NLM_F_REPLACE`).
    Replace,
    /// An error, `EEXIST` (`NLM_F_CREATE | NLM_F_EXCL`).
    Fail,
}

/// What [`encode_set_filter`] puts where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterSpec<'a> {
    /// The interface's index.
    pub ifindex: u32,
    /// The hook.
    pub direction: Direction,
    /// The priority ([`PRIORITY`], or [`PROBE_PRIORITY`] for the probe).
    pub priority: u16,
    /// The program's file descriptor in this process.
    pub program_fd: i32,
    /// `TCA_BPF_NAME`.
    pub name: &'a str,
}

/// `RTM_NEWTFILTER bpf` in direct-action mode at ([`FilterSpec::priority`], [`HANDLE`])
/// of the direction's parent.
pub fn encode_set_filter(seq: u32, spec: &FilterSpec, existing: Existing) -> Vec<u8> {
    let at = (spec.ifindex, spec.direction.parent(), spec.priority);
    encode_bpf_filter(seq, at, (spec.program_fd, spec.name), existing)
}

/// `RTM_NEWTFILTER bpf` in direct-action mode running (`program_fd`, named `name`) at
/// (`tcm_ifindex`, parent, priority) and [`HANDLE`].
fn encode_bpf_filter(
    seq: u32,
    (ifindex, parent, priority): (u32, u32, u16),
    (program_fd, name): (i32, &str),
    existing: Existing,
) -> Vec<u8> {
    let mut options = Vec::new();
    put_attr(&mut options, TCA_BPF_FD, &program_fd.to_ne_bytes());
    put_attr(&mut options, TCA_BPF_NAME, &cstr(name));
    put_attr(
        &mut options,
        TCA_BPF_FLAGS,
        &TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes(),
    );
    let flags = NLM_F_REQUEST
        | NLM_F_ACK
        | NLM_F_CREATE
        | match existing {
            Existing::Replace => NLM_F_REPLACE,
            Existing::Fail => NLM_F_EXCL,
        };
    Msg::new(RTM_NEWTFILTER, flags, seq)
        .tcmsg(ifindex, HANDLE, parent, filter_info(priority))
        .attr(TCA_KIND, &cstr("bpf"))
        .attr(TCA_OPTIONS, &options)
        .finish()
}

/// `RTM_DELTFILTER` of the `bpf` filter at (`priority`, [`HANDLE`]) of the direction.
pub fn encode_del_filter(seq: u32, ifindex: u32, direction: Direction, priority: u16) -> Vec<u8> {
    Msg::new(RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK, seq)
        .tcmsg(ifindex, HANDLE, direction.parent(), filter_info(priority))
        .attr(TCA_KIND, &cstr("bpf"))
        .finish()
}

/// `RTM_GETTFILTER` dump of the filters of one direction of `ifindex`.
pub fn encode_dump_filters(seq: u32, ifindex: u32, direction: Direction) -> Vec<u8> {
    Msg::new(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .tcmsg(ifindex, 0, direction.parent(), 0)
        .finish()
}

/// `RTM_GETLINK` of the interface named `name` (no acknowledgement: the answer is the
/// link's message or an error).
pub fn encode_get_link(seq: u32, name: &str) -> Vec<u8> {
    let mut m = Msg::new(RTM_GETLINK, NLM_F_REQUEST, seq);
    // struct ifinfomsg: family, pad, type, index, flags, change.
    m.buf.extend_from_slice(&[0u8; 16]);
    m.attr(IFLA_IFNAME, &cstr(name)).finish()
}

// ---------------------------------------------------------------------------------------
// Parsing.

/// One netlink message of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// What follows the header.
    pub payload: &'a [u8],
}

/// The messages of one datagram; an error when a length does not fit.
pub fn parse_messages(buf: &[u8]) -> Result<Vec<Message<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDR {
        let len = u32_at(rest, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDR || len > rest.len() {
            return Err(format!(
                "message length {len} with {} bytes left",
                rest.len()
            ));
        }
        out.push(Message {
            kind: u16_at(rest, 4).unwrap_or(0),
            flags: u16_at(rest, 6).unwrap_or(0),
            seq: u32_at(rest, 8).unwrap_or(0),
            payload: &rest[NLMSG_HDR..len],
        });
        rest = rest.get(align(len)..).unwrap_or(&[]);
    }
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(out)
}

/// The attributes in `buf`, as (type without flags, value); `None` when one's length
/// does not fit.
pub fn parse_attrs(buf: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= 4 {
        let len = usize::from(u16_at(rest, 0)?);
        if len < 4 || len > rest.len() {
            return None;
        }
        out.push((u16_at(rest, 2)? & NLA_TYPE_MASK, &rest[4..len]));
        rest = rest.get(align(len)..).unwrap_or(&[]);
    }
    Some(out)
}

/// An `NLMSG_ERROR` message's errno (0 for an acknowledgement, positive otherwise) and
/// extended-ack message.
pub fn parse_error(m: &Message) -> Option<(i32, Option<String>)> {
    let errno = i32::from_ne_bytes(m.payload.get(..4)?.try_into().ok()?).checked_neg()?;
    if m.flags & NLM_F_ACK_TLVS == 0 {
        return Some((errno, None));
    }
    // The request's header, and all of it unless capped, precede the attributes.
    let echoed = match m.flags & NLM_F_CAPPED {
        0 => align(u32_at(m.payload, 4)? as usize),
        _ => NLMSG_HDR,
    };
    let attrs = parse_attrs(m.payload.get(4 + echoed..)?)?;
    let text = attrs
        .iter()
        .find(|(k, _)| *k == NLMSGERR_ATTR_MSG)
        .map(|(_, v)| string(v));
    Some((errno, text))
}

/// A filter dump's message; `None` when it is malformed.
pub fn parse_filter(payload: &[u8]) -> Option<Filter> {
    let info = u32_at(payload, 16)?;
    let mut f = Filter {
        ifindex: u32_at(payload, 4)?,
        handle: u32_at(payload, 8)?,
        parent: u32_at(payload, 12)?,
        priority: (info >> 16) as u16,
        protocol: (info & 0xffff) as u16,
        ..Filter::default()
    };
    for (kind, value) in parse_attrs(payload.get(TCMSG..)?)? {
        match kind {
            TCA_KIND => f.kind = string(value),
            TCA_OPTIONS => bpf_options(&mut f, value)?,
            _ => {}
        }
    }
    Some(f)
}

/// The `bpf` classifier's options into `f`.
fn bpf_options(f: &mut Filter, value: &[u8]) -> Option<()> {
    for (kind, v) in parse_attrs(value)? {
        match kind {
            TCA_BPF_NAME => f.name = Some(string(v)),
            TCA_BPF_ID => f.program_id = Some(u32_at(v, 0)?),
            TCA_BPF_FLAGS => f.flags = u32_at(v, 0)?,
            _ => {}
        }
    }
    Some(())
}

/// A link message's interface index (`ifinfomsg.ifi_index`).
pub fn parse_link_index(payload: &[u8]) -> Option<u32> {
    u32_at(payload, 4)
}

/// A qdisc dump's message: the interface's index and the qdisc's kind.
pub fn parse_qdisc(payload: &[u8]) -> Option<(u32, String)> {
    let ifindex = u32_at(payload, 4)?;
    let attrs = parse_attrs(payload.get(TCMSG..)?)?;
    let kind = attrs.iter().find(|(k, _)| *k == TCA_KIND)?;
    Some((ifindex, string(kind.1)))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A string attribute's text, up to its NUL.
fn string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

#[cfg(test)]
mod tests;

//! Forgetting connections: the kernel's connection-tracking entries of an address that no
//! longer belongs to a workload of this host, removed over ctnetlink.
//!
//! The endpoint chains accept a packet of an established connection before any policy, as
//! Calico's do. When a workload goes (or its address, or a floating IP, moves elsewhere),
//! its connections' entries stay until they time out; a new workload given the same address
//! would then take part in them without its policy being asked, and a removed floating IP
//! would keep translating them. Felix removes such entries when it removes the workload's
//! route; the agent does the same (see `FibBackend::forget_connections`).
//!
//! Each address costs four filtered flushes (`IPCTNL_MSG_CT_DELETE` without a whole tuple
//! but with `CTA_FILTER`: the kernel removes every entry matching the given part), one per
//! place the address can hold in an entry: the original source or destination, the reply's
//! source (a connection translated to it, e.g. through a floating IP) or destination
//! (translated from it). A kernel without filtered flushes takes the message for the
//! removal of one entry, finds its tuple incomplete and refuses it; nothing else is
//! removed.

use std::net::IpAddr;

use crate::nft::netlink::MsgWriter;
use crate::nft::proto::NLM_F_ACK;
use crate::nft::socket::{NfSocket, NlError};

/// `NFNL_SUBSYS_CTNETLINK`.
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// `IPCTNL_MSG_CT_DELETE`.
const IPCTNL_MSG_CT_DELETE: u16 = 2;
/// `CTA_TUPLE_ORIG`, `CTA_TUPLE_REPLY`, `CTA_FILTER` (enum `ctattr_type`).
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_FILTER: u16 = 25;
/// `CTA_TUPLE_IP` (enum `ctattr_tuple`).
const CTA_TUPLE_IP: u16 = 1;
/// `CTA_IP_V4_SRC` .. `CTA_IP_V6_DST` (enum `ctattr_ip`).
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
/// `CTA_FILTER_ORIG_FLAGS`, `CTA_FILTER_REPLY_FLAGS` (enum `ctattr_filter`).
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
/// `CTA_FILTER_FLAG(CTA_IP_SRC)`, `CTA_FILTER_FLAG(CTA_IP_DST)`.
const FILTER_IP_SRC: u32 = 1 << 0;
const FILTER_IP_DST: u32 = 1 << 1;

/// Where in a connection-tracking entry an address is looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    OrigSource,
    OrigDestination,
    ReplySource,
    ReplyDestination,
}

const PLACES: [Place; 4] = [
    Place::OrigSource,
    Place::OrigDestination,
    Place::ReplySource,
    Place::ReplyDestination,
];

/// Removes, in the calling thread's network namespace, every connection-tracking entry in
/// which one of `addrs` takes part (any zone).
pub(super) fn forget(addrs: &[IpAddr]) -> Result<(), NlError> {
    if addrs.is_empty() {
        return Ok(());
    }
    let mut sock = NfSocket::open()?;
    let mut w = sock.request_writer();
    for addr in addrs {
        for place in PLACES {
            flush_message(&mut w, *addr, place);
        }
    }
    sock.requests(w)
}

/// Writes the filtered flush of the entries holding `addr` at `place`.
fn flush_message(w: &mut MsgWriter, addr: IpAddr, place: Place) {
    let (family, ip_attr, bytes): (u8, _, Vec<u8>) = match (addr, place) {
        (IpAddr::V4(a), Place::OrigSource | Place::ReplySource) => {
            (libc::AF_INET as u8, CTA_IP_V4_SRC, a.octets().to_vec())
        }
        (IpAddr::V4(a), _) => (libc::AF_INET as u8, CTA_IP_V4_DST, a.octets().to_vec()),
        (IpAddr::V6(a), Place::OrigSource | Place::ReplySource) => {
            (libc::AF_INET6 as u8, CTA_IP_V6_SRC, a.octets().to_vec())
        }
        (IpAddr::V6(a), _) => (libc::AF_INET6 as u8, CTA_IP_V6_DST, a.octets().to_vec()),
    };
    let (tuple, filter_attr, flag) = match place {
        Place::OrigSource => (CTA_TUPLE_ORIG, CTA_FILTER_ORIG_FLAGS, FILTER_IP_SRC),
        Place::OrigDestination => (CTA_TUPLE_ORIG, CTA_FILTER_ORIG_FLAGS, FILTER_IP_DST),
        Place::ReplySource => (CTA_TUPLE_REPLY, CTA_FILTER_REPLY_FLAGS, FILTER_IP_SRC),
        Place::ReplyDestination => (CTA_TUPLE_REPLY, CTA_FILTER_REPLY_FLAGS, FILTER_IP_DST),
    };
    w.begin(
        (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
        NLM_F_ACK,
        family,
        0,
    );
    w.nest(tuple);
    w.nest(CTA_TUPLE_IP);
    w.bytes(ip_attr, &bytes);
    w.end_nest();
    w.end_nest();
    w.nest(CTA_FILTER);
    // The filter's flags are NLA_U32: host byte order, unlike the rest of ctnetlink.
    w.bytes(filter_attr, &flag.to_ne_bytes());
    w.end_nest();
    w.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::netlink::{Attrs, Msgs};

    /// Every flush names the address in exactly one place, in the tuple the filter flags.
    #[test]
    fn each_place_is_one_filtered_flush() {
        let addr: IpAddr = "10.65.0.7".parse().unwrap();
        let mut w = MsgWriter::new(1);
        for place in PLACES {
            flush_message(&mut w, addr, place);
        }
        let bytes = w.finish().unwrap().to_vec();
        let msgs: Vec<_> = Msgs::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 4);
        let mut seen = vec![];
        for m in &msgs {
            assert_eq!(m.ty, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE);
            assert_ne!(m.flags & NLM_F_ACK, 0);
            let attrs: Vec<(u16, &[u8])> =
                m.nft_attrs().unwrap().collect::<Result<_, _>>().unwrap();
            let (tuple, body) = attrs[0];
            let (ip_nest, ip) = Attrs::new(body).next().unwrap().unwrap();
            assert_eq!(ip_nest, CTA_TUPLE_IP);
            let (ip_attr, value) = Attrs::new(ip).next().unwrap().unwrap();
            assert_eq!(value, [10, 65, 0, 7]);
            let (filter, f) = attrs[1];
            assert_eq!(filter, CTA_FILTER);
            let (which, flags) = Attrs::new(f).next().unwrap().unwrap();
            seen.push((tuple, ip_attr, which, flags.to_vec()));
        }
        let ne = |v: u32| v.to_ne_bytes().to_vec();
        assert_eq!(
            seen,
            vec![
                (
                    CTA_TUPLE_ORIG,
                    CTA_IP_V4_SRC,
                    CTA_FILTER_ORIG_FLAGS,
                    ne(FILTER_IP_SRC)
                ),
                (
                    CTA_TUPLE_ORIG,
                    CTA_IP_V4_DST,
                    CTA_FILTER_ORIG_FLAGS,
                    ne(FILTER_IP_DST)
                ),
                (
                    CTA_TUPLE_REPLY,
                    CTA_IP_V4_SRC,
                    CTA_FILTER_REPLY_FLAGS,
                    ne(FILTER_IP_SRC)
                ),
                (
                    CTA_TUPLE_REPLY,
                    CTA_IP_V4_DST,
                    CTA_FILTER_REPLY_FLAGS,
                    ne(FILTER_IP_DST)
                ),
            ]
        );
    }
}

//! NFLOG messages (nfnetlink_log, `NFULNL_MSG_PACKET`) → [`LogPacket`]s: the prefix, the
//! interfaces, and the 5-tuple and length read from the copied packet headers. Input comes
//! from the kernel and is treated as untrusted: every length is checked, nothing panics
//! (fuzzed by `fuzz/fuzz_targets/nflog_parse.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Netlink subsystem of nfnetlink_log.
pub(super) const NFNL_SUBSYS_ULOG: u16 = 4;
/// A logged packet.
pub(super) const NFULNL_MSG_PACKET: u16 = 0;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NFGEN_HDRLEN: usize = 4;

const NFULA_PACKET_HDR: u16 = 1;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;

/// The addresses, protocol and ports of a packet (ports 0 for protocols without them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiveTuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (TCP, UDP, SCTP, UDP-Lite), else 0.
    pub src_port: u16,
    /// Destination port, else 0.
    pub dst_port: u16,
}

/// One packet the kernel logged to the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPacket {
    /// The log prefix (empty when none).
    pub prefix: String,
    /// Input interface index.
    pub in_ifindex: Option<u32>,
    /// Output interface index.
    pub out_ifindex: Option<u32>,
    /// The packet's 5-tuple, when its headers were copied and are IPv4 or IPv6.
    pub tuple: Option<FiveTuple>,
    /// The packet's length from its IP header (0 when unknown).
    pub bytes: u32,
    /// ICMP (or ICMPv6) type and code, for such a packet whose header was copied.
    pub icmp: Option<(u8, u8)>,
}

impl LogPacket {
    /// The packet as the reference evaluator and the interpreter take it (ports only for
    /// protocols with ports, type and code only for ICMP); `None` without its headers.
    pub fn packet(&self) -> Option<calico_core::eval::Packet> {
        let t = self.tuple?;
        let protocol = calico_core::model::Protocol(t.proto);
        let ported = protocol.has_ports();
        Some(calico_core::eval::Packet {
            src: t.src,
            dst: t.dst,
            protocol,
            src_port: ported.then_some(t.src_port),
            dst_port: ported.then_some(t.dst_port),
            icmp_type: self.icmp.map(|(ty, _)| ty),
            icmp_code: self.icmp.map(|(_, code)| code),
        })
    }
}

/// Why a message could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("NFLOG message: {0}")]
pub struct ParseError(pub &'static str);

/// What one netlink message was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A logged packet.
    Packet(LogPacket),
    /// A netlink error or acknowledgement (errno, 0 for an ack).
    Ack(i32),
    /// Another message type, skipped.
    Other,
}

fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Splits a datagram of netlink messages, parsing each.
pub fn parse_datagram(mut buf: &[u8]) -> Vec<Result<Message, ParseError>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_ne(buf, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            out.push(Err(ParseError("message length out of bounds")));
            break;
        }
        let ty = u16_ne(buf, 4).unwrap_or(0);
        out.push(parse_message(ty, &buf[NLMSG_HDRLEN..len]));
        buf = buf.get(align(len)..).unwrap_or(&[]);
    }
    out
}

fn align(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn parse_message(ty: u16, body: &[u8]) -> Result<Message, ParseError> {
    if ty == NLMSG_ERROR {
        let errno = u32_ne(body, 0).ok_or(ParseError("short error message"))? as i32;
        return Ok(Message::Ack(-errno));
    }
    if ty != (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET) {
        return Ok(Message::Other);
    }
    let attrs = body
        .get(NFGEN_HDRLEN..)
        .ok_or(ParseError("no nfgenmsg header"))?;
    let mut p = LogPacket {
        prefix: String::new(),
        in_ifindex: None,
        out_ifindex: None,
        tuple: None,
        bytes: 0,
        icmp: None,
    };
    let mut rest = attrs;
    while rest.len() >= 4 {
        let len = usize::from(u16_ne(rest, 0).unwrap_or(0));
        let ty = u16_ne(rest, 2).unwrap_or(0) & 0x3fff;
        if len < 4 || len > rest.len() {
            return Err(ParseError("attribute length out of bounds"));
        }
        let data = &rest[4..len];
        match ty {
            NFULA_PREFIX => {
                let text = data.split(|&b| b == 0).next().unwrap_or(&[]);
                p.prefix = String::from_utf8_lossy(text).into_owned();
            }
            NFULA_IFINDEX_INDEV => p.in_ifindex = Some(be32(data)?),
            NFULA_IFINDEX_OUTDEV => p.out_ifindex = Some(be32(data)?),
            NFULA_PAYLOAD => {
                if let Some((tuple, bytes)) = headers(data) {
                    p.tuple = Some(tuple);
                    p.bytes = bytes;
                    p.icmp = icmp(data);
                }
            }
            NFULA_PACKET_HDR => {} // hw protocol and hook: the payload says the family
            _ => {}
        }
        rest = rest.get(align(len)..).unwrap_or(&[]);
    }
    Ok(Message::Packet(p))
}

fn be32(data: &[u8]) -> Result<u32, ParseError> {
    data.try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| ParseError("u32 attribute of wrong length"))
}

/// The 5-tuple and IP length of a packet starting at its IP header.
pub fn headers(pkt: &[u8]) -> Option<(FiveTuple, u32)> {
    match pkt.first()? >> 4 {
        4 => {
            let ihl = usize::from(pkt.first()? & 0x0f) * 4;
            if ihl < 20 {
                return None;
            }
            let bytes = u32::from(be16(pkt, 2)?);
            let proto = *pkt.get(9)?;
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(pkt.get(12..16)?).ok()?);
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(pkt.get(16..20)?).ok()?);
            // Only the first fragment carries the ports.
            let first_fragment = be16(pkt, 6)? & 0x1fff == 0;
            let l4 = if first_fragment { pkt.get(ihl..) } else { None };
            Some((tuple(src.into(), dst.into(), proto, l4), bytes))
        }
        6 => {
            let bytes = u32::from(be16(pkt, 4)?) + 40;
            let proto = *pkt.get(6)?;
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(8..24)?).ok()?);
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(24..40)?).ok()?);
            Some((tuple(src.into(), dst.into(), proto, pkt.get(40..)), bytes))
        }
        _ => None,
    }
}

/// The ICMP type and code of an ICMP (IPv4) or ICMPv6 packet starting at its IP header
/// (an IPv6 packet's ICMPv6 header right after the fixed header: extension headers are not
/// followed).
fn icmp(pkt: &[u8]) -> Option<(u8, u8)> {
    let l4 = match pkt.first()? >> 4 {
        4 if *pkt.get(9)? == 1 && be16(pkt, 6)? & 0x1fff == 0 => {
            pkt.get(usize::from(pkt.first()? & 0x0f) * 4..)?
        }
        6 if *pkt.get(6)? == 58 => pkt.get(40..)?,
        _ => return None,
    };
    Some((*l4.first()?, *l4.get(1)?))
}

fn tuple(src: IpAddr, dst: IpAddr, proto: u8, l4: Option<&[u8]>) -> FiveTuple {
    let has_ports = matches!(proto, 6 | 17 | 132 | 136);
    let ports = l4
        .filter(|_| has_ports)
        .and_then(|l4| Some((be16(l4, 0)?, be16(l4, 2)?)))
        .unwrap_or((0, 0));
    FiveTuple {
        src,
        dst,
        proto,
        src_port: ports.0,
        dst_port: ports.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend(u16::try_from(data.len() + 4).unwrap().to_ne_bytes());
        a.extend(ty.to_ne_bytes());
        a.extend(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn message(attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![2, 0, 0, 20]; // nfgenmsg: AF_INET, version 0, group 20
        for a in attrs {
            body.extend(a);
        }
        let mut m = Vec::new();
        m.extend(u32::try_from(body.len() + 16).unwrap().to_ne_bytes());
        m.extend((NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET).to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(body);
        m
    }

    fn ipv4_tcp() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend([10, 65, 0, 10, 10, 65, 0, 20]);
        p.extend([0x9c, 0x40, 0, 80, 0, 0, 0, 0]); // ports 40000 -> 80
        p
    }

    #[test]
    fn a_logged_packet_reads_back() {
        let m = message(&[
            attr(NFULA_PACKET_HDR, &[8, 0, 2, 0]),
            attr(NFULA_PREFIX, b"A pol-in-x 1\0"),
            attr(NFULA_IFINDEX_INDEV, &7u32.to_be_bytes()),
            attr(NFULA_IFINDEX_OUTDEV, &9u32.to_be_bytes()),
            attr(NFULA_PAYLOAD, &ipv4_tcp()),
        ]);
        let mut two = m.clone();
        two.extend(&m);
        let got = parse_datagram(&two);
        assert_eq!(got.len(), 2);
        let Ok(Message::Packet(p)) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(p.prefix, "A pol-in-x 1");
        assert_eq!((p.in_ifindex, p.out_ifindex), (Some(7), Some(9)));
        assert_eq!(p.bytes, 60);
        let t = p.tuple.unwrap();
        assert_eq!(t.src, "10.65.0.10".parse::<IpAddr>().unwrap());
        assert_eq!((t.proto, t.src_port, t.dst_port), (6, 40000, 80));
    }

    #[test]
    fn ipv6_udp_and_icmp_headers() {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend([0, 53, 0x13, 0x88]);
        let (t, bytes) = headers(&p).unwrap();
        assert_eq!((t.proto, t.src_port, t.dst_port, bytes), (17, 53, 5000, 48));
        let mut icmp = ipv4_tcp();
        icmp[9] = 1;
        assert_eq!(headers(&icmp).unwrap().0.src_port, 0);
    }

    #[test]
    fn truncated_and_malformed_input_is_an_error_not_a_panic() {
        let m = message(&[attr(NFULA_PAYLOAD, &ipv4_tcp())]);
        for cut in 0..m.len() {
            let _ = parse_datagram(&m[..cut]);
        }
        let mut bad = m.clone();
        bad[16 + 4] = 200; // attribute longer than the message
        assert_eq!(
            parse_datagram(&bad),
            vec![Err(ParseError("attribute length out of bounds"))]
        );
        let mut short_index = message(&[attr(NFULA_IFINDEX_INDEV, &[1, 2])]);
        short_index.truncate(short_index.len());
        assert!(parse_datagram(&short_index)[0].is_err());
        assert_eq!(headers(&[0x45, 0, 0]), None);
        assert_eq!(headers(&[0x41; 40]), None, "IHL below 20 bytes");
    }
}

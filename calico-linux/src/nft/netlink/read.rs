//! Walking netlink messages and attributes out of a received buffer. Every length is
//! checked and every field read through `get`, so a malformed reply gives a [`WireError`],
//! never a panic.

use super::super::proto::*;
use super::{align4, NFGENMSG_LEN, NLA_HDRLEN, NLMSG_HDRLEN};

/// A reply from the kernel that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink data: {0}")]
pub struct WireError(pub &'static str);

/// The native-endian u16 at `at`, if `buf` holds it.
fn ne_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

/// The native-endian u32 at `at`, if `buf` holds it.
fn ne_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// One received netlink message.
#[derive(Clone, Copy, Debug)]
pub struct Msg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`: in a notification, the port id of the socket whose request caused it
    /// (0 for the kernel itself).
    pub pid: u32,
    /// Everything after the netlink header.
    pub payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// The attributes of an nfnetlink message (after its `nfgenmsg`).
    pub fn nft_attrs(&self) -> Result<Attrs<'a>, WireError> {
        self.payload
            .get(NFGENMSG_LEN..)
            .map(Attrs::new)
            .ok_or(WireError("nfnetlink message shorter than its header"))
    }

    /// For an `NLMSG_ERROR`: the error number (0 for an ACK, negative errno otherwise) and
    /// the kernel's extended-ACK text if any.
    pub fn error(&self) -> Result<(i32, Option<String>), WireError> {
        let code = ne_u32(self.payload, 0).ok_or(WireError("error message without errno"))?;
        let mut text = None;
        if self.flags & NLM_F_ACK_TLVS != 0 {
            // errno, then the original header (capped: header only), then TLVs.
            let orig_len = if self.flags & NLM_F_CAPPED != 0 {
                NLMSG_HDRLEN
            } else {
                let l = ne_u32(self.payload, 4)
                    .ok_or(WireError("error message without original header"))?;
                usize::try_from(l).unwrap_or(usize::MAX)
            };
            let tlvs = align4(orig_len)
                .checked_add(4)
                .and_then(|at| self.payload.get(at..));
            for attr in Attrs::new(tlvs.unwrap_or_default()) {
                let (ty, data) = attr?;
                if ty == NLMSGERR_ATTR_MSG {
                    text = Some(parse_string(data)?);
                }
            }
        }
        Ok((code as i32, text))
    }
}

/// Iterates over the messages of a received buffer. After the first malformed message it
/// yields that error and stops.
pub struct Msgs<'a> {
    rest: &'a [u8],
}

impl<'a> Msgs<'a> {
    /// Messages in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Msgs { rest: buf }
    }

    /// The first message of `rest` and what follows it.
    fn split(rest: &'a [u8]) -> Result<(Msg<'a>, &'a [u8]), WireError> {
        if rest.len() < NLMSG_HDRLEN {
            return Err(WireError("truncated netlink header"));
        }
        let fields = (
            ne_u32(rest, 0),
            ne_u16(rest, 4),
            ne_u16(rest, 6),
            ne_u32(rest, 8),
            ne_u32(rest, 12),
        );
        let (Some(len), Some(ty), Some(flags), Some(seq), Some(pid)) = fields else {
            return Err(WireError("truncated netlink header"));
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len < NLMSG_HDRLEN {
            return Err(WireError("netlink message length out of bounds"));
        }
        let payload = rest
            .get(NLMSG_HDRLEN..len)
            .ok_or(WireError("netlink message length out of bounds"))?;
        let msg = Msg {
            ty,
            flags,
            seq,
            pid,
            payload,
        };
        Ok((msg, rest.get(align4(len)..).unwrap_or_default()))
    }
}

impl<'a> Iterator for Msgs<'a> {
    type Item = Result<Msg<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        walk(&mut self.rest, Msgs::split)
    }
}

/// Iterates over netlink attributes: `(type without flag bits, payload)`. After the first
/// malformed attribute it yields that error and stops.
#[derive(Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Attributes in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { rest: buf }
    }

    /// The first attribute of `rest` and what follows it.
    fn split(rest: &'a [u8]) -> Result<(Attr<'a>, &'a [u8]), WireError> {
        let (Some(len), Some(ty)) = (ne_u16(rest, 0), ne_u16(rest, 2)) else {
            return Err(WireError("truncated attribute header"));
        };
        let len = usize::from(len);
        if len < NLA_HDRLEN {
            return Err(WireError("attribute length out of bounds"));
        }
        let data = rest
            .get(NLA_HDRLEN..len)
            .ok_or(WireError("attribute length out of bounds"))?;
        let ty = ty & NLA_TYPE_MASK;
        Ok(((ty, data), rest.get(align4(len)..).unwrap_or_default()))
    }
}

/// One attribute: its type without flag bits, and its payload.
pub type Attr<'a> = (u16, &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        walk(&mut self.rest, Attrs::split)
    }
}

/// A big-endian u32 payload.
pub fn parse_be32(data: &[u8]) -> Result<u32, WireError> {
    data.try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| WireError("u32 attribute of wrong length"))
}

/// A NUL-terminated (or unterminated) UTF-8 string payload.
pub fn parse_string(data: &[u8]) -> Result<String, WireError> {
    let text = data.split(|b| *b == 0).next().unwrap_or_default();
    std::str::from_utf8(text)
        .map(str::to_string)
        .map_err(|_| WireError("string attribute is not UTF-8"))
}

/// One step of a walk over the bytes left in `rest`: the next item `split` cuts off, or
/// `None` at the end. After the first malformed item the walk yields its error and ends.
fn walk<'a, T>(
    rest: &mut &'a [u8],
    split: impl FnOnce(&'a [u8]) -> Result<(T, &'a [u8]), WireError>,
) -> Option<Result<T, WireError>> {
    if rest.is_empty() {
        return None;
    }
    match split(rest) {
        Ok((item, left)) => {
            *rest = left;
            Some(Ok(item))
        }
        Err(e) => {
            *rest = &[];
            Some(Err(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MsgWriter;
    use super::*;

    fn table_msg() -> Vec<u8> {
        let mut w = MsgWriter::new(1);
        w.begin_nft(NFT_MSG_NEWTABLE, 0);
        w.string(NFTA_TABLE_NAME, "calico");
        w.end();
        w.finish().unwrap().to_vec()
    }

    #[test]
    fn written_messages_parse_back() {
        let mut w = MsgWriter::new(7);
        let seq = w.begin_nft(NFT_MSG_NEWTABLE, NLM_F_CREATE);
        w.string(NFTA_TABLE_NAME, "calico");
        w.nest(NFTA_CHAIN_HOOK);
        w.be32(NFTA_HOOK_HOOKNUM, 2);
        w.end_nest();
        w.end();
        assert_eq!(seq, 7);
        let bytes = w.finish().unwrap();
        let msgs: Vec<_> = Msgs::new(bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].seq, 7);
        assert_eq!(msgs[0].ty, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE);
        let attrs: Vec<_> = msgs[0]
            .nft_attrs()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(attrs[0], (NFTA_TABLE_NAME, &b"calico\0"[..]));
        assert_eq!(attrs[1].0, NFTA_CHAIN_HOOK);
        let hook: Vec<_> = Attrs::new(attrs[1].1).collect::<Result<_, _>>().unwrap();
        assert_eq!(parse_be32(hook[0].1).unwrap(), 2);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = table_msg();
        for cut in 0..bytes.len() {
            for m in Msgs::new(&bytes[..cut]).flatten() {
                if let Ok(attrs) = m.nft_attrs() {
                    attrs.for_each(drop);
                }
                let _ = m.error();
            }
        }
    }

    #[test]
    fn a_truncated_message_header_is_an_error() {
        let bytes = table_msg();
        let got: Vec<_> = Msgs::new(&bytes[..15]).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].as_ref().err(),
            Some(&WireError("truncated netlink header"))
        );
    }

    #[test]
    fn a_message_length_beyond_the_buffer_or_below_the_header_is_an_error() {
        for len in [15u32, 1000, u32::MAX] {
            let mut bytes = table_msg();
            bytes[..4].copy_from_slice(&len.to_ne_bytes());
            let got: Vec<_> = Msgs::new(&bytes).collect();
            assert_eq!(got.len(), 1, "{len}");
            assert_eq!(
                got[0].as_ref().err(),
                Some(&WireError("netlink message length out of bounds"))
            );
        }
    }

    #[test]
    fn a_truncated_attribute_is_an_error() {
        // A header claiming 12 bytes with only 6 present, and a header cut short.
        let got: Vec<_> = Attrs::new(&[12, 0, 1, 0, b'a', b'b']).collect();
        assert_eq!(got, [Err(WireError("attribute length out of bounds"))]);
        let got: Vec<_> = Attrs::new(&[8, 0, 1]).collect();
        assert_eq!(got, [Err(WireError("truncated attribute header"))]);
    }

    #[test]
    fn an_attribute_length_below_its_header_is_an_error_not_a_loop() {
        for len in 0u8..4 {
            let bytes = [len, 0, 1, 0, 0, 0, 0, 0];
            let got: Vec<_> = Attrs::new(&bytes).collect();
            assert_eq!(got, [Err(WireError("attribute length out of bounds"))]);
        }
    }

    #[test]
    fn an_error_message_with_a_huge_original_length_reads_without_tlvs() {
        let mut payload = (-libc::EINVAL).to_ne_bytes().to_vec();
        payload.extend_from_slice(&u32::MAX.to_ne_bytes());
        let msg = Msg {
            ty: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS,
            seq: 1,
            pid: 0,
            payload: &payload,
        };
        assert_eq!(msg.error(), Ok((-libc::EINVAL, None)));
    }

    #[test]
    fn an_error_message_gives_its_extended_ack_text() {
        let mut payload = (-libc::ENOENT).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; NLMSG_HDRLEN]);
        payload.extend_from_slice(&[8, 0, NLMSGERR_ATTR_MSG as u8, 0, b'n', b'o', 0, 0]);
        let msg = Msg {
            ty: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS | NLM_F_CAPPED,
            seq: 1,
            pid: 0,
            payload: &payload,
        };
        assert_eq!(msg.error(), Ok((-libc::ENOENT, Some("no".to_string()))));
        let short = Msg {
            payload: &payload[..3],
            ..msg
        };
        assert_eq!(short.error(), Err(WireError("error message without errno")));
    }
}

//! Netlink framing: building nf_tables messages into one buffer and walking messages and
//! attributes out of a received one. Safe code only; every length is checked, so a
//! malformed reply gives [`WireError`], never a panic.

use super::proto::*;

/// A reply from the kernel that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink data: {0}")]
pub struct WireError(pub &'static str);

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Writes netlink messages back to back into one buffer (an nf_tables batch, or a single
/// request).
#[derive(Debug, Default)]
pub struct MsgWriter {
    buf: Vec<u8>,
    msg_start: Option<usize>,
    last_start: usize,
    nests: Vec<usize>,
    next_seq: u32,
    count: usize,
}

impl MsgWriter {
    /// An empty buffer whose first message gets sequence number `first_seq`.
    pub fn new(first_seq: u32) -> Self {
        MsgWriter {
            next_seq: first_seq,
            ..Default::default()
        }
    }

    /// Starts a message of `subsys << 8 | msg` type; returns its sequence number.
    pub fn begin(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) -> u32 {
        debug_assert!(self.msg_start.is_none(), "message not ended");
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.msg_start = Some(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf
            .extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        seq
    }

    /// Starts an nf_tables message (`NFT_MSG_*`) for the `inet` family.
    pub fn begin_nft(&mut self, msg: u16, flags: u16) -> u32 {
        self.begin((NFNL_SUBSYS_NFTABLES << 8) | msg, flags, NFPROTO_INET, 0)
    }

    /// Ends the current message, fixing its length.
    pub fn end(&mut self) {
        let start = self.msg_start.take().expect("no message begun");
        debug_assert!(self.nests.is_empty(), "nest not ended");
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        self.last_start = start;
        self.count += 1;
    }

    /// Adds `flags` to the last ended message.
    pub fn add_flags_to_last(&mut self, flags: u16) {
        let at = self.last_start + 6;
        let old = u16::from_ne_bytes([self.buf[at], self.buf[at + 1]]);
        self.buf[at..at + 2].copy_from_slice(&(old | flags).to_ne_bytes());
    }

    /// Adds an attribute with a raw payload.
    pub fn bytes(&mut self, ty: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Adds a NUL-terminated string attribute.
    pub fn string(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.bytes(ty, &v);
    }

    /// Adds a big-endian u32 attribute.
    pub fn be32(&mut self, ty: u16, v: u32) {
        self.bytes(ty, &v.to_be_bytes());
    }

    /// Starts a nested attribute.
    pub fn nest(&mut self, ty: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    /// Ends the innermost nested attribute.
    pub fn end_nest(&mut self) {
        let start = self.nests.pop().expect("no nest begun");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Messages written so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The sequence number the next message gets.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Byte length so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
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

    /// For an `NLMSG_ERROR`: the error number (0 for an ACK, negative errno otherwise), the
    /// sequence number of the message it answers, and the kernel's extended-ACK text if any.
    pub fn error(&self) -> Result<(i32, Option<String>), WireError> {
        let code = self
            .payload
            .get(..4)
            .ok_or(WireError("error message without errno"))?;
        let code = i32::from_ne_bytes(code.try_into().unwrap());
        let mut text = None;
        if self.flags & NLM_F_ACK_TLVS != 0 {
            // errno, then the original header (capped: header only), then TLVs.
            let orig_len = if self.flags & NLM_F_CAPPED != 0 {
                NLMSG_HDRLEN
            } else {
                let l = self
                    .payload
                    .get(4..8)
                    .ok_or(WireError("error message without original header"))?;
                u32::from_ne_bytes(l.try_into().unwrap()) as usize
            };
            if let Some(tlvs) = self.payload.get(4 + align4(orig_len)..) {
                for attr in Attrs::new(tlvs) {
                    let (ty, data) = attr?;
                    if ty == NLMSGERR_ATTR_MSG {
                        text = Some(parse_string(data)?);
                    }
                }
            }
        }
        Ok((code, text))
    }
}

/// Iterates over the messages of a received buffer.
pub struct Msgs<'a> {
    rest: &'a [u8],
}

impl<'a> Msgs<'a> {
    /// Messages in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Msgs { rest: buf }
    }
}

impl<'a> Iterator for Msgs<'a> {
    type Item = Result<Msg<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parse = |rest: &'a [u8]| -> Result<(Msg<'a>, &'a [u8]), WireError> {
            if rest.len() < NLMSG_HDRLEN {
                return Err(WireError("truncated netlink header"));
            }
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            if len < NLMSG_HDRLEN || len > rest.len() {
                return Err(WireError("netlink message length out of bounds"));
            }
            let msg = Msg {
                ty: u16::from_ne_bytes(rest[4..6].try_into().unwrap()),
                flags: u16::from_ne_bytes(rest[6..8].try_into().unwrap()),
                seq: u32::from_ne_bytes(rest[8..12].try_into().unwrap()),
                payload: &rest[NLMSG_HDRLEN..len],
            };
            Ok((msg, rest.get(align4(len)..).unwrap_or(&[])))
        };
        match parse(self.rest) {
            Ok((msg, rest)) => {
                self.rest = rest;
                Some(Ok(msg))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Iterates over netlink attributes: `(type without flag bits, payload)`.
#[derive(Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Attributes in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < 4 {
            self.rest = &[];
            return Some(Err(WireError("truncated attribute header")));
        }
        let len = u16::from_ne_bytes(self.rest[0..2].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes(self.rest[2..4].try_into().unwrap()) & 0x3fff;
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(WireError("attribute length out of bounds")));
        }
        let data = &self.rest[4..len];
        self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((ty, data)))
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
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    std::str::from_utf8(&data[..end])
        .map(str::to_string)
        .map_err(|_| WireError("string attribute is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let msgs: Vec<_> = Msgs::new(w.as_bytes()).collect::<Result<_, _>>().unwrap();
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
        let mut w = MsgWriter::new(1);
        w.begin_nft(NFT_MSG_NEWTABLE, 0);
        w.string(NFTA_TABLE_NAME, "calico");
        w.end();
        let bytes = w.as_bytes();
        for cut in 0..bytes.len() {
            for m in Msgs::new(&bytes[..cut]).flatten() {
                if let Ok(attrs) = m.nft_attrs() {
                    attrs.for_each(drop);
                }
                let _ = m.error();
            }
        }
    }
}

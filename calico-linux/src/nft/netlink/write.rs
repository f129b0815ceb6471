//! Writing netlink messages back to back into one buffer (an nf_tables batch, or a single
//! request).
//!
//! The writer never panics. A length that does not fit its header field (an attribute or a
//! nest over 64 KiB, a message over 4 GiB) or a misplaced begin/end is recorded as an
//! [`EncodeError`]; the first one sticks, later writes are ignored, and
//! [`MsgWriter::finish`] reports it instead of handing out a corrupt buffer.

use super::super::proto::*;
use super::{align4, NLA_HDRLEN};

/// Why a batch could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// An attribute (or a nest of attributes) longer than its 16-bit length field allows.
    #[error("netlink attribute type {ty} of {len} bytes is longer than 65535 bytes")]
    AttributeTooLong {
        /// The attribute type (without flag bits).
        ty: u16,
        /// Its length with header, in bytes.
        len: usize,
    },
    /// A message longer than its 32-bit length field allows.
    #[error("netlink message of {len} bytes is longer than 4 GiB")]
    MessageTooLong {
        /// Its length with header, in bytes.
        len: usize,
    },
    /// Messages or nests begun and ended out of order (a bug in the caller).
    #[error("netlink writer used out of order: {0}")]
    Unbalanced(&'static str),
}

/// Writes netlink messages back to back into one buffer.
#[derive(Debug, Default)]
pub struct MsgWriter {
    buf: Vec<u8>,
    msg_start: Option<usize>,
    last_start: Option<usize>,
    nests: Vec<(usize, u16)>,
    next_seq: u32,
    count: usize,
    error: Option<EncodeError>,
}

impl MsgWriter {
    /// An empty buffer whose first message gets sequence number `first_seq`.
    pub fn new(first_seq: u32) -> Self {
        MsgWriter {
            next_seq: first_seq,
            ..Default::default()
        }
    }

    fn fail(&mut self, e: EncodeError) {
        self.error.get_or_insert(e);
    }

    fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Starts a message of `subsys << 8 | msg` type; returns its sequence number.
    pub fn begin(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        if self.msg_start.is_some() {
            self.fail(EncodeError::Unbalanced(
                "message begun before the last one ended",
            ));
        }
        if self.failed() {
            return seq;
        }
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
        if self.failed() {
            return;
        }
        let Some(start) = self.msg_start.take() else {
            return self.fail(EncodeError::Unbalanced("message ended but never begun"));
        };
        if !self.nests.is_empty() {
            return self.fail(EncodeError::Unbalanced("message ended inside a nest"));
        }
        let len = self.buf.len() - start;
        let Ok(len32) = u32::try_from(len) else {
            return self.fail(EncodeError::MessageTooLong { len });
        };
        self.patch(start, &len32.to_ne_bytes());
        self.last_start = Some(start);
        self.count += 1;
    }

    /// Adds `flags` to the last ended message.
    pub fn add_flags_to_last(&mut self, flags: u16) {
        let Some(at) = self.last_start.map(|s| s + 6) else {
            return self.fail(EncodeError::Unbalanced("flags added before any message"));
        };
        if let Some(&[a, b]) = self.buf.get(at..at + 2) {
            let old = u16::from_ne_bytes([a, b]);
            self.patch(at, &(old | flags).to_ne_bytes());
        }
    }

    /// Overwrites bytes written earlier (a length or flags field).
    fn patch(&mut self, at: usize, bytes: &[u8]) {
        if let Some(field) = self.buf.get_mut(at..at + bytes.len()) {
            field.copy_from_slice(bytes);
        }
    }

    /// Adds an attribute with a raw payload.
    pub fn bytes(&mut self, ty: u16, payload: &[u8]) {
        if self.failed() {
            return;
        }
        let len = NLA_HDRLEN + payload.len();
        let Ok(len16) = u16::try_from(len) else {
            return self.fail(EncodeError::AttributeTooLong { ty, len });
        };
        self.buf.extend_from_slice(&len16.to_ne_bytes());
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
        if self.failed() {
            return;
        }
        self.nests.push((self.buf.len(), ty));
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    /// Ends the innermost nested attribute, fixing its length.
    pub fn end_nest(&mut self) {
        if self.failed() {
            return;
        }
        let Some((start, ty)) = self.nests.pop() else {
            return self.fail(EncodeError::Unbalanced("nest ended but never begun"));
        };
        let len = self.buf.len() - start;
        let Ok(len16) = u16::try_from(len) else {
            return self.fail(EncodeError::AttributeTooLong { ty, len });
        };
        self.patch(start, &len16.to_ne_bytes());
    }

    /// Messages written so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The sequence number the next message gets.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Byte length so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The bytes written, or the first encoding error (also when a message or a nest is
    /// still open).
    pub fn finish(&self) -> Result<&[u8], EncodeError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.msg_start.is_some() || !self.nests.is_empty() {
            return Err(EncodeError::Unbalanced("message or nest left open"));
        }
        Ok(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attribute_over_64_kib_is_an_error_not_a_wrapped_length() {
        let mut w = MsgWriter::new(1);
        w.begin_nft(NFT_MSG_NEWTABLE, 0);
        w.bytes(NFTA_TABLE_NAME, &vec![0; usize::from(u16::MAX) - 3]);
        w.end();
        assert_eq!(
            w.finish(),
            Err(EncodeError::AttributeTooLong {
                ty: NFTA_TABLE_NAME,
                len: 65536
            })
        );
    }

    #[test]
    fn the_largest_attribute_fits() {
        let mut w = MsgWriter::new(1);
        w.begin_nft(NFT_MSG_NEWTABLE, 0);
        w.bytes(NFTA_TABLE_NAME, &vec![0; usize::from(u16::MAX) - 4]);
        w.end();
        assert!(w.finish().is_ok());
    }

    #[test]
    fn a_nest_over_64_kib_is_an_error_not_a_wrapped_length() {
        let mut w = MsgWriter::new(1);
        w.begin_nft(NFT_MSG_NEWSETELEM, 0);
        w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        for _ in 0..700 {
            w.bytes(NFTA_LIST_ELEM, &[0; 96]);
        }
        w.end_nest();
        w.end();
        assert_eq!(
            w.finish(),
            Err(EncodeError::AttributeTooLong {
                ty: NFTA_SET_ELEM_LIST_ELEMENTS,
                len: 4 + 700 * 100
            })
        );
    }

    #[test]
    fn out_of_order_use_is_an_error_not_a_panic() {
        let mut w = MsgWriter::new(1);
        w.end();
        assert!(matches!(w.finish(), Err(EncodeError::Unbalanced(_))));

        let mut w = MsgWriter::new(1);
        w.begin_nft(NFT_MSG_NEWTABLE, 0);
        w.end_nest();
        assert!(matches!(w.finish(), Err(EncodeError::Unbalanced(_))));

        let mut w = MsgWriter::new(1);
        w.add_flags_to_last(NLM_F_ACK);
        assert!(matches!(w.finish(), Err(EncodeError::Unbalanced(_))));

        let mut w = MsgWriter::new(1);
        w.begin_nft(NFT_MSG_NEWTABLE, 0);
        w.begin_nft(NFT_MSG_NEWTABLE, 0);
        assert!(matches!(w.finish(), Err(EncodeError::Unbalanced(_))));

        let mut w = MsgWriter::new(1);
        w.begin_nft(NFT_MSG_NEWTABLE, 0);
        w.nest(NFTA_CHAIN_HOOK);
        assert!(matches!(w.finish(), Err(EncodeError::Unbalanced(_))));
    }
}

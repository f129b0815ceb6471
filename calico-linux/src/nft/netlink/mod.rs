//! Netlink framing: building nf_tables messages into one buffer ([`write`]) and walking
//! messages and attributes out of a received one ([`read`]). Safe code only, and neither
//! side can panic: a malformed reply gives a [`WireError`], a length that does not fit its
//! field gives an [`EncodeError`].

mod read;
mod write;

pub use read::{parse_be32, parse_string, Attrs, Msg, Msgs, WireError};
pub use write::{EncodeError, MsgWriter};

/// Bytes of a netlink message header (`struct nlmsghdr`).
const NLMSG_HDRLEN: usize = 16;
/// Bytes of an nfnetlink header (`struct nfgenmsg`).
const NFGENMSG_LEN: usize = 4;
/// Bytes of an attribute header (`struct nlattr`).
const NLA_HDRLEN: usize = 4;

/// `n` rounded up to netlink's 4-byte alignment (saturating, so it cannot overflow).
fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

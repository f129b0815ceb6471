//! The BGP-4 wire format (RFC 4271 and extensions): every message as a typed value, decoded
//! totally (any bytes give a message or a [`DecodeError`] naming the NOTIFICATION it calls
//! for, never a panic) and encoded back.
//!
//! Only the bytes live here: the session state machine is in [`crate::session`] and route
//! selection in [`crate::rib`].
//!
//! ```
//! use calico_bgp::packet::{decode, Context, Message};
//! let keepalive = Message::Keepalive.encode(&Context::default()).unwrap();
//! assert_eq!(keepalive.len(), 19);
//! assert_eq!(decode(&keepalive, &Context::default()).unwrap(), Message::Keepalive);
//! ```

pub mod attribute;
pub(crate) mod cursor;
pub mod error;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod update;

pub use attribute::{
    Aggregator, AsPath, MpNextHop, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute,
    Segment, SegmentKind,
};
pub use error::{AttributeError, DecodeError, EncodeError, ErrorAction};
pub use nlri::AddPathFamilies;
pub use notification::{ErrorCode, Notification};
pub use open::{AddPathFamily, AfiSafi, Capability, Open, AS_TRANS};
pub use update::Update;

/// Length of the message header.
pub const HEADER_LEN: usize = 19;
/// Largest message (RFC 4271 without RFC 8654 extended messages).
pub const MAX_LEN: usize = 4096;

/// What the session negotiated that changes the encoding, in one direction (ADD-PATH may
/// be negotiated one way only, RFC 7911 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// Both sides advertised the 4-octet AS capability: AS numbers in AS_PATH and
    /// AGGREGATOR are 4 bytes.
    pub four_octet_as: bool,
    /// Families whose NLRI carry a 4-octet Path Identifier in this direction (RFC 7911).
    pub add_path: AddPathFamilies,
}

impl Context {
    /// The encoding of a session that negotiated 4-octet AS numbers (or not) and no
    /// ADD-PATH.
    pub const fn plain(four_octet_as: bool) -> Context {
        Context {
            four_octet_as,
            add_path: AddPathFamilies::NONE,
        }
    }
}

impl Default for Context {
    /// The encoding every session starts with and 4-byte-AS peers negotiate.
    fn default() -> Self {
        Context::plain(true)
    }
}

/// A ROUTE-REFRESH message (RFC 2918).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to resend.
    pub family: AfiSafi,
    /// The reserved octet (the subtype of RFC 7313).
    pub subtype: u8,
}

/// A BGP message.
// UPDATE dominates traffic; boxing it would add an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN (type 1).
    Open(Open),
    /// UPDATE (type 2).
    Update(Update),
    /// NOTIFICATION (type 3).
    Notification(Notification),
    /// KEEPALIVE (type 4).
    Keepalive,
    /// ROUTE-REFRESH (type 5).
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type code.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Open(_) => 1,
            Message::Update(_) => 2,
            Message::Notification(_) => 3,
            Message::Keepalive => 4,
            Message::RouteRefresh(_) => 5,
        }
    }

    /// Encodes the message with its header.
    pub fn encode(&self, ctx: &Context) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(ctx, &mut out)?;
        Ok(out)
    }

    /// Appends the encoded message to `out` (left unchanged on error).
    pub fn encode_into(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0xff; 16]);
        out.extend_from_slice(&[0, 0, self.kind()]);
        let result = match self {
            Message::Open(open) => open.encode(out),
            Message::Update(update) => update.encode(ctx, out),
            Message::Notification(n) => {
                let (code, subcode) = n.code.octets();
                out.push(code);
                out.push(subcode);
                out.extend_from_slice(&n.data);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(r) => {
                out.extend_from_slice(&r.family.afi.to_be_bytes());
                out.push(r.subtype);
                out.push(r.family.safi);
                Ok(())
            }
        };
        let len = out.len() - start;
        let length = result.and_then(|()| match u16::try_from(len) {
            Ok(length) if len <= MAX_LEN => Ok(length),
            _ => Err(EncodeError::TooLong(len)),
        });
        match length {
            Ok(length) => {
                // The header's length field, written above.
                if let Some(field) = out.get_mut(start + 16..start + 18) {
                    field.copy_from_slice(&length.to_be_bytes());
                }
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }
}

/// Checks a message header and returns the whole message's length (to read the body).
pub fn header_length(header: &[u8; HEADER_LEN]) -> Result<usize, DecodeError> {
    if header[..16].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::NotSynchronized);
    }
    let length = u16::from_be_bytes([header[16], header[17]]);
    let kind = header[18];
    let min = match kind {
        1 => 29,
        2 => 23,
        3 => 21,
        4 => 19,
        5 => 23,
        _ => return Err(DecodeError::BadType(kind)),
    };
    let ok = match kind {
        4 | 5 => usize::from(length) == min,
        _ => usize::from(length) >= min && usize::from(length) <= MAX_LEN,
    };
    if !ok {
        return Err(DecodeError::BadLength { length, kind });
    }
    Ok(usize::from(length))
}

/// Decodes exactly one message from `bytes` (header included).
pub fn decode(bytes: &[u8], ctx: &Context) -> Result<Message, DecodeError> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::BadLength {
            length: saturating_u16(bytes.len()),
            kind: bytes.get(18).copied().unwrap_or(0),
        });
    };
    let len = header_length(header)?;
    if len != bytes.len() {
        return Err(DecodeError::BadLength {
            length: saturating_u16(len),
            kind: header[18],
        });
    }
    decode_body(header[18], &bytes[HEADER_LEN..], ctx)
}

/// Decodes a message body of type `kind` (the header already checked by
/// [`header_length`]).
pub fn decode_body(kind: u8, body: &[u8], ctx: &Context) -> Result<Message, DecodeError> {
    match kind {
        1 => Ok(Message::Open(Open::decode(body)?)),
        2 => Ok(Message::Update(Update::decode(body, ctx)?)),
        3 => match body {
            [code, subcode, data @ ..] => Ok(Message::Notification(Notification {
                code: ErrorCode::from_octets(*code, *subcode),
                data: data.to_vec(),
            })),
            _ => Err(DecodeError::ShortNotification(body.len())),
        },
        4 if body.is_empty() => Ok(Message::Keepalive),
        5 => match body {
            [a, b, subtype, safi] => Ok(Message::RouteRefresh(RouteRefresh {
                family: AfiSafi {
                    afi: u16::from_be_bytes([*a, *b]),
                    safi: *safi,
                },
                subtype: *subtype,
            })),
            _ => Err(DecodeError::BadRouteRefreshLength(body.len())),
        },
        4 => Err(DecodeError::BadLength {
            length: saturating_u16(body.len() + HEADER_LEN),
            kind,
        }),
        _ => Err(DecodeError::BadType(kind)),
    }
}

/// A length as the 16-bit field of an error report, `u16::MAX` when longer.
fn saturating_u16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

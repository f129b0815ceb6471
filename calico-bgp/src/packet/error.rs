//! Why bytes from a peer are not a BGP message, and which NOTIFICATION that calls for.

use super::notification::{
    ErrorCode, HeaderSubcode, Notification, OpenSubcode, RouteRefreshSubcode, UpdateSubcode,
};

/// A message that cannot be accepted; the session is to be closed with
/// [`DecodeError::notification`].
///
/// Errors that RFC 7606 allows to handle without closing the session (treat-as-withdraw,
/// attribute-discard) are not `DecodeError`s: they are reported in
/// [`crate::packet::Update::errors`] as [`AttributeError`]s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The header marker is not sixteen 0xff octets.
    #[error("header: marker is not all ones (connection not synchronized)")]
    NotSynchronized,
    /// The header length is out of range for the message type, or disagrees with the bytes.
    #[error("header: length {length} is invalid for message type {kind}")]
    BadLength {
        /// The length field.
        length: u16,
        /// The type field.
        kind: u8,
    },
    /// The header type names no message.
    #[error("header: unknown message type {0}")]
    BadType(u8),
    /// OPEN version is not 4.
    #[error("OPEN: unsupported version {0}")]
    UnsupportedVersion(u8),
    /// OPEN hold time of 1 or 2 seconds.
    #[error("OPEN: hold time {0} s is not acceptable (0 or at least 3)")]
    UnacceptableHoldTime(u16),
    /// OPEN BGP identifier is not acceptable.
    #[error("OPEN: BGP identifier {0} is not acceptable")]
    BadBgpIdentifier(std::net::Ipv4Addr),
    /// An OPEN optional parameter other than capabilities.
    #[error("OPEN: unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// An OPEN field that is malformed.
    #[error("OPEN: {field}: {reason}")]
    MalformedOpen {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// UPDATE lengths that do not add up.
    #[error("UPDATE: malformed attribute list: {0}")]
    MalformedAttributeList(String),
    /// A well-known attribute this speaker does not know.
    #[error("UPDATE: unrecognized well-known attribute type {type_code}")]
    UnrecognizedWellKnown {
        /// Its type code.
        type_code: u8,
        /// The whole attribute as it came (flags, type, length, value): RFC 4271 §6.3 puts
        /// it in the NOTIFICATION's data.
        attribute: Vec<u8>,
    },
    /// A malformed MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 7606 §7.3: session reset).
    #[error("UPDATE: {attribute}: {reason}")]
    MalformedMultiprotocol {
        /// `MP_REACH_NLRI` or `MP_UNREACH_NLRI`.
        attribute: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Malformed withdrawn routes or NLRI.
    #[error("UPDATE: {field}: {reason}")]
    InvalidNetworkField {
        /// `withdrawn routes` or `NLRI`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A NOTIFICATION shorter than its code and subcode.
    #[error("NOTIFICATION: body of {0} bytes is shorter than code and subcode")]
    ShortNotification(usize),
    /// A ROUTE-REFRESH of the wrong length.
    #[error("ROUTE-REFRESH: body length {0} is not 4")]
    BadRouteRefreshLength(usize),
}

impl DecodeError {
    /// The error code and subcode of the NOTIFICATION this error calls for (RFC 4271 §6).
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::NotSynchronized => {
                ErrorCode::MessageHeader(HeaderSubcode::ConnectionNotSynchronized)
            }
            DecodeError::BadLength { .. } | DecodeError::ShortNotification(_) => {
                ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength)
            }
            DecodeError::BadType(_) => ErrorCode::MessageHeader(HeaderSubcode::BadMessageType),
            DecodeError::UnsupportedVersion(_) => {
                ErrorCode::OpenMessage(OpenSubcode::UnsupportedVersionNumber)
            }
            DecodeError::UnacceptableHoldTime(_) => {
                ErrorCode::OpenMessage(OpenSubcode::UnacceptableHoldTime)
            }
            DecodeError::BadBgpIdentifier(_) => {
                ErrorCode::OpenMessage(OpenSubcode::BadBgpIdentifier)
            }
            DecodeError::UnsupportedOptionalParameter(_) => {
                ErrorCode::OpenMessage(OpenSubcode::UnsupportedOptionalParameter)
            }
            DecodeError::MalformedOpen { .. } => ErrorCode::OpenMessage(OpenSubcode::Unspecific),
            DecodeError::MalformedAttributeList(_) => {
                ErrorCode::UpdateMessage(UpdateSubcode::MalformedAttributeList)
            }
            DecodeError::UnrecognizedWellKnown { .. } => {
                ErrorCode::UpdateMessage(UpdateSubcode::UnrecognizedWellKnownAttribute)
            }
            DecodeError::MalformedMultiprotocol { .. } => {
                ErrorCode::UpdateMessage(UpdateSubcode::OptionalAttributeError)
            }
            DecodeError::InvalidNetworkField { .. } => {
                ErrorCode::UpdateMessage(UpdateSubcode::InvalidNetworkField)
            }
            DecodeError::BadRouteRefreshLength(_) => {
                ErrorCode::RouteRefresh(RouteRefreshSubcode::InvalidMessageLength)
            }
        }
    }

    /// The NOTIFICATION to send before closing, with the diagnostic data RFC 4271 asks for
    /// where this error knows it.
    pub fn notification(&self) -> Notification {
        let data = match self {
            DecodeError::BadLength { length, .. } => length.to_be_bytes().to_vec(),
            DecodeError::BadType(kind) => vec![*kind],
            DecodeError::UnsupportedVersion(_) => 4u16.to_be_bytes().to_vec(),
            DecodeError::UnrecognizedWellKnown { attribute, .. } => attribute.clone(),
            _ => Vec::new(),
        };
        Notification {
            code: self.code(),
            data,
        }
    }
}

/// What RFC 7606 says to do with an UPDATE whose attribute is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorAction {
    /// The UPDATE's NLRI are handled as withdrawn (RFC 7606 §2).
    TreatAsWithdraw,
    /// The attribute is dropped and the UPDATE otherwise used (RFC 7606 §2).
    AttributeDiscard,
}

/// A malformed path attribute handled without closing the session (RFC 7606).
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("attribute {type_code}: {reason} ({action:?})")]
pub struct AttributeError {
    /// The attribute type code (0 when the attribute header itself is unreadable).
    pub type_code: u8,
    /// What to do about it.
    pub action: ErrorAction,
    /// What is wrong.
    pub reason: String,
    /// The error code it would map to if the session were reset instead.
    pub code: ErrorCode,
}

/// A message that cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message exceeds the 4096-byte limit of RFC 4271.
    #[error("message of {0} bytes exceeds 4096")]
    TooLong(usize),
    /// A field that does not fit its wire encoding.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

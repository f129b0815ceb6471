//! NOTIFICATION messages (RFC 4271 §4.5) and their error codes and subcodes (RFC 4271 §6,
//! RFC 4486 Cease subcodes, RFC 6608 FSM subcodes, RFC 7313 ROUTE-REFRESH subcodes).

use std::fmt;

/// Defines a subcode enum over `u8` with named values and an `Other` catch-all, so that every
/// byte round-trips.
macro_rules! subcode_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A subcode this implementation does not name.
            Other(u8),
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                match value {
                    $($value => Self::$variant,)*
                    other => Self::Other(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                match value {
                    $($name::$variant => $value,)*
                    $name::Other(other) => other,
                }
            }
        }
    };
}

subcode_enum! {
    /// Message Header Error subcodes (code 1).
    HeaderSubcode {
        /// No subcode given.
        Unspecific = 0,
        /// The marker was not all ones.
        ConnectionNotSynchronized = 1,
        /// The length field is out of range for the message type.
        BadMessageLength = 2,
        /// The type field names no known message.
        BadMessageType = 3,
    }
}

subcode_enum! {
    /// OPEN Message Error subcodes (code 2).
    OpenSubcode {
        /// No subcode given.
        Unspecific = 0,
        /// Version other than 4.
        UnsupportedVersionNumber = 1,
        /// The peer's AS is not the one configured.
        BadPeerAs = 2,
        /// The BGP identifier is not acceptable.
        BadBgpIdentifier = 3,
        /// An optional parameter is not understood.
        UnsupportedOptionalParameter = 4,
        /// Hold time of 1 or 2 seconds, or otherwise refused.
        UnacceptableHoldTime = 6,
        /// A required capability is missing (RFC 5492).
        UnsupportedCapability = 7,
    }
}

subcode_enum! {
    /// UPDATE Message Error subcodes (code 3).
    UpdateSubcode {
        /// No subcode given.
        Unspecific = 0,
        /// Lengths do not add up, or an attribute appears twice where that is fatal.
        MalformedAttributeList = 1,
        /// A well-known attribute this speaker does not know.
        UnrecognizedWellKnownAttribute = 2,
        /// A mandatory well-known attribute is missing.
        MissingWellKnownAttribute = 3,
        /// Attribute flags conflict with the attribute type.
        AttributeFlagsError = 4,
        /// Attribute length is wrong for its type.
        AttributeLengthError = 5,
        /// ORIGIN has an undefined value.
        InvalidOriginAttribute = 6,
        /// NEXT_HOP is not a usable address.
        InvalidNextHopAttribute = 8,
        /// An optional attribute is malformed.
        OptionalAttributeError = 9,
        /// The NLRI field is malformed.
        InvalidNetworkField = 10,
        /// AS_PATH is malformed.
        MalformedAsPath = 11,
    }
}

subcode_enum! {
    /// Finite State Machine Error subcodes (code 5, RFC 6608).
    FsmSubcode {
        /// No subcode given.
        Unspecified = 0,
        /// Unexpected message in OpenSent.
        UnexpectedMessageInOpenSent = 1,
        /// Unexpected message in OpenConfirm.
        UnexpectedMessageInOpenConfirm = 2,
        /// Unexpected message in Established.
        UnexpectedMessageInEstablished = 3,
    }
}

subcode_enum! {
    /// Cease subcodes (code 6, RFC 4486).
    CeaseSubcode {
        /// No subcode given.
        Unspecific = 0,
        /// Too many prefixes received.
        MaximumNumberOfPrefixesReached = 1,
        /// The operator shut the session down.
        AdministrativeShutdown = 2,
        /// The peer was removed from the configuration.
        PeerDeconfigured = 3,
        /// The operator reset the session.
        AdministrativeReset = 4,
        /// The connection was refused (unknown peer).
        ConnectionRejected = 5,
        /// Other configuration change (e.g. our AS).
        OtherConfigurationChange = 6,
        /// Closed by connection collision resolution.
        ConnectionCollisionResolution = 7,
        /// Out of resources.
        OutOfResources = 8,
        /// The peering's BFD session went down (RFC 9384).
        BfdDown = 10,
    }
}

subcode_enum! {
    /// ROUTE-REFRESH Message Error subcodes (code 7, RFC 7313).
    RouteRefreshSubcode {
        /// No subcode given.
        Reserved = 0,
        /// A ROUTE-REFRESH of the wrong length.
        InvalidMessageLength = 1,
    }
}

/// A NOTIFICATION error code with its subcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader(HeaderSubcode),
    /// 2: OPEN Message Error.
    OpenMessage(OpenSubcode),
    /// 3: UPDATE Message Error.
    UpdateMessage(UpdateSubcode),
    /// 4: Hold Timer Expired (subcode 0).
    HoldTimerExpired,
    /// 5: Finite State Machine Error.
    FiniteStateMachine(FsmSubcode),
    /// 6: Cease.
    Cease(CeaseSubcode),
    /// 7: ROUTE-REFRESH Message Error.
    RouteRefresh(RouteRefreshSubcode),
    /// A code (or Hold Timer Expired with a non-zero subcode) this implementation does not
    /// name.
    Unknown {
        /// The error code.
        code: u8,
        /// The subcode.
        subcode: u8,
    },
}

impl ErrorCode {
    /// Builds the code from its two octets.
    pub fn from_octets(code: u8, subcode: u8) -> ErrorCode {
        match code {
            1 => ErrorCode::MessageHeader(subcode.into()),
            2 => ErrorCode::OpenMessage(subcode.into()),
            3 => ErrorCode::UpdateMessage(subcode.into()),
            4 if subcode == 0 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::FiniteStateMachine(subcode.into()),
            6 => ErrorCode::Cease(subcode.into()),
            7 => ErrorCode::RouteRefresh(subcode.into()),
            _ => ErrorCode::Unknown { code, subcode },
        }
    }

    /// The code and subcode octets.
    pub fn octets(self) -> (u8, u8) {
        match self {
            ErrorCode::MessageHeader(s) => (1, s.into()),
            ErrorCode::OpenMessage(s) => (2, s.into()),
            ErrorCode::UpdateMessage(s) => (3, s.into()),
            ErrorCode::HoldTimerExpired => (4, 0),
            ErrorCode::FiniteStateMachine(s) => (5, s.into()),
            ErrorCode::Cease(s) => (6, s.into()),
            ErrorCode::RouteRefresh(s) => (7, s.into()),
            ErrorCode::Unknown { code, subcode } => (code, subcode),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, subcode) = self.octets();
        match self {
            ErrorCode::MessageHeader(s) => write!(f, "message header error: {s:?}"),
            ErrorCode::OpenMessage(s) => write!(f, "OPEN message error: {s:?}"),
            ErrorCode::UpdateMessage(s) => write!(f, "UPDATE message error: {s:?}"),
            ErrorCode::HoldTimerExpired => write!(f, "hold timer expired"),
            ErrorCode::FiniteStateMachine(s) => write!(f, "FSM error: {s:?}"),
            ErrorCode::Cease(s) => write!(f, "cease: {s:?}"),
            ErrorCode::RouteRefresh(s) => write!(f, "ROUTE-REFRESH error: {s:?}"),
            ErrorCode::Unknown { .. } => write!(f, "error code {code} subcode {subcode}"),
        }
    }
}

/// A NOTIFICATION message: the error that closes the session, with its diagnostic data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code and subcode.
    pub code: ErrorCode,
    /// Diagnostic data (e.g. the offending attribute).
    pub data: Vec<u8>,
}

impl Notification {
    /// A notification without data.
    pub fn new(code: ErrorCode) -> Notification {
        Notification {
            code,
            data: Vec::new(),
        }
    }

    /// A Cease notification with the given subcode.
    pub fn cease(subcode: CeaseSubcode) -> Notification {
        Notification::new(ErrorCode::Cease(subcode))
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.data.is_empty() {
            write!(f, " (data {} bytes)", self.data.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_pair_round_trips() {
        for code in 0..=255u8 {
            for subcode in 0..=255u8 {
                let c = ErrorCode::from_octets(code, subcode);
                assert_eq!(c.octets(), (code, subcode));
            }
        }
    }

    #[test]
    fn named_subcodes_decode_to_names() {
        assert_eq!(
            ErrorCode::from_octets(6, 7),
            ErrorCode::Cease(CeaseSubcode::ConnectionCollisionResolution)
        );
        assert_eq!(
            ErrorCode::from_octets(2, 6),
            ErrorCode::OpenMessage(OpenSubcode::UnacceptableHoldTime)
        );
        assert_eq!(
            ErrorCode::from_octets(4, 1),
            ErrorCode::Unknown {
                code: 4,
                subcode: 1
            }
        );
    }
}

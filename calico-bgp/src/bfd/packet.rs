//! The BFD Control packet (RFC 5880 §4.1), decoded with the reception checks of §6.8.6 that
//! need no session state, and encoded back.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! [ Auth Type | Auth Len | Authentication Data ... ]
//! ```
//!
//! Intervals are in microseconds on the wire. The authentication section (the A bit,
//! §4.2–4.4) is parsed and written here as [`AuthSection`]; keys, digests and sequence
//! numbers are [`super::auth`]'s. [`ControlPacket::decode`] refuses an authenticated packet
//! ([`BfdPacketError::Authenticated`]), as §6.8.6 requires of a session without
//! authentication; [`ControlPacket::decode_authenticated`] hands the section over.
//!
//! ```text
//!  Simple Password (type 1):  |Auth Type|Auth Len|Key ID| Password (1-16 bytes) ...
//!  Keyed MD5/SHA1 (types 2-5): |Auth Type|Auth Len|Key ID|Reserved|
//!                             |          Sequence Number          |
//!                             |  Digest (16 bytes MD5, 20 SHA-1)  |
//! ```

use std::fmt;
use std::time::Duration;

use calico_core::dataplane::BfdAuthType;

use crate::packet::cursor::Cursor;

/// Length of a Control packet without authentication.
pub const PACKET_LEN: usize = 24;

/// The only version defined (RFC 5880).
pub const VERSION: u8 = 1;

/// A session state as carried in the `Sta` field (RFC 5880 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Held down by an operator.
    AdminDown,
    /// Down, or never up.
    Down,
    /// The peer is heard; waiting for it to hear us.
    Init,
    /// Both ends hear each other.
    Up,
}

impl State {
    fn from_bits(bits: u8) -> State {
        match bits & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why a session last went down (the `Diag` field, RFC 5880 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0: no diagnostic.
    None,
    /// 1: Control Detection Time Expired.
    DetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborDown,
    /// 4: Forwarding Plane Reset.
    ForwardingReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdminDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// 9–31: reserved values, kept as received.
    Reserved(u8),
}

impl Diagnostic {
    fn from_bits(bits: u8) -> Diagnostic {
        match bits & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::DetectionTimeExpired,
            2 => Diagnostic::EchoFailed,
            3 => Diagnostic::NeighborDown,
            4 => Diagnostic::ForwardingReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdminDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            other => Diagnostic::Reserved(other),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::DetectionTimeExpired => 1,
            Diagnostic::EchoFailed => 2,
            Diagnostic::NeighborDown => 3,
            Diagnostic::ForwardingReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdminDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(b) => b & 0x1f,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::None => f.write_str("no diagnostic"),
            Diagnostic::DetectionTimeExpired => f.write_str("control detection time expired"),
            Diagnostic::EchoFailed => f.write_str("echo function failed"),
            Diagnostic::NeighborDown => f.write_str("neighbor signaled session down"),
            Diagnostic::ForwardingReset => f.write_str("forwarding plane reset"),
            Diagnostic::PathDown => f.write_str("path down"),
            Diagnostic::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diagnostic::AdminDown => f.write_str("administratively down"),
            Diagnostic::ReverseConcatenatedPathDown => {
                f.write_str("reverse concatenated path down")
            }
            Diagnostic::Reserved(b) => write!(f, "reserved diagnostic {b}"),
        }
    }
}

/// A BFD Control packet, as sent in asynchronous mode (no demand, no multipoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    /// Why the sender's session last went down.
    pub diag: Diagnostic,
    /// The sender's session state.
    pub state: State,
    /// Poll: the sender asks for a packet with Final (a parameter changed).
    pub poll: bool,
    /// Final: the answer to a Poll.
    pub final_: bool,
    /// Control Plane Independent (the sender's BFD survives its control plane). We send 0.
    pub cpi: bool,
    /// Demand mode (RFC 5880 §6.6). Never set by us; a peer setting it is honoured only
    /// in that we keep sending (we do not run demand mode ourselves).
    pub demand: bool,
    /// Detection multiplier: intervals without a packet before the receiver declares the
    /// sender down.
    pub detect_mult: u8,
    /// The sender's discriminator (never 0).
    pub my_disc: u32,
    /// The receiver's discriminator as the sender knows it (0 until it has heard us).
    pub your_disc: u32,
    /// The interval at which the sender would like to send.
    pub desired_min_tx: Duration,
    /// The shortest interval at which the sender can receive (0: do not send to it).
    pub required_min_rx: Duration,
    /// The shortest echo interval the sender can receive (0: no echo).
    pub required_min_echo_rx: Duration,
}

/// Why a datagram is not a Control packet a session may take (RFC 5880 §6.8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BfdPacketError {
    /// Shorter than the 24-byte packet.
    #[error("{0} bytes, shorter than a BFD control packet (24)")]
    Short(usize),
    /// A version other than 1.
    #[error("version {0}, not 1")]
    Version(u8),
    /// The Length field is below the minimum or beyond the datagram.
    #[error("length field {field} does not fit a datagram of {datagram} bytes")]
    Length {
        /// The Length field.
        field: u8,
        /// The datagram's size.
        datagram: usize,
    },
    /// Detect Mult is 0.
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    /// The Multipoint bit is set (reserved for multipoint BFD).
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is 0.
    #[error("my discriminator 0")]
    ZeroMyDiscriminator,
    /// Your Discriminator is 0 while the sender's state is Init or Up.
    #[error("your discriminator 0 in state {0}")]
    ZeroYourDiscriminator(State),
    /// The packet is authenticated, which the caller does not use.
    #[error("authenticated packet (the A bit), but authentication is not in use")]
    Authenticated,
    /// An Auth Type no RFC defines.
    #[error("unknown authentication type {0}")]
    AuthType(u8),
    /// An Auth Len wrong for its type, or beyond the Length field.
    #[error("authentication section of {len} bytes is wrong for {kind} in a {length}-byte packet")]
    AuthLength {
        /// The Auth Type.
        kind: BfdAuthType,
        /// The Auth Len field.
        len: u8,
        /// The Length field.
        length: u8,
    },
}

/// The authentication section of a Control packet (RFC 5880 §4.2–4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthSection {
    /// The Auth Type.
    pub kind: BfdAuthType,
    /// The Auth Key ID.
    pub key_id: u8,
    /// The Sequence Number (0 for a simple password, which has none).
    pub seq: u32,
    /// The password (simple password) or the digest, in its first [`AuthSection::data_len`]
    /// bytes.
    pub data: [u8; 20],
    /// How many bytes of `data` are used.
    pub data_len: u8,
}

impl AuthSection {
    /// The section's length on the wire (the Auth Len field).
    pub fn wire_len(&self) -> u8 {
        match self.kind {
            BfdAuthType::SimplePassword => 3 + self.data_len,
            _ => 8 + self.data_len,
        }
    }

    /// Where the password or digest starts, counted from the packet's first byte.
    pub fn data_offset(&self) -> usize {
        match self.kind {
            BfdAuthType::SimplePassword => PACKET_LEN + 3,
            _ => PACKET_LEN + 8,
        }
    }

    /// The password or digest.
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.data_len).min(self.data.len())]
    }

    /// Parses the section of a packet whose Length field is `length` (§6.8.6 has checked
    /// that `bytes` holds at least that many, and at least 26).
    fn decode(bytes: &[u8], length: u8) -> Result<AuthSection, BfdPacketError> {
        let (code, len) = (bytes[PACKET_LEN], bytes[PACKET_LEN + 1]);
        let kind = auth_type(code).ok_or(BfdPacketError::AuthType(code))?;
        let fits = PACKET_LEN + usize::from(len) <= usize::from(length);
        let (data_len, well_formed) = match kind {
            BfdAuthType::SimplePassword => (len.saturating_sub(3), (4..=19).contains(&len)),
            BfdAuthType::KeyedMd5 | BfdAuthType::MeticulousKeyedMd5 => (16, len == 24),
            BfdAuthType::KeyedSha1 | BfdAuthType::MeticulousKeyedSha1 => (20, len == 28),
        };
        if !fits || !well_formed {
            return Err(BfdPacketError::AuthLength { kind, len, length });
        }
        let mut section = AuthSection {
            kind,
            key_id: bytes[PACKET_LEN + 2],
            seq: 0,
            data: [0; 20],
            data_len,
        };
        if kind != BfdAuthType::SimplePassword {
            let seq = &bytes[PACKET_LEN + 4..PACKET_LEN + 8];
            section.seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
        }
        let start = section.data_offset();
        section.data[..usize::from(data_len)]
            .copy_from_slice(&bytes[start..start + usize::from(data_len)]);
        Ok(section)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.kind.code(), self.wire_len(), self.key_id]);
        if self.kind != BfdAuthType::SimplePassword {
            out.push(0);
            out.extend_from_slice(&self.seq.to_be_bytes());
        }
        out.extend_from_slice(self.data());
    }
}

fn auth_type(code: u8) -> Option<BfdAuthType> {
    Some(match code {
        1 => BfdAuthType::SimplePassword,
        2 => BfdAuthType::KeyedMd5,
        3 => BfdAuthType::MeticulousKeyedMd5,
        4 => BfdAuthType::KeyedSha1,
        5 => BfdAuthType::MeticulousKeyedSha1,
        _ => return None,
    })
}

impl ControlPacket {
    /// Decodes a datagram, refusing what §6.8.6 says to discard before looking a session up,
    /// and an authenticated packet.
    pub fn decode(bytes: &[u8]) -> Result<ControlPacket, BfdPacketError> {
        match Self::decode_authenticated(bytes)? {
            (p, None) => Ok(p),
            (_, Some(_)) => Err(BfdPacketError::Authenticated),
        }
    }

    /// Decodes a datagram as [`ControlPacket::decode`] does, handing over its authentication
    /// section, if any, for the session to check.
    pub fn decode_authenticated(
        bytes: &[u8],
    ) -> Result<(ControlPacket, Option<AuthSection>), BfdPacketError> {
        let mut c = Cursor::new(bytes);
        let (Some(b0), Some(b1), Some(detect_mult), Some(length)) =
            (c.u8(), c.u8(), c.u8(), c.u8())
        else {
            return Err(BfdPacketError::Short(bytes.len()));
        };
        if b0 >> 5 != VERSION {
            return Err(BfdPacketError::Version(b0 >> 5));
        }
        if bytes.len() < PACKET_LEN {
            return Err(BfdPacketError::Short(bytes.len()));
        }
        let auth = b1 & 0x04 != 0;
        let min = if auth { PACKET_LEN + 2 } else { PACKET_LEN };
        if usize::from(length) < min || usize::from(length) > bytes.len() {
            let datagram = bytes.len();
            return Err(BfdPacketError::Length {
                field: length,
                datagram,
            });
        }
        if detect_mult == 0 {
            return Err(BfdPacketError::ZeroDetectMult);
        }
        if b1 & 0x01 != 0 {
            return Err(BfdPacketError::Multipoint);
        }
        let state = State::from_bits(b1 >> 6);
        let words = [c.u32(), c.u32(), c.u32(), c.u32(), c.u32()];
        let [Some(my_disc), Some(your_disc), Some(tx), Some(rx), Some(echo)] = words else {
            return Err(BfdPacketError::Short(bytes.len()));
        };
        if my_disc == 0 {
            return Err(BfdPacketError::ZeroMyDiscriminator);
        }
        if your_disc == 0 && matches!(state, State::Init | State::Up) {
            return Err(BfdPacketError::ZeroYourDiscriminator(state));
        }
        let section = match auth {
            true => Some(AuthSection::decode(bytes, length)?),
            false => None,
        };
        let packet = ControlPacket {
            diag: Diagnostic::from_bits(b0),
            state,
            poll: b1 & 0x20 != 0,
            final_: b1 & 0x10 != 0,
            cpi: b1 & 0x08 != 0,
            demand: b1 & 0x02 != 0,
            detect_mult,
            my_disc,
            your_disc,
            desired_min_tx: micros(tx),
            required_min_rx: micros(rx),
            required_min_echo_rx: micros(echo),
        };
        Ok((packet, section))
    }

    /// The packet with an authentication section: the A bit set, Length covering the
    /// section. (A digest is computed over these bytes by [`super::auth`].)
    pub fn encode_authenticated(&self, section: &AuthSection) -> Vec<u8> {
        let mut out = self.encode().to_vec();
        out[1] |= 0x04;
        out[3] = PACKET_LEN as u8 + section.wire_len();
        section.encode(&mut out);
        out
    }

    /// The 24 bytes of the packet (no authentication section).
    pub fn encode(&self) -> [u8; PACKET_LEN] {
        let mut out = [0u8; PACKET_LEN];
        out[0] = (VERSION << 5) | self.diag.bits();
        out[1] = (self.state.bits() << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.cpi) << 3)
            | (u8::from(self.demand) << 1);
        out[2] = self.detect_mult;
        out[3] = PACKET_LEN as u8;
        let words = [
            self.my_disc,
            self.your_disc,
            to_micros(self.desired_min_tx),
            to_micros(self.required_min_rx),
            to_micros(self.required_min_echo_rx),
        ];
        for (i, w) in words.iter().enumerate() {
            out[4 + 4 * i..8 + 4 * i].copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

fn micros(us: u32) -> Duration {
    Duration::from_micros(us.into())
}

/// An interval in whole microseconds, saturating at the field's 32 bits (~71 minutes).
fn to_micros(d: Duration) -> u32 {
    d.as_micros().try_into().unwrap_or(u32::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An Up packet with Poll, 300 ms × 3 (shared with the authentication tests).
    pub(crate) fn sample() -> ControlPacket {
        ControlPacket {
            diag: Diagnostic::None,
            state: State::Up,
            poll: true,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_disc: 0x11223344,
            your_disc: 7,
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            required_min_echo_rx: Duration::ZERO,
        }
    }

    /// The bytes BIRD and FRR send for this packet, from RFC 5880's layout by hand.
    #[test]
    fn encodes_the_rfc_layout() {
        let b = sample().encode();
        assert_eq!(
            b,
            [
                0x20, 0xe0, 3, 24, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 7, 0, 4, 0x93, 0xe0, 0, 4,
                0x93, 0xe0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn refuses_what_rfc_5880_discards() {
        let good = sample().encode();
        let with = |i: usize, v: u8| {
            let mut b = good;
            b[i] = v;
            ControlPacket::decode(&b)
        };
        assert_eq!(
            ControlPacket::decode(&good[..23]),
            Err(BfdPacketError::Short(23))
        );
        assert_eq!(with(0, 0x40), Err(BfdPacketError::Version(2)));
        assert_eq!(
            with(3, 23),
            Err(BfdPacketError::Length {
                field: 23,
                datagram: 24
            })
        );
        assert_eq!(
            with(3, 25),
            Err(BfdPacketError::Length {
                field: 25,
                datagram: 24
            })
        );
        assert_eq!(with(2, 0), Err(BfdPacketError::ZeroDetectMult));
        assert_eq!(with(1, 0xc1), Err(BfdPacketError::Multipoint));
        let mut b = good;
        b[4..8].fill(0);
        assert_eq!(
            ControlPacket::decode(&b),
            Err(BfdPacketError::ZeroMyDiscriminator)
        );
        let mut b = good;
        b[8..12].fill(0);
        assert_eq!(
            ControlPacket::decode(&b),
            Err(BfdPacketError::ZeroYourDiscriminator(State::Up))
        );
        // Your discriminator 0 is how a session starts: fine while Down.
        b[1] = 0x40;
        assert_eq!(ControlPacket::decode(&b).map(|p| p.state), Ok(State::Down));
        // Authenticated: length must cover the section, then it is refused as unused.
        let mut long = good.to_vec();
        long.extend_from_slice(&[1, 4, 0, b'x']);
        long[1] |= 0x04;
        long[3] = 28;
        assert_eq!(
            ControlPacket::decode(&long),
            Err(BfdPacketError::Authenticated)
        );
        long[3] = 24;
        assert_eq!(
            ControlPacket::decode(&long),
            Err(BfdPacketError::Length {
                field: 24,
                datagram: 28
            })
        );
    }

    /// §4.2–4.4: each type's section has its own length; an unknown type or a section
    /// beyond the Length field is refused.
    #[test]
    fn authentication_sections_are_checked_by_type() {
        let with = |section: &[u8]| {
            let mut b = sample().encode().to_vec();
            b[1] |= 0x04;
            b[3] = (PACKET_LEN + section.len()) as u8;
            b.extend_from_slice(section);
            ControlPacket::decode_authenticated(&b).map(|(_, s)| s)
        };
        let simple = with(&[1, 6, 9, b'p', b'w', b'd']).unwrap().unwrap();
        assert_eq!(
            (simple.kind, simple.key_id, simple.data()),
            (BfdAuthType::SimplePassword, 9, &b"pwd"[..])
        );
        let mut md5 = vec![2, 24, 3, 0, 0, 0, 1, 2];
        md5.extend_from_slice(&[0xaa; 16]);
        let s = with(&md5).unwrap().unwrap();
        assert_eq!(
            (s.kind, s.key_id, s.seq, s.data()),
            (BfdAuthType::KeyedMd5, 3, 258, &[0xaa; 16][..])
        );
        // An MD5 section with SHA-1's length, a password of 0 or 17 bytes, type 6.
        md5[1] = 28;
        md5.extend_from_slice(&[0; 4]);
        assert!(matches!(
            with(&md5),
            Err(BfdPacketError::AuthLength { len: 28, .. })
        ));
        assert!(matches!(
            with(&[1, 3, 9]),
            Err(BfdPacketError::AuthLength { len: 3, .. })
        ));
        let mut long = vec![1, 20, 9];
        long.extend_from_slice(&[b'x'; 17]);
        assert!(matches!(
            with(&long),
            Err(BfdPacketError::AuthLength { len: 20, .. })
        ));
        assert_eq!(with(&[6, 4, 0, 0]), Err(BfdPacketError::AuthType(6)));
        // Auth Len beyond the Length field.
        assert!(matches!(
            with(&[1, 9, 9, b'p']),
            Err(BfdPacketError::AuthLength { len: 9, .. })
        ));
        // The plain decoder refuses what the authenticated one takes.
        let mut b = sample().encode().to_vec();
        b[1] |= 0x04;
        b[3] = 28;
        b.extend_from_slice(&[1, 4, 0, b'x']);
        assert_eq!(
            ControlPacket::decode(&b),
            Err(BfdPacketError::Authenticated)
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ControlPacket::decode(&bytes);
        }

        #[test]
        fn round_trips(
            state in 0u8..4, diag in 0u8..32, flags in 0u8..16, mult in 1u8..,
            my in 1u32.., your in any::<u32>(), tx in any::<u32>(), rx in any::<u32>(),
        ) {
            let state = State::from_bits(state);
            let your = if matches!(state, State::Init | State::Up) { your.max(1) } else { your };
            let p = ControlPacket {
                diag: Diagnostic::from_bits(diag),
                state,
                poll: flags & 1 != 0,
                final_: flags & 2 != 0,
                cpi: flags & 4 != 0,
                demand: flags & 8 != 0,
                detect_mult: mult,
                my_disc: my,
                your_disc: your,
                desired_min_tx: micros(tx),
                required_min_rx: micros(rx),
                required_min_echo_rx: Duration::ZERO,
            };
            prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
        }
    }
}

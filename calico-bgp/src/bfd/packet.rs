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
//! Intervals are in microseconds on the wire. Authentication (the A bit) is not supported:
//! a packet carrying it is refused ([`BfdPacketError::Authenticated`]), as §6.8.6 requires of
//! a session without authentication.

use std::fmt;
use std::time::Duration;

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
    /// The packet is authenticated, which sessions here do not use.
    #[error("authenticated packet (the A bit), but authentication is not in use")]
    Authenticated,
}

impl ControlPacket {
    /// Decodes a datagram, refusing what §6.8.6 says to discard before looking a session up.
    pub fn decode(bytes: &[u8]) -> Result<ControlPacket, BfdPacketError> {
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
        if auth {
            return Err(BfdPacketError::Authenticated);
        }
        Ok(ControlPacket {
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
        })
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
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> ControlPacket {
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
        long.extend_from_slice(&[1, 4, 0, 0]);
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

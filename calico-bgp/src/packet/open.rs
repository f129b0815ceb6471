//! OPEN messages (RFC 4271 §4.2) and the capabilities they carry (RFC 5492).

use std::net::Ipv4Addr;

use super::cursor::Cursor;
use super::error::{DecodeError, EncodeError};

/// The AS number a 4-byte-AS speaker puts in 2-byte fields (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// An address family / subsequent address family pair (RFC 4760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AfiSafi {
    /// Address Family Identifier (1 IPv4, 2 IPv6).
    pub afi: u16,
    /// Subsequent AFI (1 unicast).
    pub safi: u8,
}

impl AfiSafi {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: AfiSafi = AfiSafi { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: AfiSafi = AfiSafi { afi: 2, safi: 1 };
}

/// One address family of the graceful restart capability (RFC 4724).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: AfiSafi,
    /// Flags for the family (bit 0x80: forwarding state preserved).
    pub flags: u8,
}

/// One IPv4-NLRI-over-IPv6-next-hop entry of the extended next hop capability (RFC 8950).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    /// The NLRI family (AFI is 16 bits here, SAFI too).
    pub nlri_afi: u16,
    /// The NLRI SAFI.
    pub nlri_safi: u16,
    /// The next hop AFI.
    pub next_hop_afi: u16,
}

/// One family of the ADD-PATH capability (RFC 7911 §4): whether the sender can receive
/// and whether it would send several paths of a prefix, each with a path identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// The family.
    pub family: AfiSafi,
    /// The sender can receive several paths (Send/Receive value 1 or 3).
    pub receive: bool,
    /// The sender would like to send several paths (value 2 or 3).
    pub send: bool,
}

impl AddPathFamily {
    /// The Send/Receive field (1 receive, 2 send, 3 both; 0 is not a valid value).
    pub fn send_receive(&self) -> u8 {
        u8::from(self.receive) | (u8::from(self.send) << 1)
    }
}

/// The ADD-PATH capability code (RFC 7911 §4).
pub const ADD_PATH: u8 = 69;

/// A capability advertised in OPEN.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// 1: multiprotocol extensions for one family (RFC 4760).
    Multiprotocol(AfiSafi),
    /// 2: route refresh (RFC 2918).
    RouteRefresh,
    /// 5: extended next hop encoding (RFC 8950).
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// 64: graceful restart (RFC 4724); the speaker acts on it (see [`crate::speaker`]).
    GracefulRestart {
        /// Restart flags (upper 4 bits of the first octet).
        flags: u8,
        /// Restart time in seconds (12 bits).
        time: u16,
        /// Families with preserved forwarding state.
        families: Vec<GracefulRestartFamily>,
    },
    /// 65: 4-octet AS numbers (RFC 6793), carrying the speaker's AS.
    FourOctetAs(u32),
    /// 69: ADD-PATH (RFC 7911), per family. A malformed one (a length that is not a
    /// multiple of 4, a Send/Receive value other than 1, 2 or 3) is decoded as
    /// [`Capability::Unknown`]: RFC 7911 §4 has it treated as not understood and ignored,
    /// so the session comes up without ADD-PATH rather than being refused.
    AddPath(Vec<AddPathFamily>),
    /// Any other capability, kept as bytes.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// An OPEN message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Open {
    /// The 2-byte AS field (AS_TRANS when the AS needs 4 bytes).
    pub my_as: u16,
    /// Proposed hold time in seconds (0 or at least 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Capabilities, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The sender's AS: from the 4-octet AS capability when present, else the 2-byte field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// The multiprotocol families advertised (none means IPv4 unicast only, RFC 4760 §8).
    pub fn families(&self) -> Vec<AfiSafi> {
        self.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect()
    }

    /// Whether a capability with this code is present.
    pub fn has(&self, code: u8) -> bool {
        self.capabilities.iter().any(|c| capability_code(c) == code)
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
        let mut c = Cursor::new(body);
        let malformed = |field: &'static str, reason: &str| DecodeError::MalformedOpen {
            field,
            reason: reason.to_string(),
        };
        let version = c.u8().ok_or_else(|| malformed("version", "missing"))?;
        if version != 4 {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let my_as = c.u16().ok_or_else(|| malformed("my AS", "missing"))?;
        let hold_time = c.u16().ok_or_else(|| malformed("hold time", "missing"))?;
        let router_id = c
            .ipv4()
            .ok_or_else(|| malformed("BGP identifier", "missing"))?;
        let params_len = c
            .u8()
            .ok_or_else(|| malformed("optional parameters length", "missing"))?;
        if usize::from(params_len) != c.remaining() {
            return Err(malformed(
                "optional parameters length",
                &format!("says {params_len}, {} bytes follow", c.remaining()),
            ));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::UnacceptableHoldTime(hold_time));
        }
        if router_id.is_unspecified() {
            return Err(DecodeError::BadBgpIdentifier(router_id));
        }
        let mut capabilities = Vec::new();
        while !c.is_empty() {
            let kind = c
                .u8()
                .ok_or_else(|| malformed("optional parameter", "truncated"))?;
            let len = c
                .u8()
                .ok_or_else(|| malformed("optional parameter", "truncated"))?;
            let value = c
                .take(usize::from(len))
                .ok_or_else(|| malformed("optional parameter", "length exceeds message"))?;
            if kind != 2 {
                return Err(DecodeError::UnsupportedOptionalParameter(kind));
            }
            decode_capabilities(value, &mut capabilities)?;
        }
        Ok(Open {
            my_as,
            hold_time,
            router_id,
            capabilities,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(4);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.router_id.octets());
        // One optional parameter per group of capabilities that fits in 255 bytes.
        let mut params: Vec<Vec<u8>> = Vec::new();
        for cap in &self.capabilities {
            let mut bytes = Vec::new();
            encode_capability(cap, &mut bytes)?;
            match params.last_mut() {
                Some(p) if p.len() + bytes.len() <= 255 => p.extend_from_slice(&bytes),
                _ => params.push(bytes),
            }
        }
        let total: usize = params.iter().map(|p| p.len() + 2).sum();
        let total = u8::try_from(total).map_err(|_| EncodeError::Field {
            field: "optional parameters",
            reason: format!("{total} bytes exceed 255"),
        })?;
        out.push(total);
        for p in params {
            // Fits: the whole field (this one included) is at most 255 bytes.
            let len = u8::try_from(p.len()).map_err(|_| EncodeError::Field {
                field: "optional parameters",
                reason: format!("a parameter of {} bytes exceeds 255", p.len()),
            })?;
            out.push(2);
            out.push(len);
            out.extend_from_slice(&p);
        }
        Ok(())
    }
}

fn capability_code(cap: &Capability) -> u8 {
    match cap {
        Capability::Multiprotocol(_) => 1,
        Capability::RouteRefresh => 2,
        Capability::ExtendedNextHop(_) => 5,
        Capability::GracefulRestart { .. } => 64,
        Capability::FourOctetAs(_) => 65,
        Capability::AddPath(_) => ADD_PATH,
        Capability::Unknown { code, .. } => *code,
    }
}

fn decode_capabilities(bytes: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    let mut c = Cursor::new(bytes);
    let malformed = |reason: String| DecodeError::MalformedOpen {
        field: "capability",
        reason,
    };
    while !c.is_empty() {
        let (Some(code), Some(len)) = (c.u8(), c.u8()) else {
            return Err(malformed("truncated header".into()));
        };
        let value = c
            .take(usize::from(len))
            .ok_or_else(|| malformed(format!("code {code}: length {len} exceeds parameter")))?;
        let mut v = Cursor::new(value);
        let bad_len = || malformed(format!("code {code}: length {len} is invalid"));
        let cap = match code {
            1 => {
                if len != 4 {
                    return Err(bad_len());
                }
                let afi = v.u16().ok_or_else(bad_len)?;
                let _reserved = v.u8();
                let safi = v.u8().ok_or_else(bad_len)?;
                Capability::Multiprotocol(AfiSafi { afi, safi })
            }
            2 => {
                if len != 0 {
                    return Err(bad_len());
                }
                Capability::RouteRefresh
            }
            5 => {
                if len % 6 != 0 {
                    return Err(bad_len());
                }
                let mut entries = Vec::new();
                while !v.is_empty() {
                    let (Some(nlri_afi), Some(nlri_safi), Some(next_hop_afi)) =
                        (v.u16(), v.u16(), v.u16())
                    else {
                        return Err(bad_len());
                    };
                    entries.push(ExtendedNextHop {
                        nlri_afi,
                        nlri_safi,
                        next_hop_afi,
                    });
                }
                Capability::ExtendedNextHop(entries)
            }
            64 => {
                if len < 2 || (len - 2) % 4 != 0 {
                    return Err(bad_len());
                }
                let head = v.u16().ok_or_else(bad_len)?;
                let mut families = Vec::new();
                while !v.is_empty() {
                    let (Some(afi), Some(safi), Some(flags)) = (v.u16(), v.u8(), v.u8()) else {
                        return Err(bad_len());
                    };
                    families.push(GracefulRestartFamily {
                        family: AfiSafi { afi, safi },
                        flags,
                    });
                }
                Capability::GracefulRestart {
                    flags: (head >> 12) as u8,
                    time: head & 0x0fff,
                    families,
                }
            }
            65 => {
                if len != 4 {
                    return Err(bad_len());
                }
                Capability::FourOctetAs(v.u32().ok_or_else(bad_len)?)
            }
            ADD_PATH => decode_add_path(value).unwrap_or_else(|| Capability::Unknown {
                code,
                value: value.to_vec(),
            }),
            _ => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        };
        out.push(cap);
    }
    Ok(())
}

/// The ADD-PATH capability's families, or `None` when it is malformed (then it is ignored,
/// RFC 7911 §4).
fn decode_add_path(value: &[u8]) -> Option<Capability> {
    if value.len() % 4 != 0 {
        return None;
    }
    value
        .chunks_exact(4)
        .map(|e| {
            let family = AfiSafi {
                afi: u16::from_be_bytes([e[0], e[1]]),
                safi: e[2],
            };
            matches!(e[3], 1..=3).then_some(AddPathFamily {
                family,
                receive: e[3] & 1 != 0,
                send: e[3] & 2 != 0,
            })
        })
        .collect::<Option<Vec<_>>>()
        .map(Capability::AddPath)
}

fn encode_capability(cap: &Capability, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.push(capability_code(cap));
    out.push(0);
    match cap {
        Capability::Multiprotocol(f) => {
            out.extend_from_slice(&f.afi.to_be_bytes());
            out.push(0);
            out.push(f.safi);
        }
        Capability::RouteRefresh => {}
        Capability::ExtendedNextHop(entries) => {
            for e in entries {
                out.extend_from_slice(&e.nlri_afi.to_be_bytes());
                out.extend_from_slice(&e.nlri_safi.to_be_bytes());
                out.extend_from_slice(&e.next_hop_afi.to_be_bytes());
            }
        }
        Capability::GracefulRestart {
            flags,
            time,
            families,
        } => {
            if *flags > 0x0f || *time > 0x0fff {
                return Err(EncodeError::Field {
                    field: "graceful restart capability",
                    reason: format!("flags {flags:#x} or time {time} out of range"),
                });
            }
            let head = (u16::from(*flags) << 12) | *time;
            out.extend_from_slice(&head.to_be_bytes());
            for f in families {
                out.extend_from_slice(&f.family.afi.to_be_bytes());
                out.push(f.family.safi);
                out.push(f.flags);
            }
        }
        Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
        Capability::AddPath(families) => {
            for f in families {
                if f.send_receive() == 0 {
                    return Err(EncodeError::Field {
                        field: "ADD-PATH capability",
                        reason: format!("{:?}: neither send nor receive", f.family),
                    });
                }
                out.extend_from_slice(&f.family.afi.to_be_bytes());
                out.push(f.family.safi);
                out.push(f.send_receive());
            }
        }
        Capability::Unknown { value, .. } => out.extend_from_slice(value),
    }
    let len = out.len() - start - 2;
    out[start + 1] = u8::try_from(len).map_err(|_| EncodeError::Field {
        field: "capability",
        reason: format!("value of {len} bytes exceeds 255"),
    })?;
    Ok(())
}

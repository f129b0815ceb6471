//! BFD authentication (RFC 5880 §6.7): signing what a session sends and checking what it
//! receives, with one key known to both ends by its id.
//!
//! * Simple Password (§6.7.2): the password travels in the packet; it must equal ours.
//! * Keyed MD5 and SHA-1 (§6.7.3, §6.7.4): the digest of the packet with the key in place
//!   of the digest (padded with zeros to 16 or 20 bytes). Each packet carries a sequence
//!   number; a received one must lie within 3 × Detect Mult of the last one accepted, and
//!   with the meticulous types it must grow, so a recorded packet cannot be replayed.
//!
//! We increase our sequence number with every packet, for every type (the keyed types
//! allow it, the meticulous ones require it). The number last received is forgotten after
//! twice the detection time without an accepted packet (§6.8.1, `bfd.AuthSeqKnown`), so a
//! restarted peer, which starts again from a random number, is heard again.

use std::time::Duration;

use calico_core::dataplane::{BfdAuth, BfdAuthType};
use md5::{Digest, Md5};
use sha1::Sha1;
use tokio::time::Instant;

use super::packet::{AuthSection, ControlPacket};

/// Why a received packet failed authentication: it is discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Authenticated, but the session uses no authentication.
    #[error("authenticated packet, but the session has no authentication configured")]
    Unexpected,
    /// Not authenticated, but the session requires it.
    #[error("unauthenticated packet, but the session requires {0}")]
    Missing(BfdAuthType),
    /// Another authentication type than the session's.
    #[error("authentication type {got}, but the session uses {want}")]
    Type {
        /// What the packet carries.
        got: BfdAuthType,
        /// The session's.
        want: BfdAuthType,
    },
    /// Another key id than the session's key.
    #[error("key id {got}, but the session's key is {want}")]
    KeyId {
        /// What the packet carries.
        got: u8,
        /// The session's key.
        want: u8,
    },
    /// A sequence number outside the window after the last one accepted (a replay, or a
    /// packet from long ago).
    #[error("sequence number {got} outside {from}..={to}")]
    Sequence {
        /// What the packet carries.
        got: u32,
        /// The window's first acceptable number.
        from: u32,
        /// Its last.
        to: u32,
    },
    /// The password or digest does not match our key.
    #[error("wrong password or digest")]
    Mismatch,
}

/// One session's authentication: its key, the sequence number it sends next, and the one it
/// last accepted.
#[derive(Clone)]
pub struct Authenticator {
    kind: BfdAuthType,
    key_id: u8,
    key: Vec<u8>,
    xmit_seq: u32,
    /// The last sequence number accepted (`bfd.RcvAuthSeq`) and when.
    received: Option<(u32, Instant)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .field("xmit_seq", &self.xmit_seq)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authentication `auth` configures (validated: the key fits its type), sending
    /// sequence numbers from `first_seq` (§6.8.1: a random start).
    pub fn new(auth: &BfdAuth, first_seq: u32) -> Authenticator {
        let mut key = auth.password.as_bytes().to_vec();
        key.truncate(auth.kind.max_key_len());
        Authenticator {
            kind: auth.kind,
            key_id: auth.key_id,
            key,
            xmit_seq: first_seq,
            received: None,
        }
    }

    /// The bytes to send for `packet`: with its authentication section and digest.
    pub fn seal(&mut self, packet: &ControlPacket) -> Vec<u8> {
        let seq = self.xmit_seq;
        self.xmit_seq = self.xmit_seq.wrapping_add(1);
        let mut section = AuthSection {
            kind: self.kind,
            key_id: self.key_id,
            seq: 0,
            data: [0; 20],
            data_len: digest_len(self.kind).unwrap_or(self.key.len()) as u8,
        };
        section.data[..self.key.len()].copy_from_slice(&self.key);
        if digest_len(self.kind).is_none() {
            return packet.encode_authenticated(&section);
        }
        section.seq = seq;
        let mut bytes = packet.encode_authenticated(&section);
        let at = section.data_offset();
        let digest = digest(self.kind, &bytes);
        bytes[at..at + digest.len()].copy_from_slice(&digest);
        bytes
    }

    /// Checks a received packet (`bytes`, its section as decoded, the packet's Detect Mult)
    /// against our key and the sequence window; `detection_time` is the session's. On
    /// success the packet's sequence number becomes the last one accepted.
    pub fn check(
        &mut self,
        bytes: &[u8],
        section: Option<&AuthSection>,
        detect_mult: u8,
        detection_time: Duration,
        now: Instant,
    ) -> Result<(), AuthError> {
        let s = section.ok_or(AuthError::Missing(self.kind))?;
        if s.kind != self.kind {
            return Err(AuthError::Type {
                got: s.kind,
                want: self.kind,
            });
        }
        if s.key_id != self.key_id {
            return Err(AuthError::KeyId {
                got: s.key_id,
                want: self.key_id,
            });
        }
        if digest_len(self.kind).is_none() {
            return match equal(s.data(), &self.key) {
                true => Ok(()),
                false => Err(AuthError::Mismatch),
            };
        }
        let last = self
            .received
            .filter(|(_, heard)| now.saturating_duration_since(*heard) < detection_time * 2)
            .map(|(seq, _)| seq);
        if let Some(last) = last {
            window(last, s.seq, self.kind.meticulous(), detect_mult)?;
        }
        let length = usize::from(bytes.get(3).copied().unwrap_or(0)).min(bytes.len());
        let mut copy = bytes[..length].to_vec();
        let at = s.data_offset();
        let n = usize::from(s.data_len);
        let Some(field) = copy.get_mut(at..at + n) else {
            return Err(AuthError::Mismatch);
        };
        field.fill(0);
        field[..self.key.len()].copy_from_slice(&self.key);
        if !equal(&digest(self.kind, &copy), s.data()) {
            return Err(AuthError::Mismatch);
        }
        self.received = Some((s.seq, now));
        Ok(())
    }
}

/// The check of §6.7.3: `seq` must lie in `last..=last + 3 × mult` (meticulous: from
/// `last + 1`), in circular 32-bit arithmetic.
fn window(last: u32, seq: u32, meticulous: bool, mult: u8) -> Result<(), AuthError> {
    let low = u32::from(meticulous);
    let high = 3 * u32::from(mult);
    let ahead = seq.wrapping_sub(last);
    if (low..=high).contains(&ahead) {
        return Ok(());
    }
    Err(AuthError::Sequence {
        got: seq,
        from: last.wrapping_add(low),
        to: last.wrapping_add(high),
    })
}

/// The digest's length, `None` for a simple password.
fn digest_len(kind: BfdAuthType) -> Option<usize> {
    match kind {
        BfdAuthType::SimplePassword => None,
        BfdAuthType::KeyedMd5 | BfdAuthType::MeticulousKeyedMd5 => Some(16),
        BfdAuthType::KeyedSha1 | BfdAuthType::MeticulousKeyedSha1 => Some(20),
    }
}

fn digest(kind: BfdAuthType, bytes: &[u8]) -> Vec<u8> {
    match kind {
        BfdAuthType::KeyedSha1 | BfdAuthType::MeticulousKeyedSha1 => Sha1::digest(bytes).to_vec(),
        _ => Md5::digest(bytes).to_vec(),
    }
}

/// Compares in time independent of where the first difference is.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;

//! Per-peering session options beyond address, AS and hold time: the settings of Calico's v3
//! `BGPPeer` (keepalive, graceful restart time, allowas-in, next hop handling, GTSM, source
//! address), as every speaker (native, BIRD, FRR) applies them.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Largest `numAllowedLocalASNumbers` accepted (FRR's `allowas-in` takes 1-10; BIRD and the
/// native speaker follow it so that every speaker behaves the same).
pub const MAX_ALLOWED_LOCAL_AS: u8 = 10;

/// Largest TTL security hop count (RFC 5082: the peer is at most 254 hops away when the
/// lowest TTL accepted is 255 − 254 + 1).
pub const MAX_TTL_SECURITY_HOPS: u8 = 254;

/// How the NEXT_HOP of routes sent to a peer is set (Calico's `nextHopMode`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum NextHopMode {
    /// BGP's rules (RFC 4271 §5.1.3, RFC 4456): our address towards eBGP peers and for our
    /// own routes; a learned route's next hop unchanged towards iBGP peers.
    #[default]
    Auto,
    /// Always our own address ("next hop self"), reflected iBGP routes included.
    #[serde(rename = "Self")]
    SelfAddress,
    /// Never change a learned route's next hop ("next hop keep"), towards eBGP peers too.
    Keep,
}

impl fmt::Display for NextHopMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NextHopMode::Auto => "Auto",
            NextHopMode::SelfAddress => "Self",
            NextHopMode::Keep => "Keep",
        })
    }
}

/// The session options of one peering; the default is what a peering without them gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionOptions {
    /// Seconds between KEEPALIVEs (RFC 4271 §4.4); `None`: a third of the negotiated hold
    /// time. When the peer offers a shorter hold time than ours, it is scaled down in
    /// proportion (as BIRD does).
    pub keepalive_time: Option<u16>,
    /// The restart time advertised in the graceful restart capability (RFC 4724 §3), in
    /// seconds (at most 4095); `None`: the speaker's default.
    pub restart_time: Option<u16>,
    /// How many times our own AS may appear in a received AS_PATH before the route is taken
    /// for a loop ("allowas-in"); 0: never.
    pub allow_local_as: u8,
    /// Next hop handling towards the peer.
    pub next_hop_mode: NextHopMode,
    /// GTSM (RFC 5082): the peer is at most this many hops away; we send with TTL 255 and
    /// accept only packets with a TTL of at least 256 − hops. `None`: off.
    pub ttl_security: Option<u8>,
    /// The local address of the session ("source address", "update-source"); `None`: the
    /// speaker's default.
    pub source_address: Option<IpAddr>,
}

impl SessionOptions {
    /// The lowest TTL (hop limit) accepted from the peer under GTSM, or `None` when off.
    pub fn min_ttl(&self) -> Option<u8> {
        self.ttl_security.map(|hops| (256 - u16::from(hops)) as u8)
    }

    /// Checks the options against `hold_time` (the hold time offered): the field and why,
    /// when they are refused.
    pub fn validate(&self, hold_time: u16) -> Result<(), (&'static str, String)> {
        if let Some(k) = self.keepalive_time {
            if k == 0 {
                return Err((
                    "keepaliveTime",
                    "must be at least 1 s (RFC 4271 §4.4)".into(),
                ));
            }
            if hold_time == 0 {
                return Err((
                    "keepaliveTime",
                    "hold time 0 means no KEEPALIVEs; leave keepaliveTime unset".into(),
                ));
            }
            if k >= hold_time {
                return Err((
                    "keepaliveTime",
                    format!("{k} s: must be shorter than the hold time ({hold_time} s)"),
                ));
            }
        }
        if let Some(r) = self.restart_time {
            if r > 4095 {
                return Err((
                    "maxRestartTime",
                    format!("{r} s: the capability carries at most 4095 s (RFC 4724)"),
                ));
            }
        }
        if self.allow_local_as > MAX_ALLOWED_LOCAL_AS {
            return Err((
                "numAllowedLocalASNumbers",
                format!("{}: must be 0-{MAX_ALLOWED_LOCAL_AS}", self.allow_local_as),
            ));
        }
        if let Some(h) = self.ttl_security {
            if h == 0 || h > MAX_TTL_SECURITY_HOPS {
                return Err((
                    "ttlSecurity",
                    format!("{h} hops: must be 1-{MAX_TTL_SECURITY_HOPS}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtsm_minimum_ttl_follows_rfc_5082() {
        let o = |h| SessionOptions {
            ttl_security: h,
            ..Default::default()
        };
        assert_eq!(o(Some(1)).min_ttl(), Some(255), "directly connected");
        assert_eq!(o(Some(2)).min_ttl(), Some(254));
        assert_eq!(o(Some(254)).min_ttl(), Some(2));
        assert_eq!(o(None).min_ttl(), None);
    }

    #[test]
    fn bad_values_are_refused_by_field() {
        let field = |o: SessionOptions, hold| o.validate(hold).unwrap_err().0;
        let keepalive = |k| SessionOptions {
            keepalive_time: Some(k),
            ..Default::default()
        };
        assert_eq!(field(keepalive(30), 30), "keepaliveTime");
        assert_eq!(field(keepalive(0), 30), "keepaliveTime");
        assert_eq!(field(keepalive(5), 0), "keepaliveTime");
        assert!(keepalive(29).validate(30).is_ok());
        let ttl = |h| SessionOptions {
            ttl_security: Some(h),
            ..Default::default()
        };
        assert_eq!(field(ttl(255), 90), "ttlSecurity");
        assert_eq!(field(ttl(0), 90), "ttlSecurity");
        assert!(ttl(254).validate(90).is_ok());
        let allow = SessionOptions {
            allow_local_as: 11,
            ..Default::default()
        };
        assert_eq!(field(allow, 90), "numAllowedLocalASNumbers");
        let restart = SessionOptions {
            restart_time: Some(4096),
            ..Default::default()
        };
        assert_eq!(field(restart, 90), "maxRestartTime");
    }
}

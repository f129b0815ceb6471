//! A `BgpPeer`'s session fields: their checks and the [`SessionOptions`] they make for one
//! peering.

use std::net::IpAddr;

use super::bgp::{BgpPeer, SourceAddress};
use super::error::ValidationError;
use super::validate::Check;
use super::Reason;
use crate::dataplane::{NextHopMode, SessionOptions};

impl BgpPeer {
    /// The session options of a peering made by this resource: `ebgp` when the peer is in
    /// another AS (the deprecated `keepOriginalNextHop` applies to those only, as in Calico),
    /// `node_ip` the node's address of the peer's family.
    pub fn session_options(&self, ebgp: bool, node_ip: Option<IpAddr>) -> SessionOptions {
        let keep = ebgp && self.keep_original_next_hop == Some(true);
        SessionOptions {
            keepalive_time: self.keepalive_time,
            restart_time: self.max_restart_time,
            allow_local_as: self
                .num_allowed_local_as_numbers
                .map_or(0, |n| u8::try_from(n).unwrap_or(u8::MAX)),
            next_hop_mode: self.next_hop_mode.unwrap_or(if keep {
                NextHopMode::Keep
            } else {
                NextHopMode::Auto
            }),
            ttl_security: self
                .ttl_security
                .map(|h| u8::try_from(h).unwrap_or(u8::MAX)),
            source_address: match self.source_address.unwrap_or_default() {
                SourceAddress::UseNodeIP => node_ip,
                SourceAddress::None => None,
            },
        }
    }

    /// Checks the peer selection (`peerIP` + `asNumber`, or `peerSelector`), the session
    /// fields and `reachableBy`.
    pub(super) fn validate_session(&self, c: &Check) -> Result<(), ValidationError> {
        match (&self.peer_ip, &self.peer_selector) {
            (Some(_), Some(_)) => {
                return Err(c.err("peerSelector", Reason::Conflicts("peerIP".into())))
            }
            (None, None) => {
                return Err(c.invalid("peerIP", "one of peerIP and peerSelector must be set"))
            }
            (None, Some(_)) if self.as_number.is_some() => {
                return Err(c.invalid(
                    "asNumber",
                    "not with peerSelector: each selected node's own AS is used",
                ))
            }
            (Some(_), None) if self.as_number.is_none() => {
                return Err(c.invalid("asNumber", "required with peerIP"))
            }
            _ => {}
        }
        if let Some(n) = self.num_allowed_local_as_numbers {
            if n > u32::from(crate::dataplane::bgp_session::MAX_ALLOWED_LOCAL_AS) {
                return Err(c.err(
                    "numAllowedLocalASNumbers",
                    Reason::OutOfRange {
                        value: n.into(),
                        min: 0,
                        max: crate::dataplane::bgp_session::MAX_ALLOWED_LOCAL_AS.into(),
                    },
                ));
            }
        }
        if let Some(h) = self.ttl_security {
            let max = crate::dataplane::bgp_session::MAX_TTL_SECURITY_HOPS;
            if h == 0 || h > u16::from(max) {
                return Err(c.err(
                    "ttlSecurity",
                    Reason::OutOfRange {
                        value: h.into(),
                        min: 1,
                        max: max.into(),
                    },
                ));
            }
        }
        let hold = self
            .hold_time
            .unwrap_or(crate::routes::peering::DEFAULT_HOLD_TIME);
        if let Err((field, why)) = self.session_options(false, None).validate(hold) {
            return Err(c.invalid(field, why));
        }
        self.validate_reachable_by(c)
    }

    fn validate_reachable_by(&self, c: &Check) -> Result<(), ValidationError> {
        let Some(gw) = self.reachable_by else {
            return Ok(());
        };
        let Some(peer) = self.peer_ip else {
            return Err(c.invalid("reachableBy", "needs peerIP (a route to one address)"));
        };
        if gw.is_ipv4() != peer.is_ipv4() {
            return Err(c.invalid(
                "reachableBy",
                format!("{gw} is not of the family of peerIP {peer}"),
            ));
        }
        if gw.is_unspecified() || gw.is_multicast() || gw == peer {
            return Err(c.invalid(
                "reachableBy",
                format!("{gw} is not a usable gateway towards {peer}"),
            ));
        }
        Ok(())
    }
}

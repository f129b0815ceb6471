//! The session options of a peering (`SessionOptions`) in FRR's configuration language:
//! `timers`, `ttl-security hops`, `update-source`, per family `allowas-in`,
//! `next-hop-self force` / `attribute-unchanged next-hop`, and the one graceful restart
//! time FRR has for all its peers.

use std::collections::BTreeSet;
use std::fmt::Write;

use calico_core::dataplane::{BgpSettings, NextHopMode, PeerConfig};

use super::conf::ConfError;

/// FRR's graceful restart time when no peering sets one.
pub const DEFAULT_RESTART_TIME: u16 = 120;

/// The graceful restart time of every session: FRR has one for the whole router, so
/// peerings asking for different times are refused.
pub(super) fn restart_time(settings: &BgpSettings) -> Result<u16, ConfError> {
    let times: BTreeSet<u16> = settings
        .peers
        .iter()
        .map(|p| p.session.restart_time.unwrap_or(DEFAULT_RESTART_TIME))
        .collect();
    match times.len() {
        0 => Ok(DEFAULT_RESTART_TIME),
        1 => Ok(times.into_iter().next().unwrap_or(DEFAULT_RESTART_TIME)),
        _ => {
            let peer = settings
                .peers
                .iter()
                .find(|p| p.session.restart_time.is_some())
                .map_or_else(|| settings.router_id.into(), |p| p.address);
            Err(ConfError::Unsupported {
                peer,
                field: "maxRestartTime",
                why: "FRR has one graceful restart time for all peers; give every peering the same",
            })
        }
    }
}

/// The keepalive interval written in `timers` (a third of the hold time unless set).
pub(super) fn keepalive(peer: &PeerConfig) -> u16 {
    peer.session.keepalive_time.unwrap_or(peer.hold_time / 3)
}

/// Session-level neighbor lines: GTSM and the source address.
pub(super) fn render_neighbor(c: &mut String, peer: &PeerConfig) {
    let a = peer.address;
    if let Some(hops) = peer.session.ttl_security {
        let _ = writeln!(c, " neighbor {a} ttl-security hops {hops}");
    }
    if let Some(source) = peer.session.source_address {
        let _ = writeln!(c, " neighbor {a} update-source {source}");
    }
}

/// Address-family lines: allowas-in and the next hop rule.
pub(super) fn render_family(c: &mut String, peer: &PeerConfig) {
    let a = peer.address;
    if peer.session.allow_local_as > 0 {
        let _ = writeln!(
            c,
            "  neighbor {a} allowas-in {}",
            peer.session.allow_local_as
        );
    }
    match peer.session.next_hop_mode {
        NextHopMode::Auto => {}
        // `force`: reflected iBGP routes too, as BIRD's `next hop self`.
        NextHopMode::SelfAddress => {
            let _ = writeln!(c, "  neighbor {a} next-hop-self force");
        }
        NextHopMode::Keep => {
            let _ = writeln!(c, "  neighbor {a} attribute-unchanged next-hop");
        }
    }
}

//! The session options of a peering (`SessionOptions`) in BIRD's configuration language, as
//! Calico's confd writes them: `keepalive time`, `graceful restart time`, `allow local as`,
//! `ttl security on` with `multihop`, `source address`, and the channel's `next hop` rule.

use std::fmt::Write;

use calico_core::dataplane::{NextHopMode, PeerConfig};

/// Protocol-level lines for `peer`'s session options (`ebgp`: the peer is in another AS;
/// `direct`: the protocol already says `direct;`).
pub(super) fn render_options(c: &mut String, peer: &PeerConfig, ebgp: bool, direct: bool) {
    let o = &peer.session;
    if let Some(k) = o.keepalive_time {
        let _ = writeln!(c, "  keepalive time {k};");
    }
    if let Some(r) = o.restart_time {
        let _ = writeln!(c, "  graceful restart time {r};");
    }
    if o.allow_local_as > 0 {
        let _ = writeln!(c, "  allow local as {};", o.allow_local_as);
    }
    if let Some(hops) = o.ttl_security {
        // BIRD sends with TTL 255 and requires 256 − hops, hops being the multihop TTL (1
        // for a direct session): one hop needs no multihop where the session is direct
        // already (eBGP, or iBGP told `direct`).
        c.push_str("  ttl security on;\n");
        if hops > 1 || !(ebgp || direct) {
            let _ = writeln!(c, "  multihop {hops};");
        }
    }
    if let Some(a) = o.source_address {
        let _ = writeln!(c, "  source address {a};");
    }
}

/// The channel's next hop rule: BGP's own (ours towards eBGP peers), always ours, or
/// always the learned one.
pub(super) fn next_hop(peer: &PeerConfig) -> &'static str {
    match peer.session.next_hop_mode {
        NextHopMode::Auto => "next hop self ebgp;",
        NextHopMode::SelfAddress => "next hop self;",
        NextHopMode::Keep => "next hop keep;",
    }
}

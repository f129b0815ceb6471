//! Graceful restart bookkeeping as receiving speaker (RFC 4724 §4.2): which of a peer's
//! routes are kept stale across its restart, until when, and which go when it is back or
//! sends End-of-RIB. Each step works on the RIB and the peer's entry and returns the
//! Loc-RIB changes; the [`state`](super::state) machine hands them on to the other peers.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::peers::{Peer, Peers};
use crate::packet::AfiSafi;
use crate::rib::{Change, PeerId, Rib};
use crate::session::{Negotiated, PeerGracefulRestart};

/// A peer's routes kept stale across its restart.
#[derive(Clone, Debug)]
pub(crate) struct Stale {
    /// Families with stale routes.
    pub(crate) families: Vec<AfiSafi>,
    /// Waiting for the session to come back (else for End-of-RIB).
    pub(crate) reconnecting: bool,
    /// When the routes still stale are removed.
    pub(crate) deadline: Instant,
    /// The latest `deadline` may ever be, set when the routes first became stale: a peer
    /// flapping again and again cannot keep them for ever.
    pub(crate) ceiling: Instant,
}

/// What becomes of a restarting peer's routes.
pub(crate) enum Kept {
    /// None are left: forget the peer (once the changes are handed on).
    Nothing,
    /// These are stale.
    Stale(Stale),
}

/// A peer that negotiated graceful restart went down without a NOTIFICATION: its routes of
/// the families it listed are kept, stale, for its restart time (never past the ceiling of
/// an earlier restart still running, `previous`); the others go. Returns what is kept and
/// the Loc-RIB changes (to hand on before forgetting the peer).
pub(crate) fn peer_restarting(
    rib: &mut Rib,
    (id, address): (PeerId, IpAddr),
    gr: &PeerGracefulRestart,
    previous: Option<&Stale>,
    stale_routes_time: Duration,
    now: Instant,
    why: &str,
) -> (Kept, Vec<Change>) {
    let families = gr.retained_families();
    let (count, changes) = rib.peer_restarting(id, &families);
    if count == 0 {
        tracing::info!(peer = %address, reason = why, "peer restarting, no routes of it to keep");
        return (Kept::Nothing, changes);
    }
    let restart_time = Duration::from_secs(gr.restart_time.into());
    let ceiling = previous.map_or(now + restart_time + stale_routes_time, |s| s.ceiling);
    let deadline = (now + restart_time).min(ceiling);
    let kept: Vec<AfiSafi> = families
        .into_iter()
        .filter(|f| rib.stale(id, *f) > 0)
        .collect();
    tracing::warn!(
        peer = %address,
        reason = why,
        stale_routes = count,
        families = ?kept,
        "peer restarting (graceful restart): keeping {count} routes stale for up to {} s (its restart time)",
        deadline.saturating_duration_since(now).as_secs()
    );
    let stale = Stale {
        families: kept,
        reconnecting: true,
        deadline,
        ceiling,
    };
    (Kept::Stale(stale), changes)
}

/// A peer whose routes are `stale` is back: those of families it did not keep its
/// forwarding state for go at once, the others wait for its End-of-RIB (at most
/// `stale_routes_time`). Returns what stays stale and the Loc-RIB changes.
pub(crate) fn peer_returned(
    rib: &mut Rib,
    (id, address): (PeerId, IpAddr),
    stale: Stale,
    negotiated: &Negotiated,
    stale_routes_time: Duration,
    now: Instant,
) -> (Option<Stale>, Vec<Change>) {
    let mut changes = Vec::new();
    let mut kept = Vec::new();
    for family in stale.families {
        let preserved = negotiated
            .graceful_restart
            .as_ref()
            .is_some_and(|g| g.forwarding_preserved(family));
        if preserved {
            kept.push(family);
            continue;
        }
        let n = rib.stale(id, family);
        changes.extend(rib.sweep_stale(id, family));
        tracing::warn!(
            peer = %address,
            ?family,
            "peer back without its forwarding state preserved (no F bit): {n} stale routes removed"
        );
    }
    if kept.is_empty() {
        return (None, changes);
    }
    let deadline = (now + stale_routes_time).min(stale.ceiling);
    let n: usize = kept.iter().map(|f| rib.stale(id, *f)).sum();
    tracing::info!(
        peer = %address,
        families = ?kept,
        "peer back after a restart: keeping {n} stale routes until its End-of-RIB (at most {} s)",
        deadline.saturating_duration_since(now).as_secs()
    );
    let stale = Stale {
        families: kept,
        reconnecting: false,
        deadline,
        ceiling: stale.ceiling,
    };
    (Some(stale), changes)
}

/// What a peer's End-of-RIB did.
pub(crate) struct EndOfRib {
    /// It was the last one awaited since the session came up: the peer's initial table is
    /// complete.
    pub(crate) table_complete: bool,
    /// Loc-RIB changes from removing the peer's routes of the family still stale.
    pub(crate) swept: Vec<Change>,
}

/// The peer sent End-of-RIB for `family`: its routes of that family still stale go.
pub(crate) fn end_of_rib_received(rib: &mut Rib, peer: &mut Peer, family: AfiSafi) -> EndOfRib {
    let address = peer.config.address;
    let awaited = peer.eor_awaited.len();
    peer.eor_awaited.retain(|f| *f != family);
    let table_complete = awaited > 0 && peer.eor_awaited.is_empty();
    // Whether stale routes of `family` wait for this End-of-RIB (and whether they were the
    // last stale family).
    let stale = peer
        .stale
        .as_mut()
        .filter(|s| s.families.contains(&family))
        .map(|s| {
            s.families.retain(|f| *f != family);
            s.families.is_empty()
        });
    if stale == Some(true) {
        peer.stale = None;
    }
    if table_complete {
        tracing::debug!(peer = %address, "initial table complete (End-of-RIB for every family)");
    }
    if stale.is_none() {
        tracing::debug!(peer = %address, ?family, "End-of-RIB received");
        return EndOfRib {
            table_complete,
            swept: Vec::new(),
        };
    }
    let n = rib.stale(peer.id, family);
    tracing::info!(peer = %address, ?family, "End-of-RIB received after the peer's restart: {n} routes still stale removed");
    EndOfRib {
        table_complete,
        swept: rib.sweep_stale(peer.id, family),
    }
}

/// Takes the stale state of every peer whose time is up at `now`.
pub(crate) fn take_due(peers: &mut Peers, now: Instant) -> Vec<(IpAddr, PeerId, Stale)> {
    peers
        .iter_mut()
        .filter(|p| p.stale.as_ref().is_some_and(|s| s.deadline <= now))
        .filter_map(|p| Some((p.config.address, p.id, p.stale.take()?)))
        .collect()
}

/// The earliest time stale routes of some peer are to be removed.
pub(crate) fn next_deadline(peers: &Peers) -> Option<Instant> {
    peers
        .iter()
        .filter_map(|p| p.stale.as_ref().map(|s| s.deadline))
        .min()
}

//! What a peering is configured with and what it agrees on with the peer: the OPEN we
//! send, the checks and negotiation of the peer's OPEN (RFC 4271 §6.2, capabilities of RFC
//! 5492, 6793, 2918, 4724 and 7911), and what is reported when a session ends.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::fsm::Direction;
use crate::packet::notification::OpenSubcode;
use crate::packet::open::{GracefulRestartFamily, ADD_PATH};
use crate::packet::{
    AddPathFamilies, AddPathFamily, AfiSafi, Capability, Context, ErrorCode, Notification, Open,
    AS_TRANS,
};

/// What a peering is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS.
    pub remote_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Hold time to offer (0: no keepalives, no hold timer).
    pub hold_time: u16,
    /// Seconds between KEEPALIVEs when the offered hold time is agreed; scaled down with
    /// the hold time when the peer offers less (as BIRD does). `None`: a third of the hold
    /// time (RFC 4271 §10).
    pub keepalive: Option<u16>,
    /// Never connect; wait for the peer.
    pub passive: bool,
    /// Families to offer.
    pub families: Vec<AfiSafi>,
    /// ADD-PATH (RFC 7911) to advertise, per family (empty: the capability is left out).
    pub add_path: Vec<AddPathFamily>,
    /// Graceful restart (RFC 4724) to advertise; `None` to leave the capability out (then
    /// the peer's routes are never kept across its restarts either).
    pub graceful_restart: Option<GracefulRestart>,
    /// First connect retry delay; doubles after each failure up to `connect_retry_max`.
    pub connect_retry_min: Duration,
    /// Largest connect retry delay.
    pub connect_retry_max: Duration,
}

/// Our graceful restart capability (RFC 4724).
///
/// Every family we offer is listed. The Forwarding State bit (F) of each is set when
/// `restarting`, and on every OPEN after this machine's first established session (a
/// session that drops while we keep running leaves our forwarding state intact). The
/// Restart State bit (R) is set only when `restarting`, until the first session is
/// established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    /// How long peers are to keep our routes after our session drops (seconds; values
    /// above 4095 are sent as 4095).
    pub restart_time: u16,
    /// We have just restarted with our forwarding state preserved: set the Restart State
    /// bit and the Forwarding State bit of every family we offer.
    pub restarting: bool,
}

/// The Restart State bit (R) of the capability's flags.
pub const GR_RESTART_STATE: u8 = 0x8;
/// The Forwarding State bit (F) of a family's flags.
pub const GR_FORWARDING_STATE: u8 = 0x80;

/// The peer's graceful restart capability, when both sides advertised one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerGracefulRestart {
    /// How long to keep its routes when the session drops (seconds).
    pub restart_time: u16,
    /// The peer says it has just restarted (R bit).
    pub restarted: bool,
    /// Families (among the negotiated ones) it supports graceful restart for, with whether
    /// it kept its forwarding state for each (F bit).
    pub families: Vec<(AfiSafi, bool)>,
}

impl PeerGracefulRestart {
    /// Whether the peer preserved its forwarding state for `family` (then its stale routes
    /// are kept until its End-of-RIB).
    pub fn forwarding_preserved(&self, family: AfiSafi) -> bool {
        self.families.iter().any(|(f, fwd)| *f == family && *fwd)
    }

    /// Families whose routes are kept when the session drops.
    pub fn retained_families(&self) -> Vec<AfiSafi> {
        self.families.iter().map(|(f, _)| *f).collect()
    }
}

/// Why an established session went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDown {
    /// What happened, for an operator.
    pub reason: String,
    /// The peer's routes may be kept as stale (RFC 4724): it negotiated graceful restart
    /// for at least one family and the session ended without a NOTIFICATION from either
    /// side (TCP closed or reset, or the peer reconnected in its place). Never set when the
    /// hold timer expired (we send a NOTIFICATION then) nor when we stopped the session.
    pub graceful: bool,
}

/// What both sides agreed on in their OPENs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Hold time: the smaller offer; 0 means no hold timer and no keepalives.
    pub hold_time: u16,
    /// Keepalive interval (a third of the hold time unless configured).
    pub keepalive: u16,
    /// Both sides speak 4-byte AS numbers.
    pub four_octet_as: bool,
    /// Families both sides offered.
    pub families: Vec<AfiSafi>,
    /// The peer accepts ROUTE-REFRESH.
    pub route_refresh: bool,
    /// The peer's BGP identifier.
    pub remote_id: Ipv4Addr,
    /// The peer's AS.
    pub remote_as: u32,
    /// The connection that won.
    pub direction: Direction,
    /// The peer's graceful restart capability (`None` unless both sides advertised one).
    pub graceful_restart: Option<PeerGracefulRestart>,
    /// Families on which we may send several paths of a prefix, with path identifiers: we
    /// advertised send and the peer receive (RFC 7911 §5).
    pub add_path_send: AddPathFamilies,
    /// Families on which the peer's NLRI carry path identifiers: we advertised receive and
    /// the peer send.
    pub add_path_receive: AddPathFamilies,
}

impl Negotiated {
    /// How the UPDATEs we send are encoded.
    pub fn send_context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
            add_path: self.add_path_send,
        }
    }

    /// How the UPDATEs we receive are decoded.
    pub fn receive_context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
            add_path: self.add_path_receive,
        }
    }
}

/// ADD-PATH per direction for the families both sides offered (RFC 7911 §5): we send path
/// identifiers on a family where we advertised send and the peer receive, and receive them
/// where we advertised receive and the peer send. Returns (send, receive).
pub(crate) fn add_path(
    c: &SessionConfig,
    open: &Open,
    families: &[AfiSafi],
) -> (AddPathFamilies, AddPathFamilies) {
    if open
        .capabilities
        .iter()
        .any(|cap| matches!(cap, Capability::Unknown { code, .. } if *code == ADD_PATH))
    {
        tracing::warn!(router_id = %open.router_id, "the peer's ADD-PATH capability is malformed: ignored (RFC 7911 §4)");
    }
    // RFC 7911 §4: one capability lists every family; the first one counts.
    let theirs: &[AddPathFamily] = open
        .capabilities
        .iter()
        .find_map(|cap| match cap {
            Capability::AddPath(f) => Some(f.as_slice()),
            _ => None,
        })
        .unwrap_or(&[]);
    let both = |want: fn(&AddPathFamily, &AddPathFamily) -> bool| {
        AddPathFamilies::of(c.add_path.iter().filter_map(|ours| {
            let agreed = families.contains(&ours.family)
                && theirs
                    .iter()
                    .any(|t| t.family == ours.family && want(ours, t));
            agreed.then_some(ours.family)
        }))
    };
    (
        both(|ours, theirs| ours.send && theirs.receive),
        both(|ours, theirs| ours.receive && theirs.send),
    )
}

/// The families both sides offered (IPv4 unicast when the peer listed none, RFC 4760 §8).
fn common_families(c: &SessionConfig, open: &Open) -> Vec<AfiSafi> {
    let theirs = match open.families() {
        f if f.is_empty() => vec![AfiSafi::IPV4_UNICAST],
        f => f,
    };
    c.families
        .iter()
        .filter(|f| theirs.contains(f))
        .copied()
        .collect()
}

/// How a session with configuration `c` decodes what a peer whose OPEN is `open` sends.
pub(crate) fn receive_context(c: &SessionConfig, open: &Open) -> Context {
    Context {
        four_octet_as: open.has(65),
        add_path: add_path(c, open, &common_families(c, open)).1,
    }
}

/// The OPEN we send with configuration `c`; `established_once`: a session has been
/// established since the machine started (our forwarding state survived its end).
pub(crate) fn open_message(c: &SessionConfig, established_once: bool) -> Open {
    let mut capabilities: Vec<Capability> = c
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    capabilities.push(Capability::RouteRefresh);
    capabilities.push(Capability::FourOctetAs(c.local_as));
    if !c.add_path.is_empty() {
        capabilities.push(Capability::AddPath(c.add_path.clone()));
    }
    if let Some(gr) = c.graceful_restart {
        let flags = if gr.restarting && !established_once {
            GR_RESTART_STATE
        } else {
            0
        };
        let family_flags = if gr.restarting || established_once {
            GR_FORWARDING_STATE
        } else {
            0
        };
        capabilities.push(Capability::GracefulRestart {
            flags,
            time: gr.restart_time.min(0x0fff),
            families: c
                .families
                .iter()
                .map(|f| GracefulRestartFamily {
                    family: *f,
                    flags: family_flags,
                })
                .collect(),
        });
    }
    Open {
        my_as: u16::try_from(c.local_as).unwrap_or(AS_TRANS),
        hold_time: c.hold_time,
        router_id: c.router_id,
        capabilities,
    }
}

/// What a session with a peer whose OPEN is `open`, on the connection opened by `dir`,
/// runs with; or the NOTIFICATION refusing the OPEN and why (RFC 4271 §6.2).
pub(crate) fn negotiate(
    c: &SessionConfig,
    open: &Open,
    dir: Direction,
) -> Result<Negotiated, (Notification, String)> {
    if open.asn() != c.remote_as {
        let reason = format!("peer says AS {}, configured {}", open.asn(), c.remote_as);
        let n = Notification {
            code: ErrorCode::OpenMessage(OpenSubcode::BadPeerAs),
            data: open.my_as.to_be_bytes().to_vec(),
        };
        return Err((n, reason));
    }
    if open.router_id == c.router_id {
        let n = Notification::new(ErrorCode::OpenMessage(OpenSubcode::BadBgpIdentifier));
        let reason = format!("peer uses our BGP identifier {}", open.router_id);
        return Err((n, reason));
    }
    let families = common_families(c, open);
    let (add_path_send, add_path_receive) = add_path(c, open, &families);
    let hold_time = if open.hold_time == 0 || c.hold_time == 0 {
        0
    } else {
        open.hold_time.min(c.hold_time)
    };
    let negotiated = Negotiated {
        hold_time,
        keepalive: keepalive_interval(c, hold_time),
        four_octet_as: open.has(65),
        families,
        route_refresh: open.has(2),
        remote_id: open.router_id,
        remote_as: open.asn(),
        direction: dir,
        graceful_restart: None,
        add_path_send,
        add_path_receive,
    };
    Ok(Negotiated {
        graceful_restart: c
            .graceful_restart
            .and_then(|_| peer_graceful_restart(open, &negotiated.families)),
        ..negotiated
    })
}

/// The keepalive interval for a negotiated hold time: 0 when the hold time is 0, else the
/// configured interval scaled by negotiated / offered hold time (the configured one when the
/// peer agreed to ours), or a third of the hold time; never below 1 s (RFC 4271 §4.4).
fn keepalive_interval(c: &SessionConfig, hold_time: u16) -> u16 {
    if hold_time == 0 {
        return 0;
    }
    let scaled = c.keepalive.filter(|_| c.hold_time > 0).map(|k| {
        let k = u32::from(k) * u32::from(hold_time) / u32::from(c.hold_time);
        u16::try_from(k).unwrap_or(u16::MAX)
    });
    scaled.unwrap_or(hold_time / 3).max(1)
}

/// The peer's graceful restart capability, restricted to the families negotiated.
fn peer_graceful_restart(open: &Open, negotiated: &[AfiSafi]) -> Option<PeerGracefulRestart> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart {
            flags,
            time,
            families,
        } => Some(PeerGracefulRestart {
            restart_time: *time,
            restarted: flags & GR_RESTART_STATE != 0,
            families: families
                .iter()
                .filter(|f| negotiated.contains(&f.family))
                .map(|f| (f.family, f.flags & GR_FORWARDING_STATE != 0))
                .collect(),
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hold_time: u16, keepalive: Option<u16>) -> SessionConfig {
        SessionConfig {
            local_as: 64512,
            remote_as: 64512,
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            hold_time,
            keepalive,
            passive: false,
            families: vec![AfiSafi::IPV4_UNICAST],
            add_path: Vec::new(),
            graceful_restart: None,
            connect_retry_min: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(8),
        }
    }

    #[test]
    fn keepalive_is_configured_independently_of_the_hold_time() {
        assert_eq!(keepalive_interval(&config(90, None), 90), 30, "a third");
        assert_eq!(keepalive_interval(&config(90, Some(10)), 90), 10);
        assert_eq!(keepalive_interval(&config(90, Some(60)), 90), 60);
        // The peer offered 9 s: scaled as BIRD does, so that it stays below the hold time.
        assert_eq!(keepalive_interval(&config(90, Some(60)), 9), 6);
        assert_eq!(keepalive_interval(&config(90, Some(10)), 9), 1);
        assert_eq!(
            keepalive_interval(&config(90, Some(10)), 0),
            0,
            "no keepalives"
        );
        assert_eq!(keepalive_interval(&config(3, None), 3), 1);
    }
}

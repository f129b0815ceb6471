//! Fixtures shared by the unit tests of the BIRD and FRR configuration writers.

use calico_core::dataplane::{NextHopMode, SessionOptions};

/// Two peerings' session options using every field between them: the first with keepalive
/// 2 s, restart time 45 s, GTSM one hop, next hop self and source 192.0.2.1; the second with
/// restart time 45 s, allowas-in 2, GTSM three hops and next hop keep.
pub(crate) fn session_samples() -> [SessionOptions; 2] {
    [
        SessionOptions {
            keepalive_time: Some(2),
            restart_time: Some(45),
            ttl_security: Some(1),
            next_hop_mode: NextHopMode::SelfAddress,
            source_address: Some("192.0.2.1".parse().unwrap()),
            ..Default::default()
        },
        SessionOptions {
            restart_time: Some(45),
            allow_local_as: 2,
            ttl_security: Some(3),
            next_hop_mode: NextHopMode::Keep,
            ..Default::default()
        },
    ]
}

//! Reading FRR's state back: `show bgp neighbors json` as [`PeerStatus`]es and
//! `show bgp <family> unicast json` as the best learned routes with every multipath next hop.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::daemon::peer_state;
use calico_core::dataplane::{LearnedRoute, PeerCounters, PeerState, PeerStatus};
use serde_json::Value;

/// Why FRR's answer cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("FRR's `{command}` answered what is not the JSON object expected: {why}")]
pub struct StatusError {
    /// The command.
    pub command: &'static str,
    /// Why.
    pub why: String,
}

fn object(
    command: &'static str,
    text: &str,
) -> Result<serde_json::Map<String, Value>, StatusError> {
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(StatusError {
            command,
            why: "not an object".into(),
        }),
        Err(e) => Err(StatusError {
            command,
            why: e.to_string(),
        }),
    }
}

/// The peerings `show bgp neighbors json` describes.
pub fn parse_neighbors(text: &str) -> Result<Vec<PeerStatus>, StatusError> {
    let map = object("show bgp neighbors json", text)?;
    Ok(map
        .iter()
        .filter_map(|(addr, n)| Some(neighbor(addr.parse().ok()?, n)))
        .collect())
}

fn neighbor(address: IpAddr, n: &Value) -> PeerStatus {
    let state = peer_state(n["bgpState"].as_str().unwrap_or(""));
    let families = n["addressFamilyInfo"].as_object();
    let sum = |key: &str| -> Option<u64> {
        families.map(|f| f.values().filter_map(|af| af[key].as_u64()).sum())
    };
    let established = state == PeerState::Established;
    // End-of-RIB is waited for only from a peer that negotiated graceful restart; FRR lists
    // the families whose End-of-RIB came in under `endOfRibRecv`.
    let eor = n["gracefulRestartInfo"]["endOfRibRecv"]
        .as_object()
        .is_none_or(|f| f.values().all(|v| v.as_bool() == Some(true)));
    let epoch = n["bgpTimerUpEstablishedEpoch"].as_u64();
    let stats = &n["messageStats"];
    PeerStatus {
        address,
        state,
        prefixes_received: sum("acceptedPrefixCounter").unwrap_or(0) as usize,
        end_of_rib_received: established && eor,
        last_error: last_error(n),
        counters: PeerCounters {
            established_since: epoch
                .filter(|_| established)
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
            flaps: n["connectionsDropped"].as_u64(),
            updates_received: stats["updatesRecv"].as_u64(),
            updates_sent: stats["updatesSent"].as_u64(),
            prefixes_advertised: sum("sentPrefixCounter").map(|n| n as usize),
        },
    }
}

/// The last NOTIFICATION's reason, else why the last session ended (once one ended).
fn last_error(n: &Value) -> Option<String> {
    if let Some(reason) = n["lastNotificationReason"].as_str() {
        return Some(reason.to_string());
    }
    let dropped = n["connectionsDropped"].as_u64().unwrap_or(0);
    n["lastResetDueTo"]
        .as_str()
        .filter(|_| dropped > 0)
        .map(str::to_string)
}

/// The routes learned from peers in `show bgp <family> unicast json`: those whose best path
/// is a peer's (not one of our `network`s), with the next hops of the best path and of every
/// path FRR uses for multipath (ECMP).
pub fn parse_routes(text: &str) -> Result<Vec<LearnedRoute>, StatusError> {
    let map = object("show bgp unicast json", text)?;
    let Some(routes) = map.get("routes").and_then(Value::as_object) else {
        // No `routes`: FRR has no table for the family (no router bgp yet).
        return Ok(Vec::new());
    };
    Ok(routes
        .iter()
        .filter_map(|(prefix, paths)| {
            let paths = paths.as_array()?;
            let best = paths.iter().find(|p| p["bestpath"] == true)?;
            if local(best) {
                return None;
            }
            let next_hops: BTreeSet<IpAddr> = paths
                .iter()
                .filter(|p| p["valid"] == true && (p["bestpath"] == true || p["multipath"] == true))
                .filter(|p| !local(p))
                .filter_map(next_hop)
                .collect();
            (!next_hops.is_empty()).then_some(LearnedRoute {
                prefix: prefix.parse().ok()?,
                next_hops,
            })
        })
        .collect())
}

/// A path we originate (a `network`), not one learned from a peer.
fn local(path: &Value) -> bool {
    path["peerId"]
        .as_str()
        .is_none_or(|p| p.parse::<IpAddr>().is_err())
}

/// A path's next hop as the kernel would use it: its global address (an IPv6 path also
/// carries the link-local one).
fn next_hop(path: &Value) -> Option<IpAddr> {
    path["nexthops"]
        .as_array()?
        .iter()
        .filter(|h| h["scope"].as_str().is_none_or(|s| s == "global"))
        .find_map(|h| h["ip"].as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts of FRR 8.4's `show bgp neighbors json`.
    const NEIGHBORS: &str = r#"{
  "10.98.0.2":{"bgpState":"Established","bgpTimerUpEstablishedEpoch":1796352246,
    "gracefulRestartInfo":{"endOfRibRecv":{"ipv4Unicast":true}},
    "messageStats":{"updatesSent":4,"updatesRecv":5},
    "addressFamilyInfo":{"ipv4Unicast":{"acceptedPrefixCounter":2,"sentPrefixCounter":1}},
    "connectionsEstablished":2,"connectionsDropped":1,"lastResetDueTo":"BGP Notification received",
    "lastNotificationReason":"Cease/Administrative Reset"},
  "fd98::2":{"bgpState":"Active","bgpTimerUpEstablishedEpoch":1796352000,
    "gracefulRestartInfo":{"endOfRibRecv":{"ipv6Unicast":false}},
    "messageStats":{"updatesSent":0,"updatesRecv":0},
    "connectionsEstablished":0,"connectionsDropped":0,"lastResetDueTo":"Waiting for peer OPEN"},
  "fd98::3":{"bgpState":"Established",
    "gracefulRestartInfo":{"endOfRibRecv":{"ipv6Unicast":false}}}
}"#;

    #[test]
    fn neighbors_are_read_with_their_counters() {
        let peers = parse_neighbors(NEIGHBORS).unwrap();
        assert_eq!(peers.len(), 3);
        let up = &peers[0];
        assert_eq!(up.address, "10.98.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (up.state, up.prefixes_received),
            (PeerState::Established, 2)
        );
        assert!(up.end_of_rib_received);
        assert_eq!(up.last_error.as_deref(), Some("Cease/Administrative Reset"));
        let c = &up.counters;
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1796352246);
        assert_eq!(c.established_since, Some(since));
        assert_eq!(
            (c.flaps, c.updates_received, c.updates_sent),
            (Some(1), Some(5), Some(4))
        );
        assert_eq!(c.prefixes_advertised, Some(1));
        let down = &peers[1];
        assert_eq!(down.state, PeerState::Active);
        assert!(!down.end_of_rib_received);
        assert_eq!(down.last_error, None, "no session ended yet");
        assert_eq!(down.counters.established_since, None);
        assert_eq!(
            down.counters.prefixes_advertised, None,
            "no family up: unknown"
        );
        assert!(!peers[2].end_of_rib_received, "End-of-RIB still awaited");
    }

    /// Parts of `show bgp ipv6 unicast json`: our own network, a route with two multipath
    /// next hops (global and link-local each), and one whose best path is ours.
    const ROUTES: &str = r#"{"vrfId":0,"routes":{
 "fd00:65::/122":[{"valid":true,"bestpath":true,"peerId":"(unspec)","nexthops":[{"ip":"::","scope":"global"}]}],
 "fd00:70::/64":[
   {"valid":true,"multipath":true,"peerId":"fd98::3","nexthops":[{"ip":"fd98::3","scope":"global"},{"ip":"fe80::3","scope":"link-local"}]},
   {"valid":true,"bestpath":true,"multipath":true,"peerId":"fd98::2","nexthops":[{"ip":"fd98::2","scope":"global"},{"ip":"fe80::2","scope":"link-local","used":true}]},
   {"valid":true,"peerId":"fd98::4","nexthops":[{"ip":"fd98::4","scope":"global"}]}],
 "fd00:71::/64":[
   {"valid":true,"bestpath":true,"peerId":"(unspec)","nexthops":[{"ip":"::"}]},
   {"valid":true,"peerId":"fd98::2","nexthops":[{"ip":"fd98::2"}]}]
}}"#;

    #[test]
    fn best_routes_with_every_multipath_next_hop() {
        let routes = parse_routes(ROUTES).unwrap();
        let hops: BTreeSet<IpAddr> = ["fd98::2", "fd98::3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            routes,
            vec![LearnedRoute {
                prefix: "fd00:70::/64".parse().unwrap(),
                next_hops: hops
            }]
        );
        assert_eq!(parse_routes("{}").unwrap(), vec![], "no BGP instance yet");
        assert!(parse_routes("% Unknown command").is_err());
        assert!(parse_neighbors("[]").is_err());
    }
}

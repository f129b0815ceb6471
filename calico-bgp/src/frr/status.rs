//! Reading FRR's state back: `show bgp neighbors json` as [`PeerStatus`]es and
//! `show bgp <family> unicast json` as the best learned routes with every multipath next hop.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

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

fn object<'a>(
    command: &'static str,
    text: &'a str,
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
    let state = state(n["bgpState"].as_str().unwrap_or(""));
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

fn state(s: &str) -> PeerState {
    match s {
        "Established" => PeerState::Established,
        "Connect" => PeerState::Connect,
        "Active" => PeerState::Active,
        "OpenSent" => PeerState::OpenSent,
        "OpenConfirm" => PeerState::OpenConfirm,
        _ => PeerState::Idle,
    }
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

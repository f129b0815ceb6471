//! Talking to a running BIRD: `birdc` commands and the parsing of `show protocols all`.

use std::net::IpAddr;

use crate::daemon::peer_state;
use calico_core::dataplane::{PeerCounters, PeerState, PeerStatus};

/// One BGP protocol as `birdc show protocols all` describes it.
pub fn parse_protocols(text: &str) -> Vec<PeerStatus> {
    let mut out = Vec::new();
    let mut current: Option<PeerStatus> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            if let Some(p) = current.take() {
                out.push(p);
            }
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(1) == Some(&"BGP") {
                current = Some(PeerStatus {
                    // Filled from "Neighbor address" below.
                    address: IpAddr::from([0, 0, 0, 0]),
                    state: cols.get(5).map_or(PeerState::Idle, |s| peer_state(s)),
                    prefixes_received: 0,
                    end_of_rib_received: false,
                    last_error: None,
                    counters: PeerCounters::default(),
                });
            }
            continue;
        }
        let Some(p) = current.as_mut() else { continue };
        let line = line.trim();
        if let Some(v) = line.strip_prefix("BGP state:") {
            p.state = peer_state(v.trim());
        } else if let Some(v) = line.strip_prefix("Neighbor address:") {
            if let Ok(a) = v.trim().parse() {
                p.address = a;
            }
        } else if let Some(v) = line.strip_prefix("Routes:") {
            // "3 imported, 1 exported, 3 preferred", one line per channel.
            let words: Vec<&str> = v.split_whitespace().collect();
            let count = |what: &str| {
                let at = words.iter().position(|w| w.trim_end_matches(',') == what)?;
                words.get(at.checked_sub(1)?)?.parse::<usize>().ok()
            };
            p.prefixes_received += count("imported").unwrap_or(0);
            if let Some(n) = count("exported") {
                *p.counters.prefixes_advertised.get_or_insert(0) += n;
            }
        } else if let Some(v) = line.strip_prefix("Last error:") {
            p.last_error = Some(v.trim().to_string());
        }
    }
    out.extend(current);
    out.retain(|p| !p.address.is_unspecified());
    // `show protocols all` does not tell whether the peer's End-of-RIB came in.
    for p in &mut out {
        p.end_of_rib_received = p.state == PeerState::Established;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     02:05:57.698  
peer_192_0_2_2 BGP        ---        start  02:05:57.698  Active        
  BGP state:          Active
    Neighbor address: 192.0.2.2
    Neighbor AS:      64512
    Last error:       Hold timer expired
  Channel ipv4
    State:          DOWN
peer_fd00__2 BGP        ---        up     02:06:01.000  Established   
  BGP state:          Established
    Neighbor address: fd00::2
  Channel ipv6
    State:          UP
    Routes:         3 imported, 1 exported, 3 preferred
";

    #[test]
    fn bgp_protocols_are_read() {
        let peers = parse_protocols(SHOW);
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].address, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(peers[0].state, PeerState::Active);
        assert_eq!(peers[0].last_error.as_deref(), Some("Hold timer expired"));
        assert_eq!(peers[1].state, PeerState::Established);
        assert_eq!(peers[1].prefixes_received, 3);
        assert_eq!(peers[1].counters.prefixes_advertised, Some(1));
        assert_eq!(
            peers[0].counters.prefixes_advertised, None,
            "no channel up: unknown"
        );
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(parse_protocols("nonsense\n  BGP state: x\n").is_empty());
    }
}

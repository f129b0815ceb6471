//! Reloading FRR without restarting it: what of the running configuration
//! (`show running-config`) the new one no longer has, as the `no …` commands that remove it.
//!
//! `vtysh -f` only adds to the running configuration; the driver applies these removals
//! first and the whole new configuration after them (commands already in force change
//! nothing, so established sessions whose peering is unchanged stay up). Only what the
//! driver itself writes is looked at: anything else an operator added is left alone.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;

use calico_core::dataplane::BgpSettings;
use ipnet::IpNet;

use super::conf::{bfd_profile, export_list, export_map};

/// What the driver writes, as found in a running configuration.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Running {
    /// The AS of every `router bgp` (default VRF).
    pub routers: BTreeSet<u32>,
    /// Neighbors of the `router bgp`.
    pub neighbors: BTreeSet<IpAddr>,
    /// `network` statements.
    pub networks: BTreeSet<IpNet>,
    /// Our export prefix-lists' entries: (sequence number, prefix).
    pub list_entries: BTreeSet<(u32, IpNet)>,
    /// The export route-maps have their pass-everything entry (route reflector).
    pub reflecting: bool,
    /// Graceful restart is on.
    pub graceful_restart: bool,
    /// A `bgp cluster-id` is set.
    pub cluster_id: bool,
    /// BFD profiles.
    pub bfd_profiles: BTreeSet<String>,
    /// Route policy route-maps (`super::policy`), by name.
    pub policy_maps: BTreeSet<String>,
    /// Route policy prefix-lists: (`ip` or `ipv6`, name).
    pub policy_lists: BTreeSet<(String, String)>,
}

/// Reads `show running-config`.
pub fn parse_running(text: &str) -> Running {
    let mut r = Running::default();
    let mut node = "";
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let indent = line.len() - line.trim_start().len();
        if indent == 0 && !words.is_empty() {
            node = "";
        }
        match (indent, words.as_slice()) {
            (0, ["router", "bgp", asn]) => {
                if let Ok(asn) = asn.parse() {
                    r.routers.insert(asn);
                    node = "bgp";
                }
            }
            (0, ["bfd"]) => node = "bfd",
            (0, [ip, "prefix-list", list, "seq", seq, "permit", net])
                if matches!(*ip, "ip" | "ipv6")
                    && (*list == export_list(false) || *list == export_list(true)) =>
            {
                if let (Ok(seq), Ok(net)) = (seq.parse(), net.parse()) {
                    r.list_entries.insert((seq, net));
                }
            }
            (0, ["route-map", map, "permit", "20"])
                if *map == export_map(false) || *map == export_map(true) =>
            {
                r.reflecting = true;
            }
            (0, ["route-map", map, ..]) if map.starts_with(super::policy::PREFIX) => {
                r.policy_maps.insert(map.to_string());
            }
            (0, [ip, "prefix-list", list, ..])
                if matches!(*ip, "ip" | "ipv6") && list.starts_with(super::policy::PREFIX) =>
            {
                r.policy_lists.insert((ip.to_string(), list.to_string()));
            }
            (1, ["neighbor", addr, "remote-as", ..]) if node == "bgp" => {
                if let Ok(a) = addr.parse() {
                    r.neighbors.insert(a);
                }
            }
            (1, ["bgp", "cluster-id", ..]) if node == "bgp" => r.cluster_id = true,
            (1, ["bgp", "graceful-restart"]) if node == "bgp" => r.graceful_restart = true,
            (2, ["network", net, ..]) if node == "bgp" => {
                if let Ok(net) = net.parse() {
                    r.networks.insert(net);
                }
            }
            (1, ["profile", name]) if node == "bfd" && name.starts_with("calico-") => {
                r.bfd_profiles.insert(name.to_string());
            }
            _ => {}
        }
    }
    r
}

/// The commands removing the route policy objects of `running` that `settings` no longer
/// uses: to run after the new configuration has pointed the neighbors at their new ones.
pub fn stale_policy(running: &Running, settings: &BgpSettings) -> String {
    match super::policy::build(settings) {
        Ok(maps) => super::policy::stale(&running.policy_maps, &running.policy_lists, &maps),
        Err(_) => String::new(), // the configuration itself is refused
    }
}

/// The commands removing from `running` what `settings` and `exports` no longer have, and
/// the neighbors in `reset` (peerings that changed: removed, then added anew).
pub fn removals(
    running: &Running,
    settings: &BgpSettings,
    exports: &BTreeSet<IpNet>,
    reset: &BTreeSet<IpAddr>,
) -> String {
    let mut c = String::new();
    let asn = settings.local_as.0;
    for old in running.routers.iter().filter(|a| **a != asn) {
        let _ = writeln!(c, "no router bgp {old}");
    }
    if running.routers.contains(&asn) {
        remove_in_router(&mut c, running, settings, exports, reset);
    }
    for (seq, net) in running
        .list_entries
        .iter()
        .filter(|(_, n)| !exports.contains(n))
    {
        let v6 = matches!(net, IpNet::V6(_));
        let ip = if v6 { "ipv6" } else { "ip" };
        let list = export_list(v6);
        let _ = writeln!(c, "no {ip} prefix-list {list} seq {seq} permit {net}");
    }
    if running.reflecting && settings.cluster_id.is_none() {
        for v6 in [false, true] {
            let _ = writeln!(c, "no route-map {} permit 20", export_map(v6));
        }
    }
    let profiles: BTreeSet<String> = settings
        .peers
        .iter()
        .filter(|p| p.bfd.is_some())
        .map(|p| bfd_profile(p.address))
        .collect();
    let stale: Vec<_> = running.bfd_profiles.difference(&profiles).collect();
    if !stale.is_empty() {
        c.push_str("bfd\n");
        for p in stale {
            let _ = writeln!(c, " no profile {p}");
        }
        c.push_str("exit\n");
    }
    c
}

/// Removals inside the `router bgp` that stays.
fn remove_in_router(
    c: &mut String,
    running: &Running,
    settings: &BgpSettings,
    exports: &BTreeSet<IpNet>,
    reset: &BTreeSet<IpAddr>,
) {
    let wanted: BTreeSet<IpAddr> = settings.peers.iter().map(|p| p.address).collect();
    let gone: Vec<_> = running
        .neighbors
        .iter()
        .filter(|a| !wanted.contains(a) || reset.contains(a))
        .collect();
    let networks: Vec<_> = running.networks.difference(exports).collect();
    let cluster = running.cluster_id && settings.cluster_id.is_none();
    if gone.is_empty() && networks.is_empty() && !cluster {
        return;
    }
    let _ = writeln!(c, "router bgp {}", settings.local_as.0);
    for a in gone {
        let _ = writeln!(c, " no neighbor {a}");
    }
    if cluster {
        c.push_str(" no bgp cluster-id\n");
    }
    for (af, v6) in [("ipv4", false), ("ipv6", true)] {
        let family: Vec<_> = networks
            .iter()
            .filter(|n| matches!(n, IpNet::V6(_)) == v6)
            .collect();
        if family.is_empty() {
            continue;
        }
        let _ = writeln!(c, " address-family {af} unicast");
        for net in family {
            let _ = writeln!(c, "  no network {net}");
        }
        c.push_str(" exit-address-family\n");
    }
    c.push_str("exit\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_core::dataplane::PeerConfig;
    use calico_core::model::AsNumber;

    /// `show running-config` of FRR 8.4 running what the driver wrote.
    const RUNNING: &str = "Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
log file /tmp/x/frr.log informational
!
ip prefix-list CALICO-EXPORTS4 seq 5 permit 10.65.0.0/26
ip prefix-list CALICO-EXPORTS4 seq 10 permit 10.65.9.0/26
ip prefix-list OTHER seq 5 permit 10.1.0.0/16
!
route-map CALICO-EXPORT4 permit 10
 match ip address prefix-list CALICO-EXPORTS4
exit
!
route-map CALICO-EXPORT4 permit 20
exit
!
router bgp 64512
 bgp router-id 10.98.0.1
 no bgp default ipv4-unicast
 bgp graceful-restart
 bgp cluster-id 1.1.1.1
 neighbor 10.98.0.2 remote-as 64513
 neighbor 10.98.0.2 password s3cret
 neighbor 10.98.0.3 remote-as 64513
 neighbor fd98::2 remote-as 64513
 !
 address-family ipv4 unicast
  network 10.65.0.0/26
  network 10.65.9.0/26
  neighbor 10.98.0.2 activate
 exit-address-family
exit
!
bfd
 profile calico-10-98-0-3
  detect-multiplier 3
 exit
 !
exit
!
end
";

    fn settings(peers: &[&str]) -> BgpSettings {
        BgpSettings {
            local_as: AsNumber(64512),
            router_id: "10.98.0.1".parse().unwrap(),
            listen_port: 179,
            cluster_id: None,
            peers: peers
                .iter()
                .map(|a| PeerConfig {
                    address: a.parse().unwrap(),
                    remote_as: AsNumber(64513),
                    password: None,
                    hold_time: 9,
                    passive: false,
                    route_reflector_client: false,
                    bfd: None,
                    add_path: Default::default(),
                    session: Default::default(),
                })
                .collect(),
            policy: Default::default(),
        }
    }

    #[test]
    fn the_running_configuration_is_read() {
        let r = parse_running(RUNNING);
        assert_eq!(r.routers, [64512].into());
        assert_eq!(r.neighbors.len(), 3);
        assert_eq!(r.networks.len(), 2);
        assert_eq!(r.list_entries.len(), 2, "ours only: {r:?}");
        assert!(r.reflecting && r.cluster_id && r.graceful_restart);
        assert_eq!(r.bfd_profiles, ["calico-10-98-0-3".to_string()].into());
    }

    #[test]
    fn what_went_is_removed_and_changed_peers_are_reset() {
        let r = parse_running(RUNNING);
        let exports: BTreeSet<IpNet> = ["10.65.0.0/26".parse().unwrap()].into();
        let reset = ["fd98::2".parse().unwrap()].into();
        let c = removals(&r, &settings(&["10.98.0.2", "fd98::2"]), &exports, &reset);
        assert_eq!(
            c,
            "router bgp 64512\n no neighbor 10.98.0.3\n no neighbor fd98::2\n no bgp cluster-id\n \
             address-family ipv4 unicast\n  no network 10.65.9.0/26\n exit-address-family\nexit\n\
             no ip prefix-list CALICO-EXPORTS4 seq 10 permit 10.65.9.0/26\n\
             no route-map CALICO-EXPORT4 permit 20\nno route-map CALICO-EXPORT6 permit 20\n\
             bfd\n no profile calico-10-98-0-3\nexit\n"
        );
    }

    #[test]
    fn a_new_as_replaces_the_router_and_nothing_is_left_when_nothing_went() {
        let r = parse_running(RUNNING);
        let mut s = settings(&["10.98.0.2"]);
        s.local_as = AsNumber(64999);
        let c = removals(&r, &s, &BTreeSet::new(), &BTreeSet::new());
        assert!(c.starts_with("no router bgp 64512\n"), "{c}");
        assert!(
            !c.contains("no neighbor"),
            "the old router is gone whole: {c}"
        );
        let same = Running::default();
        let c = removals(&same, &settings(&[]), &BTreeSet::new(), &BTreeSet::new());
        assert_eq!(c, "");
    }
}

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
            (0, [ip, list, "seq", seq, "permit", net])
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

//! Where the RIB's bytes go per prefix (issue 19): the feed bench's table (the same
//! prefixes, four per AS path) applied straight to a [`Rib`], with the heap in use read from
//! glibc (`mallinfo2`) before and after, so that the Loc-RIB's own share can be told from
//! the speaker's (sessions, buffers, the runtime) that the feed bench's RSS figure includes.
//!
//! Run: `cargo bench -p calico-bgp --bench rib_memory` (`FEED_PREFIXES=N` as in the feed
//! bench: default 1,000,000 IPv4 and 500,000 IPv6 prefixes). Steps, each from an empty
//! RIB: every prefix with one shared attribute set (the prefix tables alone), then four
//! prefixes per attribute set as fed (adds the attribute sets and their interning), with
//! the growth of resident memory beside it (the feed bench measures that).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_bgp::packet::attribute::{MpNextHop, MpReach};
use calico_bgp::packet::{AfiSafi, AsPath, Origin, PathAttributes, Update};
use calico_bgp::rib::{PeerId, PeerInfo, Rib, RibSettings, RouteAttrs};
use calico_core::dataplane::NextHopMode;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Bytes allocated and in use on the heap (glibc's arenas and its mmapped chunks).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 has no preconditions; it only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

/// Resident memory of this process in bytes (0 when it cannot be read).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn attributes(g: u32) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(vec![
            65000,
            64512 + g % 400,
            4_200_000_000 + g / 400,
        ])),
        med: Some(g % 7),
        ..PathAttributes::default()
    }
}

/// The UPDATEs of the feed bench's table, four prefixes each, made as they are applied (so
/// that they are not counted): `per_path` prefixes per attribute set.
fn updates(v6: bool, prefixes: u32, per_path: u32) -> impl Iterator<Item = Update> {
    let prefix = move |i: u32| -> IpNet {
        if v6 {
            let addr = (0x2a00u128 << 112) | (u128::from(i) << 80);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), 48).unwrap())
        } else {
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from((16u32 << 24) + (i << 8)), 24).unwrap())
        }
    };
    (0..prefixes).step_by(4).map(move |i| {
        let g = i / per_path;
        let n = 4.min(prefixes - i);
        let nlri: Vec<IpNet> = (i..i + n).map(prefix).collect();
        let mut attributes = attributes(g);
        let mut update = Update::default();
        if v6 {
            attributes.mp_reach = Some(Box::new(MpReach {
                family: AfiSafi::IPV6_UNICAST,
                next_hop: MpNextHop {
                    global: "fd98::1".parse().unwrap(),
                    link_local: None,
                },
                nlri,
                path_ids: Vec::new(),
            }));
        } else {
            attributes.next_hop = Some(Ipv4Addr::new(10, 98, 0, 1));
            update.nlri = nlri
                .into_iter()
                .filter_map(|p| match p {
                    IpNet::V4(p) => Some(p),
                    IpNet::V6(_) => None,
                })
                .collect();
        }
        update.attributes = attributes;
        update
    })
}

fn rib(v6: bool) -> Rib {
    let mut rib = Rib::new(RibSettings {
        local_as: 65001,
        router_id: Ipv4Addr::new(10, 98, 0, 2),
        cluster_id: None,
    });
    let address: IpAddr = if v6 {
        "fd98::1".parse().unwrap()
    } else {
        "10.98.0.1".parse().unwrap()
    };
    rib.peer_up(
        PeerId(1),
        PeerInfo {
            address,
            remote_as: 65000,
            router_id: Ipv4Addr::new(10, 98, 0, 1),
            ebgp: true,
            rr_client: false,
            local_address: address,
            interface: None,
            families: vec![if v6 {
                AfiSafi::IPV6_UNICAST
            } else {
                AfiSafi::IPV4_UNICAST
            }],
            allow_local_as: 0,
            next_hop_mode: NextHopMode::Auto,
        },
    );
    rib
}

/// Heap bytes per prefix the RIB holds once every UPDATE is applied, the growth of resident
/// memory per prefix, and the number of attribute sets.
fn per_prefix(v6: bool, prefixes: u32, per_path: u32) -> (f64, f64, usize) {
    let (before, rss_before) = (heap_in_use(), rss());
    let mut rib = rib(v6);
    for u in updates(v6, prefixes, per_path) {
        rib.apply_owned(PeerId(1), u);
    }
    let (after, rss_after) = (heap_in_use(), rss());
    assert_eq!(rib.len(), prefixes as usize);
    let sets = rib.attribute_sets();
    let n = f64::from(prefixes);
    let bytes = after.saturating_sub(before) as f64 / n;
    let resident = rss_after.saturating_sub(rss_before) as f64 / n;
    drop(rib);
    (bytes, resident, sets)
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    println!(
        "sizes: RouteAttrs {} B, PathAttributes {} B",
        std::mem::size_of::<RouteAttrs>(),
        std::mem::size_of::<PathAttributes>()
    );
    println!(
        "{:<6} {:>10} {:>20} {:>20} {:>12} {:>16} {:>14}",
        "family",
        "prefixes",
        "B/prefix, one set",
        "B/prefix, 4 per set",
        "attr sets",
        "B per attr set",
        "RSS B/prefix"
    );
    for (v6, name, default) in [(false, "IPv4", 1_000_000), (true, "IPv6", 500_000)] {
        let prefixes = env_u32("FEED_PREFIXES", default);
        let (table, _, _) = per_prefix(v6, prefixes, prefixes);
        let (all, resident, sets) = per_prefix(v6, prefixes, 4);
        println!(
            "{name:<6} {prefixes:>10} {table:>20.1} {all:>20.1} {sets:>12} {:>16.0} {resident:>14.1}",
            (all - table) * f64::from(prefixes) / sets as f64
        );
    }
}

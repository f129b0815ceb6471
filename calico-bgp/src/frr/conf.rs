//! The `frr.conf` the driver writes: the exports as `network` statements announced through
//! per-family export route-maps (our own prefixes only; a route reflector also passes on
//! what it learned), one neighbor per peering activated in its own address family, ECMP
//! (`maximum-paths`), graceful restart, and a BFD profile per peering with BFD.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;
use std::path::Path;

use calico_core::dataplane::{BgpSettings, PeerConfig};
use ipnet::IpNet;

/// Equal-cost paths FRR may use per prefix (eBGP and iBGP alike).
pub const MAXIMUM_PATHS: u8 = 16;

/// Seconds between connection attempts to a peer (FRR's default is 120 s; Calico wants a
/// returning peer back within seconds).
pub const CONNECT_RETRY: u16 = 5;

/// The line turning graceful restart (RFC 4724) on, restarting and receiving speaker both.
/// bgpd refuses it when graceful restart is on already ("% Invalid value"), so a reload
/// leaves it out then.
pub const GRACEFUL_RESTART: &str = " bgp graceful-restart\n";

/// TCP MD5 keys are at most 80 bytes (Linux `TCP_MD5SIG_MAXKEYLEN`).
const MAX_PASSWORD: usize = 80;

/// Why a configuration cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// A BGP password FRR's configuration language (or TCP MD5) cannot carry.
    #[error("peer {peer}: password: {why}")]
    Password {
        /// The peer's address.
        peer: IpAddr,
        /// Why.
        why: &'static str,
    },
    /// A hold time BGP forbids.
    #[error("peer {peer}: hold time {hold}: must be 0 or at least 3 seconds (RFC 4271)")]
    HoldTime {
        /// The peer's address.
        peer: IpAddr,
        /// The hold time.
        hold: u16,
    },
    /// BFD timers out of range (of the model, or of FRR's bfdd).
    #[error("peer {peer}: {field}: {why}")]
    Bfd {
        /// The peer's address.
        peer: IpAddr,
        /// The field.
        field: &'static str,
        /// Why.
        why: String,
    },
}

/// The name of the route-map announcing our exports of one family to every peer.
pub fn export_map(v6: bool) -> &'static str {
    if v6 {
        "CALICO-EXPORT6"
    } else {
        "CALICO-EXPORT4"
    }
}

/// The name of the prefix-list holding our exports of one family.
pub fn export_list(v6: bool) -> &'static str {
    if v6 {
        "CALICO-EXPORTS6"
    } else {
        "CALICO-EXPORTS4"
    }
}

/// The name of the BFD profile of a peering.
pub fn bfd_profile(addr: IpAddr) -> String {
    let text: String = addr
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("calico-{text}")
}

/// Renders the whole configuration (`log`: FRR's log file).
pub fn render(
    settings: &BgpSettings,
    exports: &BTreeSet<IpNet>,
    log: &Path,
) -> Result<String, ConfError> {
    for peer in &settings.peers {
        check_peer(peer)?;
    }
    let mut c = String::new();
    c.push_str("frr defaults traditional\n");
    let _ = writeln!(c, "log file {} informational", log.display());
    c.push_str("! Written by calico-rs (calico-bgp FRR driver). Do not edit.\n");
    render_policy(&mut c, settings, exports);
    render_bfd(&mut c, settings);
    render_router(&mut c, settings, exports);
    Ok(c)
}

/// Prefix-lists of our exports, the export route-maps (a reflector passes on everything)
/// and the import route-map (everything: eBGP needs a policy in FRR).
fn render_policy(c: &mut String, settings: &BgpSettings, exports: &BTreeSet<IpNet>) {
    for net in exports {
        let (ip, v6) = match net {
            IpNet::V4(_) => ("ip", false),
            IpNet::V6(_) => ("ipv6", true),
        };
        let _ = writeln!(c, "{ip} prefix-list {} permit {net}", export_list(v6));
    }
    c.push_str("route-map CALICO-IMPORT permit 10\nexit\n");
    for (ip, v6) in [("ip", false), ("ipv6", true)] {
        let map = export_map(v6);
        let _ = writeln!(
            c,
            "route-map {map} permit 10\n match {ip} address prefix-list {}\nexit",
            export_list(v6)
        );
        if settings.cluster_id.is_some() {
            let _ = writeln!(c, "route-map {map} permit 20\nexit");
        }
    }
}

/// One BFD profile per peering with BFD, holding its timers.
fn render_bfd(c: &mut String, settings: &BgpSettings) {
    let with_bfd: Vec<_> = settings
        .peers
        .iter()
        .filter_map(|p| Some((p.address, p.bfd?)))
        .collect();
    if with_bfd.is_empty() {
        return;
    }
    c.push_str("bfd\n");
    for (addr, b) in with_bfd {
        let _ = writeln!(
            c,
            " profile {}\n  detect-multiplier {}\n  receive-interval {}\n  transmit-interval {}\n exit",
            bfd_profile(addr),
            b.multiplier,
            b.min_rx.as_millis(),
            b.min_tx.as_millis()
        );
    }
    c.push_str("exit\n");
}

fn render_router(c: &mut String, settings: &BgpSettings, exports: &BTreeSet<IpNet>) {
    let _ = writeln!(c, "router bgp {}", settings.local_as.0);
    let _ = writeln!(c, " bgp router-id {}", settings.router_id);
    // Peers are activated in their own family only; our exports need not be in the RIB.
    c.push_str(" no bgp default ipv4-unicast\n no bgp network import-check\n");
    c.push_str(GRACEFUL_RESTART);
    c.push_str(" bgp bestpath as-path multipath-relax\n");
    if let Some(id) = settings.cluster_id {
        let _ = writeln!(c, " bgp cluster-id {id}");
    }
    for peer in &settings.peers {
        render_neighbor(c, peer);
    }
    for (af, v6) in [("ipv4", false), ("ipv6", true)] {
        let _ = writeln!(c, " address-family {af} unicast");
        for net in exports.iter().filter(|n| matches!(n, IpNet::V6(_)) == v6) {
            let _ = writeln!(c, "  network {net}");
        }
        let _ = writeln!(
            c,
            "  maximum-paths {MAXIMUM_PATHS}\n  maximum-paths ibgp {MAXIMUM_PATHS}"
        );
        for peer in settings.peers.iter().filter(|p| p.address.is_ipv6() == v6) {
            let a = peer.address;
            let _ = writeln!(c, "  neighbor {a} activate");
            let _ = writeln!(c, "  neighbor {a} route-map CALICO-IMPORT in");
            let _ = writeln!(c, "  neighbor {a} route-map {} out", export_map(v6));
            if peer.route_reflector_client {
                let _ = writeln!(c, "  neighbor {a} route-reflector-client");
            }
        }
        c.push_str(" exit-address-family\n");
    }
    c.push_str("exit\n");
}

/// The session settings of one (checked) peering.
fn render_neighbor(c: &mut String, peer: &PeerConfig) {
    let a = peer.address;
    let _ = writeln!(c, " neighbor {a} remote-as {}", peer.remote_as.0);
    let keepalive = peer.hold_time / 3;
    let _ = writeln!(c, " neighbor {a} timers {keepalive} {}", peer.hold_time);
    let _ = writeln!(c, " neighbor {a} timers connect {CONNECT_RETRY}");
    if peer.passive {
        let _ = writeln!(c, " neighbor {a} passive");
    }
    if let Some(p) = &peer.password {
        let _ = writeln!(c, " neighbor {a} password {p}");
    }
    if peer.bfd.is_some() {
        let _ = writeln!(c, " neighbor {a} bfd");
        let _ = writeln!(c, " neighbor {a} bfd profile {}", bfd_profile(a));
    }
}

/// Refuses a peering FRR's configuration (or BGP) cannot express.
fn check_peer(peer: &PeerConfig) -> Result<(), ConfError> {
    if let Some(p) = &peer.password {
        let why = if p.is_empty() {
            Some("must not be empty")
        } else if p.len() > MAX_PASSWORD {
            Some("longer than the 80 bytes of a TCP MD5 key")
        } else if !p.bytes().all(|b| b.is_ascii_graphic()) {
            Some("must be printable ASCII without spaces (one word in frr.conf)")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ConfError::Password {
                peer: peer.address,
                why,
            });
        }
    }
    if let Some(b) = peer.bfd {
        let bfd = |field, why: String| ConfError::Bfd {
            peer: peer.address,
            field,
            why,
        };
        if let Err((field, why)) = b.validate() {
            return Err(bfd(field, why));
        }
        if b.multiplier < 2 {
            return Err(bfd("bfd.multiplier", "FRR's bfdd needs 2-255".into()));
        }
    }
    if peer.hold_time != 0 && peer.hold_time < 3 {
        return Err(ConfError::HoldTime {
            peer: peer.address,
            hold: peer.hold_time,
        });
    }
    Ok(())
}

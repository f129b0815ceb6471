//! The `frr.conf` the driver writes: the exports as `network` statements announced through
//! per-family export route-maps (our own prefixes only; a route reflector also passes on
//! what it learned), one neighbor per peering activated in its own address family, ECMP
//! (`maximum-paths`), graceful restart, a BFD profile per peering with BFD, and route-maps
//! of their own for peerings with route policy (`super::policy`).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;
use std::path::Path;

use calico_core::dataplane::{AddPathConfig, BgpSettings, PeerConfig};
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
    /// A route filter the model would not have accepted.
    #[error("{0}")]
    Filter(#[from] calico_core::model::ValidationError),
    /// A session option out of range.
    #[error("peer {peer}: {field}: {why}")]
    Session {
        /// The peer's address.
        peer: IpAddr,
        /// The field.
        field: &'static str,
        /// Why.
        why: String,
    },
    /// A peer setting this driver does not carry over to FRR.
    #[error("peer {peer}: {field}: not supported by the FRR driver ({why})")]
    Unsupported {
        /// The peer's address.
        peer: IpAddr,
        /// The field.
        field: &'static str,
        /// Why, or what to use instead.
        why: &'static str,
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
    settings.policy.validate()?;
    let mut c = String::new();
    c.push_str("frr defaults traditional\n");
    let _ = writeln!(c, "log file {} informational", log.display());
    c.push_str("! Written by calico-rs (calico-bgp FRR driver). Do not edit.\n");
    render_policy(&mut c, settings, exports);
    let maps = super::policy::build(settings)?;
    super::policy::render(&mut c, &maps);
    render_bfd(&mut c, settings);
    render_router(
        &mut c,
        settings,
        exports,
        &maps,
        super::session::restart_time(settings)?,
    );
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
        .filter_map(|p| Some((p.address, p.bfd.as_ref()?)))
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

fn render_router(
    c: &mut String,
    settings: &BgpSettings,
    exports: &BTreeSet<IpNet>,
    maps: &super::policy::PolicyMaps,
    restart_time: u16,
) {
    let _ = writeln!(c, "router bgp {}", settings.local_as.0);
    let _ = writeln!(c, " bgp router-id {}", settings.router_id);
    // Peers are activated in their own family only; our exports need not be in the RIB.
    c.push_str(" no bgp default ipv4-unicast\n no bgp network import-check\n");
    c.push_str(GRACEFUL_RESTART);
    // No graceful restart after a NOTIFICATION (RFC 8538): a peer whose hold timer expired
    // is gone, and its routes with it, not kept for the restart time.
    c.push_str(" no bgp graceful-restart notification\n");
    let _ = writeln!(c, " bgp graceful-restart restart-time {restart_time}");
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
            let import = maps.map(a, false).unwrap_or("CALICO-IMPORT");
            let export = maps.map(a, true).unwrap_or(export_map(v6));
            let _ = writeln!(c, "  neighbor {a} route-map {import} in");
            let _ = writeln!(c, "  neighbor {a} route-map {export} out");
            if peer.route_reflector_client {
                let _ = writeln!(c, "  neighbor {a} route-reflector-client");
            }
            super::session::render_family(c, peer);
        }
        c.push_str(" exit-address-family\n");
    }
    c.push_str("exit\n");
}

/// The session settings of one (checked) peering.
fn render_neighbor(c: &mut String, peer: &PeerConfig) {
    let a = peer.address;
    let _ = writeln!(c, " neighbor {a} remote-as {}", peer.remote_as.0);
    let keepalive = super::session::keepalive(peer);
    let _ = writeln!(c, " neighbor {a} timers {keepalive} {}", peer.hold_time);
    super::session::render_neighbor(c, peer);
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
    if let Some(b) = &peer.bfd {
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
        if b.authentication.is_some() {
            return Err(ConfError::Unsupported {
                peer: peer.address,
                field: "bfd.authentication",
                why: "FRR's bfdd has no BFD authentication; use the native speaker or BIRD",
            });
        }
    }
    if peer.add_path != AddPathConfig::default() {
        // FRR's addpath-tx-all-paths sends every path, not the multipath set the native
        // speaker and BIRD send; refused rather than meaning something else.
        return Err(ConfError::Unsupported {
            peer: peer.address,
            field: "add_path",
            why: "use the native speaker or BIRD for ADD-PATH",
        });
    }
    if peer.hold_time != 0 && peer.hold_time < 3 {
        return Err(ConfError::HoldTime {
            peer: peer.address,
            hold: peer.hold_time,
        });
    }
    peer.session
        .validate(peer.hold_time)
        .map_err(|(field, why)| ConfError::Session {
            peer: peer.address,
            field,
            why,
        })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use calico_core::dataplane::BfdConfig;
    use calico_core::model::AsNumber;
    use std::time::Duration;

    fn peer(address: &str, remote_as: u32) -> PeerConfig {
        PeerConfig {
            address: address.parse().unwrap(),
            remote_as: AsNumber(remote_as),
            password: None,
            hold_time: 9,
            passive: false,
            route_reflector_client: false,
            bfd: None,
            add_path: AddPathConfig::default(),
            session: Default::default(),
        }
    }

    pub(crate) fn settings() -> BgpSettings {
        let mut rr = peer("192.0.2.2", 64512);
        rr.password = Some("s3cret!#x".into());
        rr.passive = true;
        rr.route_reflector_client = true;
        rr.bfd = Some(BfdConfig {
            min_tx: Duration::from_millis(200),
            min_rx: Duration::from_millis(250),
            multiplier: 4,
            authentication: None,
        });
        BgpSettings {
            local_as: AsNumber(64512),
            router_id: "192.0.2.1".parse().unwrap(),
            listen_port: 179,
            cluster_id: Some("1.1.1.1".parse().unwrap()),
            peers: [rr, peer("fd00::2", 4_200_000_000)].into(),
            policy: Default::default(),
        }
    }

    pub(crate) fn exports() -> BTreeSet<IpNet> {
        ["10.65.0.0/26", "fd00:65::/122"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect()
    }

    /// FRR's own parser (`vtysh -C` only parses): mandatory where the privileged tests are
    /// (CI installs FRR), skipped elsewhere when vtysh is missing.
    pub(crate) fn frr_parses(c: &str) -> Option<Result<(), String>> {
        if std::process::Command::new("vtysh")
            .arg("--help")
            .output()
            .is_err()
        {
            let mandatory = std::env::var("CALICO_PRIVILEGED_TESTS").as_deref() == Ok("1");
            assert!(
                !mandatory,
                "vtysh is not installed (make deps installs frr)"
            );
            eprintln!("FRR's parser skipped: vtysh not installed");
            return None;
        }
        // One file per check: tests run in parallel threads of one process.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = std::env::temp_dir().join(format!("calico-frr-conf-{}-{n}", std::process::id()));
        std::fs::write(&file, c).unwrap();
        let out = std::process::Command::new("vtysh")
            .arg("-C")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        Some(if out.status.success() {
            Ok(())
        } else {
            Err(said)
        })
    }

    #[test]
    fn everything_the_model_says_is_written_and_frr_parses_it() {
        let c = render(&settings(), &exports(), Path::new("/run/x/frr.log")).unwrap();
        for want in [
            "router bgp 64512\n bgp router-id 192.0.2.1\n",
            " bgp graceful-restart\n no bgp graceful-restart notification\n",
            " bgp cluster-id 1.1.1.1\n",
            " neighbor 192.0.2.2 remote-as 64512\n",
            " neighbor 192.0.2.2 timers 3 9\n",
            " neighbor 192.0.2.2 passive\n",
            " neighbor 192.0.2.2 password s3cret!#x\n",
            " neighbor 192.0.2.2 bfd profile calico-192-0-2-2\n",
            " profile calico-192-0-2-2\n  detect-multiplier 4\n  receive-interval 250\n  transmit-interval 200\n",
            "  neighbor 192.0.2.2 route-reflector-client\n",
            " neighbor fd00::2 remote-as 4200000000\n",
            "  neighbor fd00::2 route-map CALICO-EXPORT6 out\n",
            "  network 10.65.0.0/26\n",
            "  network fd00:65::/122\n",
            "ip prefix-list CALICO-EXPORTS4 permit 10.65.0.0/26\n",
            "ipv6 prefix-list CALICO-EXPORTS6 permit fd00:65::/122\n",
            "route-map CALICO-EXPORT4 permit 20\n",
            "  maximum-paths 16\n  maximum-paths ibgp 16\n",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        assert_eq!(
            c.matches(" bfd\n").count(),
            1,
            "BFD for one peer only:\n{c}"
        );
        assert!(!c.contains("fd00::2 password"), "{c}");
        if let Some(parsed) = frr_parses(&c) {
            assert_eq!(parsed, Ok(()), "{c}");
            let broken = c.replace("maximum-paths ibgp 16", "maximum-paths ibgp lots");
            assert!(frr_parses(&broken).unwrap().is_err(), "the check can fail");
        }
    }

    #[test]
    fn what_frr_cannot_carry_is_refused_by_field() {
        let log = Path::new("/run/x/frr.log");
        let with = |f: &dyn Fn(&mut PeerConfig)| {
            let mut s = settings();
            let mut p = s.peers.pop_first().unwrap();
            f(&mut p);
            s.peers.insert(p);
            render(&s, &BTreeSet::new(), log)
        };
        let peer: IpAddr = "192.0.2.2".parse().unwrap();
        for bad in ["two words", "line\nbreak", "", &"x".repeat(81)] {
            let e = with(&|p| p.password = Some(bad.into())).unwrap_err();
            assert!(
                matches!(e, ConfError::Password { peer: a, .. } if a == peer),
                "{e}"
            );
        }
        assert_eq!(
            with(&|p| p.hold_time = 2),
            Err(ConfError::HoldTime { peer, hold: 2 })
        );
        let e = with(&|p| p.add_path.receive = true).unwrap_err();
        assert!(
            matches!(
                e,
                ConfError::Unsupported {
                    field: "add_path",
                    ..
                }
            ),
            "{e}"
        );
        for (multiplier, field) in [(1, "bfd.multiplier"), (0, "bfd.multiplier")] {
            let e = with(&|p| {
                p.bfd = Some(BfdConfig {
                    multiplier,
                    ..p.bfd.clone().unwrap()
                })
            });
            assert!(
                matches!(e, Err(ConfError::Bfd { field: f, .. }) if f == field),
                "{e:?}"
            );
        }
        let e = with(&|p| {
            let b = p.bfd.clone().unwrap();
            p.bfd = Some(BfdConfig {
                min_rx: Duration::from_millis(5),
                ..b
            })
        });
        assert!(
            matches!(
                e,
                Err(ConfError::Bfd {
                    field: "bfd.minRxIntervalMs",
                    ..
                })
            ),
            "{e:?}"
        );
        // FRR's bfdd cannot authenticate: refused by name, never run unauthenticated.
        let e = with(&|p| {
            let auth = calico_core::dataplane::BfdAuth {
                kind: calico_core::dataplane::BfdAuthType::KeyedSha1,
                key_id: 1,
                password: "k".into(),
            };
            p.bfd.as_mut().unwrap().authentication = Some(auth);
        });
        assert!(
            matches!(
                e,
                Err(ConfError::Unsupported {
                    field: "bfd.authentication",
                    ..
                })
            ),
            "{e:?}"
        );
        assert!(
            with(&|p| p.hold_time = 0).is_ok(),
            "hold time 0: no keepalives"
        );
    }

    #[test]
    fn session_options_are_written_and_frr_parses_them() {
        let mut s = settings();
        let peers: Vec<PeerConfig> = std::mem::take(&mut s.peers).into_iter().collect();
        let (mut a, mut b) = (peers[0].clone(), peers[1].clone());
        [a.session, b.session] = crate::test_support::session_samples();
        s.peers = [a.clone(), b.clone()].into();
        let c = render(&s, &exports(), Path::new("/run/x/frr.log")).unwrap();
        for want in [
            " neighbor 192.0.2.2 timers 2 9\n",
            " neighbor 192.0.2.2 ttl-security hops 1\n",
            " neighbor 192.0.2.2 update-source 192.0.2.1\n",
            "  neighbor 192.0.2.2 next-hop-self force\n",
            "  neighbor fd00::2 allowas-in 2\n",
            "  neighbor fd00::2 attribute-unchanged next-hop\n",
            " bgp graceful-restart restart-time 45\n",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        if let Some(parsed) = frr_parses(&c) {
            assert_eq!(parsed, Ok(()), "{c}");
        }
        // One restart time per router in FRR: different ones are refused.
        s.peers.remove(&b);
        b.session.restart_time = None;
        s.peers.insert(b);
        let e = render(&s, &exports(), Path::new("/run/x/frr.log")).unwrap_err();
        assert!(
            matches!(
                e,
                ConfError::Unsupported {
                    field: "maxRestartTime",
                    ..
                }
            ),
            "{e}"
        );
    }
}

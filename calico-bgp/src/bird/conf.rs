//! The `bird.conf` the driver writes: one static protocol per address family holding the
//! exports, one BGP protocol per peering, and kernel protocols that copy the best BGP routes
//! (merged into ECMP routes) into a kernel table of their own, where the driver reads them.

use std::fmt::Write;
use std::net::IpAddr;

use calico_core::dataplane::{BfdAuth, BfdAuthType, BgpSettings, ExportedRoutes, PeerConfig};
use ipnet::IpNet;

/// Why a configuration cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// A BGP password BIRD's configuration language cannot carry.
    #[error("peer {peer}: password: must not contain '\"', '\\\\' or a line break")]
    Password {
        /// The peer's address.
        peer: IpAddr,
    },
    /// A hold time BGP forbids.
    #[error("peer {peer}: hold time {hold}: must be 0 or at least 3 seconds (RFC 4271)")]
    HoldTime {
        /// The peer's address.
        peer: IpAddr,
        /// The hold time.
        hold: u16,
    },
    /// An exported route's interface name BIRD's configuration language cannot carry.
    #[error("export {prefix}: interface {name:?}: must not contain '\"', '\\\\' or a line break")]
    ExportInterface {
        /// The exported prefix.
        prefix: IpNet,
        /// Its interface name.
        name: String,
    },
    /// A route filter the model would not have accepted.
    #[error("{0}")]
    Filter(#[from] calico_core::model::ValidationError),
    /// BFD timers out of range.
    #[error("peer {peer}: {field}: {why}")]
    Bfd {
        /// The peer's address.
        peer: IpAddr,
        /// The field.
        field: &'static str,
        /// Why.
        why: String,
    },
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
}

/// Session options out of range (keepalive, restart time, allowas-in, TTL security).
fn check_session(peer: &PeerConfig) -> Result<(), ConfError> {
    peer.session
        .validate(peer.hold_time)
        .map_err(|(field, why)| ConfError::Session {
            peer: peer.address,
            field,
            why,
        })
}

/// The BIRD protocol name of a peering.
pub fn peer_name(addr: IpAddr) -> String {
    let text: String = addr
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("peer_{text}")
}

/// Renders the whole configuration.
pub fn render(
    settings: &BgpSettings,
    exports: &ExportedRoutes,
    kernel_table: u32,
) -> Result<String, ConfError> {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by calico-rs (calico-bgp BIRD driver). Do not edit."
    );
    let _ = writeln!(c, "router id {};", settings.router_id);
    c.push_str("protocol device { scan time 10; }\n");
    // Connected routes, so that next hops of iBGP routes resolve.
    c.push_str("protocol direct { ipv4; ipv6; interface \"*\"; }\n");
    if let Some((prefix, name)) = exports
        .iter()
        .find_map(|(p, i)| i.as_ref().filter(|i| !bird_string(i)).map(|i| (*p, i)))
    {
        let name = name.clone();
        return Err(ConfError::ExportInterface { prefix, name });
    }
    for (v, af) in [("4", "ipv4"), ("6", "ipv6")] {
        render_family(&mut c, v, af, exports, kernel_table);
    }
    for peer in &settings.peers {
        check_peer(peer)?;
    }
    render_bfd(&mut c, settings)?;
    settings.policy.validate()?;
    let filters = super::policy::used_filters(&settings.policy);
    super::policy::render_functions(&mut c, &filters);
    for peer in &settings.peers {
        render_peer(&mut c, settings, peer, &filters);
    }
    Ok(c)
}

/// The BFD protocol the BGP sessions with BFD take their BFD sessions from; each sets its
/// own timers (in [`render_peer`]). BIRD 2 takes BFD authentication from the BFD
/// protocol's interface options, not from the BGP session's: one authentication for every
/// peer with BFD, or the configuration is refused.
fn render_bfd(c: &mut String, settings: &BgpSettings) -> Result<(), ConfError> {
    let mut with_bfd = settings
        .peers
        .iter()
        .filter_map(|p| Some((p.address, p.bfd.as_ref()?.authentication.as_ref())));
    let Some((first_peer, auth)) = with_bfd.next() else {
        return Ok(());
    };
    if let Some((peer, _)) = with_bfd.find(|(_, other)| *other != auth) {
        return Err(ConfError::Bfd {
            peer,
            field: "bfd.authentication",
            why: format!(
                "differs from peer {first_peer}'s; BIRD 2 takes BFD authentication per interface, \
                 not per peer, so every peer with BFD must have the same"
            ),
        });
    }
    let Some(auth) = auth else {
        c.push_str("protocol bfd calico_bfd {}\n");
        return Ok(());
    };
    let _ = writeln!(
        c,
        "protocol bfd calico_bfd {{\n  interface \"*\" {{ authentication {}; password \"{}\" {{ id {}; }}; }};\n}}",
        bird_auth_type(auth),
        auth.password,
        auth.key_id
    );
    Ok(())
}

/// BIRD's name of an authentication type.
fn bird_auth_type(auth: &BfdAuth) -> &'static str {
    match auth.kind {
        BfdAuthType::SimplePassword => "simple",
        BfdAuthType::KeyedMd5 => "keyed md5",
        BfdAuthType::MeticulousKeyedMd5 => "meticulous keyed md5",
        BfdAuthType::KeyedSha1 => "keyed sha1",
        BfdAuthType::MeticulousKeyedSha1 => "meticulous keyed sha1",
    }
}

/// A password BIRD's configuration language can carry in a string.
fn bird_string(p: &str) -> bool {
    !p.contains(['"', '\\', '\n', '\r'])
}

/// The kernel protocol copying the best BGP routes of one family (`v` is "4" or "6", `af`
/// BIRD's channel name) into the kernel table, and the static protocol holding its exports.
fn render_family(c: &mut String, v: &str, af: &str, exports: &ExportedRoutes, kernel_table: u32) {
    let _ = writeln!(
        c,
        "protocol kernel calico_kernel{v} {{\n  kernel table {kernel_table};\n  merge paths on;\n  learn off;\n  {af} {{ import none; export where source = RTS_BGP; }};\n}}"
    );
    let _ = writeln!(c, "protocol static calico_exports{v} {{\n  {af};");
    for (net, iface) in exports
        .iter()
        .filter(|(n, _)| matches!(n, IpNet::V4(_)) == (v == "4"))
    {
        // A workload address is a device route of its interface, so that filters see its
        // `ifname` (and BIRD announces it only while the interface is up); a block is a
        // blackhole.
        match iface {
            Some(i) => writeln!(c, "  route {net} via \"{i}\";"),
            None => writeln!(c, "  route {net} blackhole;"),
        }
        .ok();
    }
    c.push_str("}\n");
}

/// Refuses a peering BIRD's configuration (or BGP) cannot express.
fn check_peer(peer: &PeerConfig) -> Result<(), ConfError> {
    if peer.password.as_deref().is_some_and(|p| !bird_string(p)) {
        return Err(ConfError::Password { peer: peer.address });
    }
    let bfd = |field, why| ConfError::Bfd {
        peer: peer.address,
        field,
        why,
    };
    if let Some(b) = &peer.bfd {
        b.validate().map_err(|(field, why)| bfd(field, why))?;
        if b.authentication
            .as_ref()
            .is_some_and(|a| !bird_string(&a.password))
        {
            let why = "must not contain '\"', '\\' or a line break".to_string();
            return Err(bfd("bfd.authentication.password", why));
        }
    }
    if peer.hold_time != 0 && peer.hold_time < 3 {
        return Err(ConfError::HoldTime {
            peer: peer.address,
            hold: peer.hold_time,
        });
    }
    check_session(peer)
}

/// The BGP protocol of one (checked) peering.
fn render_peer(
    c: &mut String,
    settings: &BgpSettings,
    peer: &PeerConfig,
    filters: &[&calico_core::model::BgpFilter],
) {
    let (af, v) = if peer.address.is_ipv4() {
        ("ipv4", "4")
    } else {
        ("ipv6", "6")
    };
    let _ = writeln!(c, "protocol bgp {} {{", peer_name(peer.address));
    if settings.listen_port == 179 {
        let _ = writeln!(c, "  local as {};", settings.local_as.0);
    } else {
        let _ = writeln!(
            c,
            "  local port {} as {};",
            settings.listen_port, settings.local_as.0
        );
    }
    let _ = writeln!(c, "  neighbor {} as {};", peer.address, peer.remote_as.0);
    let _ = writeln!(c, "  hold time {};", peer.hold_time);
    // Calico's timers: reconnect within seconds of a peer's return, not BIRD's
    // defaults of 120 s (connect retry) and 60-300 s (after an error).
    c.push_str("  connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n");
    if peer.passive {
        c.push_str("  passive on;\n");
    }
    if let Some(p) = &peer.password {
        let _ = writeln!(c, "  password \"{p}\";");
    }
    let ebgp = peer.remote_as != settings.local_as;
    if let Some(b) = &peer.bfd {
        // BFD here is single hop (RFC 5881): the peer is on a connected network, which BIRD
        // assumes of eBGP peers and must be told of iBGP ones (else it takes them for
        // multihop, whose BFD needs a fixed local address).
        if !ebgp {
            c.push_str("  direct;\n");
        }
        let _ = writeln!(
            c,
            "  bfd {{ min rx interval {} ms; min tx interval {} ms; multiplier {}; }};",
            b.min_rx.as_millis(),
            b.min_tx.as_millis(),
            b.multiplier
        );
    }
    super::session::render_options(c, peer, ebgp, peer.bfd.is_some());
    if peer.route_reflector_client {
        c.push_str("  rr client;\n");
        if let Some(id) = settings.cluster_id {
            let _ = writeln!(c, "  rr cluster id {id};");
        }
    }
    // Our own routes only; a reflector also passes on what it learned. The next hop of
    // a reflected iBGP route stays the originating host's; routes from eBGP peers get
    // ours.
    let export = if settings.cluster_id.is_some() {
        format!("proto = \"calico_exports{v}\" || source = RTS_BGP")
    } else {
        format!("proto = \"calico_exports{v}\"")
    };
    // ADD-PATH (RFC 7911): BIRD sends every path it has for a prefix ("tx"), takes several
    // from the peer ("rx"), or both ("on").
    let add_path = match (peer.add_path.send, peer.add_path.receive) {
        (true, true) => " add paths on;",
        (true, false) => " add paths tx;",
        (false, true) => " add paths rx;",
        (false, false) => "",
    };
    let mine = settings.policy.peer_filters(peer.address);
    let v4 = peer.address.is_ipv4();
    let import = super::policy::import_clause(filters, mine, v4);
    let export = super::policy::export_clause(&settings.policy, (filters, mine), v4, &export);
    let _ = writeln!(
        c,
        "  {af} {{ {import} {export} {}{add_path} }};\n}}",
        super::session::next_hop(peer)
    );
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use calico_core::model::AsNumber;

    pub(crate) fn settings() -> BgpSettings {
        BgpSettings {
            local_as: AsNumber(64512),
            router_id: "192.0.2.1".parse().unwrap(),
            listen_port: 179,
            cluster_id: Some("1.1.1.1".parse().unwrap()),
            peers: [
                PeerConfig {
                    address: "192.0.2.2".parse().unwrap(),
                    remote_as: AsNumber(64512),
                    password: Some("s3cret".into()),
                    hold_time: 9,
                    passive: true,
                    route_reflector_client: true,
                    bfd: None,
                    add_path: Default::default(),
                    session: Default::default(),
                },
                PeerConfig {
                    address: "fd00::2".parse().unwrap(),
                    remote_as: AsNumber(4_200_000_000),
                    password: None,
                    hold_time: 90,
                    passive: false,
                    route_reflector_client: false,
                    bfd: None,
                    add_path: Default::default(),
                    session: Default::default(),
                },
            ]
            .into(),
            policy: Default::default(),
        }
    }

    #[test]
    fn peers_exports_and_kernel_table_are_written() {
        let exports = [
            ("10.65.0.0/26", None),
            ("fd00:65::/122", None),
            ("10.66.0.7/32", Some("cali12.ab-c_d")),
        ]
        .iter()
        .map(|(n, i)| (n.parse().unwrap(), i.map(str::to_string)))
        .collect();
        let c = render(&settings(), &exports, 251).unwrap();
        for want in [
            "router id 192.0.2.1;",
            "protocol bgp peer_192_0_2_2 {",
            "neighbor 192.0.2.2 as 64512;",
            "password \"s3cret\";",
            "passive on;",
            "rr client;",
            "rr cluster id 1.1.1.1;",
            "protocol bgp peer_fd00__2 {",
            "neighbor fd00::2 as 4200000000;",
            "route 10.65.0.0/26 blackhole;",
            "route fd00:65::/122 blackhole;",
            "route 10.66.0.7/32 via \"cali12.ab-c_d\";",
            "kernel table 251;",
            "merge paths on;",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        bird_parses(&c);
        let bad = [("10.66.0.7/32".parse().unwrap(), Some("x\"; }".to_string()))].into();
        assert!(matches!(
            render(&settings(), &bad, 251),
            Err(ConfError::ExportInterface { .. })
        ));
    }

    #[test]
    fn unsafe_password_and_short_hold_time_are_refused() {
        let mut s = settings();
        let mut p = s.peers.pop_first().unwrap();
        p.password = Some("a\"; } protocol evil {".into());
        s.peers.insert(p.clone());
        assert_eq!(
            render(&s, &ExportedRoutes::new(), 251),
            Err(ConfError::Password { peer: p.address })
        );
        s.peers.remove(&p);
        p.password = None;
        p.hold_time = 2;
        s.peers.insert(p.clone());
        assert!(matches!(
            render(&s, &ExportedRoutes::new(), 251),
            Err(ConfError::HoldTime { hold: 2, .. })
        ));
    }

    /// Checks `conf` with BIRD's own parser (`bird -p` only parses): mandatory where the
    /// privileged tests are (CI installs BIRD), skipped elsewhere when BIRD is missing.
    pub(crate) fn bird_parses(conf: &str) {
        if std::process::Command::new("bird")
            .arg("--version")
            .output()
            .is_err()
        {
            let mandatory = std::env::var("CALICO_PRIVILEGED_TESTS").as_deref() == Ok("1");
            assert!(
                !mandatory,
                "bird is not installed (make deps installs bird2)"
            );
            eprintln!("BIRD's parse of the configuration skipped: bird not installed");
            return;
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("calico-bird-conf-{}-{n}", std::process::id()));
        std::fs::write(&path, conf).unwrap();
        let out = std::process::Command::new("bird")
            .args(["-p", "-c"])
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let out = out.expect("bird is installed (make deps)");
        assert!(
            out.status.success(),
            "{}\n{conf}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn add_path_is_written_per_peer_and_bird_parses_it() {
        let mut s = settings();
        let peers: Vec<PeerConfig> = std::mem::take(&mut s.peers).into_iter().collect();
        for (mut p, (send, receive)) in peers.into_iter().zip([(true, false), (true, true)]) {
            p.add_path = calico_core::dataplane::AddPathConfig { send, receive };
            s.peers.insert(p);
        }
        let c = render(&s, &ExportedRoutes::new(), 251).unwrap();
        assert!(c.contains("next hop self ebgp; add paths tx; };"), "{c}");
        assert!(c.contains("next hop self ebgp; add paths on; };"), "{c}");
        bird_parses(&c);
        // Off: nothing written.
        let c = render(&settings(), &ExportedRoutes::new(), 251).unwrap();
        assert!(!c.contains("add paths"), "{c}");
    }

    #[test]
    fn bfd_timers_are_written_per_peer_and_bird_parses_them() {
        let mut s = settings();
        let mut p = s.peers.pop_first().unwrap();
        p.bfd = Some(calico_core::dataplane::BfdConfig {
            min_tx: std::time::Duration::from_millis(200),
            min_rx: std::time::Duration::from_millis(250),
            multiplier: 4,
            authentication: None,
        });
        s.peers.insert(p.clone());
        let c = render(&s, &ExportedRoutes::new(), 251).unwrap();
        assert!(c.contains("protocol bfd calico_bfd {}"), "{c}");
        assert!(
            c.contains("bfd { min rx interval 250 ms; min tx interval 200 ms; multiplier 4; };"),
            "{c}"
        );
        assert_eq!(
            c.matches("  bfd {").count(),
            1,
            "only the peer with BFD: {c}"
        );
        bird_parses(&c);

        p.bfd = Some(calico_core::dataplane::BfdConfig {
            multiplier: 0,
            ..p.bfd.unwrap()
        });
        s.peers.insert(p);
        assert!(matches!(
            render(&s, &ExportedRoutes::new(), 251),
            Err(ConfError::Bfd {
                field: "bfd.multiplier",
                ..
            })
        ));
    }
    /// BIRD 2 takes BFD authentication from the BFD protocol's interfaces: written there
    /// once, and refused when peers differ, since one of them would silently get the other's.
    #[test]
    fn bfd_authentication_is_one_for_all_peers_and_bird_parses_it() {
        use calico_core::dataplane::{BfdAuth, BfdAuthType, BfdConfig};
        let auth = BfdAuth {
            kind: BfdAuthType::MeticulousKeyedSha1,
            key_id: 7,
            password: "k3y".into(),
        };
        let with = |auth: Option<BfdAuth>| BfdConfig {
            authentication: auth,
            ..BfdConfig::default()
        };
        let mut s = settings();
        for p in std::mem::take(&mut s.peers) {
            s.peers.insert(PeerConfig {
                bfd: Some(with(Some(auth.clone()))),
                ..p
            });
        }
        let c = render(&s, &ExportedRoutes::new(), 251).unwrap();
        assert!(
            c.contains(
                "interface \"*\" { authentication meticulous keyed sha1; password \"k3y\" { id 7; }; };"
            ),
            "{c}"
        );
        assert_eq!(c.matches("protocol bfd").count(), 1, "{c}");
        bird_parses(&c);

        let mut first = s.peers.pop_first().unwrap();
        first.bfd = Some(with(None));
        s.peers.insert(first);
        assert!(matches!(
            render(&s, &ExportedRoutes::new(), 251),
            Err(ConfError::Bfd {
                field: "bfd.authentication",
                ..
            })
        ));
        let bad = BfdAuth {
            password: "a\"; }".into(),
            ..auth
        };
        let peers: Vec<_> = std::mem::take(&mut s.peers).into_iter().collect();
        for p in peers {
            s.peers.insert(PeerConfig {
                bfd: Some(with(Some(bad.clone()))),
                ..p
            });
        }
        assert!(matches!(
            render(&s, &ExportedRoutes::new(), 251),
            Err(ConfError::Bfd {
                field: "bfd.authentication.password",
                ..
            })
        ));
    }

    #[test]
    fn session_options_are_written_as_calico_does_and_bird_parses_them() {
        let mut s = settings();
        let peers: Vec<PeerConfig> = std::mem::take(&mut s.peers).into_iter().collect();
        let (mut ibgp, mut ebgp) = (peers[0].clone(), peers[1].clone());
        [ibgp.session, ebgp.session] = crate::test_support::session_samples();
        s.peers = [ibgp.clone(), ebgp].into();
        let c = render(&s, &ExportedRoutes::new(), 251).unwrap();
        for want in [
            "keepalive time 2;",
            "graceful restart time 45;",
            "ttl security on;\n  multihop 1;",
            "source address 192.0.2.1;",
            "next hop self; };",
            "allow local as 2;",
            "ttl security on;\n  multihop 3;",
            "next hop keep; };",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        bird_parses(&c);

        s.peers.remove(&ibgp);
        ibgp.session.keepalive_time = Some(9);
        s.peers.insert(ibgp);
        assert!(matches!(
            render(&s, &ExportedRoutes::new(), 251),
            Err(ConfError::Session {
                field: "keepaliveTime",
                ..
            })
        ));
    }
}

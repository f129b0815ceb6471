//! A host namespace with workload namespaces attached over veth, wired the way Calico wires
//! workloads: the workload has its address as a /32 (or /128) and a default route via
//! 169.254.1.1, which the host answers by proxy ARP (IPv6: via the host side's link-local
//! address); the host routes each workload address to its veth end.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use calico_netns::fixtures::{veth, workload_ipv6, Netns};

pub mod forwarded;
pub mod shop;

/// One workload: its namespace, host-side interface and address.
pub struct Workload {
    pub ns: Netns,
    pub iface: String,
    pub ip: IpAddr,
}

/// The host, its workloads and the "fabric" beyond its uplink.
pub struct Topology {
    pub workloads: Vec<Workload>,
    /// Stands for everything beyond the host's uplink `eth0`: holds the outside addresses.
    pub fabric: Netns,
    pub host: Netns,
}

impl Topology {
    /// A host with one workload per `(interface, address)`.
    pub fn new(workloads: &[(&str, &str)]) -> Topology {
        let wl: Vec<(&str, Vec<&str>)> = workloads.iter().map(|(i, a)| (*i, vec![*a])).collect();
        Topology::with_outside(&wl, &[])
    }

    /// A host with one workload per `(interface, addresses)`, and the `outside` addresses
    /// reachable through its uplink. Addresses may be IPv4 or IPv6; with an IPv6 one, the
    /// uplink carries IPv6 too (`fd00:255::1/64` on the host, `fd00:255::2` the fabric's).
    /// Routes are added with `ip` here: the tests of the ACL backend do not depend on the
    /// FIB backend.
    pub fn with_outside(workloads: &[(&str, Vec<&str>)], outside: &[&str]) -> Topology {
        let ipv6 = workloads
            .iter()
            .flat_map(|(_, ips)| ips)
            .chain(outside)
            .any(|a| is_ipv6(a));
        let host = namespace("host", ipv6);
        for cmd in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            host.run(&["sysctl", "-qw", cmd]).unwrap();
        }
        if ipv6 {
            host.run(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
                .unwrap();
        }
        // The uplink. Proxy ARP answers for 169.254.1.1 only because the host routes that
        // address out of another interface: the default route through the fabric.
        let fabric = namespace("fabric", ipv6);
        veth(&host, "eth0", &fabric, "fab0").unwrap();
        host.run(&["ip", "addr", "add", "192.168.255.1/30", "dev", "eth0"])
            .unwrap();
        fabric
            .run(&["ip", "addr", "add", "192.168.255.2/30", "dev", "fab0"])
            .unwrap();
        fabric
            .run(&["ip", "route", "add", "default", "via", "192.168.255.1"])
            .unwrap();
        host.run(&["ip", "route", "add", "default", "via", "192.168.255.2"])
            .unwrap();
        if ipv6 {
            uplink_ipv6(&host, &fabric);
        }
        for a in outside {
            add_address(&fabric, a, "fab0");
        }
        let mut out = Vec::new();
        for (iface, ips) in workloads {
            let v4: Vec<&str> = ips.iter().copied().filter(|a| !is_ipv6(a)).collect();
            let ns = calico_netns::fixtures::workload(&host, iface, &v4).unwrap();
            for cmd in [
                format!("net.ipv4.conf.{iface}.proxy_arp=1"),
                format!("net.ipv4.neigh.{iface}.proxy_delay=0"),
                format!("net.ipv4.conf.{iface}.rp_filter=0"),
            ] {
                host.run(&["sysctl", "-qw", &cmd]).unwrap();
            }
            for ip in ips.iter().filter(|a| is_ipv6(a)) {
                workload_ipv6(&host, iface, &ns, ip).unwrap();
            }
            for ip in ips {
                host.run(&[
                    "ip",
                    "route",
                    "add",
                    &host_prefix(ip),
                    "dev",
                    iface,
                    "scope",
                    "link",
                ])
                .unwrap();
            }
            out.push(Workload {
                ns,
                iface: iface.to_string(),
                ip: ips[0].parse().unwrap(),
            });
        }
        Topology {
            workloads: out,
            fabric,
            host,
        }
    }
}

fn is_ipv6(addr: &str) -> bool {
    addr.contains(':')
}

/// `addr` as a prefix of one address: `/32` or `/128`.
pub fn host_prefix(addr: &str) -> String {
    let len = if is_ipv6(addr) { 128 } else { 32 };
    format!("{addr}/{len}")
}

/// `addr` alone (`/32`, `/128`) on `dev` of `ns`; IPv6 without duplicate address detection.
fn add_address(ns: &Netns, addr: &str, dev: &str) {
    let prefix = host_prefix(addr);
    let mut cmd = vec!["ip", "addr", "add", &prefix, "dev", dev];
    if is_ipv6(addr) {
        cmd.push("nodad");
    }
    ns.run(&cmd).unwrap();
}

/// A namespace; with `ipv6`, its new interfaces skip duplicate address detection, so that
/// their addresses (link-local ones too) are usable at once.
fn namespace(prefix: &str, ipv6: bool) -> Netns {
    let ns = Netns::create(prefix).unwrap();
    if ipv6 {
        ns.run(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])
            .unwrap();
    }
    ns
}

/// IPv6 on the uplink: addresses and default routes both ways.
fn uplink_ipv6(host: &Netns, fabric: &Netns) {
    host.run(&[
        "ip",
        "addr",
        "add",
        "fd00:255::1/64",
        "dev",
        "eth0",
        "nodad",
    ])
    .unwrap();
    fabric
        .run(&[
            "ip",
            "addr",
            "add",
            "fd00:255::2/64",
            "dev",
            "fab0",
            "nodad",
        ])
        .unwrap();
    fabric
        .run(&["ip", "-6", "route", "add", "default", "via", "fd00:255::1"])
        .unwrap();
    host.run(&["ip", "-6", "route", "add", "default", "via", "fd00:255::2"])
        .unwrap();
}

const WAIT: Duration = Duration::from_millis(700);

impl Workload {
    /// Whether one ping to `dst` is answered.
    pub fn ping(&self, dst: IpAddr) -> bool {
        self.ns
            .output(&["ping", "-c1", "-W1", &dst.to_string()])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// A TCP listener inside this workload.
    pub fn listen_tcp(&self, port: u16) -> TcpListener {
        let addr = SocketAddr::new(self.ip, port);
        let l = self
            .ns
            .enter(move || TcpListener::bind(addr))
            .unwrap()
            .unwrap();
        l.set_nonblocking(false).unwrap();
        l
    }

    /// A UDP socket inside this workload, bound to `ip` (its own address unless spoofing).
    pub fn udp(&self, ip: IpAddr, port: u16) -> UdpSocket {
        udp_in(&self.ns, SocketAddr::new(ip, port))
    }

    /// Connects to `dst:port` over TCP from inside this workload.
    pub fn connect_tcp(&self, dst: IpAddr, port: u16) -> Option<TcpStream> {
        let addr = SocketAddr::new(dst, port);
        let s = self
            .ns
            .enter(move || TcpStream::connect_timeout(&addr, WAIT))
            .unwrap()
            .ok()?;
        s.set_read_timeout(Some(WAIT)).unwrap();
        Some(s)
    }
}

/// A UDP socket in `ns` bound to `addr`, with the read timeout the probes use. A port just
/// closed can be held a moment longer by a copy of its descriptor in a child another test's
/// thread is forking (until it execs): `EADDRINUSE` is retried for up to a second.
pub fn udp_in(ns: &Netns, addr: SocketAddr) -> UdpSocket {
    let mut tries = 0;
    let s = loop {
        match ns.enter(move || UdpSocket::bind(addr)).unwrap() {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            bound => break bound.unwrap(),
        }
    };
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Whether a datagram sent from `from` reaches `to` (a bound socket), compared by content.
pub fn udp_delivers(from: &UdpSocket, to: &UdpSocket) -> bool {
    let token = format!(
        "{:?}-{:?}",
        from.local_addr().unwrap(),
        std::time::Instant::now()
    );
    from.send_to(token.as_bytes(), to.local_addr().unwrap())
        .unwrap();
    let mut buf = [0u8; 256];
    loop {
        match to.recv_from(&mut buf) {
            Ok((n, _)) if &buf[..n] == token.as_bytes() => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// Whether an established TCP connection still carries a round trip (the server side echoes).
pub fn tcp_round_trip(client: &mut TcpStream, server: &mut TcpStream) -> bool {
    if client.write_all(b"ping").is_err() {
        return false;
    }
    server.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 4];
    if server.read_exact(&mut buf).is_err() || &buf != b"ping" {
        return false;
    }
    if server.write_all(b"pong").is_err() {
        return false;
    }
    client.read_exact(&mut buf).is_ok() && &buf == b"pong"
}

/// Whether a TCP connection from `ns` (from `src` when given) to `dst:port` is set up.
pub fn connects(ns: &Netns, src: Option<&str>, dst: &str, port: u16) -> bool {
    let parse = |s: &str| -> IpAddr { s.parse().unwrap() };
    let src = src.map(|s| SocketAddr::new(parse(s), 0));
    let dst = SocketAddr::new(parse(dst), port);
    ns.enter(move || -> std::io::Result<TcpStream> {
        let domain = socket2::Domain::for_address(dst);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        if let Some(src) = src {
            socket.bind(&src.into())?;
        }
        socket.connect_timeout(&dst.into(), WAIT)?;
        Ok(socket.into())
    })
    .unwrap()
    .is_ok()
}

/// TCP listeners on `ports` of every address of `ns`.
pub fn listen_all(ns: &Netns, ports: &[u16]) -> Vec<TcpListener> {
    ports
        .iter()
        .map(|&p| {
            ns.enter(move || TcpListener::bind(("0.0.0.0", p)))
                .unwrap()
                .unwrap()
        })
        .collect()
}

/// A model, its incremental compiler and the kernel's table, kept in step: every update is
/// compiled, applied, and the table read back equal to the IR.
pub struct ProgrammedHost {
    pub acl: calico_linux::acl::LinuxAcl,
    pub model: calico_core::model::Model,
    pub compiler: calico_core::compile::Compiler,
}

impl ProgrammedHost {
    /// Programs `model` compiled with `config` into the table `calico` of `ns`.
    pub async fn new(
        ns: &Netns,
        config: calico_core::compile::CompileConfig,
        model: calico_core::model::Model,
    ) -> ProgrammedHost {
        use calico_core::dataplane::AclBackend;
        let acl = calico_linux::acl::LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
        let mut compiler = calico_core::compile::Compiler::from_model(config, &model);
        acl.apply(&compiler.take_changes()).await.unwrap();
        assert_eq!(&acl.dump().await.unwrap(), compiler.ruleset());
        ProgrammedHost {
            acl,
            model,
            compiler,
        }
    }

    /// Applies one update.
    pub async fn update(&mut self, update: calico_core::model::Update) {
        use calico_core::dataplane::AclBackend;
        let applied = self.model.apply_valid(update);
        self.compiler.apply(&self.model, &applied);
        self.acl.apply(&self.compiler.take_changes()).await.unwrap();
        assert_eq!(&self.acl.dump().await.unwrap(), self.compiler.ruleset());
    }

    /// Upserts every resource of `yaml`.
    pub async fn upsert(&mut self, yaml: &str) {
        for r in calico_core::model::parse_resources(yaml).unwrap() {
            self.update(calico_core::model::Update::Upsert(r)).await;
        }
    }

    /// Recompiles with `config` (other host settings, say), programming the difference.
    pub async fn reconfigure(&mut self, config: calico_core::compile::CompileConfig) {
        use calico_core::dataplane::AclBackend;
        let mut next = calico_core::compile::Compiler::from_model(config, &self.model);
        next.take_changes(); // its snapshot: the kernel gets the difference instead
        let changes = calico_core::dataplane::diff(self.compiler.ruleset(), next.ruleset());
        self.acl.apply(&changes).await.unwrap();
        self.compiler = next;
        assert_eq!(&self.acl.dump().await.unwrap(), self.compiler.ruleset());
    }
}

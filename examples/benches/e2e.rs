//! End to end on the real kernel: from `AgentHandle::update` to the first packet passing, on
//! a host programmed with 250 local endpoints and 2,000 policies (10,000 remote endpoints in
//! the selector sets). Needs root: `cargo bench -p calico-examples --bench e2e`.
//!
//! * new endpoint: a workload namespace is wired (veth, address, default route), then its
//!   `WorkloadEndpoint` is sent; a probe workload sends UDP datagrams to it every 100 µs
//!   until one arrives (route, interface settings and ACLs all in place);
//! * policy change: a policy that admits the probe's UDP port is sent; datagrams to a port
//!   no policy admitted before start passing.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_core::agent::{Agent, Timing};
use calico_core::model::{parse_resources, Resource, Update};
use calico_core::scale::Scale;
use calico_linux::acl::LinuxAcl;
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::Netns;

fn workload(host: &Netns, iface: &str, ip: &str) -> Netns {
    calico_netns::fixtures::workload(host, iface, &[ip]).unwrap()
}

fn endpoint_yaml(name: &str, iface: &str, ip: &str, app: &str) -> String {
    format!(
        "kind: WorkloadEndpoint\norchestrator: k8s\nworkload: {name}\nendpoint: eth0\n\
         namespace: ns0\nnode: h1\ninterfaceName: {iface}\nipNetworks: [{ip}/32]\n\
         labels: {{app: {app}}}\nprofiles: [kns.ns0]\n"
    )
}

/// Sends a datagram every 100 µs from `tx` until `rx` gets one; the time from `t0`.
fn first_passing(tx: &UdpSocket, to: SocketAddr, rx: &UdpSocket, t0: Instant) -> Duration {
    rx.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    loop {
        let _ = tx.send_to(b"probe", to);
        if rx.recv_from(&mut buf).is_ok() {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no packet passed within 10 s"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("e2e bench: skipped: needs root");
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        // Step timings of the agent, for finding where an update's time goes.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let host = Netns::create("e2e-host").unwrap();
        host.run(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"]).unwrap();
        host.run(&["ip", "link", "set", "up0", "up"]).unwrap();
        host.run(&["ip", "link", "set", "up0p", "up"]).unwrap();
        host.run(&["ip", "route", "add", "default", "dev", "up0"]).unwrap();
        // The 250 local endpoints' host-side interfaces exist, as on a real host (their
        // workload ends stay in the host namespace: no traffic goes to them).
        let scale = Scale::default();
        let batch: String = (0..scale.local)
            .map(|i| format!("link add {} type veth peer name w{i}\n", scale.endpoint(i).interface_name))
            .collect();
        let path = std::env::temp_dir().join(format!("e2e-links-{}", std::process::id()));
        std::fs::write(&path, batch).unwrap();
        host.run(&["ip", "-batch", path.to_str().unwrap()]).unwrap();
        let _ = std::fs::remove_file(&path);
        let fib = LinuxFib::in_netns(host.path(), FibConfig::default()).unwrap();
        let acl = LinuxAcl::in_netns(host.path().as_ref(), "calico").unwrap();
        let agent = Agent::builder()
            .node("h1")
            .fib(Arc::new(fib))
            .acl(Arc::new(acl))
            .timing(Timing { resync_interval: Duration::from_secs(3600), ..Timing::default() })
            .start()
            .unwrap();
        let h = agent.handle();
        let model = scale.model();
        let mut resources: Vec<Resource> = model
            .workload_endpoints
            .values()
            .cloned()
            .map(Resource::WorkloadEndpoint)
            .chain(model.policies.values().cloned().map(Resource::Policy))
            .chain(model.profiles.values().cloned().map(Resource::Profile))
            .collect();
        // The probe: a real workload in namespace ns0 (its profile admits everything
        // from inside the namespace... the scale profiles admit all).
        let probe = workload(&host, "cali-probe", "10.99.0.1");
        resources.extend(parse_resources(&endpoint_yaml("probe", "cali-probe", "10.99.0.1", "probe")).unwrap());
        let t = Instant::now();
        h.snapshot(resources).await.unwrap();
        h.flush().await;
        println!("initial programming of 250 endpoints x 2,000 policies: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
        let tx = probe.enter(|| UdpSocket::bind("10.99.0.1:0")).unwrap().unwrap();

        // New endpoints.
        let mut adds = Vec::new();
        for n in 0..15 {
            let (iface, ip) = (format!("cali-new{n}"), format!("10.99.1.{}", 10 + n));
            let wl = workload(&host, &iface, &ip);
            let rx = wl.enter({ let ip = ip.clone(); move || UdpSocket::bind(format!("{ip}:7000")) }).unwrap().unwrap();
            let ep = parse_resources(&endpoint_yaml(&format!("new{n}"), &iface, &ip, "new")).unwrap();
            let t0 = Instant::now();
            h.update(Update::Upsert(ep[0].clone())).await.unwrap();
            let to: SocketAddr = format!("{ip}:7000").parse().unwrap();
            let took = tokio::task::block_in_place(|| first_passing(&tx, to, &rx, t0));
            adds.push(took);
            drop(wl);
        }

        // Policy changes: a new endpoint whose only ingress is policies; each round admits
        // a new UDP port.
        let wl = workload(&host, "cali-target", "10.99.2.10");
        let target = parse_resources(
            &endpoint_yaml("target", "cali-target", "10.99.2.10", "target")
                .replace("profiles: [kns.ns0]", "profiles: []"),
        )
        .unwrap();
        h.update(Update::Upsert(target[0].clone())).await.unwrap();
        h.flush().await;
        let mut changes = Vec::new();
        for n in 0..15u16 {
            let port = 7100 + n;
            let rx = wl.enter(move || UdpSocket::bind(("10.99.2.10", port))).unwrap().unwrap();
            let policy = parse_resources(&format!(
                "kind: Policy\nname: target-in\nnamespace: ns0\nselector: app == 'target'\n\
                 ingress: [{{action: Allow, protocol: UDP, destination: {{ports: [{port}]}}}}]\n\
                 egress: [{{action: Allow}}]\n"
            ))
            .unwrap();
            let to: SocketAddr = format!("10.99.2.10:{port}").parse().unwrap();
            // Before: nothing passes to that port.
            rx.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let _ = tx.send_to(b"early", to);
            assert!(rx.recv_from(&mut [0u8; 8]).is_err(), "port {port} must be closed before");
            let t0 = Instant::now();
            h.update(Update::Upsert(policy[0].clone())).await.unwrap();
            changes.push(tokio::task::block_in_place(|| first_passing(&tx, to, &rx, t0)));
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!();
        println!("| update → first packet passing (250 endpoints, 2,000 policies) | median | min | max |");
        println!("|---|---|---|---|");
        for (what, v) in [("new endpoint", adds), ("policy change", changes)] {
            let (min, max) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
            println!("| {what} ({} runs) | {:.2} ms | {:.2} ms | {:.2} ms |", v.len(), ms(median(v)), ms(min), ms(max));
        }
        agent.shutdown().await;
    });
}

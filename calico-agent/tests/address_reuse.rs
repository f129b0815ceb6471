//! An address that leaves a workload takes its connections with it: the daemon forgets the
//! kernel's connection-tracking entries of a removed endpoint, so a connection made to it is
//! judged by policy again when the address comes back, instead of passing as established.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use calico_netns::fixtures::privileged;
use support::{wait_until, Host};

const NODE: &str = "ct-reuse";
const CLIENT: (&str, &str) = ("cali0", "10.73.0.10");
const SERVER: (&str, &str) = ("cali1", "10.73.0.11");

/// The client's endpoint, open both ways, and, if `server` names a workload and a profile,
/// an endpoint of that workload on the server's interface and address.
fn model(server: Option<(&str, &str)>) -> String {
    let mut y = String::from(
        "kind: Profile\nname: open\ningress: [{action: Allow}]\negress: [{action: Allow}]\n\
         ---\nkind: Profile\nname: closed\ningress: [{action: Deny}]\negress: [{action: Allow}]\n",
    );
    let mut endpoint = |workload: &str, (iface, ip): (&str, &str), profile: &str| {
        y += &format!(
            "---\nkind: WorkloadEndpoint\norchestrator: k8s\nworkload: default.{workload}\n\
             endpoint: eth0\nnamespace: default\nnode: {NODE}\ninterfaceName: {iface}\n\
             ipNetworks: [{ip}/32]\nprofiles: [{profile}]\n"
        );
    };
    endpoint("client", CLIENT, "open");
    if let Some((workload, profile)) = server {
        endpoint(workload, SERVER, profile);
    }
    y
}

/// Whether `bytes` written on `from` arrive on `to` within a second and a half.
fn arrives(from: &mut TcpStream, to: &mut TcpStream, bytes: &[u8]) -> bool {
    from.write_all(bytes).unwrap();
    to.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = vec![0; bytes.len()];
    to.read_exact(&mut buf).is_ok() && buf == bytes
}

#[test]
fn a_connection_to_a_removed_endpoint_does_not_survive_its_address_coming_back() {
    if !privileged("a_connection_to_a_removed_endpoint_does_not_survive_its_address_coming_back") {
        return;
    }
    let mut host = Host::new(NODE, None, "192.168.79.1", &[CLIENT, SERVER]);
    host.write("model.yaml", &model(Some(("server", "open"))));
    host.start_agent(&["--no-bgp"]);
    host.wait_programmed(2, Duration::from_secs(30));

    let addr: SocketAddr = format!("{}:8080", SERVER.1).parse().unwrap();
    let listener = host.listen(1, addr);
    let mut client = host.workloads[0]
        .0
        .enter(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
        .unwrap()
        .expect("the open profile lets the client connect");
    let (mut served, _) = listener.accept().unwrap();
    assert!(arrives(&mut client, &mut served, b"before"));

    // The server's endpoint goes; later a workload with a closed profile gets its interface
    // and address back.
    host.write("model.yaml", &model(None));
    host.wait_programmed(1, Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(10), || host
            .log()
            .contains("forgot the connections"))
        .is_some(),
        "the agent forgets the removed address's connections\n{}",
        host.log()
    );
    host.write("model.yaml", &model(Some(("newcomer", "closed"))));
    host.wait_programmed(2, Duration::from_secs(30));

    assert!(
        !host.connect(0, addr),
        "the closed profile refuses new connections"
    );
    assert!(
        !arrives(&mut client, &mut served, b"after"),
        "the old connection is judged by the newcomer's policy, not let through as established"
    );
}

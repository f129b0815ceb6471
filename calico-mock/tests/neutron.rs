//! Neutron security-group semantics on the simulated network, from captured API JSON
//! (examples/data/neutron): allow-only, stateful, default deny both ways, several groups
//! giving the union of their rules, remote groups by membership, ICMP type via the port
//! range, DHCP and unbound ports carrying no workload.

use calico_core::eval::Packet;
use calico_core::integrations::neutron::{
    parse_floating_ips, parse_ports, parse_security_groups, port_endpoint,
    port_endpoint_with_floating_ips, security_group_profile, SecurityGroup,
};
use calico_core::model::{Resource, Update};
use calico_mock::MockNetwork;

fn data(file: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../examples/data/neutron/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn network() -> MockNetwork {
    let mut net = MockNetwork::new();
    net.add_host("compute1", "192.0.2.1".parse().unwrap());
    net.add_host("compute2", "192.0.2.2".parse().unwrap());
    for g in parse_security_groups(&data("security_groups.json")).unwrap() {
        net.apply(Update::Upsert(Resource::Profile(
            security_group_profile(&g).unwrap(),
        )))
        .unwrap();
    }
    let ports = parse_ports(&data("ports.json")).unwrap();
    let endpoints: Vec<_> = ports
        .iter()
        .filter_map(|p| port_endpoint(p).unwrap())
        .collect();
    assert_eq!(
        endpoints.len(),
        3,
        "the DHCP port and the unbound port carry no workload"
    );
    for ep in endpoints {
        net.apply(Update::Upsert(Resource::WorkloadEndpoint(ep)))
            .unwrap();
    }
    net
}

const WEB: &str = "10.1.0.5";
const DB: &str = "10.1.0.6";
const OTHER: &str = "10.1.0.7";

fn tcp(s: &str, d: &str, port: u16) -> Packet {
    Packet::tcp(s.parse().unwrap(), 40000, d.parse().unwrap(), port)
}

#[test]
fn security_groups_behave_as_in_neutron() {
    let net = network();
    let ping = |s: &str, d: &str| Packet::icmp(s.parse().unwrap(), d.parse().unwrap(), 8, 0);
    let cases = [
        (
            "remote group member reaches db's port",
            tcp(WEB, DB, 5432),
            true,
        ),
        ("remote group member, other port", tcp(WEB, DB, 22), false),
        ("non-member cannot reach db", tcp(OTHER, DB, 5432), false),
        ("web's port 80 is open to all", tcp(DB, WEB, 80), true),
        (
            "web's other ports are closed to non-members",
            tcp(DB, WEB, 22),
            false,
        ),
        (
            "default group members reach each other",
            tcp(OTHER, WEB, 22),
            true,
        ),
        ("and back", tcp(WEB, OTHER, 5432), true),
        ("db is not in default", tcp(DB, OTHER, 22), false),
        ("ICMP type from the port range", ping(DB, WEB), true),
        (
            "ICMP to a group without an ICMP rule",
            ping(OTHER, DB),
            false,
        ),
    ];
    for (name, p, want) in cases {
        let d = net.send(&p).unwrap();
        assert_eq!(d.delivered, want, "{name}: {d}");
    }
}

#[test]
fn no_egress_rule_means_no_egress() {
    let mut net = network();
    let sg: SecurityGroup = serde_json::from_str(
        r#"{"id": "5c3f9b0e-1a2b-4c3d-8e9f-000000000002", "security_group_rules": [
            {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432}]}"#,
    )
    .unwrap();
    net.apply(Update::Upsert(Resource::Profile(
        security_group_profile(&sg).unwrap(),
    )))
    .unwrap();
    assert!(!net.send(&tcp(DB, WEB, 80)).unwrap().delivered);
}

#[test]
fn malformed_objects_name_the_object_and_field() {
    let bad = |rule: &str| {
        let sg: SecurityGroup = serde_json::from_str(&format!(
            r#"{{"id": "sg1", "security_group_rules": [{rule}]}}"#
        ))
        .unwrap();
        security_group_profile(&sg).unwrap_err().to_string()
    };
    let e = bad(r#"{"direction": "sideways"}"#);
    assert!(
        e.starts_with("security group sg1: field security_group_rules[0].direction"),
        "{e}"
    );
    let e = bad(
        r#"{"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}"#,
    );
    assert!(e.contains("port_range_max"), "{e}");
    let e = bad(r#"{"direction": "ingress", "protocol": "bogus"}"#);
    assert!(e.contains("unknown protocol"), "{e}");
    let e = bad(r#"{"direction": "egress", "remote_ip_prefix": "10.0.0.0/33"}"#);
    assert!(e.contains("remote_ip_prefix"), "{e}");
    let ports = parse_ports(r#"{"port": {"id": "3f1c2a9e-7b41-4d2e", "device_owner": "compute:nova", "binding:host_id": "c1", "fixed_ips": [{"ip_address": "10.0.0.300"}]}}"#).unwrap();
    let e = port_endpoint(&ports[0]).unwrap_err().to_string();
    assert!(e.contains("fixed_ips[0].ip_address"), "{e}");
    assert!(parse_ports("[1, 2]")
        .unwrap_err()
        .to_string()
        .contains("Neutron ports JSON"));
}

/// A port's associated floating IP becomes its endpoint's `ipNATs`, in effect on its host
/// (OpenStack's endpoints need no floating-IP setting): another VM reaches web at the
/// floating IP, under web's security groups, and hears back from the floating IP.
#[test]
fn a_ports_floating_ip_reaches_the_vm_and_answers_from_the_floating_ip() {
    let fips = parse_floating_ips(&data("floatingips.json")).unwrap();
    assert_eq!(fips.len(), 2);
    let mut net = network();
    for port in parse_ports(&data("ports.json")).unwrap() {
        if let Some(ep) = port_endpoint_with_floating_ips(&port, &fips).unwrap() {
            net.apply(Update::Upsert(Resource::WorkloadEndpoint(ep)))
                .unwrap();
        }
    }
    let with_nat: Vec<_> = net
        .model()
        .workload_endpoints
        .values()
        .filter(|ep| !ep.ip_nats.is_empty())
        .collect();
    assert_eq!(
        with_nat.len(),
        1,
        "only web's port has an associated floating IP"
    );
    assert_eq!(
        with_nat[0].ip_nats[0].external_ip.to_string(),
        "172.24.4.10"
    );
    let there = net.send(&tcp(DB, "172.24.4.10", 80)).unwrap();
    assert!(there.delivered, "{there}");
    let received = there.received.clone().unwrap();
    assert_eq!(received.dst.to_string(), WEB);
    let back = net.reply(&there).unwrap();
    assert_eq!(
        back.received.as_ref().unwrap().src.to_string(),
        "172.24.4.10",
        "{back}"
    );
    // web's security groups still apply: 22 is closed to db.
    assert!(!net.send(&tcp(DB, "172.24.4.10", 22)).unwrap().delivered);
    // A floating IP that does not translate to one of the port's fixed IPs is refused.
    let mut wrong = fips.clone();
    wrong[0].fixed_ip_address = Some("10.1.0.99".into());
    let ports = parse_ports(&data("ports.json")).unwrap();
    let e = port_endpoint_with_floating_ips(&ports[0], &wrong)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ipNATs[0].internalIP"), "{e}");
}

//! Host endpoints found by address and by name, as the compiler places and names them
//! ([`super::host_endpoints`]).

use std::collections::BTreeMap;

use crate::compile::{describe_with_interfaces, ChainOwner, CompileConfig, Compiler, HostPath};
use crate::dataplane::InterfaceAddresses;
use crate::model::{parse_resources, Model};

/// Host endpoints of h1: `a-ip` and `c-ip` found by address, `b-eth0` naming eth0,
/// `z-all` naming every interface; and a workload on `cali1`.
const HOSTS: &str = r#"
kind: HostEndpoint
name: a-ip
node: h1
expectedIPs: [192.0.2.1, "2001:db8::1"]
---
kind: HostEndpoint
name: b-eth0
node: h1
interfaceName: eth0
---
kind: HostEndpoint
name: c-ip
node: h1
expectedIPs: [192.0.2.3]
---
kind: HostEndpoint
name: z-all
node: h1
interfaceName: "*"
---
kind: HostEndpoint
name: a-other-node
node: h2
expectedIPs: [192.0.2.3]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: w
endpoint: eth0
node: h1
interfaceName: cali1
ipNetworks: [10.65.0.1/32]
"#;

fn addrs(list: &[(&str, &[&str])]) -> InterfaceAddresses {
    list.iter()
        .map(|(iface, ips)| {
            let held = ips.iter().map(|ip| ip.parse().unwrap()).collect();
            (iface.to_string(), held)
        })
        .collect()
}

/// Which host endpoint each interface's chain (to the host) belongs to, as
/// `describe` names them, for `model` compiled on h1 with `a`.
fn governed(model: &Model, c: &Compiler) -> BTreeMap<String, String> {
    let a = c.interface_addresses();
    let names = describe_with_interfaces(model, "h1", a, c.ruleset());
    let map = &c.ruleset().maps[HostPath::In.map().0];
    let mut ifaces: Vec<&str> = map.elements.keys().map(String::as_str).collect();
    ifaces.push("*");
    ifaces
        .into_iter()
        .filter_map(|iface| match names.chain(&HostPath::In.chain(iface)) {
            Some(ChainOwner::HostEndpoint { endpoint, .. }) => {
                Some((iface.to_string(), endpoint.clone()))
            }
            _ => None,
        })
        .collect()
}

fn compiled(model: &Model, a: InterfaceAddresses) -> Compiler {
    let mut c = Compiler::from_model(CompileConfig::new("h1"), model);
    c.set_interface_addresses(model, a);
    c
}

fn pairs(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(i, e)| (i.to_string(), e.to_string()))
        .collect()
}

#[test]
fn host_endpoints_without_an_interface_govern_the_interfaces_holding_their_addresses() {
    let model = Model::from_resources(parse_resources(HOSTS).unwrap()).unwrap();
    // As Felix's endpoint manager: eth0 is named by b-eth0 but holds a-ip's address,
    // and a-ip is first by name (a name match has no precedence); eth1 holds an IPv6
    // address of a-ip; eth2 holds c-ip's; the workload's interface is ignored (its
    // address matches nothing); the other interfaces keep z-all.
    let a = addrs(&[
        ("eth0", &["192.0.2.1", "192.0.2.3"]),
        ("eth1", &["2001:db8::1"]),
        ("eth2", &["192.0.2.3"]),
        ("eth3", &["192.0.2.200"]),
        ("cali1", &["192.0.2.3"]),
    ]);
    let c = compiled(&model, a.clone());
    let expect = [
        ("eth0", "a-ip"),
        ("eth1", "a-ip"),
        ("eth2", "c-ip"),
        ("*", "z-all"),
    ];
    assert_eq!(governed(&model, &c), pairs(&expect));
    // The compiler names them with the addresses it holds.
    let owner = c.describe_chain(&model, &HostPath::In.chain("eth2"));
    assert!(
        matches!(&owner, Some(ChainOwner::HostEndpoint { endpoint, .. }) if endpoint == "c-ip"),
        "{owner:?}"
    );
    // The reference evaluator agrees, interface by interface.
    // (The compiled all-interfaces endpoint leaves workloads and loopback alone.)
    let by_compiler = governed(&model, &c);
    for iface in ["eth0", "eth1", "eth2", "eth3", "cali1", "lo"] {
        let by_eval = crate::eval::host_endpoint_on(&model, "h1", iface, &a);
        let wildcard = by_compiler
            .get("*")
            .filter(|_| !["lo", "cali1"].contains(&iface));
        let compiled = by_compiler.get(iface).or(wildcard);
        assert_eq!(by_eval.map(|ep| &ep.name), compiled, "{iface}");
    }
    // Without a-ip's address on eth0, the name holds it.
    let c = compiled(&model, addrs(&[("eth0", &["192.0.2.3"])]));
    assert_eq!(
        governed(&model, &c),
        pairs(&[("eth0", "b-eth0"), ("*", "z-all")])
    );
}

#[test]
fn an_address_moving_or_going_moves_or_removes_its_host_endpoint_incrementally() {
    let mut model = Model::from_resources(parse_resources(HOSTS).unwrap()).unwrap();
    let mut c = compiled(&model, addrs(&[("eth2", &["192.0.2.3"])]));
    assert_eq!(governed(&model, &c)["eth2"], "c-ip");
    c.take_changes();
    // The address moves to eth3: eth2 falls back to the all-interfaces endpoint.
    let moved = addrs(&[("eth2", &[]), ("eth3", &["192.0.2.3"])]);
    c.set_interface_addresses(&model, moved.clone());
    assert!(!c.take_changes().is_empty());
    assert_eq!(
        governed(&model, &c),
        pairs(&[("eth0", "b-eth0"), ("eth3", "c-ip"), ("*", "z-all")])
    );
    assert_eq!(c.ruleset(), compiled(&model, moved).ruleset());
    // The address is gone: c-ip governs nothing, its chains are gone.
    c.set_interface_addresses(&model, addrs(&[("eth3", &["192.0.2.4"])]));
    assert_eq!(
        governed(&model, &c),
        pairs(&[("eth0", "b-eth0"), ("*", "z-all")])
    );
    assert!(!c.ruleset().chains.contains_key(&HostPath::In.chain("eth3")));
    assert!(!c.ruleset().maps[HostPath::In.map().0]
        .elements
        .contains_key("eth3"));
    // The interface becomes a workload's: its addresses no longer count.
    c.set_interface_addresses(&model, addrs(&[("cali2", &["192.0.2.3"])]));
    assert!(governed(&model, &c).contains_key("cali2"));
    let wl = "kind: WorkloadEndpoint\norchestrator: k8s\nworkload: v\nendpoint: eth0\nnode: h1\ninterfaceName: cali2\nipNetworks: [10.65.0.2/32]\n";
    let r = parse_resources(wl).unwrap().remove(0);
    c.apply_updates(&mut model, [crate::model::Update::Upsert(r)]);
    assert!(!governed(&model, &c).contains_key("cali2"));
    let full = compiled(&model, addrs(&[("cali2", &["192.0.2.3"])]));
    assert_eq!(c.ruleset(), full.ruleset());
}

#[test]
fn two_host_endpoints_on_one_interface_are_warned_about_once() {
    let hep = |name: &str| {
        format!("kind: HostEndpoint\nname: {name}\nnode: h1\ninterfaceName: eth0\n---\n")
    };
    let policy = |port: u16| {
        format!("kind: Policy\nname: p\nselector: all()\ningress: [{{action: Allow, protocol: TCP, destination: {{ports: [{port}]}}}}]\n")
    };
    let text = hep("a") + &hep("b") + &policy(80);
    let mut model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
    let text = crate::test_log::logged(|| {
        let mut c = Compiler::from_model(CompileConfig::new("h1"), &model);
        // Each policy change re-renders the host part; the conflict is not news.
        for port in [81, 82] {
            let r = parse_resources(&policy(port)).unwrap().remove(0);
            c.apply_updates(&mut model, [crate::model::Update::Upsert(r)]);
        }
    });
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("programmed=a") && warnings[0].contains("ignored=b"));
}

//! The demo's cluster: hosts, workloads, the policy and its edit, and what the reference
//! evaluator predicts.

use std::net::IpAddr;

use calico_core::eval::{evaluate_flow, Packet};
use calico_core::model::{parse_resources, Model};

pub const HOSTS: [(&str, u8); 3] = [("host-a", 1), ("host-b", 2), ("host-c", 3)];

/// (name, host, interface, address, role)
pub const WORKLOADS: [(&str, &str, &str, &str, &str); 6] = [
    ("frontend-1", "host-a", "cali-fe1", "10.65.1.10", "frontend"),
    ("backend-1", "host-a", "cali-be1", "10.65.1.20", "backend"),
    ("frontend-2", "host-b", "cali-fe2", "10.65.2.10", "frontend"),
    ("backend-2", "host-b", "cali-be2", "10.65.2.20", "backend"),
    ("backend-3", "host-c", "cali-be3", "10.65.3.20", "backend"),
    ("db-1", "host-c", "cali-db1", "10.65.3.30", "db"),
];

pub const PORT: u16 = 80;

pub const POLICY_V1: &str = "
kind: Policy
name: backends-from-frontends
namespace: shop
selector: role == 'backend'
types: [Ingress]
ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'frontend'}
    destination: {ports: [80]}
";

pub const POLICY_V2_EXTRA: &str = "
---
kind: Policy
name: db-from-backends
namespace: shop
selector: role == 'db'
types: [Ingress]
ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'backend'}
    destination: {ports: [80]}
";

/// The cluster's resources: nodes with their BGP identity and address block, one peering per other host and
/// fabric plane (so each remote workload is reachable over both planes: ECMP), the
/// namespace profile and the workloads.
pub fn cluster_yaml() -> String {
    let mut y = String::from(
        "kind: Profile\nname: kns.shop\negress: [{action: Allow}]\n---\n\
         kind: BgpConfiguration\nname: default\nnodeToNodeMeshEnabled: false\nasNumber: 64512\n",
    );
    for (host, i) in HOSTS {
        y += &format!("---\nkind: Node\nname: {host}\nbgp: {{ipv4Address: 10.1.0.{i}}}\n");
        // IPAM gave each host a /26: it advertises the block, not each workload.
        y += &format!("---\nkind: BlockAffinity\ncidr: 10.65.{i}.0/26\nnode: {host}\n");
        // `sourceAddress: None`: each plane's session runs from the host's address on that
        // plane. With Calico's default (the node's one address, on plane 1) both sessions
        // would carry the same next hop and ECMP over the planes would be lost.
        for (other, j) in HOSTS.iter().filter(|(h, _)| *h != host) {
            for plane in [1, 2] {
                y += &format!(
                    "---\nkind: BgpPeer\nname: {host}-{other}-plane{plane}\nnode: {host}\n\
                     peerIP: 10.{plane}.0.{j}\nasNumber: 64512\nholdTime: 9\nsourceAddress: None\n"
                );
            }
        }
    }
    for (name, host, iface, ip, role) in WORKLOADS {
        y += &format!(
            "---\nkind: WorkloadEndpoint\norchestrator: k8s\nworkload: shop.{name}\n\
             endpoint: eth0\nnamespace: shop\nnode: {host}\ninterfaceName: {iface}\n\
             ipNetworks: [{ip}/32]\nlabels: {{role: {role}}}\nprofiles: [kns.shop]\n"
        );
    }
    y
}

pub fn model(policy: &str) -> Model {
    let text = format!("{}---{policy}", cluster_yaml());
    Model::from_resources(parse_resources(&text).expect("demo resources parse"))
        .expect("demo resources are valid")
}

pub type Matrix = Vec<Vec<bool>>;

pub fn addr(i: usize) -> IpAddr {
    WORKLOADS[i].3.parse().unwrap()
}

pub fn probe(i: usize, j: usize) -> Packet {
    Packet::tcp(addr(i), 40000, addr(j), PORT)
}

pub fn predicted(model: &Model) -> Matrix {
    (0..WORKLOADS.len())
        .map(|i| {
            (0..WORKLOADS.len())
                .map(|j| {
                    i != j
                        && evaluate_flow(model, &probe(i, j))
                            .map(|e| e.verdict.is_allow())
                            .unwrap_or(false)
                })
                .collect()
        })
        .collect()
}

pub fn print_matrices(title: &str, measured: &Matrix, predicted: &Matrix) {
    println!("\n{title}: TCP {PORT} from row to column (✓ connects, · refused by policy)");
    let w = 11;
    let header: String = WORKLOADS.iter().map(|wl| format!("{:>w$}", wl.0)).collect();
    println!("{:<12}{header}   │ predicted by the policy", "measured");
    for i in 0..WORKLOADS.len() {
        let row = |m: &Matrix| -> String {
            (0..WORKLOADS.len())
                .map(|j| {
                    let c = if i == j {
                        "-"
                    } else if m[i][j] {
                        "✓"
                    } else {
                        "·"
                    };
                    format!("{c:>w$}")
                })
                .collect()
        };
        println!(
            "{:<12}{}   │{}",
            WORKLOADS[i].0,
            row(measured),
            row(predicted)
        );
    }
    println!(
        "measured {} predicted",
        if measured == predicted { "==" } else { "!=" }
    );
}

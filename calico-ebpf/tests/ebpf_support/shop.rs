//! The shop model of the backend's tests on real namespaces: a client workload (`calic`,
//! 10.65.0.30) whose profile admits all egress, up to two web workloads admitting TCP
//! 8080 from it, and a policy admitting UDP 5353 to the client.

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::Ruleset;
use calico_core::model::{parse_resources, Model};
use std::time::{Duration, Instant};

/// The shop's workloads as (interface, address): web 1, web 2, the client (the
/// interfaces and addresses the model's endpoints have).
pub const WORKLOADS: [(&str, &str); 3] = [
    ("calia", "10.65.0.10"),
    ("calib", "10.65.0.20"),
    ("calic", "10.65.0.30"),
];

/// The profile, the client and the policies, without web workloads.
pub fn shop_text() -> String {
    SHOP.to_string()
}

const SHOP: &str = r#"
kind: Profile
name: kns.shop
egress:
  - action: Allow
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.client
endpoint: eth0
namespace: shop
node: h1
interfaceName: calic
ipNetworks: [10.65.0.30/32]
labels: {app: client}
profiles: [kns.shop]
---
kind: Policy
name: web-ingress
namespace: shop
order: 100
selector: app == 'web'
types: [Ingress]
ingress:
  - action: Allow
    protocol: TCP
    source: {selector: app == 'client'}
    destination: {ports: [8080]}
---
kind: Policy
name: client-ingress
namespace: shop
order: 100
selector: app == 'client'
types: [Ingress]
ingress:
  - action: Allow
    protocol: UDP
    destination: {ports: [5353]}
"#;

/// Web workload `n` (1: `calia`, 10.65.0.10; 2: `calib`, 10.65.0.20).
pub fn web(n: usize) -> String {
    let (iface, ip) = WORKLOADS[n - 1];
    format!(
        r#"
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.web{n}
endpoint: eth0
namespace: shop
node: h1
interfaceName: {iface}
ipNetworks: [{ip}/32]
labels: {{app: web}}
profiles: [kns.shop]
"#
    )
}

/// The shop with the web workloads `webs` (1, 2), compiled for host `h1`.
pub fn shop_ruleset(webs: &[usize]) -> Ruleset {
    let mut text = shop_text();
    for &n in webs {
        text.push_str(&web(n));
    }
    let model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
    compile(&CompileConfig::new("h1"), &model)
}

/// Whether program `id` is loaded, as `bpftool` sees it (the unload after the last
/// reference goes is synchronous on current kernels; a second is allowed for it).
pub fn loaded_in_kernel(id: u32) -> bool {
    let show = || {
        std::process::Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string()])
            .output()
            .expect("bpftool runs")
            .status
            .success()
    };
    let start = Instant::now();
    while show() {
        if start.elapsed() > Duration::from_secs(1) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

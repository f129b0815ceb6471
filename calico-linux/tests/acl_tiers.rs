//! Tiers enforced by the kernel on real packets (issue 17): UDP datagrams from one workload
//! to another on several ports, judged by a tier that ends in Deny, a Pass to the next tier,
//! and a tier whose policies select no endpoint involved (skipped, so its end-of-tier drop
//! never applies). A change of a tier's defaultAction reaches the kernel through the
//! incremental compiler and applies to new flows at once.

mod support;

use calico_core::compile::{CompileConfig, Compiler};
use calico_core::dataplane::AclBackend;
use calico_core::model::{parse_resources, Model, Resource, Tier, TierAction, Update};
use calico_linux::acl::LinuxAcl;
use calico_netns::fixtures::privileged;
use support::{udp_delivers, Topology, Workload};

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: front
endpoint: eth0
node: h1
interfaceName: calia
ipNetworks: [10.65.0.1/32]
labels: {app: front}
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: back
endpoint: eth0
node: h1
interfaceName: calib
ipNetworks: [10.65.0.2/32]
labels: {app: back}
profiles: [open]
---
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: Tier
name: quarantine
order: 1
---
kind: Policy
name: quarantine.nobody
tier: quarantine
selector: app == 'nobody'
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: Tier
name: security
order: 10
defaultAction: Deny
---
kind: Policy
name: security.back
tier: security
selector: app == 'back'
types: [Ingress]
ingress:
  - {action: Allow, protocol: UDP, destination: {ports: [53]}}
  - {action: Pass, protocol: UDP, destination: {ports: [5000]}}
---
kind: Policy
name: back-apps
selector: app == 'back'
types: [Ingress]
ingress:
  - {action: Allow, protocol: UDP, destination: {ports: [5000, 6000]}}
"#;

/// Whether a datagram from a fresh port of `from` (a new flow for conntrack) reaches `port`
/// of `to`.
fn delivers(from: &Workload, to: &Workload, port: u16) -> bool {
    let server = to.udp(to.ip, port);
    udp_delivers(&from.udp(from.ip, 0), &server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_deny_at_their_end_pass_to_the_next_and_skip_when_not_applying() {
    if !privileged("tiers_deny_at_their_end_pass_to_the_next_and_skip_when_not_applying") {
        return;
    }
    let topo = Topology::new(&[("calia", "10.65.0.1"), ("calib", "10.65.0.2")]);
    let (front, back) = (&topo.workloads[0], &topo.workloads[1]);
    // Without ACLs every port is reached: the drops below are ours.
    for port in [53, 5000, 6000, 7000] {
        assert!(delivers(front, back, port), "port {port} without ACLs");
    }

    let acl = LinuxAcl::in_netns(topo.host.path().as_ref(), "calico").unwrap();
    let mut model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let mut compiler = Compiler::from_model(CompileConfig::new("h1"), &model);
    acl.apply(&compiler.take_changes()).await.unwrap();
    // Tier quarantine (order 1, default Deny) selects neither workload: skipped, or its
    // end-of-tier drop would stop everything.
    assert!(delivers(front, back, 53), "tier security allows 53");
    assert!(
        delivers(front, back, 5000),
        "tier security passes 5000 to the default tier, which allows it"
    );
    assert!(
        !delivers(front, back, 6000),
        "no rule of tier security matched 6000: its end-of-tier drop, though the default tier would allow it"
    );
    assert!(
        !delivers(front, back, 7000),
        "dropped at the end of tier security"
    );
    assert!(
        delivers(back, front, 6000),
        "front has no policy: its profile decides"
    );

    // Tier security now passes what it does not decide: the default tier judges 6000 and
    // 7000.
    let security = Tier {
        name: "security".into(),
        order: Some(10.0),
        default_action: TierAction::Pass,
    };
    let applied = model.apply_valid(Update::Upsert(Resource::Tier(security)));
    compiler.apply(&model, &applied);
    acl.apply(&compiler.take_changes()).await.unwrap();
    assert!(
        delivers(front, back, 6000),
        "passed by default, allowed by the default tier"
    );
    assert!(
        !delivers(front, back, 7000),
        "passed by default, dropped at the end of the default tier"
    );
    assert!(delivers(front, back, 53), "tier security still allows 53");
    assert_eq!(&acl.dump().await.unwrap(), compiler.ruleset());
}

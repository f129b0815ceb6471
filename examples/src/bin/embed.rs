//! `embed`: how an orchestrator embeds the agent, with the mock backends, in its own tests.
//!
//! The orchestrator builds an [`Agent`] for one host, hands it the desired state, waits for
//! it to settle, and checks the outcome on the backends: routes in [`MockFib`], ACLs in
//! [`MockAcl`] (which judges packets exactly as nftables would judge the compiled rules).
//! Swap the mocks for `calico_linux::fib::LinuxFib` and `calico_linux::acl::LinuxAcl` and the
//! same code programs a real host.
//!
//! ```sh
//! cargo run -q -p calico-examples --bin embed
//! ```

use std::sync::Arc;

use calico_core::agent::{Agent, EndpointState};
use calico_core::dataplane::ir::Hook;
use calico_core::eval::Packet;
use calico_core::model::{parse_resources, Update};
use calico_mock::{ConnState, MockAcl, MockFib, PacketContext};

const DESIRED: &str = r#"
kind: Profile
name: kns.shop
egress: [{action: Allow}]
---
kind: WorkloadEndpoint
orchestrator: my-scheduler
workload: web-1
endpoint: eth0
namespace: shop
node: host-a
interfaceName: cali-web1
ipNetworks: [10.65.0.1/32]
labels: {app: web}
profiles: [kns.shop]
---
kind: WorkloadEndpoint
orchestrator: my-scheduler
workload: db-1
endpoint: eth0
namespace: shop
node: host-a
interfaceName: cali-db1
ipNetworks: [10.65.0.2/32]
labels: {app: db}
profiles: [kns.shop]
---
kind: Policy
name: db-from-web
namespace: shop
selector: app == 'db'
ingress: [{action: Allow, protocol: TCP, source: {selector: app == 'web'}, destination: {ports: [5432]}}]
"#;

fn judge(acl: &MockAcl, dst_port: u16) -> bool {
    let p = Packet::tcp(
        "10.65.0.1".parse().unwrap(),
        40000,
        "10.65.0.2".parse().unwrap(),
        dst_port,
    );
    let ctx = PacketContext {
        packet: &p,
        iif: "cali-web1",
        oif: "cali-db1",
        ct: ConnState::New,
    };
    acl.judge(Hook::Forward, &ctx).accepted
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The backends: in a test, mocks; the interfaces exist as the orchestrator created them.
    let fib = MockFib::new();
    fib.add_interface("cali-web1");
    fib.add_interface("cali-db1");
    let acl = MockAcl::new();

    let agent = Agent::builder()
        .node("host-a")
        .fib(Arc::new(fib.clone()))
        .acl(Arc::new(acl.clone()))
        .start()?;
    let handle = agent.handle();

    // The complete desired state first; nothing is programmed before it.
    handle.snapshot(parse_resources(DESIRED)?).await?;
    handle.flush().await;
    for (id, ep) in handle.status().endpoints {
        println!("{}: {:?}", id.workload, ep.state);
        assert_eq!(ep.state, EndpointState::Programmed);
    }
    println!("routes: {:?}", fib.routes().keys().collect::<Vec<_>>());
    println!("web → db tcp/5432 allowed: {}", judge(&acl, 5432));
    println!("web → db tcp/22   allowed: {}", judge(&acl, 22));
    assert!(judge(&acl, 5432) && !judge(&acl, 22));

    // Then updates. A bad one is refused with a reason and changes nothing.
    let bad = parse_resources(&DESIRED.replace("[5432]", "[70000]"));
    println!("a bad port is refused on entry: {}", bad.unwrap_err());
    let mut resources = parse_resources(DESIRED)?;
    let policy = resources.pop().expect("the policy");
    handle.update(Update::Remove(policy.key())).await?;
    handle.flush().await;
    println!(
        "policy removed: web → db tcp/5432 allowed: {}",
        judge(&acl, 5432)
    );
    assert!(
        !judge(&acl, 5432),
        "the db's profile admits nothing without the policy"
    );

    agent.shutdown().await;
    Ok(())
}

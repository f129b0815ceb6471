//! The backends' drift signals on the real kernel: changes made by someone else to the
//! agent's table, routes or workload links bump them; the backend's own changes do not (or
//! the agent would repair for ever).

use std::time::Duration;

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::{
    diff, AclBackend, FibBackend, FibChangeSet, InterfaceSettings, Route, RouteTarget,
};
use calico_core::model::{parse_resources, Model};
use calico_linux::acl::LinuxAcl;
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::{privileged, Netns};
use tokio::sync::watch;

/// Whether the signal is bumped within 2 s (and marks it seen).
async fn bumped(rx: &mut watch::Receiver<u64>) -> bool {
    tokio::time::timeout(Duration::from_secs(2), rx.changed())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// Whether the signal stays quiet for 300 ms (events come within milliseconds).
async fn quiet(rx: &mut watch::Receiver<u64>) -> bool {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changed = rx.has_changed().unwrap();
    rx.borrow_and_update();
    !changed
}

fn ruleset() -> Ruleset {
    let model = Model::from_resources(
        parse_resources(
            "kind: Profile\nname: p\ningress: [{action: Allow}]\n---\n\
             kind: WorkloadEndpoint\norchestrator: k8s\nworkload: w\nendpoint: eth0\n\
             node: h1\ninterfaceName: calidrift0\nipNetworks: [10.70.0.1/32]\nprofiles: [p]\n",
        )
        .unwrap(),
    )
    .unwrap();
    compile(&CompileConfig::new("h1"), &model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_signal_tells_someone_elses_changes_to_the_table_only() {
    if !privileged("the_acl_signal_tells_someone_elses_changes_to_the_table_only") {
        return;
    }
    let ns = Netns::create("drift-acl").unwrap();
    let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
    let mut rx = acl.drift().expect("nf_tables events");
    let want = ruleset();
    acl.apply(&diff(&Ruleset::default(), &want)).await.unwrap();
    assert!(quiet(&mut rx).await, "our own transaction is not drift");

    ns.run(&["nft", "add", "table", "inet", "other"]).unwrap();
    ns.run(&["nft", "add", "chain", "inet", "other", "c"])
        .unwrap();
    assert!(quiet(&mut rx).await, "another table is not ours");

    let chain = want.chains.keys().next().unwrap().clone();
    ns.run(&["nft", "add", "rule", "inet", "calico", &chain, "counter"])
        .unwrap();
    assert!(bumped(&mut rx).await, "a rule added by hand");
    ns.run(&["nft", "delete", "table", "inet", "calico"])
        .unwrap();
    assert!(bumped(&mut rx).await, "the table deleted by hand");

    // The repair is ours again: no signal.
    assert!(quiet(&mut rx).await);
    acl.apply(&diff(&acl.dump().await.unwrap(), &want))
        .await
        .unwrap();
    assert!(quiet(&mut rx).await, "our own repair is not drift");
}

fn workload_route(dst: &str, interface: &str) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        target: RouteTarget::Workload {
            interface: interface.into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fib_signal_tells_someone_elses_route_and_link_changes() {
    if !privileged("the_fib_signal_tells_someone_elses_route_and_link_changes") {
        return;
    }
    let ns = Netns::create("drift-fib").unwrap();
    ns.run(&[
        "ip",
        "link",
        "add",
        "calidrift0",
        "type",
        "veth",
        "peer",
        "name",
        "drift0p",
    ])
    .unwrap();
    ns.run(&["ip", "link", "set", "drift0p", "up"]).unwrap();
    let fib = LinuxFib::in_netns(ns.path(), FibConfig::default()).unwrap();
    let mut rx = fib.drift().expect("rtnetlink events");
    fib.configure_interface("calidrift0", InterfaceSettings::default())
        .await
        .unwrap();
    // Bringing the link up is seen (the kernel reports link changes as its own); let it pass.
    let _ = quiet(&mut rx).await;

    let route = workload_route("10.70.0.1/32", "calidrift0");
    let add = FibChangeSet {
        remove: vec![],
        upsert: vec![route.clone()],
    };
    assert!(fib.apply(&add).await.unwrap().failed.is_empty());
    assert!(quiet(&mut rx).await, "our own route is not drift");

    ns.run(&["ip", "route", "add", "10.70.9.0/24", "dev", "calidrift0"])
        .unwrap();
    assert!(
        quiet(&mut rx).await,
        "a route of another protocol is not ours"
    );

    ns.run(&["ip", "route", "del", "10.70.0.1/32"]).unwrap();
    assert!(bumped(&mut rx).await, "our route deleted by hand");
    assert!(fib.apply(&add).await.unwrap().failed.is_empty());
    assert!(quiet(&mut rx).await, "our own repair is not drift");

    ns.run(&["ip", "link", "del", "calidrift0"]).unwrap();
    assert!(bumped(&mut rx).await, "a link deleted");
    ns.run(&[
        "ip",
        "link",
        "add",
        "calidrift0",
        "type",
        "veth",
        "peer",
        "name",
        "drift0p",
    ])
    .unwrap();
    assert!(bumped(&mut rx).await, "a link created");
}

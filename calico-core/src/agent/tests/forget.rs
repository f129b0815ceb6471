//! The connections of addresses that leave this host's workloads are forgotten once their
//! routes are gone, and only those.

use super::*;
use crate::model::{IpNat, ResourceKey};

fn key(name: &str) -> ResourceKey {
    ResourceKey::WorkloadEndpoint(WorkloadEndpointId {
        orchestrator: "k8s".into(),
        workload: name.into(),
        endpoint: "eth0".into(),
    })
}

fn forgotten(fib: &RecordingFib) -> Vec<Vec<(std::net::IpAddr, bool)>> {
    std::mem::take(&mut fib.0.lock().unwrap().forgotten)
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_removed_endpoints_address_is_forgotten_after_its_route_is_gone() {
    let fib = fib_with_interfaces(&["cali-a", "cali-b", "cali-c"]);
    let agent = start(&fib);
    let h = agent.handle();
    h.snapshot(vec![
        endpoint("a", "h1", "cali-a", "10.0.0.1/32"),
        endpoint("b", "h1", "cali-b", "10.0.0.2/32"),
        endpoint("r", "h2", "cali-r", "10.0.0.9/32"),
    ])
    .await
    .unwrap();
    h.flush().await;
    assert!(forgotten(&fib).is_empty(), "nothing left at the start");

    h.update(Update::Remove(key("a"))).await.unwrap();
    h.flush().await;
    assert_eq!(forgotten(&fib), vec![vec![(ip("10.0.0.1"), false)]]);

    // The address given to another workload of this host: the old owner's connections go.
    h.update(Update::Upsert(endpoint("c", "h1", "cali-c", "10.0.0.2/32")))
        .await
        .unwrap();
    h.update(Update::Remove(key("b"))).await.unwrap();
    h.flush().await;
    assert_eq!(forgotten(&fib), vec![vec![(ip("10.0.0.2"), true)]]);

    // Changes elsewhere (a remote endpoint, a resync) forget nothing.
    h.update(Update::Remove(key("r"))).await.unwrap();
    h.resync().await.unwrap();
    h.flush().await;
    assert!(forgotten(&fib).is_empty());
    agent.shutdown().await;
}

#[tokio::test]
async fn a_removed_floating_ip_is_forgotten() {
    let fib = fib_with_interfaces(&["cali-a"]);
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib.clone()))
        .timing(fast_timing())
        .floating_ips(true)
        .start()
        .unwrap();
    let h = agent.handle();
    let mut ep = endpoint("a", "h1", "cali-a", "10.0.0.1/32");
    if let Resource::WorkloadEndpoint(w) = &mut ep {
        w.ip_nats = vec![IpNat {
            internal_ip: ip("10.0.0.1"),
            external_ip: ip("172.16.0.1"),
        }];
    }
    h.snapshot(vec![ep]).await.unwrap();
    h.flush().await;
    assert!(fib
        .0
        .lock()
        .unwrap()
        .routes
        .contains_key(&net("172.16.0.1/32")));
    h.update(Update::Upsert(endpoint("a", "h1", "cali-a", "10.0.0.1/32")))
        .await
        .unwrap();
    h.flush().await;
    assert_eq!(forgotten(&fib), vec![vec![(ip("172.16.0.1"), false)]]);
    agent.shutdown().await;
}

#[tokio::test]
async fn endpoints_removed_while_the_agent_was_down_are_forgotten_at_start() {
    let fib = fib_with_interfaces(&["cali-a"]);
    fib.0.lock().unwrap().routes.insert(
        net("10.0.0.7/32"),
        RouteTarget::Workload {
            interface: "cali-old".into(),
        },
    );
    let agent = start(&fib);
    let h = agent.handle();
    h.snapshot(vec![endpoint("a", "h1", "cali-a", "10.0.0.1/32")])
        .await
        .unwrap();
    h.flush().await;
    assert_eq!(forgotten(&fib), vec![vec![(ip("10.0.0.7"), false)]]);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_failure_is_retried_and_does_not_hold_the_agent_up() {
    let fib = fib_with_interfaces(&["cali-a"]);
    fib.0.lock().unwrap().forget_fails = true;
    let agent = start(&fib);
    let h = agent.handle();
    h.snapshot(vec![endpoint("a", "h1", "cali-a", "10.0.0.1/32")])
        .await
        .unwrap();
    h.flush().await;
    h.update(Update::Remove(key("a"))).await.unwrap();
    h.flush().await;
    assert_eq!(forgotten(&fib).len(), 1);
    assert!(h.status().in_sync);
    assert!(h.status().fib.last_error.is_none(), "routes are fine");
    fib.0.lock().unwrap().forget_fails = false;
    h.resync().await.unwrap();
    h.flush().await;
    assert_eq!(forgotten(&fib), vec![vec![(ip("10.0.0.1"), false)]]);
    h.resync().await.unwrap();
    h.flush().await;
    assert!(forgotten(&fib).is_empty(), "forgotten once done");
    agent.shutdown().await;
}

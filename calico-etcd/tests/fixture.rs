//! The etcd fixture itself: it starts, pauses, is killed and comes back with its data.

use calico_etcd::testing::EtcdServer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn etcd_starts_survives_a_kill_and_keeps_its_data() {
    let Some(mut etcd) =
        EtcdServer::start_or_skip("etcd_starts_survives_a_kill_and_keeps_its_data")
    else {
        return;
    };
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    client.put("/calico/test", "1", None).await.unwrap();
    etcd.kill();
    let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_millis(300));
    let mut down = etcd_client::Client::connect([etcd.endpoint()], Some(options)).await;
    if let Ok(c) = down.as_mut() {
        assert!(
            c.get("/calico/test", None).await.is_err(),
            "a killed etcd answered"
        );
    }
    etcd.restart().unwrap();
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    let got = client.get("/calico/test", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"1");
}

#[test]
fn etcd_runs_inside_a_namespace_and_is_reached_from_a_thread_that_entered_it() {
    let test = "etcd_runs_inside_a_namespace_and_is_reached_from_a_thread_that_entered_it";
    if !calico_netns::fixtures::privileged(test) || !EtcdServer::usable_or_skip(test) {
        return;
    }
    let ns = calico_netns::fixtures::Netns::create("etcdns").unwrap();
    ns.run(&["ip", "link", "set", "lo", "up"]).unwrap();
    let etcd = EtcdServer::start_in_netns(ns.name(), "127.0.0.1".parse().unwrap()).unwrap();
    let endpoint = etcd.endpoint();
    let value = calico_netns::enter::enter_path(std::path::Path::new(&ns.path()), || {
        calico_etcd::testing::with_client(endpoint, |mut c| async move {
            c.put("/calico/in-ns", "yes", None).await.unwrap();
            c.get("/calico/in-ns", None).await.unwrap().kvs()[0]
                .value()
                .to_vec()
        })
    })
    .unwrap();
    assert_eq!(value, b"yes");
    // etcd runs in the namespace, not in ours.
    let ns_of = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(ns_of(&etcd.pid().unwrap().to_string()), ns_of("self"));
}

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

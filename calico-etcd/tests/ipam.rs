//! IPAM against a real etcd, one process: Calico's keys and values, borrowing, strict
//! affinity, exhaustion, bad stored values, a frozen etcd.

use std::net::IpAddr;
use std::time::Duration;

use calico_core::model::{BlockAffinity, IpPool};
use calico_etcd::ipam::{AllocationBlock, AssignRequest, Family, Ipam, IpamConfig, IpamError};
use calico_etcd::testing::EtcdServer;
use etcd_client::{Client, GetOptions};
use serde_json::Value;

fn pool(cidr: &str, block: Option<u8>) -> IpPool {
    IpPool {
        name: format!("pool-{cidr}"),
        cidr: cidr.parse().unwrap(),
        block_size: block,
        disabled: false,
    }
}

fn config(pools: Vec<IpPool>) -> IpamConfig {
    IpamConfig {
        pools,
        request_timeout: Duration::from_secs(2),
        ..IpamConfig::default()
    }
}

async fn get_json(client: &Client, key: &str) -> Option<Value> {
    let resp = client.kv_client().get(key, None).await.unwrap();
    resp.kvs()
        .first()
        .map(|kv| serde_json::from_slice(kv.value()).unwrap())
}

async fn keys_under(client: &Client, prefix: &str) -> Vec<String> {
    let opts = GetOptions::new().with_prefix().with_keys_only();
    let resp = client.kv_client().get(prefix, Some(opts)).await.unwrap();
    resp.kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn assignment_and_release_write_calicos_keys_and_values() {
    let Some(etcd) =
        EtcdServer::start_or_skip("assignment_and_release_write_calicos_keys_and_values")
    else {
        return;
    };
    let client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let ipam = Ipam::new(&client, "node-1", config(vec![pool("10.1.0.0/26", None)])).unwrap();
    assert!(matches!(
        Ipam::new(&client, "a/b", config(vec![])),
        Err(IpamError::InvalidHost { .. })
    ));
    assert!(matches!(
        Ipam::new(&client, "h", config(vec![pool("10.0.0.0/16", Some(8))])),
        Err(IpamError::InvalidPool { .. })
    ));
    assert!(matches!(
        ipam.assign(&AssignRequest::new("x/y", Family::V4)).await,
        Err(IpamError::InvalidHandle { .. })
    ));
    let mut req = AssignRequest::new("k8s-pod-network.a", Family::V4);
    req.attrs.insert("pod".into(), "web-0".into());
    let a = ipam.assign(&req).await.unwrap();
    assert_eq!(
        (a.addr, a.block, a.borrowed),
        (ip("10.1.0.0"), "10.1.0.0/26".parse().unwrap(), false)
    );
    let b = ipam.assign(&req).await.unwrap();
    let c = ipam
        .assign(&AssignRequest::new("k8s-pod-network.c", Family::V4))
        .await
        .unwrap();
    assert_eq!((b.addr, c.addr), (ip("10.1.0.1"), ip("10.1.0.2")));

    let aff = get_json(
        &client,
        "/calico/ipam/v2/host/node-1/ipv4/block/10.1.0.0-26",
    )
    .await;
    assert_eq!(
        aff,
        Some(serde_json::json!({"state": "confirmed", "deleted": false}))
    );
    let block = get_json(&client, "/calico/ipam/v2/assignment/ipv4/block/10.1.0.0-26")
        .await
        .unwrap();
    assert_eq!(block["cidr"], "10.1.0.0/26");
    assert_eq!(block["affinity"], "host:node-1");
    assert_eq!(block["allocations"][0], 0);
    assert_eq!(block["allocations"][2], 1);
    assert_eq!(block["allocations"][3], Value::Null);
    assert_eq!(block["unallocated"][0], 3);
    assert_eq!(block["attributes"][0]["handle_id"], "k8s-pod-network.a");
    assert_eq!(block["attributes"][0]["secondary"]["pod"], "web-0");
    assert_eq!(block["attributes"][0]["secondary"]["node"], "node-1");
    let handle = get_json(&client, "/calico/ipam/v2/handle/k8s-pod-network.a").await;
    assert_eq!(
        handle,
        Some(serde_json::json!({"block": {"10.1.0.0/26": 2}, "deleted": false}))
    );
    assert_eq!(
        ipam.block_affinities(None).await.unwrap(),
        vec![BlockAffinity {
            cidr: "10.1.0.0/26".parse().unwrap(),
            node: "node-1".into()
        }]
    );
    assert_eq!(ipam.blocks_of("node-2").await.unwrap(), vec![]);
    let listed =
        calico_etcd::ipam::list_block_affinities(&client, Some("node-1"), Duration::from_secs(2));
    assert_eq!(
        listed.await.unwrap(),
        ipam.block_affinities(None).await.unwrap()
    );

    // IPv6: /122 blocks under ipv6/.
    let v6 = Ipam::new(&client, "node-1", config(vec![pool("fd00::/120", None)])).unwrap();
    let a6 = v6
        .assign(&AssignRequest::new("v6", Family::V6))
        .await
        .unwrap();
    assert_eq!(a6.block.prefix_len(), 122);
    let key6 = format!(
        "/calico/ipam/v2/assignment/ipv6/block/{}-122",
        a6.block.network()
    );
    assert_eq!(
        get_json(&client, &key6).await.unwrap()["cidr"],
        a6.block.to_string()
    );
    assert!(v6.release(a6.addr).await.unwrap());

    // Release by address: the handle counts one less; by handle: it goes.
    assert!(ipam.release(a.addr).await.unwrap());
    assert!(!ipam.release(a.addr).await.unwrap(), "released twice");
    assert!(!ipam.release(ip("10.9.9.9")).await.unwrap(), "in no block");
    let handle = get_json(&client, "/calico/ipam/v2/handle/k8s-pod-network.a").await;
    assert_eq!(handle.unwrap()["block"]["10.1.0.0/26"], 1);
    assert_eq!(
        ipam.release_by_handle("k8s-pod-network.a").await.unwrap(),
        vec![b.addr]
    );
    assert_eq!(
        ipam.release_by_handle("k8s-pod-network.a").await.unwrap(),
        Vec::<IpAddr>::new()
    );
    assert!(ipam.release(c.addr).await.unwrap());
    assert_eq!(
        keys_under(&client, "/calico/ipam/v2/handle/").await,
        Vec::<String>::new()
    );
    let block = get_json(&client, "/calico/ipam/v2/assignment/ipv4/block/10.1.0.0-26")
        .await
        .unwrap();
    let block: AllocationBlock = serde_json::from_value(block).unwrap();
    assert!(block.is_empty() && block.attributes.is_empty() && block.free() == 64);
    // Released addresses queue last: the next one is the longest free.
    let d = ipam.assign(&req).await.unwrap();
    assert_eq!(d.addr, ip("10.1.0.3"));
    assert_eq!(
        ipam.blocks_of("node-1").await.unwrap(),
        vec![d.block, a6.block]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_host_borrows_unless_strict_and_an_empty_pool_says_so() {
    let Some(etcd) =
        EtcdServer::start_or_skip("a_full_host_borrows_unless_strict_and_an_empty_pool_says_so")
    else {
        return;
    };
    let client = Client::connect([etcd.endpoint()], None).await.unwrap();
    // Two blocks of four addresses.
    let pools = vec![pool("10.0.0.0/29", Some(30))];
    let a = Ipam::new(&client, "a", config(pools.clone())).unwrap();
    let b = Ipam::new(&client, "b", config(pools.clone())).unwrap();
    let strict = IpamConfig {
        strict_affinity: true,
        ..config(pools.clone())
    };
    let c = Ipam::new(&client, "c", strict).unwrap();
    let req = |h: &str| AssignRequest::new(h, Family::V4);
    for i in 0..3 {
        assert!(!a.assign(&req(&format!("a{i}"))).await.unwrap().borrowed);
    }
    for i in 0..4 {
        assert!(!b.assign(&req(&format!("b{i}"))).await.unwrap().borrowed);
    }
    let a_block = a.blocks_of("a").await.unwrap();
    assert_eq!(a_block.len(), 1);
    // c may not borrow the free address in a's block.
    match c.assign(&req("c0")).await {
        Err(IpamError::PoolExhausted { strict: true, .. }) => {}
        other => panic!("strict affinity borrowed: {other:?}"),
    }
    // b, full, borrows it.
    let borrowed = b.assign(&req("b4")).await.unwrap();
    assert!(borrowed.borrowed);
    assert_eq!(borrowed.block, a_block[0]);
    match a.assign(&req("a3")).await {
        Err(e @ IpamError::PoolExhausted { strict: false, .. }) => {
            assert!(e.to_string().contains("10.0.0.0/29"), "{e}")
        }
        other => panic!("an exhausted pool assigned: {other:?}"),
    }
    // Released from b, the address goes back to a's block and a gets it.
    assert!(b.release(borrowed.addr).await.unwrap());
    assert_eq!(a.assign(&req("a3")).await.unwrap().addr, borrowed.addr);
    assert_eq!(a.blocks_of("c").await.unwrap(), vec![]);
    assert!(matches!(
        a.assign(&AssignRequest::new("x", Family::V6)).await,
        Err(IpamError::NoPool {
            family: Family::V6,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_stored_block_is_an_error_naming_its_key() {
    let Some(etcd) = EtcdServer::start_or_skip("a_bad_stored_block_is_an_error_naming_its_key")
    else {
        return;
    };
    let client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let ipam = Ipam::new(&client, "h", config(vec![pool("10.2.0.0/26", None)])).unwrap();
    let key = "/calico/ipam/v2/assignment/ipv4/block/10.2.0.0-26";
    let mut kv = client.kv_client();
    kv.put(
        "/calico/ipam/v2/host/h/ipv4/block/10.2.0.0-26",
        r#"{"state":"confirmed"}"#,
        None,
    )
    .await
    .unwrap();
    kv.put(key, r#"{"cidr":"10.2.0.0/26","allocations":"#, None)
        .await
        .unwrap();
    match ipam.assign(&AssignRequest::new("x", Family::V4)).await {
        Err(e @ IpamError::BadValue { .. }) => assert!(e.to_string().contains(key), "{e}"),
        other => panic!("a bad block was used: {other:?}"),
    }
    // Nothing was written over it.
    let resp = kv.get(key, None).await.unwrap();
    assert_eq!(
        resp.kvs()[0].value(),
        br#"{"cidr":"10.2.0.0/26","allocations":"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_etcd_is_a_timeout_naming_the_key_not_a_hang() {
    let Some(etcd) =
        EtcdServer::start_or_skip("a_frozen_etcd_is_a_timeout_naming_the_key_not_a_hang")
    else {
        return;
    };
    let client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let cfg = IpamConfig {
        request_timeout: Duration::from_millis(300),
        ..config(vec![pool("10.3.0.0/26", None)])
    };
    let ipam = Ipam::new(&client, "h", cfg).unwrap();
    let first = ipam
        .assign(&AssignRequest::new("x", Family::V4))
        .await
        .unwrap();
    etcd.pause();
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        (
            ipam.release(first.addr).await,
            ipam.assign(&AssignRequest::new("y", Family::V4)).await,
        )
    })
    .await;
    etcd.resume();
    let (release, assign) = outcome.expect("IPAM hung on a frozen etcd");
    match release {
        Err(e @ IpamError::Timeout { .. }) => {
            assert!(e.to_string().contains("/calico/ipam/v2/"), "{e}")
        }
        other => panic!("release on a frozen etcd: {other:?}"),
    }
    assert!(
        matches!(assign, Err(IpamError::Timeout { .. })),
        "{assign:?}"
    );
    // And it carries on once etcd is back.
    assert!(ipam.release(first.addr).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_left_half_done_is_finished_and_a_stale_affinity_dropped() {
    let Some(etcd) = EtcdServer::start_or_skip(
        "a_claim_left_half_done_is_finished_and_a_stale_affinity_dropped",
    ) else {
        return;
    };
    let client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let mut kv = client.kv_client();
    // A client of h crashed after writing its pending affinity to 10.4.0.0/26; h also
    // has an affinity to 10.4.0.64/26, which host "other" owns.
    let pending = "/calico/ipam/v2/host/h/ipv4/block/10.4.0.0-26";
    let stale = "/calico/ipam/v2/host/h/ipv4/block/10.4.0.64-26";
    kv.put(pending, r#"{"state":"pending","deleted":false}"#, None)
        .await
        .unwrap();
    kv.put(stale, r#"{"state":"confirmed","deleted":false}"#, None)
        .await
        .unwrap();
    let other = AllocationBlock::new("10.4.0.64/26".parse().unwrap(), "other");
    kv.put(
        "/calico/ipam/v2/assignment/ipv4/block/10.4.0.64-26",
        other.to_json(),
        None,
    )
    .await
    .unwrap();
    let cfg = IpamConfig {
        max_blocks_per_host: 1,
        ..config(vec![pool("10.4.0.0/24", None)])
    };
    let ipam = Ipam::new(&client, "h", cfg).unwrap();
    let a = ipam
        .assign(&AssignRequest::new("x", Family::V4))
        .await
        .unwrap();
    assert_eq!((a.addr, a.borrowed), (ip("10.4.0.0"), false));
    assert_eq!(
        get_json(&client, pending).await,
        Some(serde_json::json!({"state": "confirmed", "deleted": false}))
    );
    assert_eq!(get_json(&client, stale).await, None, "stale affinity kept");
    assert_eq!(ipam.blocks_of("h").await.unwrap(), vec![a.block]);
    // One block per host: once it is full, no second claim.
    for i in 1..64 {
        ipam.assign(&AssignRequest::new(format!("x{i}"), Family::V4))
            .await
            .unwrap();
    }
    match ipam.assign(&AssignRequest::new("y", Family::V4)).await {
        Err(IpamError::BlockLimit { limit: 1, .. }) => {}
        other => panic!("claimed past the limit: {other:?}"),
    }
}

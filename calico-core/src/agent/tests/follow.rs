//! An agent fed by a datastore follower (calico_core::datastore) over the in-memory store.

use super::*;
use crate::datastore::follow::Follower;
use crate::datastore::memory::MemoryStore;
use crate::datastore::ResourceWriter;

async fn step<S: crate::datastore::ResourceSource>(f: &mut Follower<S>, h: &AgentHandle) {
    tokio::time::timeout(Duration::from_secs(5), f.step())
        .await
        .expect("the follower waited 5 s for an event")
        .unwrap();
    h.flush().await;
}

#[tokio::test]
async fn nothing_is_programmed_while_the_store_is_out_of_reach_at_start() {
    let fib = fib_with_interfaces(&["cali-a"]);
    let agent = start(&fib);
    let h = agent.handle();
    let store = MemoryStore::new();
    store
        .create(&endpoint("a", "h1", "cali-a", "10.0.0.1/32"))
        .await
        .unwrap();
    store.set_available(false);
    let (mut f, status) = Follower::new(store.source(), h.clone());
    step(&mut f, &h).await;
    assert_eq!(fib.0.lock().unwrap().applies, 0);
    let why = status.borrow().not_ready_reason().unwrap();
    assert!(why.contains("waiting for the first snapshot"), "{why}");
    store.set_available(true);
    step(&mut f, &h).await;
    assert!(status.borrow().ready());
    assert_eq!(fib.0.lock().unwrap().routes.len(), 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_snapshot_after_compaction_is_diffed_not_flushed() {
    let fib = fib_with_interfaces(&["cali-a", "cali-b", "cali-c"]);
    let agent = start(&fib);
    let h = agent.handle();
    let store = MemoryStore::new();
    store
        .create(&endpoint("a", "h1", "cali-a", "10.0.0.1/32"))
        .await
        .unwrap();
    store
        .create(&endpoint("b", "h1", "cali-b", "10.0.0.2/32"))
        .await
        .unwrap();
    let (mut f, status) = Follower::new(store.source(), h.clone());
    step(&mut f, &h).await;
    assert_eq!(fib.0.lock().unwrap().routes.len(), 2);

    // While the follower is not reading: b goes, c comes, and history is compacted.
    let b = store
        .key_of(&endpoint("b", "h1", "cali-b", "10.0.0.2/32"))
        .unwrap();
    store.remove(&b).await.unwrap();
    store
        .create(&endpoint("c", "h1", "cali-c", "10.0.0.3/32"))
        .await
        .unwrap();
    store.compact(store.revision());
    step(&mut f, &h).await;

    let st = status.borrow().clone();
    assert_eq!((st.snapshots, st.revision), (2, store.revision()));
    let s = fib.0.lock().unwrap();
    assert_eq!(
        s.routes.keys().copied().collect::<Vec<_>>(),
        vec![net("10.0.0.1/32"), net("10.0.0.3/32")]
    );
    // Only b was withdrawn: a was never removed and re-added.
    assert_eq!(s.removed, vec![net("10.0.0.2/32")]);
    drop(s);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_bad_entry_is_refused_alone_and_listed_until_fixed() {
    let fib = fib_with_interfaces(&["cali-a"]);
    let agent = start(&fib);
    let h = agent.handle();
    let store = MemoryStore::new();
    let (mut f, status) = Follower::new(store.source(), h.clone());
    store.put_undecodable("WorkloadEndpoint/bad", "spec.ipNetworks[0]: not a network");
    store
        .create(&endpoint("a", "h1", "cali-a", "10.0.0.1/32"))
        .await
        .unwrap();
    step(&mut f, &h).await;
    {
        let st = status.borrow();
        assert!(st.ready());
        assert_eq!(st.refused.len(), 1);
        assert!(st.refused["WorkloadEndpoint/bad"].contains("spec.ipNetworks[0]"));
    }
    assert_eq!(fib.0.lock().unwrap().routes.len(), 1);
    store.remove("WorkloadEndpoint/bad").await.unwrap();
    step(&mut f, &h).await;
    assert!(status.borrow().refused.is_empty());
    assert_eq!(status.borrow().refusals_total, 1);
    agent.shutdown().await;
}

//! EtcdSource and EtcdWriter against a real etcd (each test its own member on loopback).
//!
//! Run with `CALICO_PRIVILEGED_TESTS=1` so a missing etcd fails instead of skipping.

use std::collections::BTreeMap;
use std::time::Duration;

use calico_core::datastore::{
    Changes, DatastoreError, ResourceSource, ResourceWriter, Snapshot, SourceEvent,
};
use calico_core::model::{Profile, Resource, Update};
use calico_etcd::testing::EtcdServer;
use calico_etcd::{EtcdConfig, EtcdSource, EtcdWriter};
use tokio::sync::mpsc;

/// No single wait in these tests may exceed this: a hang is a failure, not a stuck CI.
const BOUND: Duration = Duration::from_secs(20);
const ROOT: &str = "/calico/resources/v3/projectcalico.org/";

fn config(server: &EtcdServer) -> EtcdConfig {
    EtcdConfig {
        dial_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        ..EtcdConfig::new([server.endpoint()])
    }
}

fn profile(name: &str, seq: u64) -> Resource {
    let mut p = Profile {
        name: name.into(),
        ..Profile::default()
    };
    p.labels_to_apply.insert("seq".into(), seq.to_string());
    Resource::Profile(p)
}

/// `(name, seq)` of a profile written by [`profile`].
fn seq_of(r: &Resource) -> (String, u64) {
    let Resource::Profile(p) = r else {
        panic!("not a profile: {r:?}")
    };
    (p.name.clone(), p.labels_to_apply["seq"].parse().unwrap())
}

async fn raw(server: &EtcdServer) -> etcd_client::Client {
    etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap()
}

async fn next(source: &mut EtcdSource) -> SourceEvent {
    tokio::time::timeout(BOUND, source.next())
        .await
        .expect("the source answers within the bound")
        .expect("the source is not gone")
}

async fn snapshot(source: &mut EtcdSource) -> Snapshot {
    match next(source).await {
        SourceEvent::Snapshot(s) => s,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// Runs `source` in a task; its events arrive on the receiver.
fn follow(mut source: EtcdSource) -> mpsc::UnboundedReceiver<SourceEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = source.next().await {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    rx
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<SourceEvent>) -> SourceEvent {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("an event within the bound")
        .expect("the source task runs")
}

/// Takes events until every `(name, seq)` in `want` was upserted; returns every upsert seen
/// and whether an outage was announced. Snapshots after the first fail the test: these
/// tests expect a resumed watch.
async fn collect_until(
    rx: &mut mpsc::UnboundedReceiver<SourceEvent>,
    want: &[(String, u64)],
) -> (Vec<(String, u64)>, bool) {
    let mut seen = Vec::new();
    let mut unavailable = false;
    while !want.iter().all(|w| seen.contains(w)) {
        match recv(rx).await {
            SourceEvent::Changes(Changes { updates, .. }) => {
                for u in updates {
                    if let Update::Upsert(r) = u {
                        seen.push(seq_of(&r));
                    }
                }
            }
            SourceEvent::Unavailable { reason } => {
                assert!(reason.contains("127.0.0.1"), "names the endpoint: {reason}");
                unavailable = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (seen, unavailable)
}

fn assert_each_once(seen: &[(String, u64)], written: &[(String, u64)]) {
    let mut counts: BTreeMap<&(String, u64), usize> = BTreeMap::new();
    for s in seen {
        *counts.entry(s).or_default() += 1;
    }
    for w in written {
        assert_eq!(
            counts.get(w),
            Some(&1),
            "{w:?} must arrive exactly once: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_event_is_a_snapshot_at_the_revision_of_the_writes() {
    let Some(server) = EtcdServer::start_or_skip("snapshot") else {
        return;
    };
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    let mut revision = 0;
    for i in 0..5 {
        revision = writer.create(&profile(&format!("p{i}"), i)).await.unwrap();
    }
    // Pages of two: the listing spans three ranges, all at one revision.
    let mut source = EtcdSource::new(config(&server)).unwrap().with_page_size(2);
    let s = snapshot(&mut source).await;
    assert_eq!(s.revision, revision);
    let mut got: Vec<_> = s.resources.iter().map(seq_of).collect();
    got.sort();
    let want: Vec<_> = (0..5).map(|i| (format!("p{i}"), i)).collect();
    assert_eq!(got, want);
    assert!(s.refused.is_empty(), "{:?}", s.refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_etcd_is_announced_and_the_watch_resumes_without_loss_or_repeat() {
    let Some(mut server) = EtcdServer::start_or_skip("resume") else {
        return;
    };
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    writer.create(&profile("p0", 0)).await.unwrap();
    let mut source = EtcdSource::new(config(&server)).unwrap();
    assert_eq!(snapshot(&mut source).await.resources.len(), 1);
    let mut rx = follow(source);
    let mut written = Vec::new();
    for i in 1..=10u64 {
        let name = format!("p{}", i % 3);
        writer.upsert(&profile(&name, i)).await.unwrap();
        written.push((name, i));
    }
    server.kill(); // between two writes; some of them may not have reached the source yet
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().unwrap();
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    for i in 11..=20u64 {
        let name = format!("p{}", i % 3);
        writer.upsert(&profile(&name, i)).await.unwrap();
        written.push((name, i));
    }
    let (seen, unavailable) = collect_until(&mut rx, &written).await;
    assert!(unavailable, "the outage was announced");
    assert_each_once(&seen, &written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_history_brings_a_snapshot_equal_to_the_store() {
    let Some(server) = EtcdServer::start_or_skip("compaction") else {
        return;
    };
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    for i in 0..3 {
        writer.create(&profile(&format!("p{i}"), i)).await.unwrap();
    }
    let mut source = EtcdSource::new(config(&server)).unwrap();
    let first = snapshot(&mut source).await;
    // The follower stops reading; the store moves on and compacts past its revision.
    writer.upsert(&profile("p0", 10)).await.unwrap();
    writer
        .remove(&format!("{ROOT}profiles/p1"))
        .await
        .unwrap()
        .unwrap();
    let last = writer.create(&profile("p3", 11)).await.unwrap();
    let mut client = raw(&server).await;
    client.compact(last as i64, None).await.unwrap();
    let s = snapshot(&mut source).await;
    assert!(s.revision > first.revision);
    assert_eq!(s.revision, last);
    let mut got: Vec<_> = s.resources.iter().map(seq_of).collect();
    got.sort();
    let want = [("p0", 10), ("p2", 2), ("p3", 11)].map(|(n, s)| (n.to_string(), s));
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_etcd_is_unavailable_within_seconds_and_nothing_is_lost() {
    let Some(server) = EtcdServer::start_or_skip("sigstop") else {
        return;
    };
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    writer.create(&profile("p0", 0)).await.unwrap();
    let mut source = EtcdSource::new(config(&server)).unwrap();
    snapshot(&mut source).await;
    let mut rx = follow(source);
    writer.upsert(&profile("p0", 1)).await.unwrap();
    let (seen, _) = collect_until(&mut rx, &[("p0".into(), 1)]).await;
    assert_eq!(seen, [("p0".to_string(), 1)]);
    server.pause();
    let paused = std::time::Instant::now();
    // A probe every 1 s with 1 s to answer: the freeze is seen within about 2 s; 6 s leaves
    // room for a loaded machine, and is well short of what gRPC keep-alive alone takes
    // (etcd allows a ping only every 5 s: about 11 s here).
    let event = tokio::time::timeout(Duration::from_secs(6), rx.recv()).await;
    match event.expect("a frozen etcd is noticed within a few seconds") {
        Some(SourceEvent::Unavailable { reason }) => {
            assert!(reason.contains("127.0.0.1"), "{reason}");
            eprintln!(
                "sigstop: unavailable after {:?}: {reason}",
                paused.elapsed()
            );
        }
        other => panic!("{other:?}"),
    }
    server.resume();
    let written = [("p0".to_string(), 2), ("p1".to_string(), 3)];
    writer.upsert(&profile("p0", 2)).await.unwrap();
    writer.upsert(&profile("p1", 3)).await.unwrap();
    let (seen, _) = collect_until(&mut rx, &written).await;
    assert_each_once(&seen, &written);
    assert!(
        !seen.contains(&("p0".to_string(), 1)),
        "nothing twice: {seen:?}"
    );
}

const GOOD_NETWORK_POLICY: &str = r#"{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"web","namespace":"shop","uid":"3b1d4c1e-4f2a-4a7e-9d1e-0c8f2a6b9e11","creationTimestamp":"2025-06-01T10:00:00Z"},"spec":{"tier":"default","selector":"app == 'web'","types":["Ingress"]}}"#;

/// Stores a value that is not JSON, a NetworkPolicy under the GlobalNetworkPolicy plural,
/// a policy with a bad selector and a FelixConfiguration; returns the first three keys.
async fn put_bad_values(client: &mut etcd_client::Client) -> [String; 3] {
    let not_json = format!("{ROOT}profiles/broken");
    let wrong_kind = format!("{ROOT}globalnetworkpolicies/web");
    let bad_selector = format!("{ROOT}networkpolicies/shop/web");
    let gnp_shaped = GOOD_NETWORK_POLICY.replace(r#""namespace":"shop","#, "");
    let bad = GOOD_NETWORK_POLICY.replace("app == 'web'", "app == ");
    let felix = r#"{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"logSeverityScreen":"Info"}}"#;
    let felix_key = format!("{ROOT}felixconfigurations/default");
    for (key, value) in [
        (&not_json, "{not json".to_string()),
        (&wrong_kind, gnp_shaped),
        (&bad_selector, bad),
        (&felix_key, felix.to_string()),
    ] {
        client.put(key.as_str(), value, None).await.unwrap();
    }
    [not_json, wrong_kind, bad_selector]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_refused_alone_with_key_and_field_and_a_fix_clears_them() {
    let Some(server) = EtcdServer::start_or_skip("bad-input") else {
        return;
    };
    let mut client = raw(&server).await;
    let [not_json, wrong_kind, bad_selector] = put_bad_values(&mut client).await;
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    writer.create(&profile("good", 1)).await.unwrap();

    let mut source = EtcdSource::new(config(&server)).unwrap();
    let s = snapshot(&mut source).await;
    assert_eq!(
        s.resources.iter().map(seq_of).collect::<Vec<_>>(),
        [("good".to_string(), 1)]
    );
    let refused: BTreeMap<_, _> = s
        .refused
        .iter()
        .map(|r| (r.key.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused[not_json.as_str()].starts_with("field (value): not JSON"),
        "{refused:?}"
    );
    assert!(
        refused[wrong_kind.as_str()].starts_with("field kind:"),
        "{refused:?}"
    );
    assert!(
        refused[bad_selector.as_str()].starts_with("field spec.selector"),
        "{refused:?}"
    );
    assert_eq!(
        source.unsupported().get("FelixConfiguration"),
        Some(&1),
        "ignored, counted, not refused"
    );

    client
        .put(bad_selector.as_str(), GOOD_NETWORK_POLICY, None)
        .await
        .unwrap();
    let SourceEvent::Changes(c) = next(&mut source).await else {
        panic!("expected changes")
    };
    assert_eq!(c.cleared, vec![bad_selector]);
    assert!(
        matches!(&c.updates[..], [Update::Upsert(Resource::Policy(p))] if p.name == "web"),
        "{c:?}"
    );

    // While following: a bad write over a good entry is refused and its last good value
    // stays (no update); deleting the entry removes the resource and clears the refusal.
    let good = format!("{ROOT}profiles/good");
    client.put(good.as_str(), "[]", None).await.unwrap();
    let SourceEvent::Changes(c) = next(&mut source).await else {
        panic!("expected changes")
    };
    assert!(c.updates.is_empty(), "{c:?}");
    assert!(
        matches!(&c.refused[..], [r] if r.key == good && r.reason.contains("not a JSON object")),
        "{c:?}"
    );
    client.delete(good.as_str(), None).await.unwrap();
    let SourceEvent::Changes(c) = next(&mut source).await else {
        panic!("expected changes")
    };
    assert_eq!(c.cleared, vec![good]);
    assert!(matches!(&c.updates[..], [Update::Remove(_)]), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_compare_revisions_in_one_transaction() {
    let Some(server) = EtcdServer::start_or_skip("writer") else {
        return;
    };
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    let key = format!("{ROOT}profiles/p");
    let r1 = writer.create(&profile("p", 1)).await.unwrap();
    assert_eq!(
        writer.create(&profile("p", 2)).await,
        Err(DatastoreError::AlreadyExists { key: key.clone() })
    );
    let stored = writer.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (stored.revision, seq_of(&stored.resource)),
        (r1, ("p".into(), 1))
    );
    let r2 = writer.update(&profile("p", 2), r1).await.unwrap();
    assert!(r2 > r1);
    assert_eq!(
        writer.update(&profile("p", 3), r1).await,
        Err(DatastoreError::Conflict {
            key: key.clone(),
            expected: r1,
            actual: Some(r2)
        })
    );
    assert!(matches!(
        writer.update(&profile("absent", 1), r1).await,
        Err(DatastoreError::NotFound { .. })
    ));
    assert_eq!(
        writer.delete(&key, Some(r1)).await,
        Err(DatastoreError::Conflict {
            key: key.clone(),
            expected: r1,
            actual: Some(r2)
        })
    );
    let r3 = writer.delete(&key, Some(r2)).await.unwrap();
    assert!(r3 > r2);
    assert_eq!(
        writer.delete(&key, None).await,
        Err(DatastoreError::NotFound { key: key.clone() })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_values_are_calicos_and_racing_upserts_converge() {
    let Some(server) = EtcdServer::start_or_skip("writer-values") else {
        return;
    };
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    // The stored value is libcalico-go's: uid and creationTimestamp, no resourceVersion; an
    // update keeps the uid.
    let mut client = raw(&server).await;
    writer.create(&profile("q", 1)).await.unwrap();
    let read = |v: &[u8]| serde_json::from_slice::<serde_json::Value>(v).unwrap();
    let qkey = format!("{ROOT}profiles/q");
    let before = read(client.get(qkey.as_str(), None).await.unwrap().kvs()[0].value());
    assert!(
        before["metadata"]["creationTimestamp"].is_string(),
        "{before}"
    );
    assert!(
        before["metadata"].get("resourceVersion").is_none(),
        "{before}"
    );
    writer.upsert(&profile("q", 2)).await.unwrap();
    let after = read(client.get(qkey.as_str(), None).await.unwrap().kvs()[0].value());
    assert_eq!(before["metadata"]["uid"], after["metadata"]["uid"]);

    // Three writers racing upserts on one key all finish, and the store holds one of their
    // last values.
    let other = EtcdWriter::connect(&config(&server)).await.unwrap();
    let third = EtcdWriter::connect(&config(&server)).await.unwrap();
    let race = |w: EtcdWriter, base: u64| async move {
        for i in 0..15 {
            w.upsert(&profile("race", base + i)).await.unwrap();
        }
    };
    tokio::join!(
        race(writer.clone(), 100),
        race(other, 200),
        race(third, 300)
    );
    let last = writer
        .get(&format!("{ROOT}profiles/race"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(seq_of(&last.resource).1, 114 | 214 | 314),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_a_listing_is_read_at_one_revision() {
    let Some(server) = EtcdServer::start_or_skip("pages") else {
        return;
    };
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    let mut at = 0;
    for i in 0..5 {
        at = writer.create(&profile(&format!("p{i}"), i)).await.unwrap();
    }
    // The store moves on after the revision the listing is pinned to.
    for i in 0..5 {
        writer
            .upsert(&profile(&format!("p{i}"), 10 + i))
            .await
            .unwrap();
    }
    writer.create(&profile("p5", 15)).await.unwrap();
    let conn = calico_etcd::Connection::connect(&config(&server))
        .await
        .unwrap();
    let (revision, entries) = calico_etcd::source::list_prefix(&conn, ROOT, at as i64, 2)
        .await
        .unwrap();
    assert_eq!(revision, at as i64);
    let keys: Vec<_> = entries
        .iter()
        .map(|(k, _)| k.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(keys, ["p0", "p1", "p2", "p3", "p4"]);
    for (key, value) in &entries {
        let v: serde_json::Value = serde_json::from_slice(value).unwrap();
        let seq: u64 = v["spec"]["labelsToApply"]["seq"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(seq < 10, "{key} read as it was at revision {at}: {v}");
    }
}

/// Makes a CA and a server and a client certificate for 127.0.0.1 with openssl; `None`
/// (the test skips) without openssl.
fn certificates(dir: &std::path::Path) -> Option<()> {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=calico-test-ca",
    ])?;
    for (name, usage) in [
        ("server", "serverAuth,clientAuth"),
        ("client", "clientAuth"),
    ] {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ])?;
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ])?;
    }
    Some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_reads_and_writes() {
    if !EtcdServer::usable_or_skip("tls") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if certificates(dir.path()).is_none() {
        eprintln!("tls: SKIPPED: no openssl");
        return;
    }
    let p = |f: &str| dir.path().join(f);
    let server = EtcdServer::start_tls(&p("server.pem"), &p("server.key"), &p("ca.pem")).unwrap();
    assert!(server.endpoint().starts_with("https://"));
    let config = EtcdConfig {
        ca: Some(p("ca.pem")),
        cert: Some(p("client.pem")),
        key: Some(p("client.key")),
        ..config(&server)
    };
    let writer = EtcdWriter::connect(&config).await.unwrap();
    let revision = writer.create(&profile("secure", 1)).await.unwrap();
    let mut source = EtcdSource::new(config.clone()).unwrap();
    let s = snapshot(&mut source).await;
    assert_eq!((s.revision, s.resources.len()), (revision, 1));

    // Without a client certificate etcd refuses the connection: an error, not a hang.
    let anonymous = EtcdConfig {
        cert: None,
        key: None,
        ..config
    };
    let writer = EtcdWriter::connect(&anonymous).await;
    let outcome = match writer {
        Ok(w) => w.create(&profile("anonymous", 1)).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(
        matches!(outcome, Err(DatastoreError::Unavailable { .. })),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_affinities_are_block_affinities_and_other_hosts_status_writes_are_not_watched() {
    let test = "ipam_affinities_are_block_affinities_and_other_hosts_status_writes_are_not_watched";
    let Some(server) = EtcdServer::start_or_skip(test) else {
        return;
    };
    let mut c = raw(&server).await;
    let key = "/calico/ipam/v2/host/node-1/ipv4/block/10.65.1.0-26";
    c.put(key, r#"{"state":"confirmed","deleted":false}"#, None)
        .await
        .unwrap();
    let mut source = EtcdSource::new(config(&server)).unwrap().with_decoder(
        calico_etcd::ipam::HOST_AFFINITY_PREFIX,
        calico_etcd::ipam::affinity_decoder(),
    );
    let s = snapshot(&mut source).await;
    let Resource::BlockAffinity(a) = &s.resources[0] else {
        panic!("{s:?}")
    };
    assert_eq!(
        (a.cidr.to_string(), a.node.as_str()),
        ("10.65.1.0/26".into(), "node-1")
    );

    // A status report and an address assignment sort outside the watched range: the next
    // event is the affinity's release, which removes it.
    c.put("/calico/felix/v2/no-region/host/node-2/status", "{}", None)
        .await
        .unwrap();
    c.put(
        "/calico/ipam/v2/assignment/ipv4/block/10.65.1.0-26",
        "{}",
        None,
    )
    .await
    .unwrap();
    c.put(key, r#"{"state":"pendingDeletion","deleted":false}"#, None)
        .await
        .unwrap();
    let SourceEvent::Changes(ch) = next(&mut source).await else {
        panic!("changes expected")
    };
    assert_eq!(ch.updates.len(), 1, "{ch:?}");
    assert!(matches!(&ch.updates[0], Update::Remove(_)), "{ch:?}");
}

/// A Tier and a policy of that tier (named `<tier>.<name>`, the form Calico up to 3.31
/// requires) written by calico-rs are stored under Calico's keys and read back unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_and_tiered_policies_round_trip_through_etcd() {
    use calico_core::model::{parse_resources, ResourceKey};
    let Some(server) = EtcdServer::start_or_skip("tiers") else {
        return;
    };
    let writer = EtcdWriter::connect(&config(&server)).await.unwrap();
    let written = parse_resources(
        "kind: Tier\nname: security\norder: 100\ndefaultAction: Pass\n---\n\
         kind: Policy\nname: security.block\ntier: security\nselector: all()\n\
         ingress: [{action: Pass}]\n",
    )
    .unwrap();
    for r in &written {
        writer.create(r).await.unwrap();
    }
    let mut client = raw(&server).await;
    for key in ["tiers/security", "globalnetworkpolicies/security.block"] {
        let got = client.get(format!("{ROOT}{key}"), None).await.unwrap();
        assert_eq!(got.kvs().len(), 1, "{key}");
    }
    let mut source = EtcdSource::new(config(&server)).unwrap();
    let s = snapshot(&mut source).await;
    assert!(s.refused.is_empty(), "{:?}", s.refused);
    let mut got = s.resources.clone();
    got.sort_by_key(Resource::key);
    let mut want = written.clone();
    want.sort_by_key(Resource::key);
    assert_eq!(got, want);
    assert!(matches!(want[1].key(), ResourceKey::Tier(_)));
}

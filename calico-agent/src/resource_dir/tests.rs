//! The directory's safety rules, on the pure state (no files, no clock).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use calico_core::model::Update;

use super::*;

fn endpoints(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| {
            format!(
                "kind: WorkloadEndpoint\norchestrator: k8s\nworkload: default.w{i}\n\
                 endpoint: eth0\nnode: h1\ninterfaceName: cali{i}\nipNetworks: [10.0.0.{i}/32]\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn files(list: &[(&str, &str)]) -> BTreeMap<String, Observed> {
    list.iter()
        .map(|(n, t)| (n.to_string(), Observed::Text(t.to_string())))
        .collect()
}

const SETTLE: Duration = Duration::from_millis(500);

/// A state with `list` applied (read twice a settle apart, committed).
fn applied(list: &[(&str, &str)]) -> (DirState, Instant) {
    let mut s = DirState::new(Settings::default());
    let t0 = Instant::now();
    let first = s.observe(t0, files(list), false);
    assert!(first.updates.is_empty(), "nothing counts before it settles");
    let t1 = t0 + SETTLE;
    let plan = s.observe(t1, files(list), false);
    assert!(plan.wake_at.is_none());
    s.commit(plan);
    (s, t1)
}

fn removals(plan: &Plan) -> usize {
    plan.updates
        .iter()
        .filter(|u| matches!(u, Update::Remove(_)))
        .count()
}

#[test]
fn a_file_rewritten_in_place_removes_nothing_while_it_is_written() {
    let full = endpoints(0, 30);
    let (mut s, t) = applied(&[("a.yaml", &full)]);
    // `cat > a.yaml`: truncated, then a first part written, then the rest.
    let partial = endpoints(0, 3);
    for (dt, text) in [(10, ""), (20, partial.as_str()), (40, full.as_str())] {
        let plan = s.observe(
            t + Duration::from_millis(dt),
            files(&[("a.yaml", text)]),
            false,
        );
        assert!(plan.updates.is_empty(), "at +{dt} ms: {:?}", plan.updates);
        s.commit(plan);
    }
    assert_eq!(s.applied().len(), 30);
    // Even an empty file that stays so is never read as "no resources".
    let plan = s.observe(t + Duration::from_secs(5), files(&[("a.yaml", "")]), false);
    assert!(plan.updates.is_empty());
    let plan = s.observe(t + Duration::from_secs(6), files(&[("a.yaml", "")]), false);
    assert!(plan.updates.is_empty());
    assert_eq!(s.files()[0].state, "rejected");
    assert!(plan
        .rejected
        .iter()
        .any(|(f, e)| f == "a.yaml" && e.contains("empty")));
}

#[test]
fn an_edit_counts_once_it_has_settled() {
    let (mut s, t) = applied(&[("a.yaml", &endpoints(0, 2))]);
    let edited = endpoints(0, 3);
    let plan = s.observe(
        t + Duration::from_millis(1),
        files(&[("a.yaml", &edited)]),
        false,
    );
    assert!(plan.updates.is_empty());
    assert_eq!(plan.wake_at, Some(t + Duration::from_millis(1) + SETTLE));
    let plan = s.observe(
        t + Duration::from_secs(1),
        files(&[("a.yaml", &edited)]),
        false,
    );
    assert_eq!(plan.updates.len(), 1);
    s.commit(plan);
    assert_eq!(s.applied().len(), 3);
}

#[test]
fn an_emptied_directory_holds_the_removals_until_confirmed() {
    let (mut s, t) = applied(&[("a.yaml", &endpoints(0, 2)), ("b.yaml", &endpoints(2, 4))]);
    let mut now = t;
    for _ in 0..3 {
        now += SETTLE;
        let plan = s.observe(now, BTreeMap::new(), false);
        assert_eq!(removals(&plan), 0);
        s.commit(plan);
    }
    let plan = s.observe(now, BTreeMap::new(), false);
    assert_eq!(
        plan.held,
        Some(HeldDeletion {
            resources: 4,
            of: 4
        })
    );
    s.commit(plan);
    assert_eq!(s.applied().len(), 4);
    // Confirmed: removed.
    let plan = s.observe(now, BTreeMap::new(), true);
    assert_eq!(removals(&plan), 4);
    assert!(plan.held.is_none());
    s.commit(plan);
    assert!(s.applied().is_empty());
}

#[test]
fn removing_most_resources_is_held_but_a_small_removal_is_not() {
    let (mut s, t) = applied(&[("a.yaml", &endpoints(0, 5)), ("b.yaml", &endpoints(5, 30))]);
    // a.yaml deleted: 5 of 30, under the fraction: applied after the settle time.
    let only_b = [("b.yaml", endpoints(5, 30))];
    let only_b: Vec<(&str, &str)> = only_b.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let plan = s.observe(t + Duration::from_millis(1), files(&only_b), false);
    assert_eq!(
        removals(&plan),
        0,
        "a removed file counts after the settle time"
    );
    let plan = s.observe(t + Duration::from_secs(1), files(&only_b), false);
    assert_eq!(removals(&plan), 5);
    s.commit(plan);
    // b.yaml cut to 2 of its 25: 23 removals, over half: held; the edit's upsert still goes.
    let cut = format!("{}---\n{}", endpoints(5, 7), endpoints(40, 41));
    let plan = s.observe(
        t + Duration::from_secs(2),
        files(&[("b.yaml", &cut)]),
        false,
    );
    assert!(plan.updates.is_empty());
    let plan = s.observe(
        t + Duration::from_secs(3),
        files(&[("b.yaml", &cut)]),
        false,
    );
    assert_eq!(
        plan.held,
        Some(HeldDeletion {
            resources: 23,
            of: 25
        })
    );
    assert_eq!(plan.updates.len(), 1, "the new endpoint is applied");
    s.commit(plan);
    assert_eq!(s.applied().len(), 26);
}

#[test]
fn a_bad_file_keeps_its_last_good_version_and_blocks_no_other_file() {
    let (mut s, t) = applied(&[("a.yaml", &endpoints(0, 2)), ("b.yaml", &endpoints(2, 4))]);
    let bad = "kind: WorkloadEndpoint\nnode: [\n";
    let b2 = endpoints(2, 5);
    let now = [("a.yaml", bad), ("b.yaml", b2.as_str())];
    s.observe(t + Duration::from_millis(1), files(&now), false);
    let plan = s.observe(t + Duration::from_secs(1), files(&now), false);
    assert_eq!(
        plan.updates.len(),
        1,
        "b.yaml's new endpoint: {:?}",
        plan.updates
    );
    assert_eq!(removals(&plan), 0, "a.yaml's endpoints stay");
    assert_eq!(plan.rejected.len(), 1);
    assert!(plan.rejected[0].1.contains("a.yaml"), "{:?}", plan.rejected);
    s.commit(plan);
    assert_eq!(s.applied().len(), 5);
    let status = s.files();
    assert_eq!((status[0].state, status[0].resources), ("rejected", 2));
    assert_eq!(status[1].state, "ok");
    // Reported once, not at every read.
    let plan = s.observe(t + Duration::from_secs(2), files(&now), false);
    assert!(plan.rejected.is_empty() && plan.updates.is_empty());
}

#[test]
fn a_resource_defined_in_two_files_is_refused_in_the_file_that_added_it() {
    let (mut s, t) = applied(&[("b.yaml", &endpoints(0, 2))]);
    // a.yaml (earlier by name) now defines w1 too: a.yaml is refused, b.yaml keeps it.
    let a = endpoints(1, 3);
    let both = [("a.yaml", a.as_str()), ("b.yaml", &endpoints(0, 2))];
    let both: Vec<(&str, String)> = both.iter().map(|(n, t)| (*n, t.to_string())).collect();
    let both: Vec<(&str, &str)> = both.iter().map(|(n, t)| (*n, t.as_str())).collect();
    s.observe(t + Duration::from_millis(1), files(&both), false);
    let plan = s.observe(t + Duration::from_secs(1), files(&both), false);
    assert!(plan.updates.is_empty(), "{:?}", plan.updates);
    assert!(
        plan.rejected[0].1.contains("already defined in b.yaml"),
        "{:?}",
        plan.rejected
    );
    s.commit(plan);
    // b.yaml lets go of w1: a.yaml takes force without being edited.
    let b = endpoints(0, 1);
    let now = [("a.yaml", a.as_str()), ("b.yaml", b.as_str())];
    s.observe(t + Duration::from_secs(2), files(&now), false);
    let plan = s.observe(t + Duration::from_secs(3), files(&now), false);
    assert!(plan.rejected.is_empty());
    s.commit(plan);
    assert_eq!(s.applied().len(), 3);
    assert!(s.files().iter().all(|f| f.state == "ok"), "{:?}", s.files());
}

#[test]
fn an_edit_that_keeps_size_is_seen() {
    let a = endpoints(0, 2);
    let (mut s, t) = applied(&[("a.yaml", &a)]);
    let same_size = a.replace("cali1", "calj1");
    assert_eq!(same_size.len(), a.len());
    s.observe(
        t + Duration::from_millis(1),
        files(&[("a.yaml", &same_size)]),
        false,
    );
    let plan = s.observe(
        t + Duration::from_secs(1),
        files(&[("a.yaml", &same_size)]),
        false,
    );
    assert_eq!(plan.updates.len(), 1);
}

#[test]
fn an_unreadable_file_keeps_its_last_good_version() {
    let (mut s, t) = applied(&[("a.yaml", &endpoints(0, 2))]);
    let mut now = BTreeMap::new();
    now.insert(
        "a.yaml".to_string(),
        Observed::Unreadable("a.yaml: not a regular file (a FIFO)".into()),
    );
    let plan = s.observe(t + Duration::from_secs(1), now, false);
    assert!(plan.updates.is_empty());
    assert_eq!(plan.rejected.len(), 1);
}

#[test]
fn errors_are_clipped() {
    let long = "x".repeat(10_000);
    let c = clip(&long, 100);
    assert!(c.len() < 150 && c.ends_with("(10000 bytes in all)"), "{c}");
    assert_eq!(clip("short", 100), "short");
}

#[test]
fn files_untouched_for_the_settle_time_count_at_first_sight_only() {
    let mut s = DirState::new(Settings::default());
    let t = Instant::now();
    let quiet = |text: &str| {
        let mut m = BTreeMap::new();
        m.insert("a.yaml".to_string(), Observed::Quiet(text.to_string()));
        m
    };
    let plan = s.observe(t, quiet(&endpoints(0, 2)), false);
    assert_eq!(
        plan.updates.len(),
        2,
        "an agent starting on a quiet directory waits for nothing"
    );
    s.commit(plan);
    // A later change (even with an old mtime, as `cp -p` leaves) needs two reads.
    let plan = s.observe(t + Duration::from_millis(1), quiet(&endpoints(0, 3)), false);
    assert!(plan.updates.is_empty());
}

use super::*;

const KEY: &str = "/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-30";

/// A block as an older Calico wrote it: Go's nil slices and maps as `null`, no sequence
/// numbers, a field this crate does not know.
const CALICO_BLOCK: &str = r#"{"cidr":"10.0.0.0/30","affinity":"host:node1",
  "strictAffinity":false,"allocations":[0,null,null,null],"unallocated":[1,2,3],
  "attributes":[{"handle_id":"ipip-tunnel-addr-node1","secondary":{"node":"node1","type":"ipipTunnelAddress"}}],
  "sequenceNumberForAllocation":null,"deleted":false}"#;

fn attrs(node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("node".to_string(), node.to_string())])
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_block_calico_wrote_is_read_and_written_back_with_what_it_does_not_know() {
    let b = AllocationBlock::parse(KEY, CALICO_BLOCK.as_bytes()).unwrap();
    assert_eq!(b.host(), Some("node1"));
    assert_eq!(b.free(), 3);
    assert_eq!(
        b.allocated().collect::<Vec<_>>(),
        vec![(ip("10.0.0.0"), Some("ipip-tunnel-addr-node1"))]
    );
    let again: Value = serde_json::from_str(&b.to_json()).unwrap();
    assert_eq!(again["strictAffinity"], Value::Bool(false));
    assert_eq!(again["affinity"], "host:node1");
    assert_eq!(
        again["allocations"],
        serde_json::json!([0, null, null, null])
    );
    assert_eq!(
        again["attributes"][0]["secondary"]["type"],
        "ipipTunnelAddress"
    );
    assert_eq!(
        AllocationBlock::parse(KEY, b.to_json().as_bytes()).unwrap(),
        b
    );
}

#[test]
fn assignment_takes_the_longest_free_address_and_release_queues_it_last() {
    let mut b = AllocationBlock::new("10.0.0.0/30".parse().unwrap(), "h");
    assert_eq!(b.affinity.as_deref(), Some("host:h"));
    let seq = b.sequence_number;
    assert_eq!(b.assign("a", &attrs("h")), Some(ip("10.0.0.0")));
    assert_eq!(b.assign("b", &attrs("h")), Some(ip("10.0.0.1")));
    assert_eq!(b.sequence_number_for_allocation["1"], seq);
    assert_eq!(b.release(ip("10.0.0.0")), Some(Some("a".to_string())));
    assert_eq!(b.release(ip("10.0.0.0")), None, "released twice");
    assert_eq!(b.release(ip("10.0.1.0")), None, "outside the block");
    // "b" is now attribute 0: the unused one was dropped and the index renumbered.
    assert_eq!(b.attributes.len(), 1);
    assert_eq!(b.allocations, vec![None, Some(0), None, None]);
    assert_eq!(b.unallocated, vec![2, 3, 0]);
    assert_eq!(b.assign("c", &attrs("h")), Some(ip("10.0.0.2")));
    assert_eq!(b.assign("d", &attrs("h")), Some(ip("10.0.0.3")));
    assert_eq!(b.assign("e", &attrs("h")), Some(ip("10.0.0.0")));
    assert_eq!(b.assign("f", &attrs("h")), None, "full");
    b.check(KEY).unwrap();
}

#[test]
fn release_by_handle_frees_every_address_of_the_handle_and_only_those() {
    let mut b = AllocationBlock::new("10.0.0.0/30".parse().unwrap(), "h");
    b.assign("a", &attrs("h"));
    b.assign("b", &attrs("h"));
    b.assign("a", &attrs("h"));
    assert_eq!(b.attributes.len(), 2, "identical attributes are shared");
    assert_eq!(b.release_handle("a"), vec![ip("10.0.0.0"), ip("10.0.0.2")]);
    assert_eq!(b.release_handle("a"), Vec::<IpAddr>::new());
    assert_eq!(
        b.allocated().collect::<Vec<_>>(),
        vec![(ip("10.0.0.1"), Some("b"))]
    );
    assert_eq!(b.release_handle("b").len(), 1);
    assert!(b.is_empty() && b.attributes.is_empty() && b.free() == 4);
}

#[test]
fn allocations_a_newer_calico_released_are_freed_on_the_next_write() {
    let json = CALICO_BLOCK.replace(
        r#""handle_id":"ipip-tunnel-addr-node1","#,
        r#""releasedAt":"2026-01-01T00:00:00Z","#,
    );
    let mut b = AllocationBlock::parse(KEY, json.as_bytes()).unwrap();
    assert_eq!(b.release(ip("10.0.0.0")), None, "already released");
    assert!(b.collect_released());
    assert!(b.is_empty());
    assert_eq!(b.unallocated, vec![1, 2, 3, 0]);
    assert!(!b.collect_released());
}

#[test]
fn a_bad_stored_block_is_refused_naming_the_key_and_field() {
    let cases = [
        ("not json", "not an AllocationBlock"),
        (r#"{"cidr":"10.0.0.0/30"}"#, "field allocations"),
        (
            &CALICO_BLOCK.replace("10.0.0.0/30", "10.0.0.4/30"),
            "field cidr",
        ),
        (
            &CALICO_BLOCK.replace("[0,null,null,null]", "[0,null,null]"),
            "field allocations",
        ),
        (
            &CALICO_BLOCK.replace("[0,null,null,null]", "[0,3,null,null]"),
            "field allocations[1]",
        ),
        (
            &CALICO_BLOCK.replace("[1,2,3]", "[1,2,2]"),
            "field unallocated",
        ),
        (
            &CALICO_BLOCK.replace("[1,2,3]", "[0,1]"),
            "field unallocated",
        ),
        (
            &CALICO_BLOCK.replace("[1,2,3]", "[1,9]"),
            "field unallocated",
        ),
    ];
    for (value, field) in cases {
        let e = AllocationBlock::parse(KEY, value.as_bytes()).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, IpamError::BadValue { .. }) && text.contains(KEY) && text.contains(field),
            "{value}: {text}"
        );
    }
}

#[test]
fn ipv6_blocks_count_and_place_their_addresses() {
    let mut b = AllocationBlock::new("fd00::40/122".parse().unwrap(), "h");
    assert_eq!(b.free(), 64);
    assert_eq!(b.assign("a", &attrs("h")), Some(ip("fd00::40")));
    assert_eq!(b.ordinal(ip("fd00::7f")), Some(63));
    assert_eq!(b.ordinal(ip("fd00::80")), None);
    assert_eq!(b.ordinal(ip("10.0.0.1")), None);
    b.check("/calico/ipam/v2/assignment/ipv6/block/fd00::40-122")
        .unwrap();
}

#[test]
fn claim_times_are_rfc3339_in_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_825_599), "2000-02-29T11:59:59Z");
    assert_eq!(rfc3339(1_796_325_533), "2026-12-03T19:18:53Z");
    assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
}

//! The agent's table and nft(8) get along (issue 15): a table of the agent's name that the
//! agent did not create is never touched, and the agent's own table lists with readable keys
//! and loads back with `nft -f` (so `nft list ruleset > /etc/nftables.conf` is safe).

use std::collections::BTreeSet;

use calico_core::arbitrary;
use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::{Ruleset, Set, SetElement, SetKey, Verdict, VerdictMap};
use calico_core::dataplane::AclBackend;
use calico_linux::acl::{LinuxAcl, TABLE_MARK};
use calico_netns::fixtures::{privileged, Netns};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

/// A compiled ruleset (verdict maps, port sets, address sets) plus a named set of every key
/// kind and a hand-made interface map, all with elements.
fn every_kind_of_set() -> Ruleset {
    let mut runner = TestRunner::deterministic();
    let strategy = arbitrary::model();
    let mut ruleset = (0..8)
        .map(|_| {
            let model = strategy.new_tree(&mut runner).unwrap().current();
            // Floating IPs on: the NAT chains and statements load back too.
            let config = CompileConfig {
                floating_ips: true,
                ..CompileConfig::new("h1")
            };
            compile(&config, &model)
        })
        .max_by_key(|r| r.chains.values().map(|c| c.rules.len()).sum::<usize>() + r.sets.len())
        .unwrap();
    assert!(ruleset
        .chains
        .contains_key(calico_core::compile::FIP_DNAT_CHAIN));
    let el = |s: &str| -> SetElement {
        match s.parse() {
            Ok(a) => SetElement::Addr(a),
            Err(_) => SetElement::Net(s.parse().unwrap()),
        }
    };
    let sets: [(&str, SetKey, Vec<SetElement>); 6] = [
        (
            "t-a4",
            SetKey::Ipv4Addr,
            vec![el("10.0.0.1"), el("10.0.0.2")],
        ),
        (
            "t-n4",
            SetKey::Ipv4Net,
            vec![el("10.1.0.0/16"), el("192.168.7.0/24"), el("10.3.0.1/32")],
        ),
        ("t-a6", SetKey::Ipv6Addr, vec![el("fd00::1"), el("fd00::2")]),
        (
            "t-n6",
            SetKey::Ipv6Net,
            vec![el("fd00:1::/64"), el("fd00:2::/48")],
        ),
        (
            "t-c4",
            SetKey::Ipv4AddrProtoPort,
            vec![
                SetElement::AddrProtoPort("10.0.0.1".parse().unwrap(), 6, 80),
                SetElement::AddrProtoPort("10.0.0.2".parse().unwrap(), 17, 53),
            ],
        ),
        (
            "t-c6",
            SetKey::Ipv6AddrProtoPort,
            vec![SetElement::AddrProtoPort(
                "fd00::1".parse().unwrap(),
                6,
                443,
            )],
        ),
    ];
    for (name, key, elements) in sets {
        let elements: BTreeSet<SetElement> = elements.into_iter().collect();
        ruleset.sets.insert(name.into(), Set { key, elements });
    }
    let target = ruleset.chains.keys().next().unwrap().clone();
    let mut map = VerdictMap::default();
    map.elements
        .insert("cali0123456789a".into(), Verdict::Jump(target.clone()));
    map.elements.insert("eth0".into(), Verdict::Goto(target));
    map.elements.insert("lo".into(), Verdict::Accept);
    ruleset.maps.insert("t-map".into(), map);
    ruleset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_table_of_the_agents_name_is_refused_and_left_alone() {
    if !privileged("a_foreign_table_of_the_agents_name_is_refused_and_left_alone") {
        return;
    }
    let ns = Netns::create("acl-foreign").unwrap();
    let script = std::env::temp_dir().join(format!("calico-foreign-{}.nft", std::process::id()));
    std::fs::write(
        &script,
        "table inet calico {\n\
           set theirs { type ipv4_addr; elements = { 192.0.2.1 } }\n\
           chain input { type filter hook input priority 0; policy accept; ip saddr @theirs counter accept; }\n\
           chain helper { counter; }\n\
         }\n",
    )
    .unwrap();
    let loaded = ns.output(&["nft", "-f", script.to_str().unwrap()]).unwrap();
    let _ = std::fs::remove_file(&script);
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let before = ns.run(&["nft", "list", "table", "inet", "calico"]).unwrap();

    let want = every_kind_of_set();
    let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
    let err = acl
        .apply(&diff(&Ruleset::default(), &want))
        .await
        .expect_err("a table without the mark must be refused")
        .to_string();
    assert!(err.contains("table inet calico"), "{err}");
    assert!(err.contains("--nft-table"), "{err}");
    assert!(err.contains(TABLE_MARK), "{err}");
    // Neither reading it nor uninstalling touches it.
    let dump = acl.dump().await.expect_err("not ours to read").to_string();
    assert!(dump.contains("--nft-table"), "{dump}");
    acl.delete_table_blocking().expect_err("not ours to delete");
    // An apply with an empty-looking change set also must not slip through.
    assert!(acl.apply(&diff(&Ruleset::default(), &want)).await.is_err());
    let after = ns.run(&["nft", "list", "table", "inet", "calico"]).unwrap();
    assert_eq!(before, after, "the foreign table changed");

    // The agent's own table, under another name, works next to it.
    let other = LinuxAcl::in_netns(ns.path().as_ref(), "calico2").unwrap();
    other
        .apply(&diff(&Ruleset::default(), &want))
        .await
        .unwrap();
    assert_eq!(other.dump().await.unwrap(), want);
    assert_eq!(
        ns.run(&["nft", "list", "table", "inet", "calico"]).unwrap(),
        before
    );

    // Once the operator removes the foreign table, the same backend takes the name.
    ns.run(&["nft", "delete", "table", "inet", "calico"])
        .unwrap();
    acl.apply(&diff(&Ruleset::default(), &want)).await.unwrap();
    assert_eq!(acl.dump().await.unwrap(), want);
    let listing = ns.run(&["nft", "list", "table", "inet", "calico"]).unwrap();
    assert!(listing.contains(TABLE_MARK), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_is_readable_and_loads_back_with_nft() {
    if !privileged("the_listing_is_readable_and_loads_back_with_nft") {
        return;
    }
    let want = every_kind_of_set();
    let ns = Netns::create("acl-list").unwrap();
    let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
    acl.apply(&diff(&Ruleset::default(), &want)).await.unwrap();
    let listing = ns.run(&["nft", "list", "table", "inet", "calico"]).unwrap();
    assert!(!listing.contains("\"\""), "empty keys in:\n{listing}");
    for needle in [
        "\"cali0123456789a\" : jump",
        "\"lo\" : accept",
        "10.1.0.0/16",
        "fd00:2::/48",
        "10.0.0.1 . tcp . 80",
        "fd00::1 . tcp . 443",
        TABLE_MARK,
    ] {
        assert!(listing.contains(needle), "{needle:?} not in:\n{listing}");
    }

    // The listing is valid nft input and yields the same table.
    let path = std::env::temp_dir().join(format!("calico-listing-{}.nft", std::process::id()));
    std::fs::write(&path, &listing).unwrap();
    let fresh = Netns::create("acl-reload").unwrap();
    let loaded = fresh
        .output(&["nft", "-f", path.to_str().unwrap()])
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        loaded.status.success(),
        "nft -f of the listing fails: {}\n{listing}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    // The reloaded table lists the same, but for one spelling: nft encodes `icmp type` with
    // its own protocol dependency, which it leaves implicit when printing.
    let reloaded = fresh
        .run(&["nft", "list", "table", "inet", "calico"])
        .unwrap();
    let implicit = |s: &str| {
        s.replace("meta l4proto icmp icmp ", "icmp ")
            .replace("meta l4proto ipv6-icmp icmpv6 ", "icmpv6 ")
    };
    assert_eq!(
        implicit(&listing),
        reloaded,
        "the reloaded table lists differently"
    );
    // The agent reads the sets, maps and chains nft wrote as the ones it programmed (nft
    // orders a rule's expressions its own way, so rules written by nft are the agent's to
    // rewrite on resync, like any hand edit).
    let back = LinuxAcl::in_netns(fresh.path().as_ref(), "calico")
        .unwrap()
        .dump()
        .await
        .unwrap();
    assert_eq!(back.sets, want.sets);
    assert_eq!(back.maps, want.maps);
    let bases =
        |r: &Ruleset| -> Vec<_> { r.chains.iter().map(|(n, c)| (n.clone(), c.base)).collect() };
    assert_eq!(bases(&back), bases(&want));
}

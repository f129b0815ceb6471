//! The per-interface counters on real packets: a denied ping is counted as a drop and an
//! allowed one as accepts, at the interfaces and in the directions that judged them; every
//! row's packets are its accepts plus its drops; an interface without programs is no
//! longer reported.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

mod ebpf_support;

use std::collections::BTreeMap;

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::AclBackend;
use calico_ebpf::backend::EbpfBackend;
use calico_ebpf::counters::{Counts, InterfaceCounters};
use calico_netns::fixtures::privileged;
use support::{shop, Topology};

/// Every interface's counters.
fn read(acl: &EbpfBackend) -> BTreeMap<String, InterfaceCounters> {
    acl.interface_counters_blocking().unwrap()
}

/// Field by field, `after - before`.
fn delta(before: &Counts, after: &Counts) -> Counts {
    Counts {
        packets: after.packets - before.packets,
        bytes: after.bytes - before.bytes,
        accepted: after.accepted - before.accepted,
        dropped: after.dropped - before.dropped,
        malformed: after.malformed - before.malformed,
        not_ip: after.not_ip - before.not_ip,
    }
}

/// The change of `iface`'s row in one direction between two readings.
fn change(
    before: &BTreeMap<String, InterfaceCounters>,
    after: &BTreeMap<String, InterfaceCounters>,
    iface: &str,
    ingress: bool,
) -> Counts {
    let pick = |m: &BTreeMap<String, InterfaceCounters>| {
        let c = m[iface];
        if ingress {
            c.ingress
        } else {
            c.egress
        }
    };
    delta(&pick(before), &pick(after))
}

fn every_row_adds_up(all: &BTreeMap<String, InterfaceCounters>) {
    for (name, c) in all {
        for (dir, row) in [("ingress", c.ingress), ("egress", c.egress)] {
            assert_eq!(
                row.packets,
                row.accepted + row.dropped,
                "{name} {dir}: every packet judged is accepted or dropped: {row:?}"
            );
            assert!(
                row.bytes >= 28 * row.packets,
                "{name} {dir}: {row:?} has fewer bytes than headers"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_are_counted_where_they_are_judged() {
    if !privileged("packets_are_counted_where_they_are_judged") {
        return;
    }
    let topo = Topology::new(&shop::WORKLOADS);
    let [front, back, other] = &topo.workloads[..] else {
        unreachable!()
    };
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    let v1 = compile(&CompileConfig::new("h1"), &shop::model("http"));
    acl.apply(&diff(&Ruleset::default(), &v1)).await.unwrap();
    let start = read(&acl);
    for iface in ["calia", "calib", "calic", "eth0"] {
        assert!(start.contains_key(iface), "{iface} has rows: {start:?}");
    }

    // Denied: the backend admits pings from the frontend only. The echo request gets in
    // at calic and is dropped going out to the backend, at calib's egress.
    assert!(!other.ping(back.ip), "other → backend ping is denied");
    let denied = read(&acl);
    let into_back = change(&start, &denied, "calib", false);
    assert!(into_back.dropped >= 1, "the drop is counted: {into_back:?}");
    let from_other = change(&start, &denied, "calic", true);
    assert!(
        from_other.accepted >= 1,
        "the request left other's interface: {from_other:?}"
    );
    every_row_adds_up(&denied);

    // Allowed: the request is accepted in at calia and out at calib; the reply comes
    // back in at calib.
    assert!(front.ping(back.ip), "frontend → backend ping is allowed");
    let allowed = read(&acl);
    let into_back = change(&denied, &allowed, "calib", false);
    assert!(into_back.accepted >= 1, "{into_back:?}");
    assert_eq!(into_back.dropped, 0, "nothing denied: {into_back:?}");
    let from_front = change(&denied, &allowed, "calia", true);
    assert!(from_front.accepted >= 1, "{from_front:?}");
    let reply = change(&denied, &allowed, "calib", true);
    assert!(reply.accepted >= 1, "the reply: {reply:?}");
    every_row_adds_up(&allowed);

    // Rows go with the programs; the uplink, configured as a host interface, keeps them.
    acl.apply(&diff(&v1, &Ruleset::default())).await.unwrap();
    let left: Vec<String> = read(&acl).into_keys().collect();
    assert_eq!(left, ["eth0"], "only the uplink has programs left");
}

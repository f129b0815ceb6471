//! The backend's tc hooks on a real kernel: they outlive the backend (a denied connection
//! stays denied, an allowed one allowed, after it is dropped), a second backend in the
//! same namespace takes over (the interfaces' clsact qdiscs bound to the shared blocks,
//! one filter of the backend per block, the dispatcher's entries pointing at the second
//! backend's programs, the old programs unloaded, the hooks of interfaces it does not
//! program deleted, the flow table carried over so that an open connection goes on), an
//! endpoint removed loses its hook, the start-up probe leaves nothing behind, and
//! `remove_all_blocking` leaves the eBPF dataplane.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

mod ebpf_support;

use std::net::TcpStream;

use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_ebpf::adopt::FlowTable;
use calico_ebpf::tc::Direction;
use calico_netns::fixtures::{privileged, Netns};
use ebpf_support::hooks::{filters, none_of_ours, ours};
use ebpf_support::shop::{loaded_in_kernel, shop_ruleset, WORKLOADS};
use support::{tcp_round_trip, Topology, Workload};

/// The client reaches `web` on 8080 (allowed) and not on 9090 (denied: a listener is
/// there, so only a drop stops it), nor with a ping.
fn enforced(client: &Workload, web: &Workload, when: &str) {
    let _open = web.listen_tcp(8080);
    let _closed = web.listen_tcp(9090);
    assert!(
        client.connect_tcp(web.ip, 8080).is_some(),
        "{when}: 8080 allowed"
    );
    assert!(
        client.connect_tcp(web.ip, 9090).is_none(),
        "{when}: 9090 denied"
    );
    assert!(!client.ping(web.ip), "{when}: ping denied");
}

/// Whether bytes the server sends first reach the client.
fn reply_first(conn: &mut TcpStream, served: &mut TcpStream) -> bool {
    use std::io::{Read, Write};
    let mut buf = [0u8; 5];
    served.write_all(b"hello").is_ok() && conn.read_exact(&mut buf).is_ok() && &buf == b"hello"
}

/// An open TCP connection from `client` to `web` on 8080, the listener closed again.
fn open_connection(client: &Workload, web: &Workload) -> (TcpStream, TcpStream) {
    let listener = web.listen_tcp(8080);
    let conn = client.connect_tcp(web.ip, 8080).expect("8080 allowed");
    let (served, _) = listener.accept().unwrap();
    (conn, served)
}

#[test]
fn filters_outlive_the_backend_and_the_next_one_takes_over() {
    if !privileged("filters_outlive_the_backend_and_the_next_one_takes_over") {
        return;
    }
    let topo = Topology::new(&WORKLOADS);
    let [web1, web2, client] = &topo.workloads[..] else {
        unreachable!()
    };
    let v2 = shop_ruleset(&[1, 2]);
    let first = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    first
        .apply_blocking(&diff(&Ruleset::default(), &v2))
        .unwrap();
    let before = first.programs_blocking().unwrap();
    for iface in ["calia", "calib", "calic", "eth0"] {
        assert_eq!(ours(&topo.host, iface), before.attached[iface], "{iface}");
    }
    enforced(client, web1, "first backend");
    assert_eq!(first.flow_table(), &FlowTable::New);
    // A connection open across the take-over: its replies into the client pass only as
    // part of an established flow (the client's policy admits UDP 5353 alone).
    let (mut conn, mut served) = open_connection(client, web1);
    assert!(tcp_round_trip(&mut conn, &mut served), "first backend");

    // The agent exits: the filters, and what their programs read, stay.
    drop(first);
    for iface in ["calia", "calib", "calic", "eth0"] {
        assert_eq!(ours(&topo.host, iface), before.attached[iface], "{iface}");
    }
    enforced(client, web1, "after the first backend is dropped");
    enforced(client, web2, "after the first backend is dropped");

    // A second backend: nothing changes until its first apply, which no longer names
    // calib.
    let second = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    assert_eq!(ours(&topo.host, "calib"), before.attached["calib"]);
    let v1 = shop_ruleset(&[1]);
    second
        .apply_blocking(&diff(&Ruleset::default(), &v1))
        .unwrap();
    let after = second.programs_blocking().unwrap();
    for iface in ["calia", "calic", "eth0"] {
        let now = ours(&topo.host, iface);
        assert_eq!(now, after.attached[iface], "{iface}: the second's programs");
        assert!(after.loaded.contains(&now.0) && after.loaded.contains(&now.1));
    }
    assert!(
        none_of_ours(&topo.host, "calib"),
        "calib, not programmed, lost the first backend's filters"
    );
    let old: Vec<u32> = before
        .attached
        .values()
        .flat_map(|&(i, e)| [i, e])
        .collect();
    for id in old {
        assert!(
            !loaded_in_kernel(id),
            "the first backend's program {id} is gone"
        );
    }
    enforced(client, web1, "second backend");
    assert_eq!(second.flow_table(), &FlowTable::Adopted);
    // The server speaks first: a packet in the reply direction, judged established only
    // through the carried-over flow (a client packet would record the flow anew, as its
    // direction is allowed).
    assert!(
        reply_first(&mut conn, &mut served),
        "the connection open before the take-over goes on: its flow was carried over"
    );
    assert!(tcp_round_trip(&mut conn, &mut served));
    let _listener = web2.listen_tcp(9090);
    assert!(
        client.connect_tcp(web2.ip, 9090).is_some(),
        "calib is not filtered any more"
    );

    // An endpoint removed loses its filters; the others keep theirs.
    let v0 = shop_ruleset(&[]);
    second.apply_blocking(&diff(&v1, &v0)).unwrap();
    assert!(none_of_ours(&topo.host, "calia"), "calia's filters deleted");
    assert_eq!(ours(&topo.host, "calic"), after.attached["calic"]);
    let _listener = web1.listen_tcp(9090);
    assert!(
        client.connect_tcp(web1.ip, 9090).is_some(),
        "calia is not filtered any more"
    );

    // Leaving the eBPF dataplane deletes the rest.
    second.remove_all_blocking().unwrap();
    for iface in ["calia", "calib", "calic", "eth0"] {
        assert!(none_of_ours(&topo.host, iface), "{iface}");
    }
    assert_eq!(second.dump_blocking().unwrap(), Ruleset::default());
    assert!(second.programs_blocking().unwrap().loaded.is_empty());
}

#[test]
fn the_probe_leaves_nothing_behind() {
    if !privileged("the_probe_leaves_nothing_behind") {
        return;
    }
    let ns = Netns::create("ebpf-probe").unwrap();
    let qdiscs = || ns.run(&["tc", "qdisc", "show", "dev", "lo"]).unwrap();
    let acl = ebpf_support::backend_in(&ns, &[], 16);
    assert!(!qdiscs().contains("clsact"), "{}", qdiscs());
    drop(acl);

    // A clsact qdisc already there stays, with its filters.
    ns.run(&["tc", "qdisc", "add", "dev", "lo", "clsact"])
        .unwrap();
    let _acl = ebpf_support::backend_in(&ns, &[], 16);
    assert!(qdiscs().contains("clsact"), "{}", qdiscs());
    for dir in Direction::BOTH {
        assert_eq!(filters(&ns, "lo", dir), vec![], "{dir}");
    }
}

//! The dispatcher on a real kernel: the interfaces' clsact qdiscs are bound to the shared
//! tc blocks (read back over rtnetlink), whose one filter per direction runs the
//! dispatcher; packets on interfaces with different policies are judged by their own
//! programs through it; an interface removed loses its qdisc and its entry and is not
//! filtered any more; and an interface with a clsact qdisc of its own (another
//! program's, or one a backend without shared blocks filtered) gets the dispatcher as a
//! filter of the backend's on it, the other filters left alone and the qdisc kept when
//! the interface leaves.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

mod ebpf_support;

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_ebpf::backend::{EbpfBackend, EbpfConfig};
use calico_ebpf::generate::parse::{TC_ACT_SHOT, TC_ACT_UNSPEC};
use calico_ebpf::insn::{Alu, Asm, Reg};
use calico_ebpf::program::Loaded;
use calico_ebpf::sets::Maps;
use calico_ebpf::tc::{Blocks, Dev, Direction, Existing, FilterSpec, Netlink, PRIORITY};
use calico_netns::fixtures::{privileged, Netns};
use ebpf_support::hooks::{block_filters, clsact, dispatched, filters, none_of_ours, ours};
use ebpf_support::shop::{shop_ruleset, WORKLOADS};
use support::{udp_delivers, Topology, Workload};

/// The client reaches `web` on 8080 (allowed) and not on 9090 (denied: a listener is
/// there, so only a drop stops it).
fn web_enforced(client: &Workload, web: &Workload, when: &str) {
    let _open = web.listen_tcp(8080);
    let _closed = web.listen_tcp(9090);
    assert!(client.connect_tcp(web.ip, 8080).is_some(), "{when}: 8080");
    assert!(client.connect_tcp(web.ip, 9090).is_none(), "{when}: 9090");
}

/// Whether UDP from `from` reaches the client's `port` (its policy admits 5353 only).
fn udp_to_client(from: &Workload, client: &Workload, port: u16) -> bool {
    let server = client.udp(client.ip, port);
    let src: IpAddr = from.ip;
    udp_delivers(&from.udp(src, 0), &server)
}

/// A program returning `verdict` for every packet, loaded.
fn constant(name: &str, verdict: i32) -> Loaded {
    let mut a = Asm::default();
    a.alu64_imm(Alu::Mov, Reg::R0, verdict);
    a.exit();
    let maps = Maps::create(16).unwrap();
    Loaded::load(name, &a.finish().unwrap(), &maps).unwrap()
}

/// Adds a clsact qdisc of its own to `iface` and a `bpf` filter running `program` at
/// `priority` in both directions, named `name`.
fn own_filter(ns: &Netns, iface: &str, priority: u16, program: &Loaded, name: &str) {
    let index = ebpf_support::hooks::index(ns, iface);
    let fd = program.as_fd().as_raw_fd();
    let name = name.to_string();
    ns.enter(move || {
        let mut tc = Netlink::open().unwrap();
        let dev = Dev { name: "", index };
        tc.add_clsact(dev).unwrap();
        for direction in Direction::BOTH {
            let spec = FilterSpec {
                ifindex: index,
                direction,
                priority,
                program_fd: fd,
                name: &name,
            };
            tc.set_filter(dev, &spec, Existing::Fail).unwrap();
        }
    })
    .unwrap();
}

#[test]
fn interfaces_share_the_blocks_and_are_dispatched_to_their_own_programs() {
    if !privileged("interfaces_share_the_blocks_and_are_dispatched_to_their_own_programs") {
        return;
    }
    let topo = Topology::new(&WORKLOADS);
    let [web1, web2, client] = &topo.workloads[..] else {
        unreachable!()
    };
    let acl = ebpf_support::backend_in(&topo.host, &[], 1024);
    let v2 = shop_ruleset(&[1, 2]);
    acl.apply_blocking(&diff(&Ruleset::default(), &v2)).unwrap();
    let programs = acl.programs_blocking().unwrap();
    for iface in ["calia", "calib", "calic"] {
        // Bound to the shared blocks, whose filters run the dispatcher; dispatched to the
        // programs the backend reports.
        assert_eq!(ours(&topo.host, iface), programs.attached[iface], "{iface}");
    }
    // The web workloads share their programs, the client's are others.
    assert_eq!(ours(&topo.host, "calia"), ours(&topo.host, "calib"));
    assert_ne!(ours(&topo.host, "calia"), ours(&topo.host, "calic"));

    // Each judged by its own program: the web's policy admits TCP 8080 from the client,
    // the client's UDP 5353.
    web_enforced(client, web1, "web 1");
    web_enforced(client, web2, "web 2");
    assert!(udp_to_client(web1, client, 5353), "the client's 5353");
    assert!(!udp_to_client(web1, client, 5354), "the client's 5354");

    // web 1 removed: its qdisc and entry go, it is not filtered any more; the others
    // keep theirs.
    let v1 = shop_ruleset(&[2]);
    acl.apply_blocking(&diff(&v2, &v1)).unwrap();
    assert!(none_of_ours(&topo.host, "calia"));
    assert!(clsact(&topo.host, "calia").is_none(), "its qdisc deleted");
    let _listener = web1.listen_tcp(9090);
    assert!(
        client.connect_tcp(web1.ip, 9090).is_some(),
        "calia unfiltered"
    );
    web_enforced(client, web2, "web 2 after web 1 left");
    assert!(dispatched(&topo.host, "calib").is_some());

    // The last interface gone, the blocks go with their filters (the kernel's doing).
    acl.apply_blocking(&diff(&v1, &shop_ruleset(&[]))).unwrap();
    acl.apply_blocking(&diff(&shop_ruleset(&[]), &Ruleset::default()))
        .unwrap();
    for iface in ["calia", "calib", "calic"] {
        assert!(none_of_ours(&topo.host, iface), "{iface}");
    }
    for dir in Direction::BOTH {
        assert!(block_filters(&topo.host, Blocks::DEFAULT.of(dir)).is_empty());
    }
}

/// Blocks other than the defaults (the agent's `--bpf-tc-blocks`): the qdiscs are bound to
/// them, their filters dispatch, and the default blocks stay unused.
#[test]
fn the_configured_blocks_are_the_ones_bound() {
    if !privileged("the_configured_blocks_are_the_ones_bound") {
        return;
    }
    let topo = Topology::new(&WORKLOADS);
    let [web1, _, client] = &topo.workloads[..] else {
        unreachable!()
    };
    let blocks = Blocks {
        ingress: 0x5eed_0001,
        egress: 0x5eed_0002,
    };
    let acl = EbpfBackend::new(EbpfConfig {
        blocks,
        ..ebpf_support::config(&topo.host, &[], 1024)
    })
    .unwrap();
    acl.apply_blocking(&diff(&Ruleset::default(), &shop_ruleset(&[1, 2])))
        .unwrap();
    let c = clsact(&topo.host, "calia").unwrap();
    assert!(c.bound_to(blocks) && !c.bound_to(Blocks::DEFAULT), "{c:?}");
    for dir in Direction::BOTH {
        let ours: Vec<_> = block_filters(&topo.host, blocks.of(dir))
            .into_iter()
            .filter(|f| f.is_ours())
            .collect();
        assert_eq!(ours.len(), 1, "{dir}: {ours:?}");
        assert!(block_filters(&topo.host, Blocks::DEFAULT.of(dir)).is_empty());
    }
    assert!(dispatched(&topo.host, "calia").is_some());
    web_enforced(client, web1, "through the configured blocks");
}

#[test]
fn an_interface_with_its_own_clsact_gets_the_dispatcher_as_a_filter() {
    if !privileged("an_interface_with_its_own_clsact_gets_the_dispatcher_as_a_filter") {
        return;
    }
    let topo = Topology::new(&WORKLOADS);
    let [web1, web2, client] = &topo.workloads[..] else {
        unreachable!()
    };
    // calia: another program's qdisc and filter (which lets everything on to the next
    // filter). calib: the per-interface filters of a backend without shared blocks, at
    // the backend's place with its name, dropping everything.
    let other = constant("other", TC_ACT_UNSPEC);
    own_filter(&topo.host, "calia", 1, &other, "other");
    let old = constant("cali_i1", TC_ACT_SHOT);
    own_filter(&topo.host, "calib", PRIORITY, &old, "calico-rs:cali_i1");
    let old_id = old.id().unwrap();
    drop(old);

    let acl = ebpf_support::backend_in(&topo.host, &[], 1024);
    let v2 = shop_ruleset(&[1, 2]);
    acl.apply_blocking(&diff(&Ruleset::default(), &v2)).unwrap();
    let programs = acl.programs_blocking().unwrap();
    for iface in ["calia", "calib"] {
        let c = clsact(&topo.host, iface).unwrap();
        assert!(!c.bound_to(Blocks::DEFAULT), "{iface}: its own qdisc kept");
        assert_eq!(
            dispatched(&topo.host, iface),
            Some(programs.attached[iface]),
            "{iface}"
        );
        for dir in Direction::BOTH {
            let fs = filters(&topo.host, iface, dir);
            let mine: Vec<_> = fs.iter().filter(|f| f.is_ours()).collect();
            assert_eq!(mine.len(), 1, "{iface} {dir}: {fs:?}");
            assert!(mine[0].name.as_deref().unwrap().contains("cali_disp"));
            assert_ne!(mine[0].program_id, Some(old_id), "the old program replaced");
        }
    }
    let foreign = filters(&topo.host, "calia", Direction::Ingress);
    assert!(foreign.iter().any(|f| f.priority == 1), "{foreign:?}");
    assert_eq!(ours(&topo.host, "calic"), programs.attached["calic"]);
    web_enforced(client, web1, "web 1 behind another program's filter");
    web_enforced(client, web2, "web 2, taken over from per-interface filters");

    // Both leave: the backend's filters go, the qdiscs it did not make and the other
    // program's filter stay.
    acl.apply_blocking(&diff(&v2, &shop_ruleset(&[]))).unwrap();
    for iface in ["calia", "calib"] {
        assert!(none_of_ours(&topo.host, iface), "{iface}");
        assert!(clsact(&topo.host, iface).is_some(), "{iface}: qdisc kept");
    }
    let foreign = filters(&topo.host, "calia", Direction::Egress);
    assert!(foreign.iter().any(|f| f.priority == 1), "{foreign:?}");
    let _listener = web2.listen_tcp(9090);
    assert!(
        client.connect_tcp(web2.ip, 9090).is_some(),
        "calib unfiltered"
    );
}

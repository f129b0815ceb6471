//! Programs shared between interfaces, on a real kernel: two workloads with the same
//! policies run one loaded program per direction (the kernel's link info says so), the
//! second one's add loads nothing, each keeps its own anti-spoofing, and the program goes
//! when the last interface running it does.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

mod ebpf_support;

use std::net::IpAddr;

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::model::{parse_resources, Model};
use calico_ebpf::backend::Programs;
use calico_netns::fixtures::privileged;
use ebpf_support::shop::{loaded_in_kernel, shop_ruleset, shop_text, web, WORKLOADS};
use support::{udp_delivers, Topology, Workload};

/// Every program loaded is one some interface runs: nothing leaks.
fn no_leak(p: &Programs) {
    let running = p.attached.values().flat_map(|&(i, e)| [i, e]).collect();
    assert_eq!(p.loaded, running, "loaded programs are the attached ones");
}

/// Whether UDP from `from` with source `src` reaches the client's port 5353.
fn udp_to_client(from: &Workload, src: &str, client: &Workload) -> bool {
    let server = client.udp(client.ip, 5353);
    let src: IpAddr = src.parse().unwrap();
    udp_delivers(&from.udp(src, 0), &server)
}

#[test]
fn workloads_with_the_same_policy_share_one_program_per_direction() {
    if !privileged("workloads_with_the_same_policy_share_one_program_per_direction") {
        return;
    }
    let topo = Topology::new(&WORKLOADS);
    let [web1, web2, client] = &topo.workloads[..] else {
        unreachable!()
    };
    // Each web workload may also send as the other: only the programs stop it.
    web1.ns
        .run(&["ip", "addr", "add", "10.65.0.20/32", "dev", "eth0"])
        .unwrap();
    web2.ns
        .run(&["ip", "addr", "add", "10.65.0.10/32", "dev", "eth0"])
        .unwrap();
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);

    let v1 = shop_ruleset(&[1]);
    acl.apply_blocking(&diff(&Ruleset::default(), &v1)).unwrap();
    let before = acl.programs_blocking().unwrap();
    no_leak(&before);

    // The second web workload: no program loaded, the first's run by both.
    let v2 = shop_ruleset(&[1, 2]);
    acl.apply_blocking(&diff(&v1, &v2)).unwrap();
    let after = acl.programs_blocking().unwrap();
    assert_eq!(after.loads, before.loads, "the second add loads no program");
    assert_eq!(after.loaded, before.loaded);
    let (a, b) = (after.attached["calia"], after.attached["calib"]);
    assert_eq!(a, b, "calia and calib run the same programs (links' info)");
    assert!(loaded_in_kernel(a.0) && loaded_in_kernel(a.1));
    no_leak(&after);

    // Filtered right for both: the policy, and each one's own anti-spoofing.
    for (web, own, other) in [
        (web1, "10.65.0.10", "10.65.0.20"),
        (web2, "10.65.0.20", "10.65.0.10"),
    ] {
        let listener = web.listen_tcp(8080);
        let _closed = web.listen_tcp(9090);
        assert!(client.connect_tcp(web.ip, 8080).is_some(), "{own}:8080");
        drop(listener);
        assert!(client.connect_tcp(web.ip, 9090).is_none(), "{own}:9090");
        assert!(!client.ping(web.ip), "{own}: ping is denied");
        assert!(udp_to_client(web, own, client), "{own} sends as itself");
        assert!(!udp_to_client(web, other, client), "{own} sends as {other}");
    }

    // Removing one keeps the program for the other; removing the last unloads it.
    acl.apply_blocking(&diff(&v2, &v1)).unwrap();
    let one = acl.programs_blocking().unwrap();
    assert_eq!(one.attached["calia"], a);
    no_leak(&one);
    let v0 = shop_ruleset(&[]);
    acl.apply_blocking(&diff(&v1, &v0)).unwrap();
    let none = acl.programs_blocking().unwrap();
    no_leak(&none);
    let client_programs = none.attached["calic"];
    for id in [a.0, a.1] {
        let kept = client_programs.0 == id || client_programs.1 == id;
        assert_eq!(none.loaded.contains(&id), kept, "program {id}");
        assert_eq!(loaded_in_kernel(id), kept, "program {id} in the kernel");
    }
    // The web workloads' TCX egress program (their ingress policy) was theirs alone.
    assert_ne!(client_programs.1, a.1);
    assert!(!loaded_in_kernel(a.1), "unloaded with its last interface");
}

#[test]
fn an_apply_failing_half_way_leaves_the_programs_as_they_were() {
    if !privileged("an_apply_failing_half_way_leaves_the_programs_as_they_were") {
        return;
    }
    let topo = Topology::new(&WORKLOADS);
    let [web1, _, client] = &topo.workloads[..] else {
        unreachable!()
    };
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    let v2 = shop_ruleset(&[1, 2]);
    acl.apply_blocking(&diff(&Ruleset::default(), &v2)).unwrap();
    let before = acl.programs_blocking().unwrap();

    // The web policy opens 9090 (calia's and calib's new program loads), and the
    // client's gets a log rule, which the backend refuses when it generates calic's
    // program, after calia's was loaded.
    let text = shop_text()
        .replace(
            "destination: {ports: [8080]}",
            "destination: {ports: [8080, 9090]}",
        )
        .replace(
            "  - action: Allow\n    protocol: UDP",
            "  - action: Log\n  - action: Allow\n    protocol: UDP",
        );
    let model = Model::from_resources(parse_resources(&(text + &web(1) + &web(2))).unwrap());
    let v3 = compile(&CompileConfig::new("h1"), &model.unwrap());
    let e = acl.apply_blocking(&diff(&v2, &v3)).unwrap_err();
    assert!(e.to_string().contains("log"), "{e}");

    let after = acl.programs_blocking().unwrap();
    assert!(after.loads > before.loads, "calia's new program was loaded");
    assert_eq!(after.loaded, before.loaded, "and unloaded again");
    assert_eq!(after.attached, before.attached);
    no_leak(&after);
    assert_eq!(acl.dump_blocking().unwrap(), v2, "nothing of it recorded");
    let _listener = web1.listen_tcp(9090);
    assert!(
        client.connect_tcp(web1.ip, 9090).is_none(),
        "9090 still closed"
    );
}

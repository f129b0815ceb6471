//! The plugin on the real kernel with a real etcd: ADD / CHECK / DEL / DEL again, an ADD
//! that fails half-way leaves nothing, DEL cleans up a half-done ADD, and parallel ADDs on
//! one host never share an address.

mod support;

use std::collections::BTreeSet;

use calico_netns::fixtures::Netns;
use serde_json::{json, Value};
use support::{ok, Lab, HOST_IP};

const WEPS: &str = "/calico/resources/v3/projectcalico.org/workloadendpoints/";
const HANDLES: &str = "/calico/ipam/v2/handle/";

/// The container `c` has `v4` and `v6` and Calico's routes; the host end has Calico's MAC,
/// proxy ARP and the route back; packets flow.
fn assert_networked_the_calico_way(lab: &Lab, c: &Netns, v4: ipnet::IpNet, v6: ipnet::IpNet) {
    // The container: its addresses and Calico's routes; the host end: MAC, proxy ARP.
    let addrs = c.run(&["ip", "addr", "show", "eth0"]).unwrap();
    assert!(
        addrs.contains(&format!("inet {v4}")) && addrs.contains(&format!("inet6 {v6}")),
        "{addrs}"
    );
    let routes = c.run(&["ip", "route"]).unwrap();
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("169.254.1.1 dev eth0 scope link"),
        "{routes}"
    );
    let routes6 = c.run(&["ip", "-6", "route"]).unwrap();
    assert!(
        routes6.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{routes6}"
    );
    let host = lab
        .host
        .run(&["ip", "addr", "show", "cali0123456789a"])
        .unwrap();
    assert!(
        host.contains("ee:ee:ee:ee:ee:ee") && !host.contains("inet "),
        "{host}"
    );
    let proxy_arp = lab
        .host
        .run(&["cat", "/proc/sys/net/ipv4/conf/cali0123456789a/proxy_arp"])
        .unwrap();
    assert_eq!(proxy_arp.trim(), "1");
    let host_routes = lab.host.run(&["ip", "route"]).unwrap();
    assert!(
        host_routes.contains(&format!("{} dev cali0123456789a scope link", v4.addr())),
        "{host_routes}"
    );
    // Packets flow the Calico way: the container reaches the host through proxy ARP.
    c.run(&["ping", "-c1", "-W2", HOST_IP]).unwrap();
}

#[test]
fn add_check_del_and_del_again() {
    let Some(lab) = Lab::start("add_check_del_and_del_again") else {
        return;
    };
    lab.pool("v4", "10.70.0.0/24", 26);
    lab.pool("v6", "fd70::/120", 122);
    let conf = lab.conf(
        "net1",
        json!({"labels": {"role": "web"}, "ipam": {"assign_ipv6": "true"},
               "args": {"cni": {"labels": [{"key": "team", "value": "a"}]}}}),
    );
    let c = Netns::create("cnic").unwrap();
    let id = "0123456789abcdef";
    let result = ok(&lab.cni("ADD", id, Some(&c), "eth0", &conf));
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][0]["name"], "cali0123456789a");
    assert_eq!(result["interfaces"][1]["sandbox"], c.path());
    let ips: Vec<ipnet::IpNet> = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap().parse().unwrap())
        .collect();
    let (v4, v6) = (ips[0], ips[1]);
    assert!(
        ips.len() == 2
            && v4.prefix_len() == 32
            && "10.70.0.0/24"
                .parse::<ipnet::IpNet>()
                .unwrap()
                .contains(&v4)
            && v6.prefix_len() == 128
            && "fd70::/120".parse::<ipnet::IpNet>().unwrap().contains(&v6),
        "{result}"
    );
    assert_networked_the_calico_way(&lab, &c, v4, v6);

    // The endpoint and the IPAM handle, in Calico's keys.
    let weps = lab.keys(WEPS);
    assert_eq!(weps.len(), 1, "{weps:?}");
    assert!(
        weps[0]
            .0
            .ends_with("/default/cni--host--1-cni-0123456789abcdef-eth0"),
        "{weps:?}"
    );
    let wep: Value = serde_json::from_str(&weps[0].1).unwrap();
    assert_eq!(wep["metadata"]["labels"]["role"], "web");
    assert_eq!(wep["metadata"]["labels"]["team"], "a");
    assert_eq!(wep["spec"]["interfaceName"], "cali0123456789a");
    assert_eq!(wep["spec"]["profiles"], json!(["net1"]));
    assert_eq!(lab.keys(&format!("{HANDLES}net1.{id}")).len(), 1);

    // CHECK passes with ADD's result, and fails once an address is gone.
    let mut checked = conf.clone();
    checked["prevResult"] = result.clone();
    ok(&lab.cni("CHECK", id, Some(&c), "eth0", &checked));
    c.run(&["ip", "addr", "del", &v4.to_string(), "dev", "eth0"])
        .unwrap();
    let bad = lab.cni("CHECK", id, Some(&c), "eth0", &checked);
    assert_eq!(bad.status, 1);
    let err: Value = serde_json::from_str(&bad.stdout).unwrap();
    assert_eq!(err["code"], 103, "{err}");
    assert!(
        err["msg"].as_str().unwrap().contains(&v4.to_string()),
        "{err}"
    );

    // DEL removes everything; a second DEL (container gone too) succeeds.
    ok(&lab.cni("DEL", id, Some(&c), "eth0", &conf));
    assert!(!lab.host_links().contains("cali"), "{}", lab.host_links());
    assert!(lab.keys(WEPS).is_empty());
    assert!(lab.keys(HANDLES).is_empty());
    assert_eq!(lab.allocated(), 0);
    drop(c);
    ok(&lab.cni("DEL", id, None, "eth0", &conf));
}

#[test]
fn a_failed_add_leaves_nothing_and_del_cleans_a_half_done_one() {
    let Some(lab) = Lab::start("a_failed_add_leaves_nothing_and_del_cleans_a_half_done_one") else {
        return;
    };
    lab.pool("v4", "10.71.0.0/24", 26);
    let conf = lab.conf("net2", json!({}));
    let c = Netns::create("cnic").unwrap();
    // `lo` exists in the container: the rename fails after the addresses were assigned and
    // the veth created.
    let failed = lab.cni("ADD", "failing1", Some(&c), "lo", &conf);
    assert_eq!(failed.status, 1, "{}", failed.stdout);
    let err: Value = serde_json::from_str(&failed.stdout).unwrap();
    assert_eq!(err["code"], 102, "{err}");
    assert!(
        !lab.host_links().contains("cali") && !lab.host_links().contains("ctmp"),
        "{}",
        lab.host_links()
    );
    assert!(!c.run(&["ip", "-br", "link"]).unwrap().contains("ctmp"));
    assert_eq!(lab.allocated(), 0, "the address went back");
    assert!(lab.keys(HANDLES).is_empty() && lab.keys(WEPS).is_empty());

    // A container that is gone before ADD: code 3, nothing held.
    let gone = Netns::create("cnigone").unwrap();
    let path = gone.path();
    drop(gone);
    let stdin = conf.to_string();
    let o = lab.host.enter(|| {
        calico_cni::run(
            |k| match k {
                "CNI_COMMAND" => Some("ADD".into()),
                "CNI_CONTAINERID" => Some("gone1".into()),
                "CNI_NETNS" => Some(path.clone()),
                "CNI_IFNAME" => Some("eth0".into()),
                _ => None,
            },
            stdin.as_bytes(),
        )
    });
    let o = o.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&o.stdout).unwrap()["code"],
        3,
        "{}",
        o.stdout
    );
    assert_eq!(lab.allocated(), 0);

    // Half done (an ADD killed after its veth and address): DEL removes both.
    ok(&lab.cni("ADD", "half1", Some(&c), "eth0", &conf));
    for (k, _) in lab.keys(WEPS) {
        lab.with(|mut cl| async move {
            cl.delete(k, None).await.unwrap();
        });
    }
    ok(&lab.cni("DEL", "half1", Some(&c), "eth0", &conf));
    assert!(!lab.host_links().contains("cali"));
    assert_eq!(lab.allocated(), 0);
    ok(&lab.cni("DEL", "half1", Some(&c), "eth0", &conf));
}

#[test]
fn parallel_adds_on_one_host_get_distinct_addresses() {
    let Some(lab) = Lab::start("parallel_adds_on_one_host_get_distinct_addresses") else {
        return;
    };
    // Blocks of 8: the ADDs race for claims as well as for addresses.
    lab.pool("v4", "10.72.0.0/24", 29);
    let conf = lab.conf("net3", json!({}));
    const N: usize = 24;
    let containers: Vec<Netns> = (0..N).map(|_| Netns::create("cnip").unwrap()).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (lab, conf) = (&lab, &conf);
                s.spawn(move || ok(&lab.cni("ADD", &format!("par{i:03}"), Some(c), "eth0", conf)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addrs: BTreeSet<String> = results
        .iter()
        .map(|r| r["ips"][0]["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(addrs.len(), N, "an address was handed out twice: {addrs:?}");
    assert_eq!(lab.allocated(), N);
    assert_eq!(lab.keys(WEPS).len(), N);
    for (i, c) in containers.iter().enumerate() {
        ok(&lab.cni("DEL", &format!("par{i:03}"), Some(c), "eth0", &conf));
    }
    assert_eq!(lab.allocated(), 0);
    assert!(lab.keys(WEPS).is_empty());
}

//! `LinuxFib::forget_connections` against the real kernel's connection tracking, in a
//! namespace each test makes (and removes). The entries are read back from the kernel's own
//! listing (`/proc/<thread>/net/nf_conntrack`), not through the code under test.

use std::net::{IpAddr, UdpSocket};

use calico_core::dataplane::FibBackend;
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::{privileged, Netns};

/// Conntrack follows a namespace's packets once a rule uses it; the DNAT makes an entry
/// whose reply comes from another address than the one the packet was sent to (as a
/// floating IP's do).
const RULES: &str = "table inet ct_test {
  chain nat_out { type nat hook output priority -100; ip daddr 10.77.0.9 dnat ip to 10.77.0.2; }
  chain out { type filter hook output priority 0; ct state new accept; }
}";

/// The original source and destination of every entry of the namespace.
fn entries(ns: &Netns) -> Vec<(IpAddr, IpAddr)> {
    let text = calico_netns::enter_path(ns.path().as_ref(), || {
        std::fs::read_to_string("/proc/thread-self/net/nf_conntrack")
    })
    .unwrap()
    .unwrap();
    text.lines()
        .filter_map(|line| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .and_then(|v| v.parse::<IpAddr>().ok())
            };
            Some((field("src=")?, field("dst=")?))
        })
        .collect()
}

/// One UDP datagram from `src` to port 9 of `dst`, sent inside the namespace.
fn datagram(ns: &Netns, src: &str, dst: &str) {
    let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    calico_netns::enter_path(ns.path().as_ref(), || {
        let sock = UdpSocket::bind((src, 0))?;
        sock.send_to(b"x", (dst, 9)).map(|_| ())
    })
    .unwrap()
    .unwrap();
}

fn pair(a: &str, b: &str) -> (IpAddr, IpAddr) {
    (a.parse().unwrap(), b.parse().unwrap())
}

#[tokio::test]
async fn forgetting_an_address_removes_its_connections_and_no_others() {
    if !privileged("forgetting_an_address_removes_its_connections_and_no_others") {
        return;
    }
    let ns = Netns::create("ct-forget").unwrap();
    ns.run(&["ip", "link", "set", "lo", "up"]).unwrap();
    for a in [
        "10.77.0.1/32",
        "10.77.0.2/32",
        "10.77.0.3/32",
        "10.77.0.4/32",
    ] {
        ns.run(&["ip", "addr", "add", a, "dev", "lo"]).unwrap();
    }
    for a in ["fd77::1/128", "fd77::2/128"] {
        ns.run(&["ip", "addr", "add", a, "dev", "lo", "nodad"])
            .unwrap();
    }
    // The translated address needs a route for the packet to be sent at all.
    ns.run(&["ip", "route", "add", "10.77.0.9/32", "dev", "lo"])
        .unwrap();
    let rules = std::env::temp_dir().join(format!("ct-forget-{}.nft", std::process::id()));
    std::fs::write(&rules, RULES).unwrap();
    ns.run(&["nft", "-f", rules.to_str().unwrap()]).unwrap();
    let _ = std::fs::remove_file(&rules);

    datagram(&ns, "10.77.0.1", "10.77.0.2"); // to the address: original destination
    datagram(&ns, "10.77.0.2", "10.77.0.4"); // from it: original source
    datagram(&ns, "10.77.0.3", "10.77.0.9"); // translated to it: reply source
    datagram(&ns, "10.77.0.3", "10.77.0.4"); // not involved
    datagram(&ns, "fd77::1", "fd77::2");
    let before = entries(&ns);
    for flow in [
        pair("10.77.0.1", "10.77.0.2"),
        pair("10.77.0.2", "10.77.0.4"),
        pair("10.77.0.3", "10.77.0.9"),
        pair("10.77.0.3", "10.77.0.4"),
        pair("fd77::1", "fd77::2"),
    ] {
        assert!(before.contains(&flow), "no entry for {flow:?}: {before:?}");
    }

    let fib = LinuxFib::in_netns(ns.path(), FibConfig::default()).unwrap();
    let forget: Vec<IpAddr> = vec!["10.77.0.2".parse().unwrap(), "fd77::2".parse().unwrap()];
    fib.forget_connections(&forget).await.unwrap();

    let after = entries(&ns);
    assert_eq!(
        after,
        vec![pair("10.77.0.3", "10.77.0.4")],
        "only the connection without the forgotten addresses stays"
    );
    // Nothing left to forget is not an error.
    fib.forget_connections(&forget).await.unwrap();
    assert_eq!(entries(&ns), after);
}

//! The namespace harness itself: namespaces are created, connected, entered and removed.

use calico_netns::fixtures::{privileged, veth, Netns};

#[test]
fn namespaces_connect_and_are_removed_on_drop() {
    if !privileged("namespaces_connect_and_are_removed_on_drop") {
        return;
    }
    let name;
    {
        let a = Netns::create("harness-a").unwrap();
        let b = Netns::create("harness-b").unwrap();
        name = a.name().to_string();
        veth(&a, "va", &b, "vb").unwrap();
        a.run(&["ip", "addr", "add", "192.0.2.1/30", "dev", "va"])
            .unwrap();
        b.run(&["ip", "addr", "add", "192.0.2.2/30", "dev", "vb"])
            .unwrap();
        a.run(&["ping", "-c1", "-W2", "192.0.2.2"]).unwrap();
        // A socket opened inside `b` sees b's links, not ours.
        let links = b
            .enter(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
            .unwrap();
        let links_seen_by_thread = b
            .enter(|| {
                let sock = std::net::UdpSocket::bind("192.0.2.2:0");
                sock.is_ok()
            })
            .unwrap();
        assert!(links.contains("vb"), "{links}");
        assert!(links_seen_by_thread, "192.0.2.2 must be bindable inside b");
    }
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
}

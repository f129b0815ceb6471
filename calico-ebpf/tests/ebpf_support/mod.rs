//! What the eBPF backend's tests on real namespaces share.

// Not every test binary uses every fixture.
#[allow(dead_code)]
pub mod hooks;
#[allow(dead_code)]
pub mod shop;

use calico_ebpf::backend::{EbpfBackend, EbpfConfig};
use calico_netns::fixtures::Netns;

/// An `EbpfBackend` for the interfaces of `host`, with programs on its host interfaces
/// `host_interfaces` too, and room for `set_capacity` members in each set map.
pub fn backend_in(host: &Netns, host_interfaces: &[&str], set_capacity: u32) -> EbpfBackend {
    EbpfBackend::new(config(host, host_interfaces, set_capacity)).unwrap()
}

/// The configuration of [`backend_in`].
pub fn config(host: &Netns, host_interfaces: &[&str], set_capacity: u32) -> EbpfConfig {
    EbpfConfig {
        netns: Some(host.path().into()),
        host_interfaces: host_interfaces.iter().map(|i| i.to_string()).collect(),
        set_capacity,
        // The kernel's route lookup and conntrack helpers need a GPL-compatible
        // declaration (see EbpfConfig).
        license: c"GPL".into(),
        blocks: calico_ebpf::tc::Blocks::DEFAULT,
    }
}

//! The BIRD driver on Linux: BIRD's best routes read back from its kernel table by a
//! [`LinuxFib`] opened on that table, in BIRD's namespace.

use std::sync::Arc;

use calico_bgp::bird::{BirdBgp, BirdConfig, RTPROT_BIRD};
use calico_core::dataplane::BackendError;
use calico_linux::fib::{FibConfig, LinuxFib};

/// A FIB backend that reads (and only reads) the kernel table `config` has BIRD write to:
/// table [`BirdConfig::kernel_table`], routes of protocol [`RTPROT_BIRD`], in
/// [`BirdConfig::netns`] (ours when `None`). It leaves the namespace's forwarding switches
/// alone.
pub fn bird_table(config: &BirdConfig) -> Result<LinuxFib, BackendError> {
    let fib_config = FibConfig {
        protocol: RTPROT_BIRD,
        table: config.kernel_table,
        enable_forwarding: false,
        ..FibConfig::default()
    };
    match &config.netns {
        Some(ns) => LinuxFib::in_netns(ns, fib_config),
        None => LinuxFib::new(fib_config),
    }
}

/// The BIRD driver for `config`, reading BIRD's routes back with [`bird_table`].
pub fn bird_bgp(config: BirdConfig) -> Result<BirdBgp, BackendError> {
    let table = Arc::new(bird_table(&config)?);
    BirdBgp::new(config, table)
}

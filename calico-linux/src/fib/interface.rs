//! Preparing a workload's host-side interface for routing, the way Calico does: the host
//! answers the workload's ARP and NDP for any address (the workload's default gateway
//! `169.254.1.1`, or the host side's link-local address for IPv6, need not be configured
//! anywhere), without the proxy ARP delay, forwards what arrives on it, rejects spoofed source
//! addresses (strict reverse-path filter: a packet's source must route back out of the same
//! interface, i.e. be one of that workload's addresses), and ignores router advertisements
//! the workload might send.
//!
//! Proxy ARP answers only for a target the host itself routes out of *another* interface;
//! Calico relies on the host's default route for `169.254.1.1`, and so does this.
//!
//! Settings are written through `/proc/sys/net`, which shows the sysctls of the namespace of
//! the thread that opens the files: for a FIB in another namespace the writes run on a
//! thread that entered it.

use std::io::{ErrorKind, Write};
use std::path::Path;

use calico_core::dataplane::{BackendError, InterfaceSettings};

/// Linux limit on interface names (`IFNAMSIZ` - 1).
const MAX_NAME_LEN: usize = 15;

/// Checks that `name` can be an interface name, so that it is safe in a `/proc/sys` path.
pub(crate) fn validate_name(name: &str) -> Result<(), BackendError> {
    let bad = |why: &str| {
        Err(BackendError::Unsupported(format!(
            "interface name {name:?}: {why}"
        )))
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad("must be 1 to 15 bytes long");
    }
    if name == "." || name == ".." {
        return bad("is not a valid name");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return bad("contains '/', ':', white space or a control character");
    }
    Ok(())
}

/// One `/proc/sys` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sysctl {
    /// Path below `/proc/sys/`, e.g. `net/ipv4/conf/cali1/proxy_arp`.
    pub key: String,
    /// Value to write.
    pub value: &'static str,
}

impl Sysctl {
    fn new(key: String, value: &'static str) -> Sysctl {
        Sysctl { key, value }
    }

    /// `net.ipv4.conf.cali1.proxy_arp=1`, as `sysctl` would print it.
    fn describe(&self) -> String {
        format!("{}={}", self.key.replace('/', "."), self.value)
    }

    fn is_ipv6(&self) -> bool {
        self.key.starts_with("net/ipv6/")
    }
}

/// The per-interface settings of a workload's host-side interface.
pub(crate) fn interface_sysctls(name: &str, settings: InterfaceSettings) -> Vec<Sysctl> {
    let rp_filter = if settings.strict_source_check {
        "1"
    } else {
        "0"
    };
    vec![
        Sysctl::new(format!("net/ipv4/conf/{name}/forwarding"), "1"),
        Sysctl::new(format!("net/ipv4/conf/{name}/rp_filter"), rp_filter),
        Sysctl::new(format!("net/ipv4/conf/{name}/proxy_arp"), "1"),
        Sysctl::new(format!("net/ipv4/neigh/{name}/proxy_delay"), "0"),
        Sysctl::new(format!("net/ipv6/conf/{name}/accept_ra"), "0"),
        Sysctl::new(format!("net/ipv6/conf/{name}/proxy_ndp"), "1"),
        Sysctl::new(format!("net/ipv6/conf/{name}/forwarding"), "1"),
    ]
}

/// The namespace-wide switches without which nothing is forwarded at all (IPv6 forwarding
/// is decided by `all`, not per interface). Note that turning IPv6 forwarding on makes the
/// kernel ignore router advertisements on interfaces whose `accept_ra` is not 2.
pub(crate) fn forwarding_sysctls() -> Vec<Sysctl> {
    vec![
        Sysctl::new("net/ipv4/ip_forward".into(), "1"),
        Sysctl::new("net/ipv6/conf/all/forwarding".into(), "1"),
    ]
}

/// Writes the settings for interface `name` (and the forwarding switches if `forwarding`)
/// in the namespace of the calling thread. IPv6 settings are skipped when the kernel has no
/// IPv6. A value already in place is not rewritten (writing `ip_forward` resets every
/// interface's forwarding flag even when unchanged in some kernels' eyes). Returns how many
/// settings were written.
pub(crate) fn write_sysctls(
    name: &str,
    forwarding: bool,
    interface: InterfaceSettings,
) -> Result<usize, BackendError> {
    let proc_sys = Path::new("/proc/sys");
    let has_ipv6 = proc_sys.join("net/ipv6").exists();
    let global = if forwarding {
        forwarding_sysctls()
    } else {
        Vec::new()
    };
    let settings = global.into_iter().map(|s| (s, false)).chain(
        interface_sysctls(name, interface)
            .into_iter()
            .map(|s| (s, true)),
    );
    let mut written = 0;
    for (setting, per_interface) in settings {
        if setting.is_ipv6() && !has_ipv6 {
            continue;
        }
        let path = proc_sys.join(&setting.key);
        // Read and write through separate opens: a numeric sysctl ignores a write that does
        // not start at offset 0.
        let result = std::fs::read_to_string(&path).and_then(|current| {
            if current.trim() == setting.value {
                return Ok(false);
            }
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .write_all(setting.value.as_bytes())?;
            Ok(true)
        });
        match result {
            Ok(changed) => {
                if changed {
                    written += 1;
                    tracing::debug!(sysctl = %setting.describe(), "set");
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound && per_interface => {
                return Err(BackendError::MissingInterface(name.to_string()));
            }
            Err(e) => {
                return Err(BackendError::Dataplane {
                    op: format!("set {}", setting.describe()),
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_proc_sys_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../../x",
            "x y",
            "0123456789abcdef",
            "a:b",
        ] {
            assert!(
                matches!(validate_name(bad), Err(BackendError::Unsupported(_))),
                "{bad:?} accepted"
            );
        }
        for good in ["cali0123456789a", "eth0.100", "veth-a", "x"] {
            assert_eq!(validate_name(good), Ok(()), "{good:?} refused");
        }
    }

    #[test]
    fn a_workload_interface_gets_proxy_arp_ndp_forwarding_and_strict_rpf() {
        let settings: Vec<String> = interface_sysctls("cali1", InterfaceSettings::default())
            .iter()
            .map(Sysctl::describe)
            .collect();
        for expected in [
            "net.ipv4.conf.cali1.proxy_arp=1",
            "net.ipv4.neigh.cali1.proxy_delay=0",
            "net.ipv4.conf.cali1.forwarding=1",
            "net.ipv4.conf.cali1.rp_filter=1",
            "net.ipv6.conf.cali1.proxy_ndp=1",
            "net.ipv6.conf.cali1.forwarding=1",
            "net.ipv6.conf.cali1.accept_ra=0",
        ] {
            assert!(settings.iter().any(|s| s == expected), "{expected} missing");
        }
    }
}

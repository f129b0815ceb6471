//! Calico's IPAM key layout in etcd (libcalico-go's `model/block.go`, `block_affinity.go`,
//! `ipam_handle.go`):
//!
//! ```text
//! /calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26        the block (AllocationBlock JSON)
//! /calico/ipam/v2/host/<host>/ipv4/block/10.0.0.0-26       the host's affinity {"state":…}
//! /calico/ipam/v2/handle/<handle id>                       the handle {"block":{cidr: n}}
//! ```
//!
//! A block's CIDR is written with its `/` turned into `-` (`fd00::-122` for IPv6).

use ipnet::IpNet;

use super::error::IpamError;
use super::pools::Family;

/// Everything IPAM stores lives under this prefix.
pub const IPAM_PREFIX: &str = "/calico/ipam/v2/";
/// Every host's block affinities live under this prefix.
pub const HOST_AFFINITY_PREFIX: &str = "/calico/ipam/v2/host/";
/// Every handle lives under this prefix.
pub const HANDLE_PREFIX: &str = "/calico/ipam/v2/handle/";
const ASSIGNMENT_PREFIX: &str = "/calico/ipam/v2/assignment/";

/// A CIDR as Calico names it in a key: `10.0.0.0-26`.
pub fn cidr_name(net: IpNet) -> String {
    format!("{}-{}", net.network(), net.prefix_len())
}

/// Reads a CIDR named as in a key; `None` unless it is a network address with its prefix.
pub fn parse_cidr_name(name: &str) -> Option<IpNet> {
    let (addr, len) = name.split_once('-')?;
    let net: IpNet = format!("{addr}/{len}").parse().ok()?;
    (net.trunc() == net).then_some(net)
}

/// The prefix of every block of a family: `/calico/ipam/v2/assignment/ipv4/block/`.
pub fn block_prefix(family: Family) -> String {
    format!("{ASSIGNMENT_PREFIX}ipv{}/block/", family.number())
}

/// A block's key.
pub fn block_key(block: IpNet) -> String {
    format!(
        "{}{}",
        block_prefix(Family::of_net(block)),
        cidr_name(block)
    )
}

/// The block a block key names.
pub fn parse_block_key(key: &str) -> Option<IpNet> {
    let rest = key.strip_prefix(ASSIGNMENT_PREFIX)?;
    let (version, name) = rest.split_once("/block/")?;
    let net = parse_cidr_name(name)?;
    (version == format!("ipv{}", Family::of_net(net).number())).then_some(net)
}

/// The prefix of one host's affinities of a family: `/calico/ipam/v2/host/<host>/ipv4/block/`.
pub fn host_affinity_prefix(host: &str, family: Family) -> String {
    format!("{HOST_AFFINITY_PREFIX}{host}/ipv{}/block/", family.number())
}

/// The key of `host`'s affinity to `block`.
pub fn affinity_key(host: &str, block: IpNet) -> String {
    format!(
        "{}{}",
        host_affinity_prefix(host, Family::of_net(block)),
        cidr_name(block)
    )
}

/// The host and block an affinity key names.
pub fn parse_affinity_key(key: &str) -> Option<(String, IpNet)> {
    let rest = key.strip_prefix(HOST_AFFINITY_PREFIX)?;
    let (host, rest) = rest.split_once('/')?;
    let (version, name) = rest.split_once("/block/")?;
    let net = parse_cidr_name(name)?;
    let version_ok = version == format!("ipv{}", Family::of_net(net).number());
    (version_ok && !host.is_empty()).then(|| (host.to_string(), net))
}

/// A handle's key.
pub fn handle_key(handle: &str) -> String {
    format!("{HANDLE_PREFIX}{handle}")
}

/// Checks that `host` fits in one key segment.
pub fn check_host(host: &str) -> Result<(), IpamError> {
    let reason = if host.is_empty() {
        "empty"
    } else if host.contains('/') {
        "contains '/'"
    } else if host.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(IpamError::InvalidHost {
        host: host.to_string(),
        reason,
    })
}

/// Checks that `handle` fits in one key segment.
pub fn check_handle(handle: &str) -> Result<(), IpamError> {
    let reason = if handle.is_empty() {
        "empty"
    } else if handle.contains('/') {
        "contains '/'"
    } else if handle.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(IpamError::InvalidHandle {
        handle: handle.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_calicos() {
        assert_eq!(
            block_key(net("10.0.0.64/26")),
            "/calico/ipam/v2/assignment/ipv4/block/10.0.0.64-26"
        );
        assert_eq!(
            block_key(net("fd00::40/122")),
            "/calico/ipam/v2/assignment/ipv6/block/fd00::40-122"
        );
        assert_eq!(
            affinity_key("node-1", net("10.0.0.64/26")),
            "/calico/ipam/v2/host/node-1/ipv4/block/10.0.0.64-26"
        );
        assert_eq!(
            handle_key("k8s-pod-network.abc"),
            "/calico/ipam/v2/handle/k8s-pod-network.abc"
        );
    }

    #[test]
    fn keys_parse_back_and_refuse_what_calico_would_not_write() {
        for b in ["10.0.0.64/26", "fd00::40/122", "192.168.3.0/32"] {
            assert_eq!(parse_block_key(&block_key(net(b))), Some(net(b)));
            let aff = affinity_key("h", net(b));
            assert_eq!(parse_affinity_key(&aff), Some(("h".into(), net(b))));
        }
        for bad in [
            "/calico/ipam/v2/assignment/ipv4/block/10.0.0.65-26", // not a network address
            "/calico/ipam/v2/assignment/ipv6/block/10.0.0.64-26", // wrong family segment
            "/calico/ipam/v2/assignment/ipv4/block/10.0.0.64",
            "/calico/ipam/v2/assignment/ipv4/block/10.0.0.64-33",
            "/calico/resources/v3/projectcalico.org/ippools/p",
        ] {
            assert_eq!(parse_block_key(bad), None, "{bad}");
        }
        for bad in [
            "/calico/ipam/v2/host//ipv4/block/10.0.0.64-26",
            "/calico/ipam/v2/host/h/ipv6/block/10.0.0.64-26",
            "/calico/ipam/v2/host/h/ipv4/block/x",
        ] {
            assert_eq!(parse_affinity_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn hosts_and_handles_must_fit_one_key_segment() {
        assert!(check_host("node-1.example").is_ok());
        assert!(matches!(
            check_host("a/b"),
            Err(IpamError::InvalidHost {
                reason: "contains '/'",
                ..
            })
        ));
        assert!(check_host("").is_err());
        assert!(check_handle("k8s-pod-network.1234").is_ok());
        assert!(check_handle("x/y").is_err());
        assert!(check_handle("x\ny").is_err());
    }
}

//! The names of the compiler's chains and sets: a prefix saying what each is for and a
//! stable hash of its identity ([`crate::naming::hashed`]).

use crate::model::{PolicyKey, PolicyType};
use crate::naming::hashed;

/// A chain or set name: `prefix` and the hash of `parts`.
pub(super) fn chain_name(prefix: &str, parts: &[&str]) -> String {
    hashed(prefix, parts)
}

/// The chain holding a policy's rules in one direction.
pub(super) fn policy_chain(key: &PolicyKey, dir: PolicyType) -> String {
    let ns = key.0.as_deref().unwrap_or("");
    match dir {
        PolicyType::Ingress => chain_name("pol-in", &[ns, &key.1]),
        PolicyType::Egress => chain_name("pol-eg", &[ns, &key.1]),
    }
}

/// The chain holding a profile's rules in one direction.
pub(super) fn profile_chain(name: &str, dir: PolicyType) -> String {
    match dir {
        PolicyType::Ingress => chain_name("pro-in", &[name]),
        PolicyType::Egress => chain_name("pro-eg", &[name]),
    }
}

/// The chain of one local interface in one direction.
pub(super) fn endpoint_chain(iface: &str, dir: PolicyType) -> String {
    match dir {
        PolicyType::Ingress => chain_name("wl-in", &[iface]),
        PolicyType::Egress => chain_name("wl-eg", &[iface]),
    }
}

/// The set of the networks a local interface's workload may also send from, of one family.
pub(super) fn spoof_allowed_set(iface: &str, v4: bool) -> String {
    chain_name(if v4 { "wl-sp4" } else { "wl-sp6" }, &[iface])
}

/// The set of a local interface's own addresses of one family (when it has several).
pub(super) fn own_address_set(iface: &str, v4: bool) -> String {
    chain_name(if v4 { "wl-ip4" } else { "wl-ip6" }, &[iface])
}

//! Floating IPs (`ipNATs`) in the reference semantics: a packet sent to a workload's
//! floating IP has its destination translated to the workload's own address *before* any
//! policy sees it (Felix's destination NAT runs in the `nat` table's PREROUTING and OUTPUT,
//! before `filter`), so policy is written and judged against the internal address; the
//! replies come back from the floating IP. [`translate_floating_ip`] gives the packet policy
//! sees, to hand to [`super::evaluate_flow`].

use std::net::IpAddr;

use super::Packet;
use crate::model::Model;

/// The packet policy judges for `packet`: its destination translated to the internal
/// address when it is a floating IP in effect (`floating_ips`: Felix's `FloatingIPs`
/// setting; OpenStack endpoints' are in effect in any case) on the workload it targets;
/// `packet` unchanged otherwise. Of two endpoints claiming one floating IP, the lower
/// internal address as text wins, as in Felix.
///
/// ```
/// use calico_core::eval::{translate_floating_ip, Packet};
/// use calico_core::model::{parse_resources, Model};
///
/// let model = Model::from_resources(parse_resources(r#"
/// kind: WorkloadEndpoint
/// orchestrator: openstack
/// workload: vm
/// endpoint: tap1
/// node: h1
/// interfaceName: tap1
/// ipNetworks: [10.65.0.2/32]
/// ipNATs: [{internalIP: 10.65.0.2, externalIP: 172.16.0.5}]
/// "#).unwrap()).unwrap();
/// let client = "192.0.2.9".parse().unwrap();
/// let to_floating = Packet::tcp(client, 40000, "172.16.0.5".parse().unwrap(), 80);
/// let seen = translate_floating_ip(&model, &to_floating, false);
/// assert_eq!(seen.dst, "10.65.0.2".parse::<std::net::IpAddr>().unwrap());
/// ```
pub fn translate_floating_ip(model: &Model, packet: &Packet, floating_ips: bool) -> Packet {
    let claims = model
        .workload_endpoints
        .values()
        .flat_map(|ep| ep.floating_ips(floating_ips))
        .filter(|nat| nat.external_ip == packet.dst)
        .map(|nat| nat.internal_ip);
    let internal: Option<IpAddr> = claims.min_by_key(|a| a.to_string());
    Packet {
        dst: internal.unwrap_or(packet.dst),
        ..packet.clone()
    }
}

//! CHECK: the container's networking and endpoint are still as ADD left them.

use std::net::IpAddr;

use ipnet::IpNet;

use super::Context;
use crate::endpoint;
use crate::net;
use crate::spec::{CniError, Code};

fn failed(msg: String) -> CniError {
    CniError::new(Code::CheckFailed, msg, "")
}

/// Runs CHECK against the configuration's `prevResult` (required).
pub async fn check(ctx: &Context) -> Result<(), CniError> {
    let prev = ctx.conf.prev_result().ok_or_else(|| {
        CniError::new(Code::InvalidConfig, "field prevResult: CHECK needs it", "")
    })?;
    let netns = ctx
        .env
        .netns
        .clone()
        .ok_or_else(|| CniError::new(Code::InvalidEnv, "CNI_NETNS: missing", ""))?;
    let seen = net::inspect(&ctx.host_ns, &ctx.host_ifname, &netns, &ctx.env.ifname)
        .map_err(|e| CniError::new(Code::Netlink, format!("inspect: {e}"), ""))?;
    if seen.host_mac.as_deref() != Some("ee:ee:ee:ee:ee:ee") {
        return Err(failed(format!(
            "host interface {}: missing or MAC {:?}",
            ctx.host_ifname, seen.host_mac
        )));
    }
    if seen.container_mac.is_none() {
        return Err(failed(format!(
            "container interface {}: missing",
            ctx.env.ifname
        )));
    }
    let ours: Vec<IpNet> = prev
        .ips
        .iter()
        .filter(|ip| {
            ip.interface
                .and_then(|i| prev.interfaces.get(i))
                .is_some_and(|i| i.name == ctx.env.ifname && i.sandbox.is_some())
        })
        .map(|ip| ip.address)
        .collect();
    if let Some(missing) = ours.iter().find(|a| !seen.container_addrs.contains(a)) {
        return Err(failed(format!(
            "container interface {}: address {missing} missing (has {:?})",
            ctx.env.ifname, seen.container_addrs
        )));
    }
    let wants = [
        (
            ours.iter().any(|a| a.addr().is_ipv4()),
            IpAddr::V4(net::GATEWAY_V4),
        ),
        (
            ours.iter().any(|a| a.addr().is_ipv6()),
            IpAddr::V6(net::GATEWAY_V6),
        ),
    ];
    if let Some((_, gw)) = wants
        .iter()
        .find(|(want, gw)| *want && !seen.gateways.contains(gw))
    {
        return Err(failed(format!("container: no default route via {gw}")));
    }
    let probe = endpoint::build(
        &ctx.conf,
        &ctx.identity,
        &ctx.node,
        &ctx.host_ifname,
        None,
        &[],
    );
    let stored = endpoint::read(&ctx.writer, &probe)
        .await?
        .ok_or_else(|| failed(format!("WorkloadEndpoint {}: missing", probe.id)))?;
    let mut want: Vec<IpNet> = ours.iter().map(|a| IpNet::from(a.addr())).collect();
    let mut have = stored.ip_networks.clone();
    want.sort();
    have.sort();
    if have != want || stored.interface_name != ctx.host_ifname {
        return Err(failed(format!(
            "WorkloadEndpoint {}: {} {:?}, expected {} {:?}",
            probe.id, stored.interface_name, have, ctx.host_ifname, want
        )));
    }
    Ok(())
}

//! Reading back what [`super::setup`] made, for CHECK.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{failed, in_netns, link_by_name, mac_of, open_netns, NetError};

/// A container's networking as the kernel has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The host end's MAC; `None` when the host end is missing.
    pub host_mac: Option<String>,
    /// The container end's MAC; `None` when the container end is missing.
    pub container_mac: Option<String>,
    /// The container end's addresses (link-local ones left out).
    pub container_addrs: Vec<IpNet>,
    /// The gateways of the container's default routes.
    pub gateways: Vec<IpAddr>,
}

/// Reads the host end `host_ifname` in `host_ns` and the container end `ifname` in
/// `container_netns`.
pub fn inspect(
    host_ns: &File,
    host_ifname: &str,
    container_netns: &Path,
    ifname: &str,
) -> Result<Observed, NetError> {
    let host = host_ifname.to_string();
    let host_mac = in_netns(host_ns, "host", |h| async move {
        Ok(link_by_name(&h, &host)
            .await?
            .map(|l| mac_of(&l).unwrap_or_default()))
    })?;
    let ns = open_netns(container_netns)?;
    let name = ifname.to_string();
    let (container_mac, container_addrs, gateways) = in_netns(
        &ns,
        &container_netns.display().to_string(),
        |h| async move {
            let Some(link) = link_by_name(&h, &name).await? else {
                return Ok((None, Vec::new(), Vec::new()));
            };
            let addrs = addresses(&h, link.header.index, &name).await?;
            let gateways = default_gateways(&h).await?;
            Ok((mac_of(&link), addrs, gateways))
        },
    )?;
    Ok(Observed {
        host_mac,
        container_mac,
        container_addrs,
        gateways,
    })
}

async fn addresses(h: &Handle, idx: u32, name: &str) -> Result<Vec<IpNet>, NetError> {
    let msgs: Vec<_> = h
        .address()
        .get()
        .set_link_index_filter(idx)
        .execute()
        .try_collect()
        .await
        .map_err(failed(format!("list addresses of {name}")))?;
    let mut out = Vec::new();
    for m in msgs.iter().filter(|m| m.header.index == idx) {
        for a in &m.attributes {
            if let AddressAttribute::Address(ip) = a {
                let link_local =
                    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
                if let (false, Ok(net)) = (link_local, IpNet::new(*ip, m.header.prefix_len)) {
                    out.push(net);
                }
            }
        }
    }
    Ok(out)
}

async fn default_gateways(h: &Handle) -> Result<Vec<IpAddr>, NetError> {
    let mut out = Vec::new();
    for query in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let routes: Vec<RouteMessage> = h
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(failed("list routes"))?;
        for r in routes
            .iter()
            .filter(|r| r.header.destination_prefix_length == 0)
        {
            out.extend(r.attributes.iter().filter_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                _ => None,
            }));
        }
    }
    Ok(out)
}

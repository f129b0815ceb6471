//! Creating and removing a container's veth pair (see the module documentation of
//! [`crate::net`] for what is set up).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use netlink_packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::naming::temporary_peer_name;
use super::{
    failed, in_netns, link_by_name, mac_of, open_netns, sysctl, NetError, GATEWAY_V4, GATEWAY_V6,
    HOST_MAC,
};

/// What to set up for one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethPlan {
    /// The host end's name (`cali…`, see [`super::host_veth_name`]).
    pub host_ifname: String,
    /// The container end's name (`CNI_IFNAME`).
    pub container_ifname: String,
    /// The container's network namespace (`CNI_NETNS`).
    pub container_netns: PathBuf,
    /// The MTU of both ends.
    pub mtu: u32,
    /// The container's addresses (each given as a /32 or /128).
    pub addrs: Vec<IpAddr>,
}

impl VethPlan {
    fn has_v4(&self) -> bool {
        self.addrs.iter().any(IpAddr::is_ipv4)
    }

    fn has_v6(&self) -> bool {
        self.addrs.iter().any(IpAddr::is_ipv6)
    }
}

/// Sets up the veth pair of `plan`, its host end in `host_ns`; the container end's MAC. On
/// failure part of it may be in place: [`teardown`] removes it.
pub fn setup(host_ns: &File, plan: &VethPlan) -> Result<String, NetError> {
    let container_ns = open_netns(&plan.container_netns)?;
    create_pair(host_ns, &container_ns, plan)?;
    let mac = configure_container(&container_ns, plan)?;
    configure_host(host_ns, plan)?;
    Ok(mac)
}

/// Removes the host end `host_ifname` (and with it the container end) and a temporary end
/// left on the host by an interrupted [`setup`]; whether anything was there.
pub fn teardown(host_ns: &File, host_ifname: &str) -> Result<bool, NetError> {
    let host = host_ifname.to_string();
    in_netns(host_ns, "host", |h| async move {
        let mut found = false;
        for name in [host.clone(), temporary_peer_name(&host)] {
            found |= delete_link(&h, &name).await?;
        }
        Ok(found)
    })
}

async fn delete_link(h: &Handle, name: &str) -> Result<bool, NetError> {
    match link_by_name(h, name).await? {
        Some(link) => {
            h.link()
                .del(link.header.index)
                .execute()
                .await
                .map_err(failed(format!("delete link {name}")))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Creates the pair on the host (host end named, MAC `ee:…`, up) and moves the other end
/// into the container. A stale host end of the same name is replaced, as Calico does.
fn create_pair(host_ns: &File, container_ns: &File, plan: &VethPlan) -> Result<(), NetError> {
    let host = plan.host_ifname.clone();
    let tmp = temporary_peer_name(&host);
    let mtu = plan.mtu;
    let target = container_ns.as_raw_fd();
    in_netns(host_ns, "host", |h| async move {
        delete_link(&h, &host).await?;
        delete_link(&h, &tmp).await?;
        let pair = LinkVeth::new(&host, &tmp)
            .mtu(mtu)
            .address(HOST_MAC.to_vec())
            .up()
            .build();
        h.link()
            .add(pair)
            .execute()
            .await
            .map_err(failed(format!("add veth {host} peer {tmp}")))?;
        let peer = link_by_name(&h, &tmp)
            .await?
            .ok_or_else(|| NetError::Netlink {
                what: format!("find {tmp}"),
                reason: "gone right after creation".into(),
            })?;
        h.link()
            .set(
                LinkUnspec::new_with_index(peer.header.index)
                    .setns_by_fd(target)
                    .build(),
            )
            .execute()
            .await
            .map_err(failed(format!("move {tmp} into the container")))
    })
}

/// Names the container end, brings it up, gives it its addresses and routes; its MAC.
fn configure_container(container_ns: &File, plan: &VethPlan) -> Result<String, NetError> {
    let tmp = temporary_peer_name(&plan.host_ifname);
    let plan = plan.clone();
    in_netns(
        container_ns,
        &plan.container_netns.display().to_string(),
        |h| async move {
            let name = &plan.container_ifname;
            let link = link_by_name(&h, &tmp)
                .await?
                .ok_or_else(|| NetError::Netlink {
                    what: format!("find {tmp} in the container"),
                    reason: "not there after the move".into(),
                })?;
            let idx = link.header.index;
            h.link()
                .set(
                    LinkUnspec::new_with_index(idx)
                        .name(name.clone())
                        .mtu(plan.mtu)
                        .build(),
                )
                .execute()
                .await
                .map_err(failed(format!("rename {tmp} to {name}")))?;
            if plan.has_v6() {
                sysctl::write("ipv6/conf/all/disable_ipv6", "0")?;
                // The address is the container's alone: no duplicate address detection wait.
                sysctl::write(&format!("ipv6/conf/{name}/accept_dad"), "0")?;
            }
            h.link()
                .set(LinkUnspec::new_with_index(idx).up().build())
                .execute()
                .await
                .map_err(failed(format!("set {name} up")))?;
            for addr in &plan.addrs {
                let len = if addr.is_ipv4() { 32 } else { 128 };
                h.address()
                    .add(idx, *addr, len)
                    .execute()
                    .await
                    .map_err(failed(format!("add address {addr}/{len} to {name}")))?;
            }
            container_routes(&h, idx, name, plan.has_v4(), plan.has_v6()).await?;
            Ok(mac_of(&link).unwrap_or_default())
        },
    )
}

async fn container_routes(
    h: &Handle,
    idx: u32,
    name: &str,
    v4: bool,
    v6: bool,
) -> Result<(), NetError> {
    if v4 {
        let gw = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(GATEWAY_V4, 32)
            .output_interface(idx)
            .protocol(RouteProtocol::Boot)
            .scope(RouteScope::Link)
            .build();
        h.route().add(gw).execute().await.map_err(failed(format!(
            "add route {GATEWAY_V4} dev {name} scope link"
        )))?;
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(GATEWAY_V4)
            .output_interface(idx)
            .protocol(RouteProtocol::Boot)
            .build();
        h.route()
            .add(default)
            .execute()
            .await
            .map_err(failed(format!("add default route via {GATEWAY_V4}")))?;
    }
    if v6 {
        let default = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(GATEWAY_V6)
            .output_interface(idx)
            .protocol(RouteProtocol::Boot)
            .build();
        h.route()
            .add(default)
            .execute()
            .await
            .map_err(failed(format!("add default route via {GATEWAY_V6}")))?;
    }
    Ok(())
}

/// The host end's sysctls (proxy ARP, forwarding) and a route per container address.
fn configure_host(host_ns: &File, plan: &VethPlan) -> Result<(), NetError> {
    let plan = plan.clone();
    in_netns(host_ns, "host", |h| async move {
        let host = &plan.host_ifname;
        if plan.has_v4() {
            sysctl::write(&format!("ipv4/conf/{host}/proxy_arp"), "1")?;
            sysctl::write(&format!("ipv4/neigh/{host}/proxy_delay"), "0")?;
            sysctl::write(&format!("ipv4/conf/{host}/forwarding"), "1")?;
        }
        if plan.has_v6() {
            sysctl::write(&format!("ipv6/conf/{host}/proxy_ndp"), "1")?;
            sysctl::write(&format!("ipv6/conf/{host}/forwarding"), "1")?;
            sysctl::write(&format!("ipv6/conf/{host}/accept_ra"), "0")?;
        }
        let link = link_by_name(&h, host)
            .await?
            .ok_or_else(|| NetError::Netlink {
                what: format!("find {host}"),
                reason: "the host end is gone".into(),
            })?;
        for addr in &plan.addrs {
            let route = match addr {
                IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(*a, 32)
                    .output_interface(link.header.index)
                    .protocol(RouteProtocol::Boot)
                    .scope(RouteScope::Link)
                    .build(),
                IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(*a, 128)
                    .output_interface(link.header.index)
                    .protocol(RouteProtocol::Boot)
                    .scope(RouteScope::Link)
                    .build(),
            };
            h.route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(failed(format!("add route {addr} dev {host}")))?;
        }
        Ok(())
    })
}

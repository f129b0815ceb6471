//! The namespace's network interfaces as the FIB needs them: names and indexes both ways,
//! and bringing one up.

use std::collections::HashMap;

use calico_core::dataplane::BackendError;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::NLM_F_ACK;

use super::netlink::{Failure, Netlink};

/// Interface names and indexes of one namespace, read in one dump.
#[derive(Debug, Default)]
pub(crate) struct Links {
    by_name: HashMap<String, u32>,
    by_index: HashMap<u32, String>,
}

impl Links {
    /// Reads every interface.
    pub(crate) async fn read(netlink: &Netlink) -> Result<Links, BackendError> {
        let answer = netlink
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .await
            .map_err(|f| f.into_error("dump links".into()))?;
        let mut links = Links::default();
        for message in answer {
            if let RouteNetlinkMessage::NewLink(link) = message {
                if let Some(name) = name_of(&link) {
                    links.by_name.insert(name.clone(), link.header.index);
                    links.by_index.insert(link.header.index, name);
                }
            }
        }
        Ok(links)
    }

    /// Reads only the interfaces named (one request each), or every interface when there
    /// are many: a change set touching a few workloads on a host with thousands of
    /// interfaces should not read them all.
    pub(crate) async fn read_some(
        netlink: &Netlink,
        names: &std::collections::BTreeSet<&str>,
    ) -> Result<Links, BackendError> {
        const FEW: usize = 16;
        if names.len() > FEW {
            return Links::read(netlink).await;
        }
        let mut links = Links::default();
        for name in names {
            if let Some(link) = link_by_name(netlink, name).await? {
                links.by_name.insert(name.to_string(), link.index);
                links.by_index.insert(link.index, name.to_string());
            }
        }
        Ok(links)
    }

    /// The index of the interface called `name`.
    pub(crate) fn index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name of the interface with index `index`.
    pub(crate) fn name(&self, index: u32) -> Option<String> {
        self.by_index.get(&index).cloned()
    }
}

fn name_of(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// One interface: its index and whether it is administratively up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    /// Interface index.
    pub index: u32,
    /// `IFF_UP` is set.
    pub up: bool,
}

/// Looks one interface up by name; `Ok(None)` when there is none.
pub(crate) async fn link_by_name(
    netlink: &Netlink,
    name: &str,
) -> Result<Option<Link>, BackendError> {
    let mut request = LinkMessage::default();
    request
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    match netlink
        .request(RouteNetlinkMessage::GetLink(request), 0)
        .await
    {
        Ok(answer) => Ok(answer.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => Some(Link {
                index: link.header.index,
                up: link.header.flags.contains(LinkFlags::Up),
            }),
            _ => None,
        })),
        Err(Failure::Errno(libc::ENODEV)) => Ok(None),
        Err(f) => Err(f.into_error(format!("look up link {name}"))),
    }
}

/// Sets `IFF_UP` on the interface (`ip link set <name> up`).
pub(crate) async fn set_up(netlink: &Netlink, name: &str, index: u32) -> Result<(), BackendError> {
    let mut request = LinkMessage::default();
    request.header.index = index;
    request.header.flags = LinkFlags::Up;
    request.header.change_mask = LinkFlags::Up;
    match netlink
        .request(RouteNetlinkMessage::SetLink(request), NLM_F_ACK)
        .await
    {
        Ok(_) => Ok(()),
        Err(Failure::Errno(libc::ENODEV)) => Err(BackendError::MissingInterface(name.to_string())),
        Err(f) => Err(f.into_error(format!("set link {name} up"))),
    }
}

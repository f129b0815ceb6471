//! The container's networking, as Calico sets it up: a veth pair, its host end `cali…`
//! (MAC `ee:ee:ee:ee:ee:ee`, no address, proxy ARP, forwarding, a /32 or /128 route per
//! address), its container end with /32 and /128 addresses and routes via 169.254.1.1
//! (IPv4, answered by the host end's proxy ARP) and `fe80::ecee:eeff:feee:eeee` (IPv6, the
//! host end's link-local address).
//!
//! Every kernel change is made over rtnetlink on a short-lived thread that entered the
//! namespace concerned ([`calico_netns::run_in`]), so no async runtime thread ever changes
//! namespace.

pub mod inspect;
pub mod naming;
pub mod setup;
pub mod sysctl;

use std::fs::File;
use std::future::Future;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::Handle;

pub use inspect::{inspect, Observed};
pub use naming::host_veth_name;
pub use setup::{setup, teardown, VethPlan};

/// The host end's MAC address (Calico's).
pub const HOST_MAC: [u8; 6] = [0xee; 6];

/// The IPv4 next hop the container routes through (answered by proxy ARP).
pub const GATEWAY_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 1, 1);

/// The IPv6 next hop: the host end's link-local address, derived from [`HOST_MAC`].
pub const GATEWAY_V6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// A kernel change that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A network namespace could not be opened or entered.
    #[error("network namespace {path}: {reason}")]
    Netns {
        /// Its path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A netlink request failed.
    #[error("{what}: {reason}")]
    Netlink {
        /// The change (`add veth cali…`, `add address … to eth0`).
        what: String,
        /// The kernel's answer.
        reason: String,
    },
    /// A sysctl could not be written.
    #[error("sysctl net.{key}: {reason}")]
    Sysctl {
        /// The key under `/proc/sys/net`.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Whether `e` is the kernel's "no such device".
fn is_no_device(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::ENODEV)
}

/// A closure for [`NetError::Netlink`] naming `what`.
fn failed(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |e| NetError::Netlink {
        what,
        reason: e.to_string(),
    }
}

/// Opens a network namespace file (`CNI_NETNS`, `/proc/thread-self/ns/net`).
pub fn open_netns(path: &Path) -> Result<File, NetError> {
    File::open(path).map_err(|e| NetError::Netns {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Runs `work` with a netlink handle inside `ns`, on a thread of its own with a
/// single-threaded runtime.
pub fn in_netns<T, F, Fut>(ns: &File, what: &str, work: F) -> Result<T, NetError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, NetError>>,
{
    let netns_error = |reason: String| NetError::Netns {
        path: what.to_string(),
        reason,
    };
    calico_netns::run_in(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| netns_error(format!("runtime: {e}")))?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection()
                .map_err(|e| netns_error(format!("netlink socket: {e}")))?;
            let driver = tokio::spawn(conn);
            let out = work(handle).await;
            driver.abort();
            out
        })
    })
    .map_err(|e| netns_error(e.to_string()))?
}

/// The link named `name`, if there is one.
pub async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if is_no_device(&e) => Ok(None),
        Err(e) => Err(failed(format!("get link {name}"))(e)),
    }
}

/// A link's MAC address, `aa:bb:…`.
pub fn mac_of(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) if b.len() == 6 => Some(
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    })
}

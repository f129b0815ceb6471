//! Interface indexes: the interfaces an apply looks at are asked over the backend's
//! netlink socket, many at once from a thread in the namespace.

use super::*;

/// The index of each of `names` (0: no such interface), asked over the netlink socket: an
/// apply looks at a few interfaces, and this enters no namespace (see [`ifindexes`]).
pub(super) fn ifindexes_of(
    tc: &mut Netlink,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, u32>, BackendError> {
    names
        .iter()
        .map(|n| Ok((n.clone(), tc.ifindex(n)?)))
        .collect::<Result<_, TcError>>()
        .map_err(|e| dataplane("interfaces", e))
}

/// The index of each interface in the configured namespace (0: no such interface), from
/// a thread entering it: for many names at once (a dump), where one `if_nametoindex` each
/// is cheaper than a netlink request each.
pub(super) fn ifindexes(
    config: &EbpfConfig,
    names: Vec<String>,
) -> Result<BTreeMap<String, u32>, Error> {
    in_netns(config, move || {
        names
            .into_iter()
            .map(|n| ifindex(&n).map(|i| (n, i)))
            .collect()
    })?
}

/// The index of interface `name` in the calling thread's namespace; 0 when there is no
/// such interface. Any other failure is an error: taken for a missing interface, it
/// would detach the programs of every interface (out of file descriptors, say).
pub(super) fn ifindex(name: &str) -> Result<u32, Error> {
    let Ok(c) = CString::new(name) else {
        return Ok(0);
    };
    // SAFETY: a valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index != 0 {
        return Ok(index);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODEV) | Some(libc::ENXIO) => Ok(0),
        _ => Err(Error::Sys(SysError::Unexpected {
            what: "look up an interface's index",
            reason: format!("{name}: {e}"),
        })),
    }
}

//! What the backend hooked to an interface, as the kernel reports it: the interface's
//! clsact qdisc and its blocks, the filters on it, and the dispatcher's entry for it
//! (read from the pinned maps).

use calico_ebpf::tc::{Blocks, Clsact, Dev, Direction, Filter, Netlink};
use calico_netns::fixtures::Netns;

/// The index of `iface` in `ns`.
pub fn index(ns: &Netns, iface: &str) -> u32 {
    let name = std::ffi::CString::new(iface).unwrap();
    ns.enter(move || {
        // SAFETY: a valid NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(index, 0, "no interface {name:?}");
        index
    })
    .unwrap()
}

/// The clsact qdisc of `iface` in `ns`, with its blocks.
pub fn clsact(ns: &Netns, iface: &str) -> Option<Clsact> {
    let index = index(ns, iface);
    ns.enter(move || {
        let mut tc = Netlink::open().unwrap();
        tc.clsact(Dev { name: "", index }).unwrap()
    })
    .unwrap()
}

/// The filters of one direction of `iface` in `ns` (none without a clsact qdisc).
pub fn filters(ns: &Netns, iface: &str, dir: Direction) -> Vec<Filter> {
    if clsact(ns, iface).is_none() {
        return Vec::new();
    }
    let index = index(ns, iface);
    ns.enter(move || {
        let mut tc = Netlink::open().unwrap();
        tc.filters(Dev { name: "", index }, dir).unwrap()
    })
    .unwrap()
}

/// The filters of the shared block `block` in `ns`.
pub fn block_filters(ns: &Netns, block: u32) -> Vec<Filter> {
    ns.enter(move || Netlink::open().unwrap().block_filters(block).unwrap())
        .unwrap()
}

/// The programs the dispatcher runs for `iface` (ingress, egress), from its pinned maps;
/// `None` when it has no entry.
pub fn dispatched(ns: &Netns, iface: &str) -> Option<(u32, u32)> {
    let dir =
        calico_ebpf::pins::dir(Some(std::path::Path::new(&ns.path()))).expect("a BPF filesystem");
    let got = calico_ebpf::dispatch::pinned(&dir, index(ns, iface)).unwrap()?;
    match got {
        (Some(i), Some(e)) => Some((i, e)),
        other => panic!("{iface}: a slot empty: {other:?}"),
    }
}

/// The programs the backend runs for `iface` (ingress, egress); asserts its clsact qdisc
/// is bound to the default blocks, whose filters run the dispatcher.
pub fn ours(ns: &Netns, iface: &str) -> (u32, u32) {
    let c = clsact(ns, iface).unwrap_or_else(|| panic!("{iface}: no clsact qdisc"));
    assert!(c.bound_to(Blocks::DEFAULT), "{iface}: {c:?}");
    for dir in Direction::BOTH {
        let fs = block_filters(ns, Blocks::DEFAULT.of(dir));
        let mine: Vec<_> = fs.iter().filter(|f| f.is_ours()).collect();
        assert_eq!(mine.len(), 1, "{dir} block: one filter of ours: {fs:?}");
        assert_eq!(mine[0].flags, 1, "direct action");
    }
    dispatched(ns, iface).unwrap_or_else(|| panic!("{iface}: not dispatched"))
}

/// Whether `iface` has nothing of the backend's: no clsact qdisc bound to the blocks, no
/// filter of its own, no dispatcher entry.
pub fn none_of_ours(ns: &Netns, iface: &str) -> bool {
    if clsact(ns, iface).is_some_and(|c| c.bound_to(Blocks::DEFAULT)) {
        return false;
    }
    let filtered = Direction::BOTH
        .into_iter()
        .any(|d| filters(ns, iface, d).iter().any(|f| f.is_ours()));
    !filtered && dispatched(ns, iface).is_none()
}

//! The backend's tc filters as a whole: found by dumps (a previous backend's included),
//! attached to an interface in both directions, taken off it, swept after a take-over,
//! removed when the host leaves the eBPF dataplane, and the start-up probe.

use super::*;

/// Deletes the filters an eBPF backend (this agent's or an earlier one's) left in the
/// calling thread's network namespace: for a host that leaves the eBPF dataplane, whose
/// filters would otherwise go on enforcing the last policy they were given beside the new
/// dataplane's (they stay when the agent exits, like nftables rules). Only filters that
/// are the backend's by priority, handle and name are touched. Returns how many
/// interfaces had some.
pub fn remove_leftovers() -> Result<usize, BackendError> {
    let mut tc = Netlink::open().map_err(|e| dataplane("open a netlink socket", e))?;
    let found = remove_filters(&mut tc)?;
    // The program arrays of split policies, pinned: their filters are gone.
    if let Some(dir) = crate::pins::dir(None) {
        crate::pins::remove(Some(&dir), &crate::pins::list(&dir));
    }
    Ok(found)
}

/// Deletes every filter of the backend that a dump finds; how many interfaces had some.
pub(super) fn remove_filters(tc: &mut Netlink) -> Result<usize, BackendError> {
    let found = inherited(tc).map_err(|e| dataplane("list the filters", e))?;
    for &index in &found.interfaces {
        detach(tc, Dev { name: "", index })?;
    }
    Ok(found.interfaces.len())
}

/// The id of the program the backend's filter of `dir` on `dev` runs, from a dump.
pub(super) fn running(tc: &mut Netlink, dev: Dev, dir: Direction) -> Result<u32, BackendError> {
    let what = || format!("the {dir} filter of {}", dev.name);
    let filters = tc
        .filters(dev, dir)
        .map_err(|e| dataplane(&format!("dump {}", what()), e))?;
    filters
        .iter()
        .find(|f| f.is_ours())
        .and_then(|f| f.program_id)
        .ok_or_else(|| dataplane("programs", format!("{} is missing", what())))
}

/// A netlink socket in the configured namespace, and the index of its `lo`.
pub(super) fn open_netlink(config: &EbpfConfig) -> Result<(Netlink, u32), String> {
    let opened = in_netns(config, || -> Result<(Netlink, u32), String> {
        let tc = Netlink::open().map_err(|e| e.to_string())?;
        let lo = ifindex("lo").map_err(|e| e.to_string())?;
        Ok((tc, lo))
    });
    opened.map_err(|e| e.to_string())?
}

/// Attaches `probe` to `lo` (index `lo`) at the probe's priority and deletes it again,
/// with the clsact qdisc when this added it: nothing is left behind, and a filter a
/// previous backend left (were `lo` one of its interfaces) is not touched.
pub(super) fn probe_tc(tc: &mut Netlink, probe: &Loaded, lo: u32) -> Result<(), StartError> {
    use std::os::fd::{AsFd, AsRawFd};
    let dev = Dev {
        name: "lo",
        index: lo,
    };
    let added = tc.add_clsact(dev).map_err(|source| StartError::Attach {
        needs: NEEDS_CLSACT,
        source,
    })?;
    let spec = FilterSpec {
        ifindex: lo,
        direction: Direction::Ingress,
        priority: crate::tc::PROBE_PRIORITY,
        program_fd: probe.as_fd().as_raw_fd(),
        name: "calico-rs-probe",
    };
    let set = tc.set_filter(dev, &spec, Existing::Replace);
    let deleted = tc.del_filter(dev, Direction::Ingress, crate::tc::PROBE_PRIORITY);
    let removed = if added { tc.del_clsact(dev) } else { Ok(()) };
    set.map_err(|source| StartError::Attach {
        needs: NEEDS_CLS_BPF,
        source,
    })?;
    deleted
        .and(removed)
        .map(|_| ())
        .map_err(|source| StartError::Attach {
            needs: NEEDS_CLS_BPF,
            source,
        })
}

/// What a previous backend left, as filter dumps find it.
#[derive(Debug, Default)]
pub(super) struct Inherited {
    /// The interfaces (by index) with a filter of the backend's, in either direction.
    pub(super) interfaces: BTreeSet<u32>,
    /// The kernel ids of the programs those filters run.
    pub(super) programs: BTreeSet<u32>,
}

/// The filters of the backend's (this one's or a previous one's) that dumps find: only
/// interfaces with a clsact qdisc are looked at.
pub(super) fn inherited(tc: &mut Netlink) -> Result<Inherited, TcError> {
    let mut found = Inherited::default();
    for index in tc.clsact_interfaces()? {
        let dev = Dev { name: "", index };
        for dir in Direction::BOTH {
            match tc.filters(dev, dir) {
                Ok(fs) => {
                    for f in fs.iter().filter(|f| f.is_ours()) {
                        found.interfaces.insert(index);
                        found.programs.extend(f.program_id);
                    }
                }
                // Deleted since the qdisc dump.
                Err(e) if e.errno() == Some(libc::ENODEV) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(found)
}

/// Attaches `ingress` and `egress` to `dev`, which has no programs of this backend (it may
/// have a previous backend's): the clsact qdisc added, the two filters set, then the
/// egress mark written. On a failure the filters set are deleted again (both, so that
/// no interface is left half programmed, nor with a previous backend's program in one
/// direction), then the values.
pub(super) fn attach_both(
    st: &mut State,
    dev: Dev,
    ingress: hooked::Prepared,
    egress: hooked::Prepared,
) -> Result<Iface, BackendError> {
    let undo = |tc: &mut Netlink, e: BackendError| match detach(tc, dev) {
        Ok(()) => e,
        Err(d) => dataplane(&format!("{e}; and then"), d),
    };
    // Written first, so that the programs count from their first packet.
    let counters = st
        .sets
        .maps()
        .counters()
        .add(dev.index)
        .map_err(|e| dataplane(&format!("write the counter rows of {}", dev.name), e))?;
    st.tc
        .add_clsact(dev)
        .map_err(|e| dataplane(&format!("attach to {}", dev.name), e))?;
    let ingress = Hooked::attach(&mut st.tc, ingress, dev, Direction::Ingress)
        .map_err(|e| undo(&mut st.tc, e))?;
    let egress = match Hooked::attach(&mut st.tc, egress, dev, Direction::Egress) {
        Ok(h) => h,
        Err(e) => return Err(undo(&mut st.tc, e)),
    };
    // Marked once the egress program is attached: until then the ingress programs
    // record forwarded flows out of it themselves.
    let marked = st.sets.maps().mark_egress(dev.index);
    let egress_mark = match marked {
        Ok(m) => m,
        Err(e) => {
            let e = dataplane(&format!("mark {} as having an egress program", dev.name), e);
            return Err(undo(&mut st.tc, e));
        }
    };
    Ok(Iface {
        ingress,
        egress,
        index: dev.index,
        egress_mark,
        counters,
    })
}

/// Takes `iface`'s programs off: its filters deleted, then (dropped) its values and its
/// egress mark. When a deletion fails the interface keeps its place, so that it is not
/// left with a filter whose program has no values for it.
pub(super) fn remove(st: &mut State, iface: &str) -> Result<(), BackendError> {
    let Some(o) = st.ifaces.remove(iface) else {
        return Ok(());
    };
    let dev = Dev {
        name: iface,
        index: o.index,
    };
    if let Err(e) = detach(&mut st.tc, dev) {
        st.ifaces.insert(iface.to_string(), o);
        return Err(e);
    }
    Ok(())
}

/// Deletes the filters a previous backend left on the interfaces this one does not
/// program (after an apply that succeeded: the ruleset is then in effect on every
/// interface it names); those it programs were replaced. A failed deletion is tried again
/// at the next apply.
pub(super) fn sweep(st: &mut State) -> Result<(), BackendError> {
    if st.inherited.is_empty() {
        unpin_inherited(st);
        return Ok(());
    }
    let ours: BTreeSet<u32> = st.ifaces.values().map(|o| o.index).collect();
    let stale: Vec<u32> = st.inherited.difference(&ours).copied().collect();
    st.inherited.retain(|i| !ours.contains(i));
    for index in stale {
        detach(&mut st.tc, Dev { name: "", index })?;
        st.inherited.remove(&index);
    }
    unpin_inherited(st);
    Ok(())
}

/// Removes the pins a previous backend left (the program arrays of its split programs),
/// once none of its filters is left.
fn unpin_inherited(st: &mut State) {
    if st.inherited.is_empty() && !st.inherited_pins.is_empty() {
        let pins = std::mem::take(&mut st.inherited_pins);
        crate::pins::remove(st.pin_dir.as_deref(), &pins);
    }
}

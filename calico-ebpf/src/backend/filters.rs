//! The backend's tc attachment as a whole: an interface's clsact qdisc bound to the
//! shared blocks (or, where it has a clsact qdisc of its own, the backend's filters on
//! it), found by dumps (a previous backend's included), attached in both directions,
//! taken off, swept after a take-over, removed when the host leaves the eBPF dataplane,
//! and the start-up probe.

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

/// Deletes every filter of the backend that a dump finds, and every clsact qdisc bound to
/// a shared block whose filter is the backend's (the block and its filter go with the
/// last); how many interfaces had some.
pub(super) fn remove_filters(tc: &mut Netlink) -> Result<usize, BackendError> {
    let found = inherited(tc).map_err(|e| dataplane("list the filters", e))?;
    for &index in &found.interfaces {
        detach(tc, Dev { name: "", index })?;
    }
    let shared = bound_to_our_blocks(tc).map_err(|e| dataplane("list the qdiscs", e))?;
    for &index in &shared {
        del_clsact(tc, Dev { name: "", index })?;
    }
    Ok(found.interfaces.union(&shared).count())
}

/// The interfaces whose clsact qdisc is bound to a shared block carrying a filter of the
/// backend's (whatever the blocks' indexes: a previous configuration's included).
fn bound_to_our_blocks(tc: &mut Netlink) -> Result<BTreeSet<u32>, TcError> {
    let clsacts = tc.clsacts()?;
    let blocks: BTreeSet<u32> = clsacts
        .iter()
        .flat_map(|c| [c.ingress_block, c.egress_block])
        .filter(|&b| b != 0)
        .collect();
    let mut ours = BTreeSet::new();
    for block in blocks {
        if tc.block_filters(block)?.iter().any(|f| f.is_ours()) {
            ours.insert(block);
        }
    }
    let bound = |c: &&Clsact| ours.contains(&c.ingress_block) || ours.contains(&c.egress_block);
    Ok(clsacts.iter().filter(bound).map(|c| c.ifindex).collect())
}

/// Deletes the clsact qdisc of `dev` (with its binds to the shared blocks); one gone
/// already is no error.
pub(super) fn del_clsact(tc: &mut Netlink, dev: Dev) -> Result<(), BackendError> {
    match tc.del_clsact(dev) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ENODEV | libc::EINVAL)) => Ok(()),
        Err(e) => Err(dataplane(&format!("detach from {}", dev.name), e)),
    }
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
    /// The kernel ids of dispatcher programs found running (ingress, egress).
    pub(super) dispatchers: [Option<u32>; 2],
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

/// The name of the backend's filters running the dispatcher of `dir`.
pub(super) fn dispatcher_name(dir: Direction) -> String {
    format!("{NAME_PREFIX}{}", crate::dispatch::NAMES[dir as usize])
}

/// The kernel ids of the dispatcher programs the filters of the shared `blocks` run
/// (ingress, egress; `None` where a block has none, or does not exist).
pub(super) fn block_dispatchers(
    tc: &mut Netlink,
    blocks: Blocks,
) -> Result<[Option<u32>; 2], TcError> {
    let mut found = [None, None];
    for dir in Direction::BOTH {
        let fs = tc.block_filters(blocks.of(dir))?;
        let mine = fs.iter().find(|f| f.name == Some(dispatcher_name(dir)));
        found[dir as usize] = mine.and_then(|f| f.program_id);
    }
    Ok(found)
}

/// The filters of the backend's (this one's or a previous one's) that dumps find: only
/// interfaces with a clsact qdisc of their own are looked at (a dump of one bound to a
/// shared block lists the block's filters, which are not the interface's).
pub(super) fn inherited(tc: &mut Netlink) -> Result<Inherited, TcError> {
    let mut found = Inherited::default();
    let own = tc.clsacts()?.into_iter().filter(|c| !c.shared());
    for index in own.map(|c| c.ifindex) {
        let dev = Dev { name: "", index };
        for dir in Direction::BOTH {
            match tc.filters(dev, dir) {
                Ok(fs) => {
                    for f in fs.iter().filter(|f| f.is_ours()) {
                        found.interfaces.insert(index);
                        found.programs.extend(f.program_id);
                        if f.name == Some(dispatcher_name(dir)) {
                            found.dispatchers[dir as usize] = f.program_id;
                        }
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
/// have a previous backend's): the counter rows and the values written, the programs put
/// in the interface's dispatcher slots and the interface's entry pointed at them, then
/// its clsact qdisc bound to the shared blocks (or, where it has a clsact qdisc not bound
/// to them, the backend's filters on that one pointed at the dispatcher), then the egress
/// mark written. On a failure what was written is deleted again (dropped), and the qdisc
/// added or the filters set with it.
pub(super) fn attach_both(
    st: &mut State,
    blocks: Blocks,
    dev: Dev,
    (ingress, egress): (hooked::Prepared, hooked::Prepared),
) -> Result<Iface, BackendError> {
    // Written first, so that the programs count from their first packet.
    let counters = st
        .sets
        .maps()
        .counters()
        .add(dev.index)
        .map_err(|e| dataplane(&format!("write the counter rows of {}", dev.name), e))?;
    if st.direct {
        return attach_direct(st, dev, (ingress, egress), counters);
    }
    let dispatch = st
        .dispatch
        .hold(dev.index)
        .map_err(|e| dataplane(&format!("dispatch {}", dev.name), e))?;
    let ingress = Hooked::attach(ingress, Target::Slot(&dispatch), dev, Direction::Ingress)?;
    let egress = Hooked::attach(egress, Target::Slot(&dispatch), dev, Direction::Egress)?;
    dispatch
        .enable()
        .map_err(|e| dataplane(&format!("dispatch {}", dev.name), e))?;
    let hook = hook(st, blocks, dev)?;
    let egress_mark = mark_egress(st, dev, hook)?;
    Ok(Iface {
        dispatch: Some(dispatch),
        ingress,
        egress,
        index: dev.index,
        hook,
        egress_mark,
        counters,
    })
}

/// Marks `dev` as having an egress program, once it is attached (until then the ingress
/// programs record forwarded flows out of it themselves); unhooks it when that fails.
fn mark_egress(st: &mut State, dev: Dev, hook: Hook) -> Result<MapEntries, BackendError> {
    st.sets.maps().mark_egress(dev.index).map_err(|e| {
        let e = dataplane(&format!("mark {} as having an egress program", dev.name), e);
        match unhook(&mut st.tc, dev, hook) {
            Ok(()) => e,
            Err(d) => dataplane(&format!("{e}; and then"), d),
        }
    })
}

/// [`attach_both`] where the dispatcher cannot be pinned: a clsact qdisc of the
/// interface's own and the backend's filters on it running the programs themselves (as
/// before the dispatcher existed), so that they outlive the agent.
fn attach_direct(
    st: &mut State,
    dev: Dev,
    (ingress, egress): (hooked::Prepared, hooked::Prepared),
    counters: MapEntries,
) -> Result<Iface, BackendError> {
    let undo = |tc: &mut Netlink, e: BackendError| match detach(tc, dev) {
        Ok(()) => e,
        Err(d) => dataplane(&format!("{e}; and then"), d),
    };
    st.tc
        .add_clsact(dev)
        .map_err(|e| dataplane(&format!("attach to {}", dev.name), e))?;
    let ingress = Hooked::attach(ingress, Target::Filter(&mut st.tc), dev, Direction::Ingress)
        .map_err(|e| undo(&mut st.tc, e))?;
    let egress = match Hooked::attach(egress, Target::Filter(&mut st.tc), dev, Direction::Egress) {
        Ok(h) => h,
        Err(e) => return Err(undo(&mut st.tc, e)),
    };
    let egress_mark = mark_egress(st, dev, Hook::Filters)?;
    Ok(Iface {
        dispatch: None,
        ingress,
        egress,
        index: dev.index,
        hook: Hook::Filters,
        egress_mark,
        counters,
    })
}

/// Hooks the dispatcher to `dev`'s packets: a clsact qdisc bound to the shared `blocks`
/// added (the blocks' filters set when the bind made the blocks, the first interface's),
/// or found there (a previous backend's); or, where `dev` has a clsact qdisc not bound
/// to them, the backend's filters set on it.
fn hook(st: &mut State, blocks: Blocks, dev: Dev) -> Result<Hook, BackendError> {
    let attach = |e| dataplane(&format!("attach to {}", dev.name), e);
    if st.tc.add_clsact_shared(dev, blocks).map_err(attach)? {
        if let Err(e) = block_filters(&mut st.tc, &st.dispatch, blocks, Existing::Fail) {
            let _ = del_clsact(&mut st.tc, dev);
            return Err(e);
        }
        return Ok(Hook::Shared);
    }
    match st.tc.clsact(dev).map_err(attach)? {
        Some(c) if c.bound_to(blocks) => Ok(Hook::Shared),
        Some(_) => match set_filters(&mut st.tc, &st.dispatch, dev) {
            Ok(()) => Ok(Hook::Filters),
            Err(e) => Err(match detach(&mut st.tc, dev) {
                Ok(()) => e,
                Err(d) => dataplane(&format!("{e}; and then"), d),
            }),
        },
        None => Err(dataplane(
            &format!("attach to {}", dev.name),
            "its clsact qdisc was there, then gone",
        )),
    }
}

/// Puts the dispatcher's filters on the shared `blocks` (a filter already there is kept
/// with [`Existing::Fail`], replaced with [`Existing::Replace`]); a block that does not
/// exist (no qdisc bound to it yet) is skipped.
pub(super) fn block_filters(
    tc: &mut Netlink,
    dispatch: &Dispatcher,
    blocks: Blocks,
    existing: Existing,
) -> Result<(), BackendError> {
    use std::os::fd::AsRawFd;
    for dir in Direction::BOTH {
        let name = dispatcher_name(dir);
        let fd = dispatch.program(dir).as_raw_fd();
        match tc.set_block_filter(blocks.of(dir), (fd, &name), existing) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) && existing == Existing::Fail => {}
            Err(e) if e.errno() == Some(libc::EINVAL) && existing == Existing::Replace => {}
            Err(e) => {
                let block = blocks.of(dir);
                return Err(dataplane(&format!("set the filter of tc block {block}"), e));
            }
        }
    }
    Ok(())
}

/// Takes the dispatcher off `dev`: its clsact qdisc deleted when it is bound to the
/// shared blocks (the backend's), its filters deleted otherwise.
pub(super) fn unhook(tc: &mut Netlink, dev: Dev, hook: Hook) -> Result<(), BackendError> {
    match hook {
        Hook::Shared => del_clsact(tc, dev),
        Hook::Filters => detach(tc, dev),
    }
}

/// Takes `iface`'s programs off: the dispatcher unhooked, then (dropped) its dispatcher
/// entry, its values and its egress mark. When that fails the interface keeps its place,
/// so that it is not left dispatched to a program without values for it.
pub(super) fn remove(st: &mut State, iface: &str) -> Result<(), BackendError> {
    let Some(o) = st.ifaces.remove(iface) else {
        return Ok(());
    };
    let dev = Dev {
        name: iface,
        index: o.index,
    };
    if let Err(e) = unhook(&mut st.tc, dev, o.hook) {
        st.ifaces.insert(iface.to_string(), o);
        return Err(e);
    }
    Ok(())
}

/// Deletes what a previous backend left on the interfaces this one does not program
/// (after an apply that succeeded: the ruleset is then in effect on every interface it
/// names): its filters, its dispatcher entries, its qdiscs bound to the shared blocks;
/// on those it programs they were replaced or taken over. A failed deletion is tried again
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
        let dev = Dev { name: "", index };
        let clsact = st
            .tc
            .clsact(dev)
            .map_err(|e| dataplane("look up a qdisc", e))?;
        match clsact {
            Some(c) if c.bound_to(st.blocks) => del_clsact(&mut st.tc, dev)?,
            // Another program's shared blocks: their filters are not the interface's.
            Some(c) if c.shared() => {}
            Some(_) => detach(&mut st.tc, dev)?,
            None => {}
        }
        st.dispatch.forget(index);
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

/// How the dispatcher is hooked to an interface's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hook {
    /// Its clsact qdisc is bound to the shared blocks (the backend's: deleted with the
    /// interface's programs).
    Shared,
    /// Its clsact qdisc is not (another program's, or made before the backend used
    /// shared blocks): the backend's filters on it run the dispatcher, and only they are
    /// deleted with the interface's programs.
    Filters,
}

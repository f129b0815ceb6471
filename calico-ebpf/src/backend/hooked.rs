//! One interface's programs: generated and found among the loaded ones (or loaded),
//! then put in the interface's dispatcher slots ([`crate::dispatch`]) or, where the
//! dispatcher cannot be pinned, attached with a filter of their own, in place of the ones
//! it has.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::BackendError;

use super::{dataplane, from_generate, options, EbpfConfig};
use crate::dispatch::{Dispatcher, Slot};
use crate::generate::{generate_with, params, BaseChains, Plan};
use crate::sets::Maps;
use crate::shared::{Entry, ProgramCache, SharedProgram};
use crate::tc::{Dev, Direction, Existing, FilterSpec, Netlink, NAME_PREFIX, PRIORITY};

/// One direction of an interface: its hold on the shared program (its values in the
/// program's params map) and what its program reaches. Its dispatcher slot is the
/// interface's ([`super::Iface::dispatch`]).
pub(super) struct Hooked {
    pub(super) entry: Entry,
    pub(super) chains: BTreeSet<String>,
    pub(super) sets: BTreeSet<String>,
}
/// One direction's program for an interface, generated and loaded (or found loaded),
/// not attached yet.
pub(super) struct Prepared {
    program: Arc<SharedProgram>,
    /// The interface's values of the program's slots (the params map value).
    value: Vec<u8>,
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
}

/// Generates the program of `plan` for `iface` and finds it among the loaded ones, or
/// loads it (the verifier runs only then).
pub(super) fn prepare(
    config: &EbpfConfig,
    programs: &mut ProgramCache,
    maps: &Maps,
    (iface, ingress): (&str, bool),
    ruleset: (&Ruleset, &BaseChains),
    plan: &Plan,
    ids: &BTreeMap<String, u32>,
) -> Result<Prepared, BackendError> {
    let g = generate_with(ruleset, plan, ids, options(ingress)).map_err(from_generate)?;
    let dir = if ingress { "ingress" } else { "egress" };
    let program = programs
        .get_or_load(ingress, &g.pieces, maps, &config.license)
        .map_err(|e| dataplane(&format!("load the {dir} program of {iface}"), e))?;
    Ok(Prepared {
        program,
        value: params::value(&g.params),
        chains: g.chains,
        sets: g.sets,
    })
}

/// Where an interface's program of one direction is put.
pub(super) enum Target<'a> {
    /// Its dispatcher slot.
    Slot(&'a Slot),
    /// The backend's filter on the interface, running the program itself: where the
    /// dispatcher's program arrays cannot be pinned (no BPF filesystem at `/sys/fs/bpf`),
    /// so that the programs outlive the agent all the same.
    Filter(&'a mut Netlink),
}

impl Hooked {
    /// Writes the interface's values and puts the program at `target` for `dir`; the
    /// values are deleted again (dropped) when that fails. A slot is not dispatched to
    /// before [`Slot::enable`].
    pub(super) fn attach(
        p: Prepared,
        target: Target,
        dev: Dev,
        dir: Direction,
    ) -> Result<Hooked, BackendError> {
        let entry = Entry::write(p.program, dev.index, &p.value)
            .map_err(|e| dataplane(&format!("write the values of {}", dev.name), e))?;
        put(target, entry.program(), dev, dir)?;
        Ok(Hooked {
            entry,
            chains: p.chains,
            sets: p.sets,
        })
    }

    /// Puts `p` in effect: the interface's values written, then `target` switched to the
    /// program when it is another one (atomically: one program-array write, or the
    /// filter replaced in place), then the old program's values of the interface
    /// deleted. The same program again is only the values' write.
    pub(super) fn update(
        &mut self,
        target: Target,
        p: Prepared,
        dev: Dev,
        dir: Direction,
    ) -> Result<(), BackendError> {
        let write = |e| dataplane(&format!("write the values of {}", dev.name), e);
        if Arc::ptr_eq(self.entry.program(), &p.program) {
            p.program.write(dev.index, &p.value).map_err(write)?;
        } else {
            let entry = Entry::write(p.program, dev.index, &p.value).map_err(write)?;
            put(target, entry.program(), dev, dir)?;
            self.entry = entry;
        }
        self.chains = p.chains;
        self.sets = p.sets;
        Ok(())
    }
}

/// Puts `program` at `target` for `dir`.
fn put(
    target: Target,
    program: &SharedProgram,
    dev: Dev,
    dir: Direction,
) -> Result<(), BackendError> {
    match target {
        Target::Slot(slot) => slot
            .set(dir, program.loaded().fd())
            .map_err(|e| dataplane(&format!("dispatch {} {dir} to its program", dev.name), e)),
        Target::Filter(tc) => {
            let name = format!("{NAME_PREFIX}{}", program.name());
            let spec = FilterSpec {
                ifindex: dev.index,
                direction: dir,
                priority: PRIORITY,
                program_fd: program.loaded().fd().as_raw_fd(),
                name: &name,
            };
            tc.set_filter(dev, &spec, Existing::Replace)
                .map_err(|e| dataplane(&format!("attach to {}", dev.name), e))
        }
    }
}

/// Points the backend's filters on `dev` (both directions) at the dispatcher's programs,
/// replacing those there: for an interface whose clsact qdisc is not bound to the shared
/// blocks (another program's, or made before the backend used shared blocks).
pub(super) fn set_filters(
    tc: &mut Netlink,
    dispatch: &Dispatcher,
    dev: Dev,
) -> Result<(), BackendError> {
    for dir in Direction::BOTH {
        let name = super::filters::dispatcher_name(dir);
        let spec = FilterSpec {
            ifindex: dev.index,
            direction: dir,
            priority: PRIORITY,
            program_fd: dispatch.program(dir).as_raw_fd(),
            name: &name,
        };
        tc.set_filter(dev, &spec, Existing::Replace)
            .map_err(|e| dataplane(&format!("attach to {}", dev.name), e))?;
    }
    Ok(())
}

/// Deletes the backend's filters on `dev`, both directions (those it does not have are
/// no error).
pub(super) fn detach(tc: &mut Netlink, dev: Dev) -> Result<(), BackendError> {
    for dir in Direction::BOTH {
        tc.del_filter(dev, dir, PRIORITY)
            .map_err(|e| dataplane(&format!("detach from {}", dev.name), e))?;
    }
    Ok(())
}

/// One interface's new programs, loaded, not attached yet.
pub(super) struct Pending {
    pub(super) ingress: Option<Prepared>,
    pub(super) egress: Option<Prepared>,
}

//! One interface's programs: generated and found among the loaded ones (or loaded),
//! then attached, or put in place of the ones it has.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::BackendError;

use super::{dataplane, from_generate, ifindex, in_netns, EbpfConfig, OPTIONS};
use crate::error::Error;
use crate::generate::{generate, params, Plan};
use crate::program::{Attached, Loaded};
use crate::sets::Maps;
use crate::shared::{Entry, ProgramCache, SharedProgram};
use crate::sys::TcxDirection;

/// One direction of an interface: its link, then its hold on the shared program (so a
/// drop detaches before the interface's values go).
pub(super) struct Hooked {
    pub(super) attached: Attached,
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
    ruleset: &Ruleset,
    plan: &Plan,
    ids: &BTreeMap<String, u32>,
) -> Result<Prepared, BackendError> {
    let g = generate(ruleset, plan, ids, OPTIONS).map_err(from_generate)?;
    let dir = if ingress { "ingress" } else { "egress" };
    let program = programs
        .get_or_load(ingress, &g.program, maps, &config.license)
        .map_err(|e| dataplane(&format!("load the {dir} program of {iface}"), e))?;
    Ok(Prepared {
        program,
        value: params::value(&g.params),
        chains: g.chains,
        sets: g.sets,
    })
}

impl Hooked {
    /// Writes the interface's values and attaches the program to `iface` (index
    /// `index`); the values are deleted again when attaching fails.
    pub(super) fn attach(
        config: &EbpfConfig,
        p: Prepared,
        iface: &str,
        index: u32,
        dir: TcxDirection,
    ) -> Result<Hooked, BackendError> {
        let entry = Entry::write(p.program, index, &p.value)
            .map_err(|e| dataplane(&format!("write the values of {iface}"), e))?;
        let attached = in_netns(config, || attach(entry.program().loaded(), iface, dir))
            .and_then(|r| r)
            .map_err(|e| dataplane(&format!("attach to {iface}"), e))?;
        Ok(Hooked {
            attached,
            entry,
            chains: p.chains,
            sets: p.sets,
        })
    }

    /// Puts `p` in effect: the interface's values written, then the link switched to
    /// the program when it is another one (atomically), then the old program's values
    /// of the interface deleted. The same program again is only the values' write.
    pub(super) fn update(
        &mut self,
        p: Prepared,
        iface: &str,
        index: u32,
    ) -> Result<(), BackendError> {
        let write = |e| dataplane(&format!("write the values of {iface}"), e);
        if Arc::ptr_eq(self.entry.program(), &p.program) {
            p.program.write(index, &p.value).map_err(write)?;
        } else {
            let entry = Entry::write(p.program, index, &p.value).map_err(write)?;
            self.attached
                .replace(entry.program().loaded())
                .map_err(|e| dataplane(&format!("replace the program of {iface}"), e))?;
            self.entry = entry;
        }
        self.chains = p.chains;
        self.sets = p.sets;
        Ok(())
    }
}

/// Attaches `p` to `iface` of the calling thread's namespace.
pub(super) fn attach(p: &Loaded, iface: &str, dir: TcxDirection) -> Result<Attached, Error> {
    let index = ifindex(iface)?;
    if index == 0 {
        return Err(Error::Refused(format!(
            "interface {iface:?} does not exist"
        )));
    }
    Ok(p.attach(index, dir)?)
}

/// One interface's new programs, loaded, not attached yet.
pub(super) struct Pending {
    pub(super) ingress: Option<Prepared>,
    pub(super) egress: Option<Prepared>,
}

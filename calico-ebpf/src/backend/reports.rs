//! What the backend reports of itself: the programs it holds and what each filter runs
//! (from the kernel), its own counts, and the per-interface packet counters.

use super::*;

impl EbpfBackend {
    /// The programs the backend holds and what each interface's dispatcher slots hold,
    /// as the kernel reports it (a program-array lookup per interface and direction).
    pub fn programs_blocking(&self) -> Result<Programs, BackendError> {
        let mut st = self
            .inner
            .state
            .lock()
            .map_err(|_| dataplane("programs", "state lock poisoned"))?;
        let st = &mut *st;
        let mut attached = BTreeMap::new();
        for (name, o) in &st.ifaces {
            let dev = Dev {
                name,
                index: o.index,
            };
            let mut running = |dir| match &o.dispatch {
                Some(slot) => slot.program_id(dir).ok_or_else(|| {
                    dataplane("programs", format!("the {dir} slot of {name} is empty"))
                }),
                None => running(&mut st.tc, dev, dir),
            };
            let ingress = running(Direction::Ingress)?;
            let egress = running(Direction::Egress)?;
            attached.insert(name.clone(), (ingress, egress));
        }
        Ok(Programs {
            loaded: st.programs.ids().collect(),
            pieces: st.programs.piece_ids().collect(),
            loads: st.programs.loads(),
            attached,
            attaching: st.attaching,
        })
    }

    /// What the backend did so far, from its own records (no kernel query, so cheap at
    /// any number of interfaces).
    pub fn counters_blocking(&self) -> Result<Counters, BackendError> {
        let st = self
            .inner
            .state
            .lock()
            .map_err(|_| dataplane("counters", "state lock poisoned"))?;
        Ok(Counters {
            loaded: st.programs.len(),
            loads: st.programs.loads(),
            interfaces: st.ifaces.len(),
            attaching: st.attaching,
        })
    }

    /// The counters of every interface with the backend's programs, by name: what its
    /// ingress and egress programs judged, accepted and dropped since it got them. One map
    /// lookup per interface and direction; no netlink query.
    pub fn interface_counters_blocking(
        &self,
    ) -> Result<BTreeMap<String, InterfaceCounters>, BackendError> {
        // The rows are read without the lock: an apply need not wait for 20,000 lookups.
        let (map, ifaces) = {
            let st = self
                .inner
                .state
                .lock()
                .map_err(|_| dataplane("counters", "state lock poisoned"))?;
            let ifaces: Vec<(String, u32)> = st
                .ifaces
                .iter()
                .map(|(n, o)| (n.clone(), o.index))
                .collect();
            (st.sets.maps().counters().clone(), ifaces)
        };
        let mut all = BTreeMap::new();
        for (name, index) in ifaces {
            let read = map.read(index);
            let read = read.map_err(|e| dataplane(&format!("read the counters of {name}"), e))?;
            // None: its programs went since the list was taken.
            if let Some(c) = read {
                all.insert(name, c);
            }
        }
        Ok(all)
    }
}

/// What [`EbpfBackend::programs_blocking`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programs {
    /// The kernel ids of the programs loaded, each run by one interface or several (the
    /// entries of policies split into pieces).
    pub loaded: BTreeSet<u32>,
    /// The kernel ids of the later pieces of split policies, in their program arrays:
    /// those of the programs loaded, and those of programs replaced whose entry the kernel
    /// has not released yet ([`crate::shared::ProgramCache::purge`]).
    pub pieces: BTreeSet<u32>,
    /// The program loads (verifier runs) since the backend started.
    pub loads: u64,
    /// Per interface, the kernel ids of the programs the dispatcher runs for its ingress
    /// and egress packets, from its program arrays.
    pub attached: BTreeMap<String, (u32, u32)>,
    /// Time spent attaching the programs of interfaces that had none, since the backend
    /// started: writing their values and dispatcher entries, and adding their clsact
    /// qdisc bound to the shared blocks.
    pub attaching: Duration,
}

/// What [`EbpfBackend::counters_blocking`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// How many programs are loaded.
    pub loaded: usize,
    /// The program loads (verifier runs) since the backend started.
    pub loads: u64,
    /// How many interfaces have the backend's programs.
    pub interfaces: usize,
    /// As [`Programs::attaching`].
    pub attaching: Duration,
}

//! [`EbpfBackend`]: the [`AclBackend`] of generated eBPF programs, for the subset of the IR
//! this crate implements; the rest is refused with [`BackendError::Unsupported`] naming it.
//!
//! Placement. Every interface the ruleset names in a verdict map (the workloads', the
//! named host endpoints') and every configured host interface gets two programs, one per
//! direction, which the dispatcher ([`crate::dispatch`]) runs for its packets: the
//! interface's `clsact` qdisc is bound to two shared tc blocks ([`EbpfConfig::blocks`],
//! [`crate::tc::Blocks`]), whose one `bpf` filter each (direct action, the backend's
//! priority and handle) runs the dispatcher, which tail-calls the interface's program by
//! its index. An interface that has a clsact qdisc not bound to the blocks (another
//! program's, or one a backend without shared blocks filtered) gets the backend's
//! filters on that qdisc instead, running the dispatcher too; the qdisc and the other
//! filters on it are left alone.
//!
//! * ingress: prerouting, then input for a packet to the host (the kernel's route lookup
//!   says so) or forward for one to be forwarded, all with the input interface bound
//!   and no output interface;
//! * egress: output for a packet the host sent, forward for a forwarded one, with the
//!   output interface bound and no input interface.
//!
//! The forward hook is thus evaluated in two halves, the mark carried between them (the
//! equivalence test holds this to the interpreter on compiled rulesets). Traffic on
//! interfaces without programs is not filtered, so a ruleset that filters such traffic
//! (a wildcard host endpoint, say) is refused rather than half-enforced.
//!
//! Sharing: the programs are generated with the endpoint's own addresses as data
//! ([`crate::generate::params`]), and each distinct generated program is loaded once
//! ([`crate::shared`]): the interfaces of workloads with the same policies run the same
//! loaded program, each with its entry in the program's params map. Adding an endpoint
//! whose programs are loaded is generating them (to find them), a few map writes (its
//! values, its dispatcher slots and entry) and one netlink request, the clsact qdisc
//! bound to the shared blocks: no filter creation and no verifier run, and the kernel's
//! cost of the bind does not grow with the interfaces bound (a private block's does:
//! see [`crate::tc::Blocks`]). A program no interface runs is unloaded (its slots
//! emptied first).
//!
//! Updates: a change set's set changes are map writes ([`SetTable`]); a program is
//! generated again only for the interfaces whose reached chains, sets or map entries
//! changed, and replaces the attached one atomically (the interface's dispatcher slot
//! written), or is only its values' write when the same program comes out. An apply
//! looks only at the interfaces the change set names or reaches (and those waiting to
//! exist), so its cost does not grow with the interfaces it leaves alone;
//! [`EbpfBackend::dump_blocking`] checks them all. Not atomic across interfaces or between sets and programs: see
//! [`AclBackend::apply`] on [`EbpfBackend`].
//!
//! Lifetime. Qdiscs and filters are not file descriptors: they stay when the backend is
//! dropped (or the agent exits), with the programs, maps and map entries they use (the
//! dispatcher's maps pinned in the BPF filesystem, [`crate::pins`]), so the interfaces
//! stay filtered as they were, like nftables rules stay. A backend started in the same
//! namespace takes over: [`EbpfBackend::new`] opens the dispatcher's pinned maps (the
//! interfaces' entries), finds the filters a previous one left (their place and name:
//! also those of a backend without shared blocks) and the qdiscs bound to the blocks,
//! and puts its dispatcher on the blocks' filters; its applies replace the interfaces'
//! programs in their slots (or the old per-interface filters with the dispatcher), and
//! the first apply that succeeds deletes the entries, filters and bound qdiscs of the
//! interfaces it does not program. Until then the old programs run with the old maps;
//! what is lost is the old backend's state: its flow table (connections seen before the
//! take-over of an interface are new to its new programs, so a reply the policy would
//! not allow as new is dropped), which is no worse than before, when the programs went
//! with the agent. An interface the ruleset stops naming has its qdisc (or, on a qdisc
//! not its own, its filters) deleted; [`EbpfBackend::remove_all_blocking`] deletes every
//! filter and bound qdisc of the backend in the namespace (leaving the eBPF dataplane).
//! Where the BPF filesystem is not mounted at `/sys/fs/bpf` (an agent started under `ip
//! netns exec`, which remounts `/sys`) the dispatcher's program arrays cannot be pinned,
//! and would be emptied when the agent exits: there each interface gets its own clsact
//! qdisc and filters running its programs themselves, as before the dispatcher existed
//! (its add then costs the private block's bind).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use calico_core::dataplane::ir::{Ruleset, Verdict};
use calico_core::dataplane::{AclBackend, BackendError, ChangeSet};

use crate::adopt::FlowTable;
use crate::counters::InterfaceCounters;
use crate::dispatch::{Dispatcher, Slot};
use crate::entries::MapEntries;
use crate::error::{Error, GenerateError, SysError};
use crate::generate::{
    generate, BaseChains, Conntrack, Counting, FlowTimeouts, Logs, Options, PieceBudget, Plan,
    Sharing,
};
use crate::program::Loaded;
use crate::set_table::SetTable;
use crate::sets::Maps;
use crate::shared::ProgramCache;
use crate::tc::{
    Blocks, Clsact, Dev, Direction, Existing, FilterSpec, Netlink, TcError, NAME_PREFIX,
};

mod config;
mod filters;
mod hooked;
mod ifaces;
mod reports;
mod scope;

pub use config::{EbpfConfig, StartError};
use config::{NEEDS_CLSACT, NEEDS_CLS_BPF};
pub use filters::remove_leftovers;
use filters::{
    attach_both, block_dispatchers, block_filters, inherited, open_netlink, probe_tc, remove,
    remove_filters, running, sweep, Hook,
};
use ifaces::{ifindex, ifindexes, ifindexes_of};
pub use reports::{Counters, Programs};

use hooked::{detach, prepare, set_filters, Hooked, Pending, Target};
use scope::{check_supported, plans, touched, Touched};

/// The policy programs' options: log statements refused, conntrack from the programs'
/// own flow table (the kernel tracks a namespace's connections only when netfilter asks
/// it to, which this backend does not).
const OPTIONS: Options = Options {
    logs: Logs::Refuse,
    conntrack: Conntrack::Table(FlowTimeouts::DEFAULT),
    sharing: Sharing::ByInterface,
    counting: Counting::Ingress,
    pieces: PieceBudget::DEFAULT,
};

/// [`OPTIONS`] for the program of one direction: counted in that direction's row.
fn options(ingress: bool) -> Options {
    let counting = if ingress {
        Counting::Ingress
    } else {
        Counting::Egress
    };
    Options {
        counting,
        ..OPTIONS
    }
}

/// An interface with the backend's programs. Dropping it deletes its dispatcher entry
/// (first), its values and its egress mark but not its qdisc or filters: where the
/// interface is gone they went with it, and otherwise `remove` deletes them first.
struct Iface {
    /// Its entry in the dispatcher, pointing at its programs (`None`: its programs run
    /// from filters of their own, [`hooked::Target::Filter`]).
    dispatch: Option<Slot>,
    ingress: Hooked,
    egress: Hooked,
    /// The interface's index when the programs were attached.
    index: u32,
    /// How the dispatcher is hooked to its packets.
    hook: Hook,
    /// Its entry among the interfaces with an egress program; dropped last, after the
    /// programs are detached (until then a forwarded packet's flow is recorded by the
    /// egress program).
    egress_mark: MapEntries,
    /// Its counter rows, written before the programs are attached.
    counters: MapEntries,
}

impl Iface {
    /// Leaves its values and egress mark in place when dropped (with its filters).
    fn keep(&mut self) {
        if let Some(d) = &mut self.dispatch {
            d.keep();
        }
        self.ingress.entry.keep();
        self.egress.entry.keep();
        self.egress_mark.keep();
        self.counters.keep();
    }
}

struct State {
    programmed: Ruleset,
    sets: SetTable,
    ifaces: BTreeMap<String, Iface>,
    programs: ProgramCache,
    /// Interfaces the ruleset names that did not exist at the last apply (looked at
    /// again at every apply).
    waiting: BTreeSet<String>,
    /// The chains [`check_supported`] reached last time (`None`: not run yet).
    unattached_reach: Option<BTreeSet<String>>,
    /// Time spent attaching new interfaces' programs (see [`Programs::attaching`]).
    attaching: Duration,
    /// The netlink socket in the configured namespace.
    tc: Netlink,
    /// The interfaces (by index) with filters of a previous backend, not yet taken over
    /// or deleted.
    inherited: BTreeSet<u32>,
    /// Where split programs pin their program arrays ([`crate::pins`]; `None`: nowhere).
    pin_dir: Option<PathBuf>,
    /// The pins a previous backend left there, removed once its filters are gone.
    inherited_pins: Vec<PathBuf>,
    /// The base chains of `programmed` (`None`: not found yet), found again only when a
    /// change set adds or deletes one.
    bases: Option<Arc<BaseChains>>,
    /// The dispatcher the shared blocks' filters run.
    dispatch: Dispatcher,
    /// The shared blocks (the configuration's).
    blocks: Blocks,
    /// Whether programs are attached with filters of their own rather than through the
    /// dispatcher: where the dispatcher's maps cannot be pinned (no BPF filesystem at
    /// `/sys/fs/bpf`), whose program arrays would be emptied when the agent exits.
    direct: bool,
}

impl Drop for State {
    /// The filters stay (see the module documentation), and so do the values and marks
    /// their programs read, the later pieces of split ones and the dispatcher's maps
    /// (pinned).
    fn drop(&mut self) {
        for o in self.ifaces.values_mut() {
            o.keep();
        }
        self.programs.keep();
        // Nothing dispatched (no interface of this backend's or a previous one's): the
        // dispatcher's maps are not needed after it.
        if self.ifaces.is_empty() && self.inherited.is_empty() {
            self.dispatch.unpin();
        }
        // The pin directory, when nothing is pinned in it.
        crate::pins::remove(self.pin_dir.as_deref(), &[]);
    }
}

/// The eBPF ACL backend. See the module documentation.
pub struct EbpfBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: EbpfConfig,
    /// Where the flow table came from.
    flow_table: FlowTable,
    state: Mutex<State>,
}

fn dataplane(op: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Dataplane {
        op: op.into(),
        reason: e.to_string(),
    }
}

fn from_generate(e: GenerateError) -> BackendError {
    BackendError::Unsupported(e.to_string())
}

impl EbpfBackend {
    /// Starts the backend: creates the maps, loads a program with everything the policy
    /// programs use but rules, and attaches it to `lo` with a filter of its own priority
    /// (deleted at once, with the clsact qdisc when the probe added it), then lists the
    /// filters a previous backend left (see the module documentation). Programs nothing
    /// until the first [`AclBackend::apply`].
    pub fn new(config: EbpfConfig) -> Result<EbpfBackend, StartError> {
        config.blocks.check().map_err(StartError::Blocks)?;
        let (mut tc, lo) = open_netlink(&config).map_err(StartError::Netlink)?;
        let mut inherited = inherited(&mut tc).map_err(StartError::TakeOver)?;
        let pin_dir = crate::pins::dir(config.netns.as_deref());
        // The dispatchers running: on the blocks, else in filters on interfaces.
        let mut running =
            block_dispatchers(&mut tc, config.blocks).map_err(StartError::TakeOver)?;
        for (r, found) in running.iter_mut().zip(inherited.dispatchers) {
            *r = r.or(found);
        }
        let dispatch = Dispatcher::open(running, pin_dir.as_deref(), &config.license)
            .map_err(StartError::Dispatch)?;
        inherited.programs.extend(dispatch.inherited_programs());
        inherited.interfaces.extend(dispatch.inherited().keys());
        let bound = tc.clsacts().map_err(StartError::TakeOver)?;
        let bound = bound.iter().filter(|c| c.bound_to(config.blocks));
        inherited
            .interfaces
            .extend(bound.map(|c: &Clsact| c.ifindex));
        let (flows, flow_table) = crate::adopt::take_over(&inherited.programs);
        let maps = Maps::create_with(config.set_capacity, flows).map_err(StartError::Maps)?;
        let probe = generate(
            &Ruleset::default(),
            &Plan::ByDestination {
                local: Vec::new(),
                forwarded: Vec::new(),
            },
            &BTreeMap::new(),
            OPTIONS,
        )
        .map_err(StartError::Probe)?;
        let loaded = Loaded::load_pieces("cali_probe", &probe.pieces, &maps, None, &config.license)
            .map_err(StartError::Load)?;
        probe_tc(&mut tc, &loaded, lo)?;
        // A previous backend's dispatcher, on blocks that exist, replaced by this one's.
        block_filters(&mut tc, &dispatch, config.blocks, Existing::Replace).map_err(|e| {
            StartError::Dispatch(SysError::Unexpected {
                what: "the shared blocks' filters",
                reason: e.to_string(),
            })
        })?;
        let dispatch_pin = |p: &PathBuf| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(crate::dispatch::PIN_PREFIX)
        };
        let inherited_pins = pin_dir.as_deref().map(|d| {
            let mut pins = crate::pins::list(d);
            pins.retain(|p| !dispatch_pin(p));
            pins
        });
        let blocks = config.blocks;
        let direct = pin_dir.is_none();
        Ok(EbpfBackend {
            inner: Arc::new(Inner {
                config,
                flow_table,
                state: Mutex::new(State {
                    programmed: Ruleset::default(),
                    sets: SetTable::new(maps),
                    ifaces: BTreeMap::new(),
                    programs: ProgramCache::pinned(pin_dir.clone()),
                    waiting: BTreeSet::new(),
                    unattached_reach: None,
                    attaching: Duration::ZERO,
                    tc,
                    inherited: inherited.interfaces,
                    pin_dir,
                    inherited_pins: inherited_pins.unwrap_or_default(),
                    bases: None,
                    dispatch,
                    blocks,
                    direct,
                }),
            }),
        })
    }

    /// Where the flow table came from: a previous backend's, whose connections go on
    /// (see [`crate::adopt`]), or new.
    pub fn flow_table(&self) -> &FlowTable {
        &self.inner.flow_table
    }

    /// [`AclBackend::apply`], on the calling thread (program loads take milliseconds each;
    /// the async method runs this on tokio's blocking pool).
    pub fn apply_blocking(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        self.inner.apply(changes)
    }

    /// [`AclBackend::dump`], on the calling thread.
    pub fn dump_blocking(&self) -> Result<Ruleset, BackendError> {
        self.inner.dump()
    }

    /// Deletes every filter of this backend (or of a previous one) in the namespace, as a
    /// filter dump finds them, and forgets the interfaces it programmed: leaving the eBPF
    /// dataplane. The ruleset it enforces is then empty; an apply programs again.
    pub fn remove_all_blocking(&self) -> Result<(), BackendError> {
        let mut st = self
            .inner
            .state
            .lock()
            .map_err(|_| dataplane("remove all", "state lock poisoned"))?;
        let st = &mut *st;
        remove_filters(&mut st.tc)?;
        // Their filters are gone: dropped, the interfaces' values and marks go too.
        st.ifaces.clear();
        st.dispatch.forget_all();
        st.inherited.clear();
        st.waiting.clear();
        st.programmed = Ruleset::default();
        st.bases = None;
        st.unattached_reach = None;
        st.programs.purge();
        let pins = std::mem::take(&mut st.inherited_pins);
        crate::pins::remove(st.pin_dir.as_deref(), &pins);
        Ok(())
    }
}

/// Runs `f` in the configured namespace.
fn in_netns<T: Send>(config: &EbpfConfig, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    match &config.netns {
        None => Ok(f()),
        Some(path) => calico_netns::enter_path(path, f).map_err(|e| {
            Error::Sys(SysError::Unexpected {
                what: "enter the network namespace",
                reason: e.to_string(),
            })
        }),
    }
}

impl Inner {
    /// Applies `changes`. Everything that can fail for the change set's content (the IR's
    /// rules, unsupported features, the verifier) fails before anything is written, and
    /// then nothing of it is in effect. After that come the set writes (undone if one
    /// fails), then the program replacements, interface by interface: a kernel failure
    /// there (an interface removed meanwhile) leaves the interfaces before it updated.
    /// Program loads are synchronous `bpf(2)` calls (milliseconds each); an interface
    /// whose program is loaded already (another interface's) costs none. Programs no
    /// interface runs any more are unloaded at the end, whether the apply succeeded or
    /// not.
    fn apply(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| dataplane("apply", "state lock poisoned"))?;
        let result = self
            .apply_locked(&mut st, changes)
            .and_then(|()| sweep(&mut st));
        st.programs.purge();
        result
    }

    /// [`Inner::apply`] under the lock. The ruleset is changed in place (no copy: it is
    /// most of what an apply would cost otherwise) and reverted when a later step fails.
    fn apply_locked(&self, st: &mut State, changes: &ChangeSet) -> Result<(), BackendError> {
        let t = touched(changes, &st.programmed);
        let look = self.to_look_at(st, &t);
        let indexes = ifindexes_of(&mut st.tc, &look)?;
        // An interface deleted (and perhaps made again) lost its programs with it. (Only
        // those looked at: the others' indexes were not asked for.)
        for (name, &index) in &indexes {
            if st.ifaces.get(name).is_some_and(|o| o.index != index) {
                st.ifaces.remove(name);
            }
        }
        // From the state as enforced (what `dump` shows, which change sets are computed
        // against): without the entries of interfaces that have no programs.
        let mut next = std::mem::take(&mut st.programmed);
        let unattached = look.iter().filter(|n| !st.ifaces.contains_key(*n));
        let stripped: Vec<_> = unattached.flat_map(|n| strip(&mut next, n)).collect();
        let result = changes
            .apply_undoable(&mut next)
            .map_err(|e| dataplane("apply change set", e))
            .and_then(
                |undo| match self.program(st, changes, &t, (&look, &indexes), &mut next) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        undo.revert(&mut next);
                        Err(e)
                    }
                },
            );
        if result.is_err() {
            for (map, iface, verdict) in stripped {
                next.maps
                    .entry(map)
                    .or_default()
                    .elements
                    .insert(iface, verdict);
            }
        }
        st.programmed = next;
        result
    }

    /// Puts `next` (the ruleset with `changes` applied) in effect on the interfaces
    /// `look` (with their `indexes`): everything that can fail for its content first, then
    /// the set writes and the programs. The entries of interfaces missing are taken out
    /// of `next`, last.
    fn program(
        &self,
        st: &mut State,
        changes: &ChangeSet,
        t: &Touched,
        (look, indexes): (&BTreeSet<String>, &BTreeMap<String, u32>),
        next: &mut Ruleset,
    ) -> Result<(), BackendError> {
        let unchanged = |r: &BTreeSet<String>| !t.base_chains && r.is_disjoint(&t.chains);
        let reach = match st.unattached_reach.as_ref().is_some_and(unchanged) {
            true => None,
            false => Some(check_supported(next)?),
        };
        let ids = st
            .sets
            .preview_ids(changes)
            .map_err(|e| dataplane("set ids", e))?;
        let bases = match &st.bases {
            Some(b) if !t.base_chains => b.clone(),
            _ => Arc::new(BaseChains::of(next)),
        };

        // Generate and load first: nothing is in effect yet. Interfaces that do not exist
        // carry no traffic: they get their programs at the first apply after they appear.
        let mut pending: BTreeMap<String, (u32, Pending)> = BTreeMap::new();
        let mut missing = BTreeSet::new();
        for iface in look.iter().filter(|i| self.named(next, i)) {
            let index = indexes.get(iface).copied().unwrap_or(0);
            if index == 0 {
                missing.insert(iface.clone());
                continue;
            }
            if let Some(p) = self.pending(st, t, iface, (next, &bases), &ids)? {
                pending.insert(iface.clone(), (index, p));
            }
        }

        st.sets
            .apply(changes)
            .map_err(|e| dataplane("set members", e))?;
        for (iface, (index, p)) in pending {
            self.commit(st, iface, index, p)?;
        }
        // Interfaces the ruleset no longer names: their filters deleted, then their values.
        for iface in look.iter().filter(|i| !self.named(next, i)) {
            remove(st, iface)?;
        }
        // The entries of missing interfaces are not in effect: not recorded as such.
        for name in &missing {
            strip(next, name);
        }
        st.waiting = missing;
        if reach.is_some() {
            st.unattached_reach = reach;
        }
        st.bases = Some(bases);
        Ok(())
    }

    /// The interfaces an apply of a change set touching `t` looks at (and only these,
    /// so that its cost does not grow with the interfaces it leaves alone): those it names
    /// in verdict maps, those whose programs it reaches, and those still to get theirs.
    fn to_look_at(&self, st: &State, t: &Touched) -> BTreeSet<String> {
        let mut look = t.ifaces.clone();
        look.extend(st.waiting.iter().cloned());
        let hosts = self.config.host_interfaces.iter();
        look.extend(hosts.filter(|h| !st.ifaces.contains_key(*h)).cloned());
        if t.reaches_programs() {
            let reached = st
                .ifaces
                .iter()
                .filter(|(n, o)| t.affects(n, &o.ingress) || t.affects(n, &o.egress));
            look.extend(reached.map(|(n, _)| n.clone()));
        }
        look
    }

    /// Whether `iface` needs programs under `r`.
    fn named(&self, r: &Ruleset, iface: &str) -> bool {
        self.config.host_interfaces.iter().any(|h| h == iface)
            || r.maps.values().any(|m| m.elements.contains_key(iface))
    }

    /// The programs `iface` needs under `next` where it has none or `t` reaches them,
    /// generated and loaded (or found loaded); `None` when it keeps both it has.
    fn pending(
        &self,
        st: &mut State,
        t: &Touched,
        iface: &str,
        next: (&Ruleset, &BaseChains),
        ids: &BTreeMap<String, u32>,
    ) -> Result<Option<Pending>, BackendError> {
        let old = st.ifaces.get(iface);
        let redo = |h: Option<&Hooked>| h.is_none_or(|h| t.affects(iface, h));
        let (redo_in, redo_out) = (redo(old.map(|o| &o.ingress)), redo(old.map(|o| &o.egress)));
        if !redo_in && !redo_out {
            return Ok(None);
        }
        let (ingress_plan, egress_plan) = plans(iface);
        let State { sets, programs, .. } = st;
        let mut one = |ingress: bool, plan: &Plan| {
            let at = (iface, ingress);
            prepare(&self.config, programs, sets.maps(), at, next, plan, ids)
        };
        Ok(Some(Pending {
            ingress: redo_in.then(|| one(true, &ingress_plan)).transpose()?,
            egress: redo_out.then(|| one(false, &egress_plan)).transpose()?,
        }))
    }

    /// Puts the programs of `p` in effect on `iface`.
    fn commit(
        &self,
        st: &mut State,
        iface: String,
        index: u32,
        p: Pending,
    ) -> Result<(), BackendError> {
        let dev = Dev {
            name: &iface,
            index,
        };
        if let Some(o) = st.ifaces.get_mut(&iface) {
            let both = [
                (p.ingress, &mut o.ingress, Direction::Ingress),
                (p.egress, &mut o.egress, Direction::Egress),
            ];
            for (new, hooked, dir) in both {
                if let Some(new) = new {
                    let target = match &o.dispatch {
                        Some(slot) => Target::Slot(slot),
                        None => Target::Filter(&mut st.tc),
                    };
                    hooked.update(target, new, dev, dir)?;
                }
            }
            return Ok(());
        }
        let (Some(ingress), Some(egress)) = (p.ingress, p.egress) else {
            return Err(dataplane("apply", format!("{iface} has no programs")));
        };
        let start = Instant::now();
        let attached = attach_both(st, self.config.blocks, dev, (ingress, egress));
        st.attaching += start.elapsed();
        let o = attached?;
        st.ifaces.insert(iface, o);
        Ok(())
    }

    /// What this backend enforces: the ruleset it was given, less the verdict-map entries
    /// of interfaces without their programs (missing when it was applied, or deleted
    /// since), so that the agent's resync puts them back once the interface exists. A new
    /// backend's dump is empty even where a previous one's filters still run: the agent
    /// then applies its whole ruleset, which replaces them (see the module
    /// documentation).
    fn dump(&self) -> Result<Ruleset, BackendError> {
        let st = self
            .state
            .lock()
            .map_err(|_| dataplane("dump", "state lock poisoned"))?;
        enforced(&self.config, &st)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Unavailable(format!("eBPF backend worker thread: {e}")))?
}

#[async_trait]
impl AclBackend for EbpfBackend {
    /// See [`EbpfBackend::apply_blocking`] and the module documentation: what can fail for
    /// the change set's content fails before anything is written.
    async fn apply(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        let inner = self.inner.clone();
        let changes = changes.clone();
        blocking(move || inner.apply(&changes)).await
    }

    /// See [`EbpfBackend::dump_blocking`].
    async fn dump(&self) -> Result<Ruleset, BackendError> {
        let inner = self.inner.clone();
        blocking(move || inner.dump()).await
    }
}

/// The ruleset as enforced: the one programmed, less the verdict-map entries of
/// interfaces deleted (or made again) since their programs were attached.
fn enforced(config: &EbpfConfig, st: &State) -> Result<Ruleset, BackendError> {
    let mut r = st.programmed.clone();
    let names: BTreeSet<String> = r
        .maps
        .values()
        .flat_map(|m| m.elements.keys().cloned())
        .collect();
    let indexes =
        ifindexes(config, names.into_iter().collect()).map_err(|e| dataplane("interfaces", e))?;
    let live = |name: &String| {
        st.ifaces
            .get(name)
            .is_some_and(|o| indexes.get(name) == Some(&o.index))
    };
    for m in r.maps.values_mut() {
        m.elements.retain(|name, _| live(name));
    }
    Ok(r)
}

/// Removes the verdict-map entries of `iface` from `r`; what it removed, as (map,
/// interface, verdict).
fn strip(r: &mut Ruleset, iface: &str) -> Vec<(String, String, Verdict)> {
    let mut removed = Vec::new();
    for (name, m) in r.maps.iter_mut() {
        if let Some(v) = m.elements.remove(iface) {
            removed.push((name.clone(), iface.to_string(), v));
        }
    }
    removed
}

#[cfg(test)]
mod tests;

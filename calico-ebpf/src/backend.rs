//! [`EbpfBackend`]: the [`AclBackend`] of generated eBPF programs, for the subset of the IR
//! this crate implements; the rest is refused with [`BackendError::Unsupported`] naming it.
//!
//! Placement. Every interface the ruleset names in a verdict map (the workloads', the
//! named host endpoints') and every configured host interface gets two TCX programs:
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
//! Updates: a change set's set changes are map writes ([`SetTable`]); a program is
//! generated again only for the interfaces whose reached chains, sets or map entries
//! changed, and replaces the attached one atomically (`BPF_LINK_UPDATE`). Not atomic
//! across interfaces or between sets and programs: see [`AclBackend::apply`] on
//! [`EbpfBackend`].

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use calico_core::dataplane::ir::{ChainPolicy, ChainType, Hook, Match, Ruleset, Verdict};
use calico_core::dataplane::{AclBackend, BackendError, Change, ChangeSet};

use crate::error::{Error, GenerateError, SysError};
use crate::generate::params;
use crate::generate::{generate, Bindings, Conntrack, Logs, Options, Plan, Sharing, Stage};
use crate::program::{Attached, Loaded};
use crate::set_table::SetTable;
use crate::sets::Maps;
use crate::shared::{Entry, ProgramCache, SharedProgram};
use crate::sys::TcxDirection;

/// How the backend runs.
#[derive(Clone, Debug)]
pub struct EbpfConfig {
    /// The network namespace whose interfaces it programs (`None`: the agent's own).
    pub netns: Option<PathBuf>,
    /// Host interfaces to filter besides those the ruleset names (the uplinks).
    pub host_interfaces: Vec<String>,
    /// The most elements each set map holds.
    pub set_capacity: u32,
    /// The license the programs declare. The kernel lets only programs with a
    /// GPL-compatible declaration call `bpf_fib_lookup` (and the conntrack kfuncs); which
    /// one the project's generated programs declare is the maintainers' decision, so there
    /// is no default.
    pub license: CString,
}

/// Why the backend cannot start: each names what the kernel or the process lacks, so the
/// agent stops before programming anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Creating maps failed (no `CAP_BPF`/root, or a kernel without BPF).
    #[error("the eBPF dataplane cannot create its maps: {0}")]
    Maps(SysError),
    /// The kernel refused a program with everything the policy programs use but rules
    /// (the route lookup helper, the flow table).
    #[error("the kernel refuses the eBPF dataplane's programs: {0}")]
    Load(SysError),
    /// Attaching a program failed (no TCX: kernel older than 6.6).
    #[error("the eBPF dataplane cannot attach TC programs (TCX needs kernel 6.6 or later): {0}")]
    Attach(String),
}

/// The policy programs' options: log statements refused, conntrack from the programs'
/// own flow table (the kernel tracks a namespace's connections only when netfilter asks
/// it to, which this backend does not).
const OPTIONS: Options = Options {
    logs: Logs::Refuse,
    conntrack: Conntrack::Table,
    sharing: Sharing::ByInterface,
};

/// A name no interface has (`/` is not allowed in interface names): the bindings of an
/// interface without programs.
const UNATTACHED: &str = "/unattached";

/// One direction of an interface: its link, then its hold on the shared program (so a
/// drop detaches before the interface's values go).
struct Hooked {
    attached: Attached,
    entry: Entry,
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
}

struct Iface {
    ingress: Hooked,
    egress: Hooked,
    /// The interface's index when the programs were attached.
    index: u32,
}

struct State {
    programmed: Ruleset,
    sets: SetTable,
    ifaces: BTreeMap<String, Iface>,
    programs: ProgramCache,
}

/// The eBPF ACL backend. See the module documentation.
pub struct EbpfBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: EbpfConfig,
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
    /// programs use but rules, and attaches it to `lo` (detached at once). Programs nothing
    /// until the first [`AclBackend::apply`].
    pub fn new(config: EbpfConfig) -> Result<EbpfBackend, StartError> {
        let maps = Maps::create(config.set_capacity).map_err(StartError::Maps)?;
        let probe = generate(
            &Ruleset::default(),
            &Plan::ByDestination {
                local: Vec::new(),
                forwarded: Vec::new(),
            },
            &BTreeMap::new(),
            OPTIONS,
        )
        .map_err(|e| StartError::Attach(e.to_string()))?;
        let loaded =
            Loaded::load_with_license("cali_probe", &probe.program, &maps, &config.license)
                .map_err(StartError::Load)?;
        in_netns(&config, || attach(&loaded, "lo", TcxDirection::Ingress))
            .and_then(|r| r)
            .map_err(|e| StartError::Attach(e.to_string()))?;
        Ok(EbpfBackend {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    programmed: Ruleset::default(),
                    sets: SetTable::new(maps),
                    ifaces: BTreeMap::new(),
                    programs: ProgramCache::default(),
                }),
            }),
        })
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

    /// The programs the backend holds and what each interface's links run, as the kernel
    /// reports it.
    pub fn programs_blocking(&self) -> Result<Programs, BackendError> {
        let st = self
            .inner
            .state
            .lock()
            .map_err(|_| dataplane("programs", "state lock poisoned"))?;
        let mut attached = BTreeMap::new();
        for (name, o) in &st.ifaces {
            let id = |h: &Hooked| {
                h.attached
                    .program_id()
                    .map_err(|e| dataplane(&format!("link info of {name}"), e))
            };
            attached.insert(name.clone(), (id(&o.ingress)?, id(&o.egress)?));
        }
        Ok(Programs {
            loaded: st.programs.ids().collect(),
            loads: st.programs.loads(),
            attached,
        })
    }
}

/// What [`EbpfBackend::programs_blocking`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programs {
    /// The kernel ids of the programs loaded, each run by one interface or several.
    pub loaded: BTreeSet<u32>,
    /// The program loads (verifier runs) since the backend started.
    pub loads: u64,
    /// Per interface, the kernel ids of the programs its ingress and egress links run,
    /// from the links' info.
    pub attached: BTreeMap<String, (u32, u32)>,
}

/// One direction's program for an interface, generated and loaded (or found loaded),
/// not attached yet.
struct Prepared {
    program: Arc<SharedProgram>,
    /// The interface's values of the program's slots (the params map value).
    value: Vec<u8>,
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
}

/// Generates the program of `plan` for `iface` and finds it among the loaded ones, or
/// loads it (the verifier runs only then).
fn prepare(
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
    fn attach(
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
    fn update(&mut self, p: Prepared, iface: &str, index: u32) -> Result<(), BackendError> {
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

/// Attaches `p` to `iface` of the calling thread's namespace.
fn attach(p: &Loaded, iface: &str, dir: TcxDirection) -> Result<Attached, Error> {
    let name = CString::new(iface).map_err(|_| Error::Refused(format!("interface {iface:?}")))?;
    // SAFETY: a valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(Error::Refused(format!(
            "interface {iface:?} does not exist"
        )));
    }
    Ok(p.attach(index, dir)?)
}

/// The two plans of `iface`.
fn plans(iface: &str) -> (Plan, Plan) {
    let stage = |hook, iif: &str, oif: &str| Stage {
        hook,
        bindings: Bindings {
            iif: Some(iif.into()),
            oif: Some(oif.into()),
        },
    };
    let ingress = Plan::ByDestination {
        local: vec![
            stage(Hook::Prerouting, iface, ""),
            stage(Hook::Input, iface, ""),
        ],
        forwarded: vec![
            stage(Hook::Prerouting, iface, ""),
            stage(Hook::Forward, iface, ""),
        ],
    };
    let egress = Plan::ByOrigin {
        local: vec![stage(Hook::Output, "", iface)],
        forwarded: vec![stage(Hook::Forward, "", iface)],
    };
    (ingress, egress)
}

/// Refuses what the backend cannot enforce, naming it.
fn check_supported(r: &Ruleset) -> Result<(), BackendError> {
    for (name, chain) in &r.chains {
        let Some(base) = chain.base else { continue };
        if base.kind == ChainType::Nat {
            return Err(BackendError::Unsupported(format!(
                "NAT chain {name} (floating IPs): the eBPF backend has no NAT yet"
            )));
        }
        if base.hook == Hook::Postrouting {
            return Err(BackendError::Unsupported(format!(
                "postrouting chain {name}: the eBPF backend filters at prerouting, input, forward and output only"
            )));
        }
    }
    // What an interface without programs would meet must not drop: it is not filtered.
    // Rules that need a mark only this backend's programs set are exempt.
    let stage = |hook| Stage {
        hook,
        bindings: Bindings {
            iif: Some(UNATTACHED.into()),
            oif: Some(UNATTACHED.into()),
        },
    };
    let plan = Plan::Always(
        [Hook::Prerouting, Hook::Input, Hook::Forward, Hook::Output]
            .into_iter()
            .map(stage)
            .collect(),
    );
    let ids: BTreeMap<String, u32> = r.sets.keys().map(|n| (n.clone(), 0)).collect();
    let options = Options {
        logs: Logs::Omit,
        conntrack: Conntrack::Context,
        sharing: Sharing::Inline,
    };
    let reached = generate(r, &plan, &ids, options)
        .map_err(from_generate)?
        .chains;
    for name in &reached {
        let Some(chain) = r.chains.get(name) else {
            continue;
        };
        if chain.base.is_some_and(|b| b.policy == ChainPolicy::Drop) {
            return Err(BackendError::Unsupported(format!(
                "base chain {name} drops by policy what interfaces without programs carry: the eBPF backend filters only the interfaces it attaches to"
            )));
        }
        for (i, rule) in chain.rules.iter().enumerate() {
            let marked = rule.matches.iter().any(|m| matches!(m, Match::MarkSet(_)));
            if rule.verdict == Some(Verdict::Drop) && !marked {
                return Err(BackendError::Unsupported(format!(
                    "chain {name} rule #{i} drops traffic of interfaces the ruleset names in no map (a wildcard host endpoint?): the eBPF backend filters only the interfaces it attaches to"
                )));
            }
        }
    }
    Ok(())
}

/// What a change set touches that programs depend on.
struct Touched {
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
    ifaces: BTreeSet<String>,
    base_chains: bool,
}

fn touched(changes: &ChangeSet, before: &Ruleset) -> Touched {
    let mut t = Touched {
        chains: BTreeSet::new(),
        sets: BTreeSet::new(),
        ifaces: BTreeSet::new(),
        base_chains: false,
    };
    for c in &changes.changes {
        match c {
            Change::AddChain { name, base } => {
                t.base_chains |= base.is_some();
                t.chains.insert(name.clone());
            }
            Change::DelChain { name } => {
                t.base_chains |= before.chains.get(name).is_some_and(|c| c.base.is_some());
                t.chains.insert(name.clone());
            }
            Change::SetRules { chain, .. } => {
                t.chains.insert(chain.clone());
            }
            Change::AddSet { name, .. } | Change::DelSet { name } => {
                t.sets.insert(name.clone());
            }
            Change::AddMapElements { elements, .. } => {
                t.ifaces.extend(elements.iter().map(|(k, _)| k.clone()));
            }
            Change::DelMapElements { keys, .. } => t.ifaces.extend(keys.iter().cloned()),
            Change::AddElements { .. }
            | Change::DelElements { .. }
            | Change::AddMap { .. }
            | Change::DelMap { .. } => {}
        }
    }
    t
}

impl Touched {
    fn affects(&self, iface: &str, h: &Hooked) -> bool {
        self.base_chains
            || self.ifaces.contains(iface)
            || !self.chains.is_disjoint(&h.chains)
            || !self.sets.is_disjoint(&h.sets)
    }
}

/// One interface's new programs, loaded, not attached yet.
struct Pending {
    ingress: Option<Prepared>,
    egress: Option<Prepared>,
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
        let result = self.apply_locked(&mut st, changes);
        st.programs.purge();
        result
    }

    fn apply_locked(&self, st: &mut State, changes: &ChangeSet) -> Result<(), BackendError> {
        // From the state as enforced (what `dump` shows, which change sets are computed
        // against).
        let mut next = enforced(&self.config, st)?;
        changes
            .apply_to(&mut next)
            .map_err(|e| dataplane("apply change set", e))?;
        check_supported(&next)?;
        let ids = st
            .sets
            .preview_ids(changes)
            .map_err(|e| dataplane("set ids", e))?;
        let t = touched(changes, &st.programmed);
        let mut wanted: BTreeSet<String> = next
            .maps
            .values()
            .flat_map(|m| m.elements.keys().cloned())
            .collect();
        wanted.extend(self.config.host_interfaces.iter().cloned());

        // Interfaces that do not exist carry no traffic: they get their programs once they
        // exist, at an apply after the agent's resync notices them missing from the dump.
        let names: Vec<String> = wanted.iter().cloned().collect();
        let indexes = ifindexes(&self.config, names).map_err(|e| dataplane("interfaces", e))?;
        let missing: BTreeSet<String> = indexes
            .iter()
            .filter(|(_, &i)| i == 0)
            .map(|(n, _)| n.clone())
            .collect();
        // An interface deleted (and perhaps made again) lost its programs with it.
        st.ifaces.retain(|n, o| indexes.get(n) == Some(&o.index));

        // Generate and load first: nothing is in effect yet.
        let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
        for iface in wanted.iter().filter(|i| !missing.contains(*i)) {
            let (ingress_plan, egress_plan) = plans(iface);
            let old = st.ifaces.get(iface);
            let redo = |h: Option<&Hooked>| h.is_none_or(|h| t.affects(iface, h));
            let (redo_in, redo_out) = (redo(old.map(|o| &o.ingress)), redo(old.map(|o| &o.egress)));
            let State { sets, programs, .. } = &mut *st;
            let mut one = |ingress: bool, plan: &Plan| {
                let at = (iface.as_str(), ingress);
                prepare(&self.config, programs, sets.maps(), at, &next, plan, &ids)
            };
            let p = Pending {
                ingress: redo_in.then(|| one(true, &ingress_plan)).transpose()?,
                egress: redo_out.then(|| one(false, &egress_plan)).transpose()?,
            };
            pending.insert(iface.clone(), p);
        }

        st.sets
            .apply(changes)
            .map_err(|e| dataplane("set members", e))?;
        for (iface, p) in pending {
            let index = indexes.get(&iface).copied().unwrap_or(0);
            self.commit(st, iface, index, p)?;
        }
        // Interfaces the ruleset no longer names: dropping the links detaches.
        st.ifaces.retain(|name, _| wanted.contains(name));
        // The entries of missing interfaces are not in effect: not recorded as such.
        for m in next.maps.values_mut() {
            m.elements.retain(|name, _| !missing.contains(name));
        }
        st.programmed = next;
        Ok(())
    }

    /// Puts the programs of `p` in effect on `iface`.
    fn commit(
        &self,
        st: &mut State,
        iface: String,
        index: u32,
        p: Pending,
    ) -> Result<(), BackendError> {
        if let Some(o) = st.ifaces.get_mut(&iface) {
            for (new, hooked) in [(p.ingress, &mut o.ingress), (p.egress, &mut o.egress)] {
                if let Some(new) = new {
                    hooked.update(new, &iface, index)?;
                }
            }
            return Ok(());
        }
        let (Some(ingress), Some(egress)) = (p.ingress, p.egress) else {
            return Err(dataplane("apply", format!("{iface} has no programs")));
        };
        let ingress = Hooked::attach(&self.config, ingress, &iface, index, TcxDirection::Ingress)?;
        let egress = Hooked::attach(&self.config, egress, &iface, index, TcxDirection::Egress)?;
        st.ifaces.insert(
            iface,
            Iface {
                ingress,
                egress,
                index,
            },
        );
        Ok(())
    }

    /// What this backend enforces: the ruleset it was given, less the verdict-map entries
    /// of interfaces without their programs (missing when it was applied, or deleted
    /// since), so that the agent's resync puts them back once the interface exists. Its
    /// links are not pinned: they live as long as the backend, so after a restart the
    /// dataplane holds nothing of them, and neither does this dump.
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

/// The index of each interface in the configured namespace (0: no such interface).
fn ifindexes(config: &EbpfConfig, names: Vec<String>) -> Result<BTreeMap<String, u32>, Error> {
    in_netns(config, move || {
        names
            .into_iter()
            .map(|n| {
                let index = CString::new(n.as_str())
                    // SAFETY: a valid NUL-terminated name.
                    .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) })
                    .unwrap_or(0);
                (n, index)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use calico_core::compile::{compile, CompileConfig};
    use calico_core::dataplane::ir::{BaseChain, Chain, Rule};
    use calico_core::model::Model;

    use super::*;

    fn with_base(hook: Hook, kind: ChainType, rules: Vec<Rule>) -> Ruleset {
        let mut r = compile(&CompileConfig::new("h1"), &Model::default());
        r.chains.insert(
            "extra".into(),
            Chain {
                base: Some(BaseChain::accepting(kind, hook, 5)),
                rules,
            },
        );
        r
    }

    fn refusal(r: &Ruleset) -> String {
        match check_supported(r) {
            Err(BackendError::Unsupported(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_compilers_base_ruleset_is_supported() {
        let r = compile(&CompileConfig::new("h1"), &Model::default());
        assert_eq!(check_supported(&r), Ok(()));
    }

    #[test]
    fn what_cannot_be_enforced_is_refused_by_name() {
        let nat = with_base(Hook::Prerouting, ChainType::Nat, vec![]);
        assert!(refusal(&nat).contains("NAT chain extra"));
        let post = with_base(Hook::Postrouting, ChainType::Filter, vec![]);
        assert!(refusal(&post).contains("postrouting chain extra"));
        // A drop every interface meets: interfaces without programs would not enforce it.
        let wildcard = with_base(
            Hook::Forward,
            ChainType::Filter,
            vec![Rule::new(vec![], Verdict::Drop)],
        );
        assert!(refusal(&wildcard).contains("chain extra rule #0 drops"));
        let log = with_base(
            Hook::Input,
            ChainType::Filter,
            vec![Rule {
                statements: vec![calico_core::dataplane::ir::Statement::NoTrack],
                ..Rule::default()
            }],
        );
        assert!(refusal(&log).contains("notrack"));
    }

    #[test]
    fn a_drop_that_needs_a_mark_only_programs_set_is_not_refused() {
        let marked = with_base(
            Hook::Forward,
            ChainType::Filter,
            vec![Rule::new(vec![Match::MarkSet(0x10)], Verdict::Drop)],
        );
        assert_eq!(check_supported(&marked), Ok(()));
    }

    #[test]
    fn programs_are_regenerated_only_where_a_change_reaches() {
        let hooked = |chains: &[&str], sets: &[&str]| {
            (
                chains
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<BTreeSet<_>>(),
                sets.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            )
        };
        let before = Ruleset::default();
        let t = touched(
            &ChangeSet {
                changes: vec![
                    Change::SetRules {
                        chain: "pol-a".into(),
                        rules: vec![],
                    },
                    Change::AddElements {
                        set: "s".into(),
                        elements: vec![],
                    },
                ],
            },
            &before,
        );
        let affects = |(chains, sets): (BTreeSet<String>, BTreeSet<String>)| {
            t.base_chains || !t.chains.is_disjoint(&chains) || !t.sets.is_disjoint(&sets)
        };
        assert!(affects(hooked(&["fw", "pol-a"], &[])));
        assert!(
            !affects(hooked(&["fw", "pol-b"], &["s"])),
            "a member change is a map write"
        );
        let added = touched(
            &ChangeSet {
                changes: vec![Change::AddMapElements {
                    map: "m".into(),
                    elements: vec![("cali1".into(), Verdict::Accept)],
                }],
            },
            &before,
        );
        assert!(added.ifaces.contains("cali1") && !added.base_chains);
    }
}

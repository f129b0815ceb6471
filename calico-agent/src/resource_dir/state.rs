//! What the resource directory means, decided without I/O: each file's last good version,
//! the settle time a changed file must stay unchanged before it counts, resources defined
//! twice, and the guard that holds back a deletion of most of what is programmed.
//!
//! The daemon reads the files ([`super::read`]) and hands their text to [`DirState::observe`],
//! which returns a [`Plan`]: the updates to send to the agent and what is held back. Once
//! the agent has taken the updates, [`DirState::commit`] records them as applied.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

pub use calico_core::model::clip;
use calico_core::model::{parse_resources, Resource, ResourceKey, Update};

/// The safety settings of a resource directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// A changed (or removed) file counts only once it has stayed so for this long, seen by
    /// two reads at least this far apart: a file being written (`cat > file` truncates
    /// first) is never read as "these resources were deleted".
    pub settle: Duration,
    /// A change that would remove more than this fraction of the applied resources (and at
    /// least [`Settings::delete_guard_min`] of them), or all of them, is held until
    /// confirmed. `1.0` turns the guard off for all but the removal of everything.
    pub max_delete_fraction: f64,
    /// Removals of fewer resources than this are never held (unless they remove all).
    pub delete_guard_min: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            settle: Duration::from_millis(500),
            max_delete_fraction: 0.5,
            delete_guard_min: 10,
        }
    }
}

/// What the daemon read of one file.
#[derive(Clone, Debug)]
pub enum Observed {
    /// Its text.
    Text(String),
    /// Its text, in a file last modified at least the settle time ago. At the first sight
    /// of a file (an agent starting) it counts at once; a change still needs two reads.
    Quiet(String),
    /// Why it could not be read (not a regular file, too large, I/O error).
    Unreadable(String),
}

/// One file's state, as shown in `/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileStatus {
    /// The file's name in the directory.
    pub name: String,
    /// Resources of its version in force.
    pub resources: usize,
    /// `ok`, `settling`, or `rejected`.
    pub state: &'static str,
    /// Why its current content is not in force, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Removals held back by the deletion guard.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HeldDeletion {
    /// Resources the directory no longer holds but that stay applied.
    pub resources: usize,
    /// Resources applied.
    pub of: usize,
}

/// What to do after a read of the directory.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The updates to send to the agent, as one group (upserts first, removals last).
    pub updates: Vec<Update>,
    /// Removals held back by the guard.
    pub held: Option<HeldDeletion>,
    /// When to read again: a file is settling.
    pub wake_at: Option<Instant>,
    /// Files whose content was newly rejected by this read (log once, count in metrics).
    pub rejected: Vec<(String, String)>,
    desired: BTreeMap<ResourceKey, Resource>,
}

impl Plan {
    /// Every resource the directory holds in force (what a snapshot would hold).
    pub fn resources(&self) -> Vec<Resource> {
        self.desired.values().cloned().collect()
    }
}

#[derive(Clone, Debug, Default)]
struct FileEntry {
    /// Hash and resources of the version in force.
    good: Option<(u64, Vec<Resource>)>,
    /// A new version parsed by this read, before the duplicate check promotes it.
    fresh: Option<(u64, Vec<Resource>)>,
    /// A new version refused for defining a resource another file defines: checked again
    /// at every read, so that it takes force once the other file lets go.
    parked: Option<(u64, Vec<Resource>)>,
    /// A different content (or absence: `None` hash of a removed file) first seen at.
    candidate: Option<(Option<u64>, Instant)>,
    /// Why the current content is not in force.
    error: Option<String>,
    /// Hash of content rejected, so that it is reported once and not parsed again.
    rejected: Option<u64>,
}

/// The resource directory's state: see the module documentation.
#[derive(Debug, Default)]
pub struct DirState {
    settings: Settings,
    files: BTreeMap<String, FileEntry>,
    applied: BTreeMap<ResourceKey, Resource>,
}

fn hash_of(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Longest error text kept for a file.
const MAX_ERROR: usize = 400;

impl DirState {
    /// An empty state (nothing applied) with these settings.
    pub fn new(settings: Settings) -> DirState {
        DirState {
            settings,
            ..DirState::default()
        }
    }

    /// Takes a read of the directory at `now` (every resource file present, by name) and
    /// plans the updates. `confirm` releases held removals.
    pub fn observe(
        &mut self,
        now: Instant,
        observed: BTreeMap<String, Observed>,
        confirm: bool,
    ) -> Plan {
        let mut plan = Plan::default();
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|f| !observed.contains_key(*f))
            .cloned()
            .collect();
        for name in gone {
            self.observe_gone(now, &name, &mut plan);
        }
        for (name, obs) in observed {
            self.observe_file(now, name, obs, &mut plan);
        }
        self.refuse_duplicates(&mut plan);
        plan.desired = self.compose();
        self.plan_updates(confirm, &mut plan);
        plan
    }

    /// Records `plan`'s updates as taken by the agent.
    pub fn commit(&mut self, plan: Plan) {
        let mut applied = plan.desired;
        if plan.held.is_some() {
            // Held removals stay applied.
            for (k, r) in &self.applied {
                applied.entry(k.clone()).or_insert_with(|| r.clone());
            }
        }
        self.applied = applied;
    }

    /// Every resource applied.
    pub fn applied(&self) -> &BTreeMap<ResourceKey, Resource> {
        &self.applied
    }

    /// Each file's state, in name order.
    pub fn files(&self) -> Vec<FileStatus> {
        self.files
            .iter()
            .map(|(name, f)| FileStatus {
                name: name.clone(),
                resources: f.good.as_ref().map_or(0, |(_, r)| r.len()),
                state: match (&f.error, &f.candidate) {
                    (Some(_), _) => "rejected",
                    (None, Some(_)) => "settling",
                    (None, None) => "ok",
                },
                error: f.error.clone(),
            })
            .collect()
    }

    fn observe_gone(&mut self, now: Instant, name: &str, plan: &mut Plan) {
        let Some(entry) = self.files.get_mut(name) else {
            return;
        };
        if entry.good.is_none() {
            self.files.remove(name);
            return;
        }
        match entry.candidate {
            Some((None, since)) if now.duration_since(since) >= self.settings.settle => {
                self.files.remove(name);
            }
            Some((None, since)) => wake(plan, since + self.settings.settle),
            _ => {
                entry.candidate = Some((None, now));
                wake(plan, now + self.settings.settle);
            }
        }
    }

    fn observe_file(&mut self, now: Instant, name: String, obs: Observed, plan: &mut Plan) {
        let settle = self.settings.settle;
        let entry = self.files.entry(name.clone()).or_default();
        let first_sight =
            entry.good.is_none() && entry.candidate.is_none() && entry.error.is_none();
        let (text, quiet) = match obs {
            Observed::Unreadable(e) => {
                entry.candidate = None;
                let e = clip(&e, MAX_ERROR);
                if entry.error.as_ref() != Some(&e) {
                    plan.rejected.push((name, e.clone()));
                }
                entry.error = Some(e);
                return;
            }
            Observed::Text(t) => (t, false),
            Observed::Quiet(t) => (t, true),
        };
        let hash = hash_of(&text);
        if entry.good.as_ref().is_some_and(|(h, _)| *h == hash) {
            entry.candidate = None;
            entry.error = None;
            entry.rejected = None;
            return;
        }
        if let Some((h, rs)) = entry.parked.take() {
            if h == hash {
                entry.fresh = Some((h, rs.clone()));
                entry.parked = Some((h, rs));
                return;
            }
        }
        if entry.rejected == Some(hash) {
            return;
        }
        match entry.candidate {
            _ if first_sight && quiet => {}
            Some((Some(h), since)) if h == hash && now.duration_since(since) >= settle => {}
            Some((Some(h), since)) if h == hash => {
                wake(plan, since + settle);
                return;
            }
            _ => {
                entry.candidate = Some((Some(hash), now));
                wake(plan, now + settle);
                return;
            }
        }
        entry.candidate = None;
        let verdict = if text.is_empty() {
            Err(
                "the file is empty: taken as being written, its previous version stays in \
                 force (delete the file to remove its resources)"
                    .to_string(),
            )
        } else {
            parse_resources(&text).map_err(|e| clip(&e.to_string(), MAX_ERROR))
        };
        match verdict {
            Ok(resources) => entry.fresh = Some((hash, resources)),
            Err(e) => {
                let e = format!("{name}: {e}; its previous version stays in force");
                plan.rejected.push((name, e.clone()));
                entry.error = Some(e);
                entry.rejected = Some(hash);
            }
        }
    }

    /// A resource defined in two files: the file whose new version introduced it is refused
    /// (its previous version stays); between two new versions, the later file name is.
    fn refuse_duplicates(&mut self, plan: &mut Plan) {
        let mut owner: BTreeMap<ResourceKey, String> = BTreeMap::new();
        let claim = |owner: &mut BTreeMap<ResourceKey, String>, name: &str, rs: &[Resource]| {
            for r in rs {
                owner.entry(r.key()).or_insert_with(|| name.to_string());
            }
        };
        // Versions in force that stay claim first.
        for (name, f) in &self.files {
            if let (None, Some((_, rs))) = (&f.fresh, &f.good) {
                claim(&mut owner, name, rs);
            }
        }
        for (name, entry) in self.files.iter_mut() {
            let Some((hash, fresh)) = entry.fresh.take() else {
                continue;
            };
            let clash = fresh.iter().find_map(|r| {
                let key = r.key();
                owner
                    .get(&key)
                    .filter(|o| *o != name)
                    .map(|o| (key, o.clone()))
            });
            match clash {
                None => {
                    claim(&mut owner, name, &fresh);
                    entry.good = Some((hash, fresh));
                    entry.error = None;
                    entry.rejected = None;
                    entry.parked = None;
                }
                Some((key, other)) => {
                    let e = clip(
                        &format!(
                            "{name}: {key:?} is already defined in {other}; a resource may be \
                             defined in one file only; this version of {name} is refused and \
                             its previous version stays in force"
                        ),
                        MAX_ERROR,
                    );
                    if entry.error.as_ref() != Some(&e) {
                        plan.rejected.push((name.clone(), e.clone()));
                    }
                    entry.error = Some(e);
                    entry.parked = Some((hash, fresh));
                    if let Some((_, rs)) = &entry.good {
                        claim(&mut owner, name, rs);
                    }
                }
            }
        }
    }

    /// The desired resources: every file's version in force, in name order (a key defined
    /// twice in versions in force keeps the first file's).
    fn compose(&self) -> BTreeMap<ResourceKey, Resource> {
        let mut out = BTreeMap::new();
        for f in self.files.values() {
            for r in f.good.iter().flat_map(|(_, r)| r) {
                out.entry(r.key()).or_insert_with(|| r.clone());
            }
        }
        out
    }

    fn plan_updates(&self, confirm: bool, plan: &mut Plan) {
        for (k, r) in &plan.desired {
            if self.applied.get(k) != Some(r) {
                plan.updates.push(Update::Upsert(r.clone()));
            }
        }
        let removed: Vec<&ResourceKey> = self
            .applied
            .keys()
            .filter(|k| !plan.desired.contains_key(*k))
            .collect();
        let all = !removed.is_empty() && plan.desired.is_empty();
        let many = removed.len() >= self.settings.delete_guard_min
            && removed.len() as f64 > self.settings.max_delete_fraction * self.applied.len() as f64;
        if (all || many) && !confirm {
            plan.held = Some(HeldDeletion {
                resources: removed.len(),
                of: self.applied.len(),
            });
            return;
        }
        plan.updates
            .extend(removed.into_iter().map(|k| Update::Remove(k.clone())));
    }
}

fn wake(plan: &mut Plan, at: Instant) {
    plan.wake_at = Some(plan.wake_at.map_or(at, |w| w.min(at)));
}

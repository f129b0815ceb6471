//! Loaded programs shared between interfaces: the backend loads each distinct generated
//! program once ([`ProgramCache`]), and every interface whose program comes out equal
//! runs that copy with its own entry in the program's params map
//! ([`crate::generate::params`]). An interface's hold on a program ([`Entry`]) deletes its
//! entry when dropped; the program is unloaded when no interface holds it any more
//! ([`ProgramCache::purge`]). A policy split into pieces is shared whole: one loaded
//! chain of pieces per distinct generated chain ([`crate::tail`]).

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::SysError;
use crate::generate::{params, Pieces};
use crate::insn::MapRef;
use crate::program::Loaded;
use crate::sets::Maps;
use crate::sys::{self, MapType};
use crate::tail::Tail;

/// The most interfaces one shared program serves (its params map's capacity; entries are
/// allocated as written).
pub const MAX_INTERFACES: u32 = 65_536;

/// A program loaded once and run by every interface whose generated program equals it.
#[derive(Debug)]
pub struct SharedProgram {
    loaded: Loaded,
    /// Its per-interface values, keyed by ifindex; `None` when it reads none.
    params: Option<OwnedFd>,
    /// The kernel's id of the program.
    id: u32,
    /// The name it was loaded with.
    name: String,
}

impl SharedProgram {
    /// The name it was loaded with (`cali_i<n>` or `cali_e<n>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The loaded program.
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// The kernel's id of the program.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Writes the values `value` ([`params::value`]) the program reads at interface
    /// `ifindex` (atomically: a packet sees the old value or the new one).
    pub fn write(&self, ifindex: u32, value: &[u8]) -> Result<(), SysError> {
        match &self.params {
            Some(map) => sys::map_update(map, &ifindex.to_ne_bytes(), value),
            None => Ok(()),
        }
    }

    /// Deletes the values of interface `ifindex` (nothing when it has none).
    fn forget(&self, ifindex: u32) {
        if let Some(map) = &self.params {
            // Absent already (never written, a failed write): nothing to undo.
            let _ = sys::map_delete(map, &ifindex.to_ne_bytes());
        }
    }
}

/// An interface's hold on a shared program: its values in the program's params map,
/// deleted when the hold is dropped (after the interface's filter is deleted), unless
/// [`Entry::keep`] was called.
#[derive(Debug)]
pub struct Entry {
    program: Arc<SharedProgram>,
    ifindex: u32,
    /// Whether dropping leaves the values in place.
    kept: bool,
}

impl Entry {
    /// Writes `value` for `ifindex` into `program`'s params map and holds it.
    pub fn write(
        program: Arc<SharedProgram>,
        ifindex: u32,
        value: &[u8],
    ) -> Result<Entry, SysError> {
        program.write(ifindex, value)?;
        Ok(Entry {
            program,
            ifindex,
            kept: false,
        })
    }

    /// Leaves the values in place when the hold is dropped: the program, attached by a
    /// filter that outlives the backend, goes on reading them.
    pub fn keep(&mut self) {
        self.kept = true;
    }

    /// The program held.
    pub fn program(&self) -> &Arc<SharedProgram> {
        &self.program
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        self.program.forget(self.ifindex);
    }
}

/// The programs loaded, by direction and generated program.
#[derive(Debug, Default)]
pub struct ProgramCache {
    /// By direction (ingress first) and [`Pieces::fingerprint`]: the programs loaded
    /// with their instructions (more than one only when fingerprints collide).
    programs: [ByFingerprint; 2],
    loads: u64,
    /// The later pieces of split programs no interface runs any more, kept (slots filled)
    /// until the kernel has released their entry: a filter replaced or deleted lets go
    /// of its program only after an RCU grace period, and a packet still in the old
    /// entry must find the pieces it tail-calls.
    retired: Vec<Retired>,
    /// Where the program arrays of split programs are pinned ([`crate::pins`]); `None`:
    /// not pinned.
    pins: Option<std::path::PathBuf>,
}

/// The pieces of a split program whose entry this no longer holds.
#[derive(Debug)]
struct Retired {
    /// The kernel id of the entry.
    entry: u32,
    /// The pieces, emptied from their slots when dropped.
    tail: Tail,
}

/// Loaded programs by [`Pieces::fingerprint`], each with its instructions.
type ByFingerprint = HashMap<u64, Vec<(Pieces, Arc<SharedProgram>)>>;

impl ProgramCache {
    /// An empty cache whose split programs pin their arrays in `pins`.
    pub fn pinned(pins: Option<std::path::PathBuf>) -> ProgramCache {
        ProgramCache {
            pins,
            ..ProgramCache::default()
        }
    }

    /// Leaves the split programs' pieces loaded, their arrays pinned, when the cache is
    /// dropped: their entries' filters outlive the backend. Those of programs no filter
    /// runs any more are unpinned now.
    pub fn keep(&mut self) {
        let tails = self.all().filter_map(|p| p.loaded.tail());
        tails.for_each(Tail::keep);
        self.retired.clear();
    }

    /// The loaded program equal to `program` for the direction (`ingress`), loading it
    /// (a verifier run per piece) when there is none yet.
    pub fn get_or_load(
        &mut self,
        ingress: bool,
        program: &Pieces,
        maps: &Maps,
        license: &CStr,
    ) -> Result<Arc<SharedProgram>, SysError> {
        let fingerprint = program.fingerprint();
        let of_direction = &mut self.programs[usize::from(!ingress)];
        let same = of_direction.get(&fingerprint).into_iter().flatten();
        if let Some((_, p)) = same.into_iter().find(|(q, _)| q == program) {
            return Ok(p.clone());
        }
        let mut all_maps = program.all().iter().flat_map(|p| &p.maps);
        let uses_params = all_maps.any(|&(_, m)| m == MapRef::Params);
        let params = if uses_params {
            Some(sys::map_create(
                MapType::Hash,
                "cali_params",
                params::KEY_SIZE,
                params::VALUE_SIZE,
                MAX_INTERFACES,
                sys::F_NO_PREALLOC,
            )?)
        } else {
            None
        };
        self.loads += 1;
        let name = format!("cali_{}{}", if ingress { 'i' } else { 'e' }, self.loads);
        let mut loaded = Loaded::load_pieces(&name, program, maps, params.as_ref(), license)?;
        if let (Some(dir), Some(tail)) = (&self.pins, loaded.tail_mut()) {
            tail.pin(dir, &name)?;
        }
        let id = loaded.id()?;
        let p = Arc::new(SharedProgram {
            loaded,
            params,
            id,
            name,
        });
        self.programs[usize::from(!ingress)]
            .entry(fingerprint)
            .or_default()
            .push((program.clone(), p.clone()));
        Ok(p)
    }

    /// Unloads the programs no interface holds any more (and those loaded for an apply
    /// that failed). The later pieces of a split one stay until the kernel has released
    /// its entry: they go at this purge when nothing holds the entry any more, at a later
    /// one otherwise.
    pub fn purge(&mut self) {
        let mut unused = Vec::new();
        for of_direction in &mut self.programs {
            // Walked at every apply: nothing is allocated unless a program goes.
            of_direction.retain(|_, same| {
                if same.iter().any(|(_, p)| Arc::strong_count(p) == 1) {
                    let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(same)
                        .into_iter()
                        .partition(|(_, p)| Arc::strong_count(p) > 1);
                    *same = keep;
                    unused.extend(drop);
                }
                !same.is_empty()
            });
        }
        for (_, p) in unused {
            let Ok(p) = Arc::try_unwrap(p) else { continue };
            let entry = p.id;
            if let Some(tail) = p.loaded.into_tail() {
                self.retired.push(Retired { entry, tail });
            }
        }
        // An entry the kernel cannot be asked about is kept for the next purge.
        self.retired
            .retain(|r| sys::prog_exists(r.entry).unwrap_or(true));
    }

    /// The programs loaded.
    fn all(&self) -> impl Iterator<Item = &Arc<SharedProgram>> + '_ {
        let lists = self.programs.iter().flat_map(|d| d.values());
        lists.flat_map(|same| same.iter().map(|(_, p)| p))
    }

    /// How many programs are loaded.
    pub fn len(&self) -> usize {
        self.all().count()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.all().next().is_none()
    }

    /// The program loads (verifier runs) so far.
    pub fn loads(&self) -> u64 {
        self.loads
    }

    /// The kernel ids of the programs loaded (the entries of split ones).
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.all().map(|p| p.id)
    }

    /// The kernel ids of the later pieces of split programs: of those loaded, and of
    /// those whose entry the kernel has not released yet.
    pub fn piece_ids(&self) -> impl Iterator<Item = u32> + '_ {
        let loaded = self.all().filter_map(|p| p.loaded.tail());
        let retired = self.retired.iter().map(|r| &r.tail);
        loaded.chain(retired).flat_map(|t| t.ids().iter().copied())
    }
}

//! The dispatcher: one small fixed program per direction, attached once to the shared tc
//! block of that direction ([`crate::tc::Blocks`]), that looks the packet's interface up
//! (`skb->ifindex` → a slot, in a hash) and tail-calls the interface's policy program
//! from a program array (one per direction) at that slot. An interface without an entry
//! (or with an empty slot) is not filtered: the dispatcher returns `TC_ACT_UNSPEC`, as
//! the policy programs do for what they accept, so the packet goes on as if there were
//! no filter, which is what an interface without programs had before.
//!
//! Adding an interface is then two program-array writes, a hash write and binding its
//! clsact qdisc to the shared blocks: no filter is added (a filter per interface bound a
//! private tc block each, whose registration costs O(interfaces) in the kernel), and no
//! verifier run. Replacing an interface's program is one program-array write, which the
//! kernel makes atomically (a packet runs the old program or the new one).
//!
//! The dispatcher's tail call is one of the kernel's 33 per packet, so a policy split
//! into pieces may use one fewer ([`crate::generate::MAX_PIECES`]).
//!
//! Lifetime: the three maps are pinned in the namespace's pin directory
//! ([`crate::pins`], names starting with [`PIN_PREFIX`]) so that the slots stay filled
//! (a program array is emptied when its last user reference goes) and the programs keep
//! enforcing after the agent exits; a backend started later in the namespace opens the
//! pins again and takes the interfaces' entries over ([`Dispatcher::open`]). Where the
//! BPF filesystem is not mounted nothing can be pinned, and the backend does without the
//! dispatcher ([`crate::backend`]).

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{GenerateError, SysError};
use crate::generate::parse::TC_ACT_UNSPEC;
use crate::insn::{Alu, Asm, Cond, Helper, MapRef, Program, Reg, Size};
use crate::layout::skb;
use crate::sys::{self, MapType};
use crate::tc::Direction;

/// The most interfaces dispatched (the program arrays' size, the hash's capacity).
pub const SLOTS: u32 = crate::shared::MAX_INTERFACES;
/// What the names of the dispatcher's pins start with.
pub const PIN_PREFIX: &str = "dispatch_";
/// The pins: the interface hash, then the ingress and egress program arrays.
const PINS: [&str; 3] = ["dispatch_ifaces", "dispatch_ingress", "dispatch_egress"];
/// The names the dispatcher's programs are loaded with (ingress, egress).
pub const NAMES: [&str; 2] = ["cali_disp_i", "cali_disp_e"];

/// The stack slot of the lookup key.
const KEY: i16 = -4;

/// The dispatcher's instructions: the interface's slot looked up in the hash
/// ([`MapRef::Params`] stands for it) and tail-called in the program array
/// ([`MapRef::Pieces`] stands for it); `TC_ACT_UNSPEC` when either is missing.
pub fn program() -> Result<Program, GenerateError> {
    let mut a = Asm::default();
    a.alu64_reg(Alu::Mov, Reg::R6, Reg::R1);
    a.load(Size::W, Reg::R2, Reg::R1, skb::IFINDEX);
    a.store(Size::W, Reg::R10, KEY, Reg::R2);
    a.load_map(Reg::R1, MapRef::Params);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(KEY));
    a.call(Helper::MapLookupElem);
    let pass = a.label();
    a.jmp_imm(Cond::Eq, Reg::R0, 0, pass);
    a.load(Size::W, Reg::R3, Reg::R0, 0);
    a.alu64_reg(Alu::Mov, Reg::R1, Reg::R6);
    a.load_map(Reg::R2, MapRef::Pieces);
    a.call(Helper::TailCall);
    a.bind(pass);
    a.alu64_imm(Alu::Mov, Reg::R0, TC_ACT_UNSPEC);
    a.exit();
    a.finish()
}

/// The index of `direction`'s program array and program.
fn at(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// The dispatcher's maps, shared by the [`Slot`]s that hold entries in them.
#[derive(Debug)]
struct Tables {
    /// ifindex → slot.
    ifaces: OwnedFd,
    /// Per direction, slot → the interface's policy program.
    arrays: [OwnedFd; 2],
    /// The slots free to give out.
    free: Mutex<Free>,
}

/// Slot allocation: every slot below `next` not in `returned` is in use.
#[derive(Debug, Default)]
struct Free {
    next: u32,
    returned: Vec<u32>,
}

impl Tables {
    fn take(&self) -> Result<u32, SysError> {
        let mut free = self.free.lock().map_err(|_| SysError::Unexpected {
            what: "dispatcher slots",
            reason: "lock poisoned".into(),
        })?;
        if let Some(s) = free.returned.pop() {
            return Ok(s);
        }
        if free.next >= SLOTS {
            return Err(SysError::Unexpected {
                what: "dispatcher slots",
                reason: format!("all {SLOTS} slots are in use"),
            });
        }
        free.next += 1;
        Ok(free.next - 1)
    }

    fn give_back(&self, slot: u32) {
        if let Ok(mut free) = self.free.lock() {
            free.returned.push(slot);
        }
    }

    /// Deletes the entry of `ifindex` (it is no longer dispatched), then empties `slot`.
    fn clear(&self, ifindex: u32, slot: u32) {
        // Absent already (never written, deleted by hand): nothing to undo.
        let _ = sys::map_delete(&self.ifaces, &ifindex.to_ne_bytes());
        for array in &self.arrays {
            let _ = sys::map_delete(array, &slot.to_ne_bytes());
        }
    }
}

/// The dispatcher: its maps and its two loaded programs.
#[derive(Debug)]
pub struct Dispatcher {
    tables: Arc<Tables>,
    programs: [OwnedFd; 2],
    /// Interfaces with entries a previous backend left (ifindex → slot), not taken over
    /// ([`Dispatcher::hold`]) or deleted ([`Dispatcher::forget`]) yet.
    inherited: BTreeMap<u32, u32>,
    /// Whether the maps were a previous backend's.
    adopted: bool,
    /// Where the maps are pinned.
    pins: Option<PathBuf>,
}

/// The layout each of [`PINS`] must have to be taken over: type, key, value, entries.
fn layouts() -> [(MapType, u32, u32, u32); 3] {
    [
        (MapType::Hash, 4, 4, SLOTS),
        (MapType::ProgArray, 4, 4, SLOTS),
        (MapType::ProgArray, 4, 4, SLOTS),
    ]
}

impl Dispatcher {
    /// The dispatcher of a namespace: the maps of the dispatcher programs `running` there
    /// (kernel ids, ingress and egress: what the backend's filters run, a previous
    /// backend's) when both are found and the maps have this layout (their interfaces'
    /// entries then [`Dispatcher::inherited`]), or new ones; pinned in `pins` (`None`:
    /// not pinned), in place of what was pinned there (a namespace's pin directory is
    /// named after its inode number, which a namespace made later may get again, so pins
    /// are not how a previous backend's maps are found); and its programs, loaded
    /// declaring `license`.
    pub fn open(
        running: [Option<u32>; 2],
        pins: Option<&Path>,
        license: &CStr,
    ) -> Result<Dispatcher, SysError> {
        let (maps, adopted) = match adopt(running)? {
            Some(maps) => (maps, true),
            None => (create()?, false),
        };
        if let Some(dir) = pins {
            pin(&maps, dir)?;
        }
        let [ifaces, ingress, egress] = maps;
        let inherited = if adopted {
            entries(&ifaces)?
        } else {
            BTreeMap::new()
        };
        let next = inherited.values().max().map_or(0, |m| m + 1);
        let used: std::collections::BTreeSet<u32> = inherited.values().copied().collect();
        let returned = (0..next).rev().filter(|s| !used.contains(s)).collect();
        let tables = Arc::new(Tables {
            ifaces,
            arrays: [ingress, egress],
            free: Mutex::new(Free { next, returned }),
        });
        let code = program().map_err(|e| SysError::Unexpected {
            what: "dispatcher program",
            reason: e.to_string(),
        })?;
        let load = |i: usize| load(NAMES[i], &code, &tables.ifaces, &tables.arrays[i], license);
        let programs = [load(0)?, load(1)?];
        Ok(Dispatcher {
            tables,
            programs,
            inherited,
            adopted,
            pins: pins.map(Path::to_path_buf),
        })
    }

    /// Removes the maps' pins (when no interface is dispatched any more: the program
    /// arrays are emptied once this process closes them).
    pub fn unpin(&self) {
        if let Some(dir) = &self.pins {
            let paths: Vec<PathBuf> = PINS.iter().map(|p| dir.join(p)).collect();
            crate::pins::remove(None, &paths);
        }
    }

    /// Whether the maps were a previous backend's, taken over.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// The dispatcher program of `direction` (what the shared block's filter runs).
    pub fn program(&self, direction: Direction) -> &OwnedFd {
        &self.programs[at(direction)]
    }

    /// The interfaces (ifindex → slot) with entries a previous backend left, not taken
    /// over or deleted yet.
    pub fn inherited(&self) -> &BTreeMap<u32, u32> {
        &self.inherited
    }

    /// The kernel ids of the programs in the inherited interfaces' slots.
    pub fn inherited_programs(&self) -> Vec<u32> {
        let slots = self.inherited.values();
        let ids = slots.flat_map(|&s| self.tables.arrays.iter().map(move |a| slot_id(a, s)));
        ids.flatten().collect()
    }

    /// A hold on a slot for interface `ifindex`: the one a previous backend gave it,
    /// or a free one. Nothing is written until [`Slot::set`] and [`Slot::enable`].
    pub fn hold(&mut self, ifindex: u32) -> Result<Slot, SysError> {
        let slot = match self.inherited.remove(&ifindex) {
            Some(s) => s,
            None => self.tables.take()?,
        };
        Ok(Slot {
            tables: self.tables.clone(),
            ifindex,
            slot,
            kept: false,
        })
    }

    /// Deletes every entry a previous backend left ([`Dispatcher::forget`] of each).
    pub fn forget_all(&mut self) {
        let all: Vec<u32> = self.inherited.keys().copied().collect();
        for ifindex in all {
            self.forget(ifindex);
        }
    }

    /// Deletes the entry a previous backend left for `ifindex` (it is no longer
    /// dispatched), and frees its slot.
    pub fn forget(&mut self, ifindex: u32) {
        if let Some(slot) = self.inherited.remove(&ifindex) {
            self.tables.clear(ifindex, slot);
            self.tables.give_back(slot);
        }
    }
}

/// An interface's entry in the dispatcher. Dropping it deletes the entry (the interface
/// is no longer dispatched) and empties its slots, unless [`Slot::keep`] was called.
#[derive(Debug)]
pub struct Slot {
    tables: Arc<Tables>,
    ifindex: u32,
    slot: u32,
    kept: bool,
}

impl Slot {
    /// Puts `program` in the slot of `direction` (atomically: a packet runs the program
    /// that was there or this one).
    pub fn set(&self, direction: Direction, program: &OwnedFd) -> Result<(), SysError> {
        let fd = program.as_raw_fd() as u32;
        let array = &self.tables.arrays[at(direction)];
        sys::map_update(array, &self.slot.to_ne_bytes(), &fd.to_ne_bytes())
    }

    /// Points the interface's entry at the slot: from then on its packets are
    /// dispatched (its slots must be set first).
    pub fn enable(&self) -> Result<(), SysError> {
        let key = self.ifindex.to_ne_bytes();
        sys::map_update(&self.tables.ifaces, &key, &self.slot.to_ne_bytes())
    }

    /// The kernel id of the program in the slot of `direction`, if any.
    pub fn program_id(&self, direction: Direction) -> Option<u32> {
        slot_id(&self.tables.arrays[at(direction)], self.slot)
    }

    /// The slot.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Leaves the entry and the slots in place when dropped: the interface goes on being
    /// dispatched after the backend is gone.
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        self.tables.clear(self.ifindex, self.slot);
        self.tables.give_back(self.slot);
    }
}

/// The kernel ids of the programs in an interface's slots (ingress, egress), where
/// there are.
pub type Dispatched = (Option<u32>, Option<u32>);

/// The kernel ids of the programs the dispatcher pinned in `dir` runs for interface
/// `ifindex` (ingress, egress); `None` when it has no entry (or nothing is pinned).
/// For tests and tools: the backend reads its own maps.
pub fn pinned(dir: &Path, ifindex: u32) -> Result<Option<Dispatched>, SysError> {
    let mut maps = Vec::with_capacity(3);
    for name in PINS {
        match sys::obj_get(&dir.join(name))? {
            Some(fd) => maps.push(fd),
            None => return Ok(None),
        }
    }
    let mut slot = [0u8; 4];
    if !sys::map_lookup(&maps[0], &ifindex.to_ne_bytes(), &mut slot)? {
        return Ok(None);
    }
    let slot = u32::from_ne_bytes(slot);
    Ok(Some((slot_id(&maps[1], slot), slot_id(&maps[2], slot))))
}

/// The kernel id of the program in `slot` of program array `array` (a lookup from user
/// space gives the id), if any.
fn slot_id(array: &OwnedFd, slot: u32) -> Option<u32> {
    let mut id = [0u8; 4];
    match sys::map_lookup(array, &slot.to_ne_bytes(), &mut id) {
        Ok(true) => Some(u32::from_ne_bytes(id)),
        _ => None,
    }
}

/// What each of the dispatcher's maps is named (the kernel's object name).
const MAP_NAMES: [&str; 3] = ["cali_disp_if", "cali_disp_i", "cali_disp_e"];

/// The maps the dispatcher programs `running` (ingress, egress) use, when both are found
/// and use maps of this layout: [`MAP_NAMES`] and [`layouts`].
fn adopt(running: [Option<u32>; 2]) -> Result<Option<[OwnedFd; 3]>, SysError> {
    let mut found: [Option<OwnedFd>; 3] = [None, None, None];
    for id in running {
        let Some(id) = id else { return Ok(None) };
        let Some(maps) = crate::adopt::program_maps(id)? else {
            return Ok(None);
        };
        for (map, info) in maps {
            let layout = (info.kind, info.key_size, info.value_size, info.max_entries);
            let at = MAP_NAMES
                .iter()
                .zip(layouts())
                .position(|(name, l)| info.name == *name && layout == (l.0 as u32, l.1, l.2, l.3));
            if let Some(i) = at {
                found[i].get_or_insert(map);
            }
        }
    }
    match found {
        [Some(a), Some(b), Some(c)] => Ok(Some([a, b, c])),
        _ => Ok(None),
    }
}

/// New maps.
fn create() -> Result<[OwnedFd; 3], SysError> {
    let mut maps = Vec::with_capacity(3);
    for (name, (kind, key, value, entries)) in MAP_NAMES.iter().zip(layouts()) {
        let flags = match kind {
            MapType::Hash => sys::F_NO_PREALLOC,
            _ => 0,
        };
        maps.push(sys::map_create(kind, name, key, value, entries, flags)?);
    }
    <[OwnedFd; 3]>::try_from(maps).map_err(|_| SysError::Unexpected {
        what: "dispatcher maps",
        reason: "not three".into(),
    })
}

/// Pins `maps` in `dir` (created if need be) as [`PINS`], in place of what is there.
fn pin(maps: &[OwnedFd; 3], dir: &Path) -> Result<(), SysError> {
    std::fs::create_dir_all(dir).map_err(|e| SysError::Unexpected {
        what: "pin the dispatcher's maps",
        reason: format!("create {}: {e}", dir.display()),
    })?;
    for (fd, name) in maps.iter().zip(PINS) {
        let path = dir.join(name);
        // What was pinned there: these maps again, or another namespace's.
        let _ = std::fs::remove_file(&path);
        sys::obj_pin(fd, &path)?;
    }
    Ok(())
}

/// Every entry of the interface hash (ifindex → slot).
fn entries(ifaces: &OwnedFd) -> Result<BTreeMap<u32, u32>, SysError> {
    let mut out = BTreeMap::new();
    let mut key: Option<[u8; 4]> = None;
    loop {
        let mut next = [0u8; 4];
        if !sys::map_next_key(ifaces, key.as_ref().map(|k| &k[..]), &mut next)? {
            return Ok(out);
        }
        let mut slot = [0u8; 4];
        // Deleted since (by hand): skipped.
        if sys::map_lookup(ifaces, &next, &mut slot)? {
            let slot = u32::from_ne_bytes(slot);
            if slot < SLOTS {
                out.insert(u32::from_ne_bytes(next), slot);
            }
        }
        key = Some(next);
        if out.len() > SLOTS as usize {
            return Ok(out);
        }
    }
}

/// Loads the dispatcher `code` as `name`, its hash and program array patched in.
fn load(
    name: &str,
    code: &Program,
    ifaces: &OwnedFd,
    array: &OwnedFd,
    license: &CStr,
) -> Result<OwnedFd, SysError> {
    let mut insns = code.insns.clone();
    for &(i, map) in &code.maps {
        insns[i].imm = match map {
            MapRef::Params => ifaces.as_raw_fd(),
            _ => array.as_raw_fd(),
        };
    }
    let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    sys::prog_load(name, &bytes, license)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatcher_reads_its_two_maps_and_tail_calls_once() {
        let p = program().unwrap();
        let maps: Vec<MapRef> = p.maps.iter().map(|&(_, m)| m).collect();
        assert_eq!(maps, [MapRef::Params, MapRef::Pieces]);
        let tail_calls = p
            .insns
            .iter()
            .filter(|i| i.code == 0x85 && i.imm == Helper::TailCall as i32)
            .count();
        assert_eq!(tail_calls, 1);
    }
}

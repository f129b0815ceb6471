//! The few `bpf(2)` commands this crate issues, called directly: map create, update,
//! delete, program load and test run. No C library is linked, so the crate builds
//! anywhere the workspace builds; the kernel checks everything at run time.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::SysError;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// `BPF_F_NO_PREALLOC`: entries allocated as they are added (LPM tries require it).
pub const F_NO_PREALLOC: u32 = 1;

/// Map types used here (`enum bpf_map_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH`.
    Hash = 1,
    /// `BPF_MAP_TYPE_PROG_ARRAY`: program descriptors, for tail calls.
    ProgArray = 3,
    /// `BPF_MAP_TYPE_PERCPU_HASH`: a value per possible CPU under each key.
    PercpuHash = 5,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PercpuArray = 6,
    /// `BPF_MAP_TYPE_LRU_HASH`: the least recently used entry makes room.
    LruHash = 9,
    /// `BPF_MAP_TYPE_LPM_TRIE`.
    LpmTrie = 11,
}

/// `BPF_PROG_TYPE_SCHED_CLS`: a TC classifier.
const PROG_TYPE_SCHED_CLS: u32 = 3;

/// The kernel's object name length (`BPF_OBJ_NAME_LEN`), NUL included.
const OBJ_NAME_LEN: usize = 16;

fn obj_name(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut n = [0u8; OBJ_NAME_LEN];
    // Object names are [A-Za-z0-9_.]; others are replaced.
    for (d, s) in n.iter_mut().zip(name.bytes().take(OBJ_NAME_LEN - 1)) {
        *d = if s.is_ascii_alphanumeric() || s == b'_' || s == b'.' {
            s
        } else {
            b'_'
        };
    }
    n
}

/// Issues `bpf(cmd, attr)`; the result or errno.
///
/// # Safety
/// `attr` must be the attribute struct `cmd` expects, and every pointer in it valid for the
/// sizes it states.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller passes the right struct; the size is the struct's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A `bpf` command's result where "no such entry" (`ENOENT`: no key, no next key, nothing
/// pinned) is an answer: `None` then; any other error is `op`'s.
fn unless_absent(
    result: io::Result<libc::c_long>,
    op: impl FnOnce() -> String,
) -> Result<Option<libc::c_long>, SysError> {
    match result {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(source) => Err(SysError::Bpf { op: op(), source }),
    }
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; OBJ_NAME_LEN],
}

/// Creates a map; its file descriptor.
pub fn map_create(
    kind: MapType,
    name: &str,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> Result<OwnedFd, SysError> {
    let mut attr = MapCreateAttr {
        map_type: kind as u32,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
        map_name: obj_name(name),
        ..Default::default()
    };
    // SAFETY: the struct is BPF_MAP_CREATE's attribute prefix, without pointers.
    let fd = unsafe { bpf(BPF_MAP_CREATE, &mut attr) }.map_err(|source| SysError::Bpf {
        op: format!("BPF_MAP_CREATE {name}"),
        source,
    })?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Writes `key → value` (`BPF_ANY`). The slices must be the map's key and value sizes.
pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> Result<(), SysError> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: key and value outlive the call; the kernel reads the map's sizes, which the
    // callers' slices have (fixed by `layout`).
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }
        .map(|_| ())
        .map_err(|source| SysError::Bpf {
            op: "BPF_MAP_UPDATE_ELEM".into(),
            source,
        })
}

/// Reads the value under `key` into `value` (for a per-CPU map, one value per possible
/// CPU, each rounded up to 8 bytes: see [`possible_cpus`]); `false` when there is none.
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> Result<bool, SysError> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: as in `map_update`; `value` is as long as the kernel writes (the callers
    // size it from the map's value size and the possible CPUs).
    let r = unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) };
    Ok(unless_absent(r, || "BPF_MAP_LOOKUP_ELEM".into())?.is_some())
}

/// The number of possible CPUs, as the kernel sizes per-CPU map values: one more than the
/// highest CPU in `/sys/devices/system/cpu/possible` (e.g. `0-63`, or `0,2-3`).
pub fn possible_cpus() -> Result<usize, SysError> {
    const PATH: &str = "/sys/devices/system/cpu/possible";
    let unexpected = |reason: String| SysError::Unexpected {
        what: "read the possible CPUs",
        reason,
    };
    let text = std::fs::read_to_string(PATH).map_err(|e| unexpected(format!("{PATH}: {e}")))?;
    highest_cpu(&text)
        .map(|n| n + 1)
        .ok_or_else(|| unexpected(format!("{PATH}: unexpected content {text:?}")))
}

/// The highest CPU number in a kernel CPU list (`0-3,8`); `None` when it is not one.
fn highest_cpu(list: &str) -> Option<usize> {
    list.trim()
        .split(',')
        .map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
        .try_fold(None, |max: Option<usize>, n| Some(max.max(Some(n?))))?
}

/// Deletes `key`; an absent key is not an error.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> Result<(), SysError> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: as in `map_update`.
    let r = unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut attr) };
    unless_absent(r, || "BPF_MAP_DELETE_ELEM".into()).map(|_| ())
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; OBJ_NAME_LEN],
}

/// The verifier log kept on a rejection (its tail says why).
const LOG_SIZE: usize = 1 << 20;

/// Loads a TC classifier from raw instruction bytes (8 per instruction), declaring
/// `license` (the kernel lets only GPL-compatible programs call kfuncs).
pub fn prog_load(name: &str, insns: &[u8], license: &std::ffi::CStr) -> Result<OwnedFd, SysError> {
    let mut attr = ProgLoadAttr {
        prog_type: PROG_TYPE_SCHED_CLS,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: obj_name(name),
        ..Default::default()
    };
    // SAFETY: insns and license outlive the call; no log buffer on the first attempt.
    match unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
        // SAFETY: a new descriptor nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(source) => {
            // Again with the log, which only a rejection pays for.
            let mut log = vec![0u8; LOG_SIZE];
            attr.log_level = 1;
            attr.log_size = LOG_SIZE as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            // SAFETY: as above, and the log buffer is LOG_SIZE bytes.
            if let Ok(fd) = unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
                // SAFETY: a new descriptor nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            Err(SysError::Verifier {
                name: name.into(),
                source,
                log: tail,
            })
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// What one `BPF_PROG_TEST_RUN` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (the last run's).
    pub retval: u32,
    /// Mean time per run in nanoseconds, as the kernel measured it.
    pub duration_ns: u32,
    /// The context after the run.
    pub ctx_out: Vec<u8>,
}

/// Runs a loaded program `repeat` times on `frame` with the context `ctx`.
pub fn prog_test_run(
    prog: &OwnedFd,
    frame: &[u8],
    ctx: &[u8],
    repeat: u32,
) -> Result<TestRun, SysError> {
    let mut data_out = vec![0u8; frame.len() + 256];
    let mut ctx_out = vec![0u8; ctx.len()];
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: data_out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: data_out.as_mut_ptr() as u64,
        repeat,
        ctx_size_in: ctx.len() as u32,
        ctx_size_out: ctx_out.len() as u32,
        ctx_in: ctx.as_ptr() as u64,
        ctx_out: ctx_out.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: every buffer outlives the call and is as large as its stated size.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr) }.map_err(|source| SysError::Bpf {
        op: "BPF_PROG_TEST_RUN".into(),
        source,
    })?;
    ctx_out.truncate(attr.ctx_size_out as usize);
    Ok(TestRun {
        retval: attr.retval,
        duration_ns: attr.duration,
        ctx_out,
    })
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd: u32,
    _pad: u32,
    expected_revision: u64,
}

/// Where a TCX link attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcxDirection {
    /// Packets the interface receives (`BPF_TCX_INGRESS`).
    Ingress = 46,
    /// Packets the interface sends (`BPF_TCX_EGRESS`).
    Egress = 47,
}

/// Attaches a TC classifier to interface `ifindex` of the calling thread's network
/// namespace (TCX, kernel 6.6 or later); the link's descriptor: closing it detaches.
pub fn tcx_attach(prog: &OwnedFd, ifindex: u32, dir: TcxDirection) -> Result<OwnedFd, SysError> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: dir as u32,
        ..Default::default()
    };
    // SAFETY: BPF_LINK_CREATE's attribute prefix for TCX, without pointers.
    let fd = unsafe { bpf(BPF_LINK_CREATE, &mut attr) }.map_err(|source| SysError::Bpf {
        op: format!("BPF_LINK_CREATE tcx {dir:?} ifindex {ifindex}"),
        source,
    })?;
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[repr(C)]
#[derive(Default)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// Replaces the program of `link` with `prog` in one step: every packet meets either the
/// old program or the new one.
pub fn link_update(link: &OwnedFd, prog: &OwnedFd) -> Result<(), SysError> {
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: prog.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: BPF_LINK_UPDATE's attributes, without pointers.
    unsafe { bpf(BPF_LINK_UPDATE, &mut attr) }
        .map(|_| ())
        .map_err(|source| SysError::Bpf {
            op: "BPF_LINK_UPDATE".into(),
            source,
        })
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The first `N` words of the kernel's info on object `fd` (a program's or a link's).
fn info_words<const N: usize>(fd: &OwnedFd, what: &str) -> Result<[u32; N], SysError> {
    let mut info = [0u32; N];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: (N * 4) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: info is info_len bytes and outlives the call.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.map_err(|source| SysError::Bpf {
        op: format!("BPF_OBJ_GET_INFO_BY_FD {what}"),
        source,
    })?;
    Ok(info)
}

/// The kernel's id of program `prog` (`struct bpf_prog_info`: type, id).
pub fn prog_id(prog: &OwnedFd) -> Result<u32, SysError> {
    Ok(info_words::<2>(prog, "program")?[1])
}

#[repr(C)]
#[derive(Default)]
struct PinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// Pins object `fd` (a map or a program) at `path`, in a BPF filesystem.
pub fn obj_pin(fd: &OwnedFd, path: &std::path::Path) -> Result<(), SysError> {
    use std::os::unix::ffi::OsStrExt;
    let op = || format!("BPF_OBJ_PIN {}", path.display());
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| SysError::Bpf {
        op: op(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    let mut attr = PinAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: the path outlives the call and is NUL-terminated.
    unsafe { bpf(BPF_OBJ_PIN, &mut attr) }
        .map(|_| ())
        .map_err(|source| SysError::Bpf { op: op(), source })
}

/// A new descriptor of the object pinned at `path` (`BPF_OBJ_GET`); `None` when nothing
/// is pinned there.
pub fn obj_get(path: &std::path::Path) -> Result<Option<OwnedFd>, SysError> {
    use std::os::unix::ffi::OsStrExt;
    let op = || format!("BPF_OBJ_GET {}", path.display());
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| SysError::Bpf {
        op: op(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    let mut attr = PinAttr {
        pathname: c.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the path outlives the call and is NUL-terminated.
    let r = unsafe { bpf(BPF_OBJ_GET, &mut attr) };
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unless_absent(r, op)?.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// The key after `key` in `map` (the first one when `key` is `None`), written into
/// `next`; `false` when there is none. The slices must be the map's key size.
pub fn map_next_key(map: &OwnedFd, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, SysError> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        // `next_key` sits where an element command's `value` does.
        value: next.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: both pointers are valid for the map's key size (the caller's contract).
    let r = unsafe { bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) };
    Ok(unless_absent(r, || "BPF_MAP_GET_NEXT_KEY".into())?.is_some())
}

/// Whether the kernel still holds a program of id `id` (something references it: a
/// descriptor, a tc filter, a program array's slot, a packet running it).
pub fn prog_exists(id: u32) -> Result<bool, SysError> {
    match prog_fd_by_id(id) {
        Ok(_) => Ok(true),
        Err(SysError::Bpf { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The id of the program link `link` runs (`struct bpf_link_info`: type, id, prog_id).
pub fn link_prog_id(link: &OwnedFd) -> Result<u32, SysError> {
    Ok(info_words::<3>(link, "link")?[2])
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// A new descriptor of the object (`cmd`: program or map) with kernel id `id`.
fn fd_by_id(cmd: libc::c_long, id: u32, what: &str) -> Result<OwnedFd, SysError> {
    let mut attr = GetFdAttr {
        id,
        ..Default::default()
    };
    // SAFETY: the struct is the command's attribute prefix, without pointers.
    let fd = unsafe { bpf(cmd, &mut attr) }.map_err(|source| SysError::Bpf {
        op: format!("{what} {id}"),
        source,
    })?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A descriptor of the program with kernel id `id` (`BPF_PROG_GET_FD_BY_ID`).
pub fn prog_fd_by_id(id: u32) -> Result<OwnedFd, SysError> {
    fd_by_id(BPF_PROG_GET_FD_BY_ID, id, "BPF_PROG_GET_FD_BY_ID")
}

/// A descriptor of the map with kernel id `id` (`BPF_MAP_GET_FD_BY_ID`).
pub fn map_fd_by_id(id: u32) -> Result<OwnedFd, SysError> {
    fd_by_id(BPF_MAP_GET_FD_BY_ID, id, "BPF_MAP_GET_FD_BY_ID")
}

/// `struct bpf_prog_info` up to its name: `nr_map_ids` at 52, `map_ids` at 56.
const PROG_INFO_LEN: usize = 80;

/// The kernel ids of the maps program `prog` uses (at most 64: the policy programs use
/// fewer than ten).
pub fn prog_map_ids(prog: &OwnedFd) -> Result<Vec<u32>, SysError> {
    const MAX: u32 = 64;
    let mut ids = vec![0u32; MAX as usize];
    let mut info = [0u8; PROG_INFO_LEN];
    info[52..56].copy_from_slice(&MAX.to_ne_bytes());
    info[56..64].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: PROG_INFO_LEN as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: info is info_len bytes and points the kernel at `ids`, MAX words long; both
    // outlive the call.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.map_err(|source| SysError::Bpf {
        op: "BPF_OBJ_GET_INFO_BY_FD program".into(),
        source,
    })?;
    let n = u32::from_ne_bytes(info[52..56].try_into().expect("4 bytes"));
    ids.truncate(n.min(MAX) as usize);
    Ok(ids)
}

/// What the kernel says of a map (`struct bpf_map_info`'s first fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapInfo {
    /// `enum bpf_map_type`.
    pub kind: u32,
    /// Key size.
    pub key_size: u32,
    /// Value size.
    pub value_size: u32,
    /// Most entries.
    pub max_entries: u32,
    /// Its name.
    pub name: String,
}

/// The kernel's [`MapInfo`] of `map`.
pub fn map_info(map: &OwnedFd) -> Result<MapInfo, SysError> {
    let w = info_words::<10>(map, "map")?;
    let name: Vec<u8> = w[6..10]
        .iter()
        .flat_map(|x| x.to_ne_bytes())
        .take_while(|&b| b != 0)
        .collect();
    Ok(MapInfo {
        kind: w[0],
        key_size: w[2],
        value_size: w[3],
        max_entries: w[4],
        name: String::from_utf8_lossy(&name).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_truncated_and_cleaned() {
        let n = obj_name("cali-fw/very-long-name");
        assert_eq!(&n[..15], b"cali_fw_very_lo");
        assert_eq!(n[15], 0);
    }

    #[test]
    fn the_highest_cpu_of_a_kernel_cpu_list() {
        assert_eq!(highest_cpu("0-63\n"), Some(63));
        assert_eq!(highest_cpu("0,2-3,8"), Some(8));
        assert_eq!(highest_cpu("0"), Some(0));
        assert_eq!(highest_cpu(""), None);
        assert_eq!(highest_cpu("0-x"), None);
    }
}

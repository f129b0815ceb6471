//! Program arrays pinned in the BPF filesystem, so that split policies outlive the agent.
//!
//! A program array, unlike the other maps, has its slots emptied by the kernel when its
//! last user reference goes (a descriptor or a pin; the programs using it do not count),
//! so the later pieces of a split policy ([`crate::tail`]) would be unloaded when the
//! agent exits while its filters stay: packets needing them would be dropped. Each chain
//! of pieces therefore pins its array under [`ROOT`], in a directory per network
//! namespace; the backend unpins it with the chain, leaves it when it is dropped (like
//! the filters), and a backend taking the namespace over removes the pins it found once
//! it has replaced the filters that used them ([`crate::backend`]). Where `/sys/fs/bpf`
//! is not a BPF filesystem nothing is pinned, and split policies last as long as the
//! agent.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the pins go: one directory per network namespace (`netns-<inode>`).
pub const ROOT: &str = "/sys/fs/bpf/calico-rs";
/// The BPF filesystem's `statfs` type.
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;

/// The pin directory of namespace `netns` (`None`: the calling process's), or `None`
/// when the BPF filesystem is not mounted at `/sys/fs/bpf`.
pub fn dir(netns: Option<&Path>) -> Option<PathBuf> {
    let ns = netns.unwrap_or(Path::new("/proc/self/ns/net"));
    let inode = std::fs::metadata(ns).ok()?.ino();
    is_bpffs(Path::new("/sys/fs/bpf")).then(|| Path::new(ROOT).join(format!("netns-{inode}")))
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data, written by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs the call may write.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && st.f_type as u64 == BPF_FS_MAGIC
}

/// The pins in `dir` (none when it does not exist).
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.filter_map(|e| Some(e.ok()?.path())).collect()
}

/// Unpins `pins` (their arrays' slots are emptied once nothing else holds them), then
/// removes `dir` when that left it empty. A pin gone already is no error; one that
/// cannot be removed is left (it holds only programs no filter runs).
pub fn remove(dir: Option<&Path>, pins: &[PathBuf]) {
    for p in pins {
        let _ = std::fs::remove_file(p);
    }
    if let Some(dir) = dir {
        // Fails, harmlessly, while other pins are in it.
        let _ = std::fs::remove_dir(dir);
    }
}

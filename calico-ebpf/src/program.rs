//! Loading a generated program and running it on a frame (`BPF_PROG_TEST_RUN`).

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::error::SysError;
use crate::generate::parse::{TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::generate::Pieces;
use crate::insn::{MapRef, Program};
use crate::layout::skb;
use crate::sets::Maps;
use crate::sys::{self, TcxDirection};
use crate::tail::Tail;

/// A program the kernel verified and holds: one, or the entry of pieces chained with
/// tail calls, with the others.
#[derive(Debug)]
pub struct Loaded {
    fd: OwnedFd,
    insns: usize,
    /// The pieces after the entry, for a split policy.
    tail: Option<Tail>,
}

impl AsFd for Loaded {
    /// The program's descriptor (what a tc filter is given, `TCA_BPF_FD`).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A program attached to an interface with a TCX link; dropping it detaches the program.
/// (The backend attaches with tc filters, [`crate::tc`]; TCX stays for direct use.)
#[derive(Debug)]
pub struct Attached {
    link: OwnedFd,
}

impl Attached {
    /// Puts `program` in place of the attached one, atomically.
    pub fn replace(&self, program: &Loaded) -> Result<(), SysError> {
        sys::link_update(&self.link, &program.fd)
    }

    /// The kernel's id of the program the link runs, as the link reports it.
    pub fn program_id(&self) -> Result<u32, SysError> {
        sys::link_prog_id(&self.link)
    }
}

/// The license a program declares when nothing else is asked for: the project's.
pub const LICENSE: &CStr = c"Apache-2.0";

/// What a test run of a policy program decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the program let the packet go on.
    pub accepted: bool,
    /// The packet mark after the program.
    pub mark: u32,
}

impl Loaded {
    /// Loads `program` as a TC classifier named `name`, its map references pointing at
    /// `maps`.
    pub fn load(name: &str, program: &Program, maps: &Maps) -> Result<Loaded, SysError> {
        Loaded::load_with_license(name, program, maps, LICENSE)
    }

    /// [`Loaded::load`], declaring `license`. The kernel lets only programs declaring a
    /// GPL-compatible license call kfuncs, so a program generated with
    /// [`crate::generate::Conntrack::Lookup`] must declare one; which one is the
    /// caller's decision.
    pub fn load_with_license(
        name: &str,
        program: &Program,
        maps: &Maps,
        license: &CStr,
    ) -> Result<Loaded, SysError> {
        Loaded::load_shared(name, program, maps, None, license)
    }

    /// [`Loaded::load_with_license`] for a program generated to be shared between
    /// interfaces: its [`crate::insn::MapRef::Params`] references point at `params`
    /// (see [`crate::generate::params`]).
    pub fn load_shared(
        name: &str,
        program: &Program,
        maps: &Maps,
        params: Option<&OwnedFd>,
        license: &CStr,
    ) -> Result<Loaded, SysError> {
        Ok(Loaded {
            fd: load_one(name, program, maps, params, None, license)?,
            insns: program.insns.len(),
            tail: None,
        })
    }

    /// Loads `pieces`: one program as [`Loaded::load_shared`], or the pieces after the
    /// entry first (last first, each in its slot of a new program array, named
    /// `<name>_<i>`), then the entry, so that nothing can run before every slot is
    /// filled. Nothing is left loaded when a load fails.
    pub fn load_pieces(
        name: &str,
        pieces: &Pieces,
        maps: &Maps,
        params: Option<&OwnedFd>,
        license: &CStr,
    ) -> Result<Loaded, SysError> {
        let tail = match pieces.len() {
            1 => None,
            _ => Some(Tail::load(name, pieces, maps, params, license)?),
        };
        let array = tail.as_ref().map(Tail::array);
        Ok(Loaded {
            fd: load_one(name, pieces.entry(), maps, params, array, license)?,
            insns: pieces.insns(),
            tail,
        })
    }

    /// The entry's descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The pieces after the entry, for a split policy.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// The pieces after the entry, to pin them.
    pub(crate) fn tail_mut(&mut self) -> Option<&mut Tail> {
        self.tail.as_mut()
    }

    /// Closes the entry's descriptor and keeps the pieces after it (to empty their slots
    /// once the kernel has released the entry: [`crate::shared::ProgramCache::purge`]).
    pub(crate) fn into_tail(self) -> Option<Tail> {
        self.tail
    }

    /// Attaches the program to interface `ifindex` of the calling thread's network
    /// namespace, in direction `dir` (TCX).
    pub fn attach(&self, ifindex: u32, dir: TcxDirection) -> Result<Attached, SysError> {
        Ok(Attached {
            link: sys::tcx_attach(&self.fd, ifindex, dir)?,
        })
    }

    /// The program's size in instructions (all pieces').
    pub fn insns(&self) -> usize {
        self.insns
    }

    /// The kernel's id of the program (what `bpftool prog show id` takes).
    pub fn id(&self) -> Result<u32, SysError> {
        sys::prog_id(&self.fd)
    }

    /// Runs the program once on `frame` (an Ethernet frame) with the conntrack word `ct`
    /// (see [`crate::layout::ct`]) and the packet mark `mark`.
    pub fn run(&self, frame: &[u8], ct: u32, mark: u32) -> Result<Decision, SysError> {
        let out = sys::prog_test_run(&self.fd, frame, &context(ct, mark), 1)?;
        decision(&out)
    }

    /// Runs the program `repeat` times on `frame`; the kernel's mean time per run in
    /// nanoseconds.
    pub fn time(&self, frame: &[u8], ct: u32, repeat: u32) -> Result<u32, SysError> {
        Ok(sys::prog_test_run(&self.fd, frame, &context(ct, 0), repeat)?.duration_ns)
    }
}

/// Loads one program with its map references pointing at `maps`, the params map
/// `params` and the program array `pieces`.
pub(crate) fn load_one(
    name: &str,
    program: &Program,
    maps: &Maps,
    params: Option<&OwnedFd>,
    pieces: Option<&OwnedFd>,
    license: &CStr,
) -> Result<OwnedFd, SysError> {
    let mut insns = program.insns.clone();
    for &(at, map) in &program.maps {
        let (fd, what) = match map {
            MapRef::Params => (params, "per-interface values"),
            MapRef::Pieces => (pieces, "pieces"),
            other => (maps.fd(other), "a map"),
        };
        let fd = fd.ok_or(SysError::Unexpected {
            what: "program load",
            reason: format!("program {name} reads {what} but was given no map of them"),
        })?;
        insns[at].imm = fd.as_raw_fd();
    }
    let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    sys::prog_load(name, &bytes, license)
}

/// The `__sk_buff` a test run starts from: only the mark and `cb[0]` set.
fn context(ct: u32, mark: u32) -> Vec<u8> {
    let mut ctx = vec![0u8; skb::SIZE];
    ctx[skb::MARK as usize..][..4].copy_from_slice(&mark.to_ne_bytes());
    ctx[skb::CB0 as usize..][..4].copy_from_slice(&ct.to_ne_bytes());
    ctx
}

fn decision(out: &sys::TestRun) -> Result<Decision, SysError> {
    let accepted = match out.retval as i32 {
        TC_ACT_UNSPEC => true,
        TC_ACT_SHOT => false,
        other => {
            return Err(SysError::Unexpected {
                what: "policy program test run",
                reason: format!("return value {other} is neither TC_ACT_UNSPEC nor TC_ACT_SHOT"),
            })
        }
    };
    let m = skb::MARK as usize;
    let mark = out
        .ctx_out
        .get(m..m + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(SysError::Unexpected {
            what: "policy program test run",
            reason: format!("context out of {} bytes has no mark", out.ctx_out.len()),
        })?;
    Ok(Decision { accepted, mark })
}

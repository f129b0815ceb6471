//! Loading a generated program and running it on a frame (`BPF_PROG_TEST_RUN`).

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::error::SysError;
use crate::generate::parse::{TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::insn::Program;
use crate::layout::skb;
use crate::sets::Maps;
use crate::sys::{self, TcxDirection};

/// A program the kernel verified and holds.
#[derive(Debug)]
pub struct Loaded {
    fd: OwnedFd,
    insns: usize,
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
        let mut insns = program.insns.clone();
        for &(at, map) in &program.maps {
            let fd = maps.fd(map).or(params).ok_or(SysError::Unexpected {
                what: "program load",
                reason: format!("program {name} reads per-interface values but has no map of them"),
            })?;
            insns[at].imm = fd.as_raw_fd();
        }
        let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
        Ok(Loaded {
            fd: sys::prog_load(name, &bytes, license)?,
            insns: insns.len(),
        })
    }

    /// Attaches the program to interface `ifindex` of the calling thread's network
    /// namespace, in direction `dir` (TCX).
    pub fn attach(&self, ifindex: u32, dir: TcxDirection) -> Result<Attached, SysError> {
        Ok(Attached {
            link: sys::tcx_attach(&self.fd, ifindex, dir)?,
        })
    }

    /// The program's size in instructions.
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

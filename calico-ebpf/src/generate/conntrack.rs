//! Where a program's conntrack word comes from ([`Conntrack`]), and the kernel lookup
//! that computes it on a live interface.
//!
//! The lookup calls the kernel's conntrack kfuncs (`bpf_skb_ct_lookup`, then
//! `bpf_ct_release`) with the packet's tuple, and reads the entry's `status` and `master`
//! at the offsets the kernel's BTF gives. The word it stores, as nftables' `ct state`
//! would see the packet: the reply direction, or a connection that has seen a reply, is
//! established; a connection with a master (an expectation) is related; any other entry
//! is new (but confirmed); no entry is new and unconfirmed. What it cannot see: the
//! kfunc looks up TCP and UDP only, so ICMP and other protocols are always new (an echo
//! reply is not established, an ICMP error not related), and nothing is ever invalid.

use super::flow_table::FlowTimeouts;
use crate::btf::{Btf, BtfError};
use crate::insn::{Alu, Asm, Cond, Reg, Size};
use crate::layout::{ct, skb, state};

/// Where the policy program's conntrack word comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Conntrack {
    /// From `skb->cb[0]`: put there by a program that ran before (the fixed program of
    /// the design), or by a test through `BPF_PROG_TEST_RUN`'s context.
    #[default]
    Context,
    /// From the kernel's conntrack table, looked up by the program itself. The kernel
    /// tracks in a namespace only once something there asks it to (an nftables `ct`
    /// expression, say).
    Lookup(CtKfuncs),
    /// From the programs' own flow table (an LRU hash, [`crate::layout::flow`]): a packet
    /// that completes its path through the programs as a connection's first is recorded;
    /// a packet of a recorded flow is new (confirmed) until one of the reverse direction
    /// was seen, established after; a packet whose reversed key is recorded is established
    /// (and marks the flow as having seen a reply). TCP, UDP, SCTP, DCCP, UDP-Lite and
    /// ICMP echo (its id as the port). Flows expire after the idle times given
    /// ([`FlowTimeouts`]); a TCP FIN or RST closes. Not yet: related (ICMP errors are
    /// new), invalid.
    Table(FlowTimeouts),
}

/// What the lookup needs from the running kernel's BTF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtKfuncs {
    /// BTF id of `bpf_skb_ct_lookup`.
    pub lookup: u32,
    /// BTF id of `bpf_ct_release`.
    pub release: u32,
    /// Byte offset of `status` in `struct nf_conn`.
    pub status: i16,
    /// Byte offset of `master` in `struct nf_conn`.
    pub master: i16,
}

impl CtKfuncs {
    /// Finds the kfuncs and offsets in `btf`; the error names what the kernel lacks.
    pub fn from_btf(btf: &Btf) -> Result<CtKfuncs, BtfError> {
        let offset = |m: &str| -> Result<i16, BtfError> {
            let off = btf.member_offset("nf_conn", m)?;
            i16::try_from(off).map_err(|_| BtfError::Malformed("nf_conn member beyond 32K"))
        };
        Ok(CtKfuncs {
            lookup: btf.function("bpf_skb_ct_lookup")?,
            release: btf.function("bpf_ct_release")?,
            status: offset("status")?,
            master: offset("master")?,
        })
    }
}

/// `IPS_SEEN_REPLY` of `enum ip_conntrack_status`.
const IPS_SEEN_REPLY: i32 = 1 << 1;
/// `BPF_F_CURRENT_NETNS`: look up in the packet's network namespace.
const CURRENT_NETNS: i32 = -1;
/// The `struct bpf_ct_opts` size every kernel with the kfunc takes (newer ones also 16).
const OPTS_SIZE: i32 = 12;
/// Stack slots: the tuple (up to 36 bytes) and the options.
const TUPLE: i16 = -112;
const OPTS: i16 = -128;

/// Emits the conntrack word into the state, for an IP packet the prologue parsed.
pub fn emit(a: &mut Asm, conntrack: Conntrack) {
    let k = match conntrack {
        Conntrack::Context => {
            a.load(Size::W, Reg::R1, Reg::R6, skb::CB0);
            a.store(Size::W, Reg::R7, state::CT, Reg::R1);
            return;
        }
        Conntrack::Table(timeouts) => {
            super::flow_table::emit_lookup(a, &timeouts);
            return;
        }
        Conntrack::Lookup(k) => k,
    };
    let done = a.label();
    let v6 = a.label();
    let call = a.label();
    a.store_imm(
        Size::W,
        Reg::R7,
        state::CT,
        (ct::NEW | ct::UNCONFIRMED) as i32,
    );
    a.load(Size::B, Reg::R1, Reg::R7, state::HAS_PORTS);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, done);
    let tcp_or_udp = a.label();
    a.load(Size::B, Reg::R9, Reg::R7, state::PROTO);
    a.jmp_imm(Cond::Eq, Reg::R9, 6, tcp_or_udp);
    a.jmp_imm(Cond::Ne, Reg::R9, 17, done);
    a.bind(tcp_or_udp);

    // struct bpf_ct_opts { s32 netns_id; s32 error; u8 l4proto; u8 dir; u8 reserved[2]; }
    a.store_imm(Size::W, Reg::R10, OPTS, CURRENT_NETNS);
    a.store_imm(Size::W, Reg::R10, OPTS + 4, 0);
    a.store_imm(Size::W, Reg::R10, OPTS + 8, 0);
    a.store(Size::B, Reg::R10, OPTS + 8, Reg::R9);

    // struct bpf_sock_tuple: addresses, then ports in network order.
    let ports = |a: &mut Asm, at: i16| {
        for (from, to) in [(state::SPORT, at), (state::DPORT, at + 2)] {
            a.load(Size::H, Reg::R1, Reg::R7, from);
            a.be16(Reg::R1);
            a.store(Size::H, Reg::R10, to, Reg::R1);
        }
    };
    let copy = |a: &mut Asm, from: i16, to: i16, len: i16| {
        for i in (0..len).step_by(4) {
            a.load(Size::W, Reg::R1, Reg::R7, from + i);
            a.store(Size::W, Reg::R10, to + i, Reg::R1);
        }
    };
    a.load(Size::B, Reg::R1, Reg::R7, state::FAMILY);
    a.jmp_imm(Cond::Ne, Reg::R1, 4, v6);
    copy(a, state::SRC, TUPLE, 4);
    copy(a, state::DST, TUPLE + 4, 4);
    ports(a, TUPLE + 8);
    a.alu64_imm(Alu::Mov, Reg::R3, 12);
    a.ja(call);
    a.bind(v6);
    copy(a, state::SRC, TUPLE, 16);
    copy(a, state::DST, TUPLE + 16, 16);
    ports(a, TUPLE + 32);
    a.alu64_imm(Alu::Mov, Reg::R3, 36);

    a.bind(call);
    a.alu64_reg(Alu::Mov, Reg::R1, Reg::R6);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(TUPLE));
    a.alu64_reg(Alu::Mov, Reg::R4, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R4, i32::from(OPTS));
    a.alu64_imm(Alu::Mov, Reg::R5, OPTS_SIZE);
    a.call_kfunc(k.lookup);
    a.jmp_imm(Cond::Eq, Reg::R0, 0, done);

    // R4 = the word: established before related before new.
    let not_related = a.label();
    let established = a.label();
    let store = a.label();
    a.alu64_imm(Alu::Mov, Reg::R4, ct::NEW as i32);
    a.load(Size::DW, Reg::R3, Reg::R0, k.master);
    a.jmp_imm(Cond::Eq, Reg::R3, 0, not_related);
    a.alu64_imm(Alu::Mov, Reg::R4, ct::RELATED as i32);
    a.bind(not_related);
    a.load(Size::DW, Reg::R2, Reg::R0, k.status);
    a.jmp_imm(Cond::Set, Reg::R2, IPS_SEEN_REPLY, established);
    a.load(Size::B, Reg::R5, Reg::R10, OPTS + 9);
    a.jmp_imm(Cond::Eq, Reg::R5, 0, store);
    a.bind(established);
    a.alu64_imm(Alu::Mov, Reg::R4, ct::ESTABLISHED as i32);
    a.bind(store);
    a.store(Size::W, Reg::R7, state::CT, Reg::R4);
    a.alu64_reg(Alu::Mov, Reg::R1, Reg::R0);
    a.call_kfunc(k.release);
    a.bind(done);
}

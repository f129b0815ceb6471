//! The programs' own flow table ([`super::Conntrack::Table`], [`crate::layout::flow`]):
//! the lookup that gives a packet its conntrack word, and the record a connection's first
//! accepted packet makes.
//!
//! Flows expire as the kernel's conntrack entries do, so that a flow once allowed is not
//! established for ever (a later connection with the same addresses and ports would skip
//! the policy): each packet of a flow stamps it with `bpf_ktime_get_ns()`, and a flow
//! idle longer than its timeout ([`FlowTimeouts`], by protocol and TCP state) is deleted
//! at its next packet, which is then new. A TCP FIN or RST marks the flow closing (a
//! shorter timeout), and a SYN without ACK on a closing flow starts a new connection.
//! Idle time is counted in units of 2^30 ns (~1.07 s): a flow expires between its timeout
//! and one unit later.

use crate::insn::{Alu, Asm, Cond, Helper, Label, MapRef, Reg, Size};
use crate::layout::{ct, flow, state};

/// How long a flow may be idle, in seconds, by protocol and state. The defaults are
/// Calico's eBPF dataplane's (`bpfConntrackTimeouts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// TCP before a reply was seen (`TCPSynSent`, 20 s).
    pub tcp_syn_sent: u32,
    /// TCP once a reply was seen (`TCPEstablished`, 1 h).
    pub tcp_established: u32,
    /// TCP once a FIN or RST was seen (`TCPFinsSeen`, 30 s).
    pub tcp_closing: u32,
    /// UDP (`UDPTimeout`, 60 s).
    pub udp: u32,
    /// ICMP echo (`ICMPTimeout`, 5 s).
    pub icmp: u32,
    /// Every other protocol with ports (`GenericTimeout`, 10 min).
    pub other: u32,
}

impl FlowTimeouts {
    /// Calico's defaults.
    pub const DEFAULT: FlowTimeouts = FlowTimeouts {
        tcp_syn_sent: 20,
        tcp_established: 3600,
        tcp_closing: 30,
        udp: 60,
        icmp: 5,
        other: 600,
    };
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        FlowTimeouts::DEFAULT
    }
}

/// Idle time is compared in units of 2^`UNIT_SHIFT` ns.
const UNIT_SHIFT: i32 = 30;

/// `seconds` in units, rounded up (a flow never expires early), at most `i32::MAX`.
fn units(seconds: u32) -> i32 {
    let ns = u64::from(seconds) * 1_000_000_000;
    let units = ns.div_ceil(1 << UNIT_SHIFT);
    i32::try_from(units).unwrap_or(i32::MAX)
}

/// TCP flag bits in [`state::TCP_FLAGS`].
const FIN: i32 = 0x01;
const SYN: i32 = 0x02;
const RST: i32 = 0x04;
const ACK: i32 = 0x10;

/// The flow key on the stack: 40 bytes at `R10-232`.
const FLOW: i16 = -232;
/// The flow value to insert: 16 bytes at `R10-272`, below the counters' key.
const FLOW_VALUE: i16 = -272;
/// The [`MapRef::Egress`] key (an ifindex) on the stack: `[R10-244, R10-240)`, between
/// the params key and the flow key.
const EGRESS_KEY: i16 = -244;

/// Writes the flow key of the packet into the stack, reversed when `reverse`.
fn flow_key(a: &mut Asm, reverse: bool) {
    a.store_imm(Size::W, Reg::R10, FLOW, 0);
    a.load(Size::B, Reg::R1, Reg::R7, state::FAMILY);
    a.store(Size::B, Reg::R10, FLOW + flow::FAMILY, Reg::R1);
    a.load(Size::B, Reg::R1, Reg::R7, state::PROTO);
    a.store(Size::B, Reg::R10, FLOW + flow::PROTO, Reg::R1);
    let (sport, dport, src, dst) = if reverse {
        (state::FLOW_DPORT, state::FLOW_SPORT, state::DST, state::SRC)
    } else {
        (state::FLOW_SPORT, state::FLOW_DPORT, state::SRC, state::DST)
    };
    a.load(Size::H, Reg::R1, Reg::R7, sport);
    a.store(Size::H, Reg::R10, FLOW + flow::SPORT, Reg::R1);
    a.load(Size::H, Reg::R1, Reg::R7, dport);
    a.store(Size::H, Reg::R10, FLOW + flow::DPORT, Reg::R1);
    for i in (0..16).step_by(4) {
        a.load(Size::W, Reg::R1, Reg::R7, src + i);
        a.store(Size::W, Reg::R10, FLOW + flow::SRC + i, Reg::R1);
        a.load(Size::W, Reg::R1, Reg::R7, dst + i);
        a.store(Size::W, Reg::R10, FLOW + flow::DST + i, Reg::R1);
    }
}

/// `R1 = &flows, R2 = &key on the stack`.
fn map_and_key(a: &mut Asm) {
    a.load_map(Reg::R1, MapRef::Flows);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(FLOW));
}

/// `R8` = the flow table's value for the key on the stack; jumps to `absent` when there
/// is none, or when the flow was idle past its timeout or a SYN starts a new connection
/// over a closing one (the entry is deleted then). Otherwise the flow is stamped with
/// this packet's time, and marked closing by a FIN or RST.
fn live_flow(a: &mut Asm, t: &FlowTimeouts, absent: Label) {
    let (expired, compare, tcp, live) = (a.label(), a.label(), a.label(), a.label());
    map_and_key(a);
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Cond::Eq, Reg::R0, 0, absent);
    a.alu64_reg(Alu::Mov, Reg::R8, Reg::R0);
    a.call(Helper::KtimeGetNs);
    // R2 = idle units, R3 = the timeout's.
    a.load(Size::DW, Reg::R2, Reg::R8, flow::LAST_SEEN);
    a.alu64_reg(Alu::Mov, Reg::R1, Reg::R0);
    a.alu64_reg(Alu::Sub, Reg::R1, Reg::R2);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R1);
    a.alu64_imm(Alu::Rsh, Reg::R2, UNIT_SHIFT);
    a.load(Size::B, Reg::R4, Reg::R7, state::PROTO);
    a.load(Size::W, Reg::R5, Reg::R8, flow::FLAGS);
    a.alu64_imm(Alu::Mov, Reg::R3, units(t.other));
    a.jmp_imm(Cond::Eq, Reg::R4, 6, tcp);
    let udp = units(t.udp);
    let icmp = units(t.icmp);
    for (proto, timeout) in [(17, udp), (1, icmp), (58, icmp)] {
        let next = a.label();
        a.jmp_imm(Cond::Ne, Reg::R4, proto, next);
        a.alu64_imm(Alu::Mov, Reg::R3, timeout);
        a.ja(compare);
        a.bind(next);
    }
    a.ja(compare);
    a.bind(tcp);
    a.alu64_imm(Alu::Mov, Reg::R3, units(t.tcp_closing));
    a.jmp_imm(Cond::Set, Reg::R5, flow::CLOSING, compare);
    a.alu64_imm(Alu::Mov, Reg::R3, units(t.tcp_established));
    a.jmp_imm(Cond::Set, Reg::R5, flow::REPLY_SEEN, compare);
    a.alu64_imm(Alu::Mov, Reg::R3, units(t.tcp_syn_sent));
    a.bind(compare);
    a.jmp_reg(Cond::Gt, Reg::R2, Reg::R3, expired);
    a.store(Size::DW, Reg::R8, flow::LAST_SEEN, Reg::R0);
    // TCP: a SYN without ACK over a closing flow is a new connection; FIN or RST close.
    a.jmp_imm(Cond::Ne, Reg::R4, 6, live);
    a.load(Size::B, Reg::R1, Reg::R7, state::TCP_FLAGS);
    let not_syn = a.label();
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R1);
    a.alu64_imm(Alu::And, Reg::R2, SYN | ACK);
    a.jmp_imm(Cond::Ne, Reg::R2, SYN, not_syn);
    a.jmp_imm(Cond::Set, Reg::R5, flow::CLOSING, expired);
    a.bind(not_syn);
    let close = a.label();
    a.jmp_imm(Cond::Set, Reg::R1, FIN | RST, close);
    a.ja(live);
    a.bind(close);
    a.alu32_imm(Alu::Or, Reg::R5, flow::CLOSING);
    a.store(Size::W, Reg::R8, flow::FLAGS, Reg::R5);
    a.ja(live);
    a.bind(expired);
    map_and_key(a);
    a.call(Helper::MapDeleteElem);
    a.ja(absent);
    a.bind(live);
}

/// The flow-table lookup: the conntrack word of the packet into the state. Uses `R8`.
pub(super) fn emit_lookup(a: &mut Asm, t: &FlowTimeouts) {
    let (done, not_forward, established) = (a.label(), a.label(), a.label());
    a.store_imm(
        Size::W,
        Reg::R7,
        state::CT,
        (ct::NEW | ct::UNCONFIRMED) as i32,
    );
    a.load(Size::B, Reg::R1, Reg::R7, state::HAS_FLOW);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, done);
    flow_key(a, false);
    live_flow(a, t, not_forward);
    a.load(Size::W, Reg::R1, Reg::R8, flow::FLAGS);
    a.jmp_imm(Cond::Set, Reg::R1, flow::REPLY_SEEN, established);
    a.store_imm(Size::W, Reg::R7, state::CT, ct::NEW as i32);
    a.ja(done);
    a.bind(not_forward);
    flow_key(a, true);
    live_flow(a, t, done);
    // A reply: the flow has seen both directions from now on.
    a.load(Size::W, Reg::R1, Reg::R8, flow::FLAGS);
    a.alu32_imm(Alu::Or, Reg::R1, flow::REPLY_SEEN);
    a.store(Size::W, Reg::R8, flow::FLAGS, Reg::R1);
    a.bind(established);
    a.store_imm(Size::W, Reg::R7, state::CT, ct::ESTABLISHED as i32);
    a.bind(done);
}

/// Records the packet's flow when it is a connection's first: at an accept that
/// completes the packet's path through the programs.
pub fn emit_record(a: &mut Asm) {
    let done = a.label();
    unless_first_packet(a, done);
    insert_flow(a);
    a.bind(done);
}

/// Records the packet's flow as [`emit_record`] does when the interface the route lookup
/// sends it out of ([`state::OUT_IFINDEX`]) has no egress program
/// ([`MapRef::Egress`]): the packet leaves the host with this accept, as a forwarded
/// packet's conntrack entry is confirmed when it leaves. Nothing when the lookup found
/// no interface (the kernel drops the packet). The map is looked up for a connection's
/// first packet only.
pub fn emit_record_unless_egress_program(a: &mut Asm) {
    let done = a.label();
    unless_first_packet(a, done);
    a.load(Size::W, Reg::R1, Reg::R7, state::OUT_IFINDEX);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, done);
    a.store(Size::W, Reg::R10, EGRESS_KEY, Reg::R1);
    a.load_map(Reg::R1, MapRef::Egress);
    a.alu64_reg(Alu::Mov, Reg::R2, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R2, i32::from(EGRESS_KEY));
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Cond::Ne, Reg::R0, 0, done);
    insert_flow(a);
    a.bind(done);
}

/// Jumps to `done` unless the packet has a flow key and is a new, unrecorded connection's.
fn unless_first_packet(a: &mut Asm, done: Label) {
    a.load(Size::B, Reg::R1, Reg::R7, state::HAS_FLOW);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, done);
    a.load(Size::W, Reg::R1, Reg::R7, state::CT);
    a.jmp_imm(Cond::Ne, Reg::R1, (ct::NEW | ct::UNCONFIRMED) as i32, done);
}

/// Inserts the packet's flow into the flow table (`BPF_NOEXIST`), stamped now; a FIN or
/// RST first packet makes it closing.
fn insert_flow(a: &mut Asm) {
    flow_key(a, false);
    a.call(Helper::KtimeGetNs);
    a.store(Size::DW, Reg::R10, FLOW_VALUE + flow::LAST_SEEN, Reg::R0);
    a.store_imm(Size::DW, Reg::R10, FLOW_VALUE, 0);
    let open = a.label();
    a.load(Size::B, Reg::R1, Reg::R7, state::TCP_FLAGS);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, open);
    a.alu64_imm(Alu::And, Reg::R1, FIN | RST);
    a.jmp_imm(Cond::Eq, Reg::R1, 0, open);
    a.store_imm(Size::W, Reg::R10, FLOW_VALUE + flow::FLAGS, flow::CLOSING);
    a.bind(open);
    map_and_key(a);
    a.alu64_reg(Alu::Mov, Reg::R3, Reg::R10);
    a.alu64_imm(Alu::Add, Reg::R3, i32::from(FLOW_VALUE));
    // BPF_NOEXIST: a flow recorded meanwhile keeps what it saw.
    a.alu64_imm(Alu::Mov, Reg::R4, 1);
    a.call(Helper::MapUpdateElem);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_units() {
        assert_eq!(units(0), 0);
        assert_eq!(units(1), 1, "1 s is within the first 1.07 s unit");
        assert_eq!(units(60), 56);
        assert_eq!(units(3600), 3353);
        assert_eq!(units(u32::MAX), i32::MAX, "bounded");
    }
}

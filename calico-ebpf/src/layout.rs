//! The byte layouts shared by the generated programs, the maps and the tests: the per-CPU
//! packet state, the conntrack word in `skb->cb[0]`, and the keys of the set maps. One
//! place writes each, so the generator and the map writer cannot disagree.

use std::net::IpAddr;

/// Offsets into the per-CPU packet state the prologue fills (one map value, zeroed per
/// packet). Rules re-read fields from it rather than from the stack: a value loaded from a
/// map is a fresh unknown to the verifier, so a comparison in one rule does not narrow what
/// the next rule sees, and the verifier prunes the fall-through paths of thousands of
/// rules instead of walking each.
pub mod state {
    /// `u8`: 4 or 6 for a parsed IP packet.
    pub const FAMILY: i16 = 0;
    /// `u8`: the IP protocol (IPv6: the first next-header; extension headers are not walked).
    pub const PROTO: i16 = 1;
    /// `u8`: 1 when the ports below were read (TCP, UDP, DCCP, SCTP, UDP-Lite).
    pub const HAS_PORTS: i16 = 2;
    /// `u8`: 1 when the ICMP type and code below were read (protocol 1 or 58).
    pub const HAS_ICMP: i16 = 3;
    /// `u8`: ICMP type.
    pub const ICMP_TYPE: i16 = 4;
    /// `u8`: ICMP code.
    pub const ICMP_CODE: i16 = 5;
    /// `u8`: the TCP flags (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10), read only for the
    /// programs' own flow table.
    pub const TCP_FLAGS: i16 = 6;
    /// `u16`, host order: source port.
    pub const SPORT: i16 = 8;
    /// `u16`, host order: destination port.
    pub const DPORT: i16 = 10;
    /// `u32`: the conntrack word ([`super::ct`]), copied from `skb->cb[0]`.
    pub const CT: i16 = 12;
    /// 16 bytes: the source address (IPv4 in the first 4, network order).
    pub const SRC: i16 = 16;
    /// 16 bytes: the destination address.
    pub const DST: i16 = 32;
    /// `u32`: the packet mark as the rules set it; written back to `skb->mark` on exit.
    pub const MARK: i16 = 48;
    /// `u16`: the flow table's first port: the source port, or an ICMP echo request's id.
    pub const FLOW_SPORT: i16 = 52;
    /// `u16`: the flow table's second port: the destination port, or an echo reply's id.
    pub const FLOW_DPORT: i16 = 54;
    /// `u8`: 1 when the packet has a flow key (ports, or an ICMP echo id).
    pub const HAS_FLOW: i16 = 56;
    /// `u32`: at an ingress, the interface the kernel's route lookup sends a forwarded
    /// packet out of; 0 when it found none.
    pub const OUT_IFINDEX: i16 = 60;
    /// `u32`: in a policy split into pieces, where the next piece resumes: the position
    /// of its target in the unsplit program, written before each tail call
    /// ([`crate::generate::split`]).
    pub const RESUME: i16 = 64;
    /// The value's size (a multiple of 8: the prologue zeroes it in 8-byte stores).
    pub const SIZE: u32 = 72;

    // The fields do not overlap and fit the value.
    const _: () =
        assert!(SPORT > TCP_FLAGS && TCP_FLAGS > ICMP_CODE && CT >= DPORT + 2 && SRC >= CT + 4);
    const _: () = assert!(DST == SRC + 16 && MARK == DST + 16 && FLOW_SPORT == MARK + 4);
    const _: () = assert!(FLOW_DPORT == FLOW_SPORT + 2 && HAS_FLOW == FLOW_DPORT + 2);
    const _: () = assert!(OUT_IFINDEX > HAS_FLOW && OUT_IFINDEX % 4 == 0);
    const _: () = assert!(RESUME >= OUT_IFINDEX + 4 && (RESUME as u32) + 4 <= SIZE);
    const _: () = assert!(SIZE % 8 == 0);
}

/// Offsets into `struct __sk_buff` (the TC program's context; stable kernel ABI).
pub mod skb {
    /// `__u32 len`: the packet's length.
    pub const LEN: i16 = 0;
    /// `__u32 mark`.
    pub const MARK: i16 = 8;
    /// `__u32 ingress_ifindex`: the interface the packet came in on (0: sent by the host).
    pub const INGRESS_IFINDEX: i16 = 36;
    /// `__u32 ifindex`: the interface the program runs at.
    pub const IFINDEX: i16 = 40;
    /// `__u32 cb[5]`: `cb[0]` carries the conntrack word from the fixed program (or, under
    /// `BPF_PROG_TEST_RUN`, from the test).
    pub const CB0: i16 = 48;
    /// `sizeof(struct __sk_buff)` on the kernels this was written against (6.x).
    pub const SIZE: usize = 192;
}

/// The conntrack word: what the fixed program learnt from the kernel's conntrack lookup,
/// as the policy program reads it.
pub mod ct {
    /// Mask of the state in the low two bits.
    pub const STATE_MASK: u32 = 0b11;
    /// A packet that starts a connection.
    pub const NEW: u32 = 0;
    /// A packet of a connection seen both ways.
    pub const ESTABLISHED: u32 = 1;
    /// A packet related to a known connection (an ICMP error, an FTP data connection).
    pub const RELATED: u32 = 2;
    /// A packet conntrack could not make sense of.
    pub const INVALID: u32 = 3;
    /// Bit set while the connection's entry is not confirmed yet (its first packet).
    pub const UNCONFIRMED: u32 = 1 << 2;
}

/// Protocols whose first four transport bytes are the source and destination ports.
pub const PORTED_PROTOCOLS: [u8; 5] = [6, 17, 33, 132, 136];

/// Key size of the IPv4 LPM trie: prefix length, set id, address.
pub const V4_KEY_SIZE: u32 = 4 + 4 + 4;
/// Key size of the IPv6 LPM trie.
pub const V6_KEY_SIZE: u32 = 4 + 4 + 16;
/// Key of the flow table: family, protocol, two bytes of padding, the flow ports
/// (host order), source and destination address (16 bytes each).
pub mod flow {
    /// `u8`: 4 or 6.
    pub const FAMILY: i16 = 0;
    /// `u8`: the IP protocol.
    pub const PROTO: i16 = 1;
    /// `u16`: the first flow port.
    pub const SPORT: i16 = 4;
    /// `u16`: the second flow port.
    pub const DPORT: i16 = 6;
    /// 16 bytes: the source address.
    pub const SRC: i16 = 8;
    /// 16 bytes: the destination address.
    pub const DST: i16 = 24;
    /// The key's size.
    pub const KEY_SIZE: u32 = 40;
    /// `u32` in the value: [`REPLY_SEEN`], [`CLOSING`].
    pub const FLAGS: i16 = 0;
    /// `u64` in the value: `bpf_ktime_get_ns()` at the flow's last packet.
    pub const LAST_SEEN: i16 = 8;
    /// The value's size.
    pub const VALUE_SIZE: u32 = 16;
    /// Flag: a packet of the reply direction was seen.
    pub const REPLY_SEEN: i32 = 1;
    /// Flag: a TCP FIN or RST was seen.
    pub const CLOSING: i32 = 2;
}

/// The per-interface counters ([`crate::insn::MapRef::Counters`], a per-CPU hash): keyed
/// by the interface's index and the direction, each value a row of `u64` counters, one
/// row per CPU.
pub mod counters {
    /// `u64`: IP packets the program judged.
    pub const PACKETS: i16 = 0;
    /// `u64`: their bytes (`skb->len`).
    pub const BYTES: i16 = 8;
    /// `u64`: packets the policy accepted.
    pub const ACCEPTED: i16 = 16;
    /// `u64`: packets the policy dropped (a drop rule, a chain's drop policy, an endpoint's
    /// default deny or anti-spoofing).
    pub const DROPPED: i16 = 24;
    /// `u64`: IP packets dropped before any rule, too short or malformed to parse.
    pub const MALFORMED: i16 = 32;
    /// `u64`: non-IP frames (ARP, say), left alone.
    pub const NOT_IP: i16 = 40;
    /// The value's size (per CPU).
    pub const VALUE_SIZE: u32 = 48;
    /// The key's size: `u32` ifindex, `u32` direction.
    pub const KEY_SIZE: u32 = 8;
    /// The direction of a tc ingress program.
    pub const INGRESS: u32 = 0;
    /// The direction of a tc egress program.
    pub const EGRESS: u32 = 1;

    /// The key of interface `ifindex`'s counters in `direction` ([`INGRESS`], [`EGRESS`]).
    pub fn key(ifindex: u32, direction: u32) -> [u8; KEY_SIZE as usize] {
        let mut k = [0u8; KEY_SIZE as usize];
        k[..4].copy_from_slice(&ifindex.to_ne_bytes());
        k[4..].copy_from_slice(&direction.to_ne_bytes());
        k
    }

    const _: () = assert!(NOT_IP as u32 + 8 == VALUE_SIZE);
}

/// Key size of the named-port hash: set id, 16 address bytes, protocol, padding, port.
pub const PORT_KEY_SIZE: u32 = 4 + 16 + 1 + 1 + 2;

/// The LPM trie key of `addr`/`prefix_len` in set `id`. The set id forms the first 32
/// bits of the matched data, so a lookup (always with the full length) only reaches its
/// own set's elements.
pub fn lpm_key(id: u32, addr: IpAddr, prefix_len: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(V6_KEY_SIZE as usize);
    k.extend_from_slice(&(32 + u32::from(prefix_len)).to_ne_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    match addr {
        IpAddr::V4(a) => k.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => k.extend_from_slice(&a.octets()),
    }
    k
}

/// The named-port hash key of (`addr`, `proto`, `port`) in set `id`.
pub fn port_key(id: u32, addr: IpAddr, proto: u8, port: u16) -> [u8; PORT_KEY_SIZE as usize] {
    let mut k = [0u8; PORT_KEY_SIZE as usize];
    k[0..4].copy_from_slice(&id.to_ne_bytes());
    match addr {
        IpAddr::V4(a) => k[4..8].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => k[4..20].copy_from_slice(&a.octets()),
    }
    k[20] = proto;
    k[22..24].copy_from_slice(&port.to_ne_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpm_keys_put_the_set_id_before_the_address() {
        let k = lpm_key(7, "10.1.2.3".parse().unwrap(), 24);
        assert_eq!(k.len(), V4_KEY_SIZE as usize);
        assert_eq!(u32::from_ne_bytes(k[0..4].try_into().unwrap()), 56);
        assert_eq!(&k[4..], &[0, 0, 0, 7, 10, 1, 2, 3]);
        assert_eq!(
            lpm_key(1, "fd00::1".parse().unwrap(), 128).len(),
            V6_KEY_SIZE as usize
        );
    }
}

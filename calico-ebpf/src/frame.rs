//! Ethernet frames for a [`Packet`], to run programs on with `BPF_PROG_TEST_RUN` (tests
//! and measurements). Checksums are left zero: the policy programs do not read them.

use std::net::IpAddr;

use calico_core::eval::Packet;

use crate::layout::PORTED_PROTOCOLS;

/// The frame carrying `p`: Ethernet, an IPv4 or IPv6 header of `p`'s addresses, and
/// a transport header with its ports, or ICMP type and code, followed by padding. `None`
/// when the two addresses are of different families.
pub fn build(p: &Packet) -> Option<Vec<u8>> {
    let proto = p.protocol.0;
    let mut l4 = vec![0u8; 20];
    if PORTED_PROTOCOLS.contains(&proto) {
        l4[0..2].copy_from_slice(&p.src_port.unwrap_or(0).to_be_bytes());
        l4[2..4].copy_from_slice(&p.dst_port.unwrap_or(0).to_be_bytes());
    } else if proto == 1 || proto == 58 {
        l4[0] = p.icmp_type.unwrap_or(0);
        l4[1] = p.icmp_code.unwrap_or(0);
    }
    let mut f = vec![0u8; 12];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + l4.len()) as u16;
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => return None,
    }
    f.extend_from_slice(&l4);
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_tcp_frame_has_its_fields_where_the_prologue_reads_them() {
        let p = Packet::tcp(
            "10.0.0.1".parse().unwrap(),
            1234,
            "10.0.0.2".parse().unwrap(),
            80,
        );
        let f = build(&p).unwrap();
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[14 + 9], 6);
        assert_eq!(&f[26..30], &[10, 0, 0, 1]);
        assert_eq!(&f[34..38], &[0x04, 0xd2, 0, 80]);
    }

    #[test]
    fn mixed_families_have_no_frame() {
        let p = Packet::udp("10.0.0.1".parse().unwrap(), 1, "::1".parse().unwrap(), 2);
        assert_eq!(build(&p), None);
    }
}

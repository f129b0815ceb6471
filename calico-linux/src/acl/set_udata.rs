//! The set and map userdata nft relies on to print (and so to reload) a set's elements:
//! the key's byte order and, for maps, the data's. Without it `nft list` prints every
//! interface-map key as `""`. The bytes are what nft 1.0 writes for the same declarations
//! (`nft --debug=mnl`): a sequence of libnftnl udata TLVs (type byte, length byte, value;
//! numbers in host order).

use calico_core::dataplane::ir::SetKey;

use crate::nft::proto::*;

/// One TLV holding a host-order `u32`.
fn tlv_u32(ty: u8, v: u32) -> [u8; 6] {
    let [a, b, c, d] = v.to_ne_bytes();
    [ty, 4, a, b, c, d]
}

/// A named set of `key`: addresses and networks are big-endian; a concatenation has no
/// single byte order (each component's type carries its own).
pub fn named_set(key: SetKey) -> [u8; 6] {
    let order = match key {
        SetKey::Ipv4AddrProtoPort | SetKey::Ipv6AddrProtoPort => BYTEORDER_INVALID,
        SetKey::Ipv4Addr | SetKey::Ipv4Net | SetKey::Ipv6Addr | SetKey::Ipv6Net => {
            BYTEORDER_BIG_ENDIAN
        }
    };
    tlv_u32(NFTNL_UDATA_SET_KEYBYTEORDER, order)
}

/// The interface-name verdict map: interface names are strings (host order), verdicts have
/// no byte order, and the data is not an interval.
pub fn iface_map() -> [u8; 18] {
    let mut out = [0; 18];
    out[..6].copy_from_slice(&tlv_u32(
        NFTNL_UDATA_SET_KEYBYTEORDER,
        BYTEORDER_HOST_ENDIAN,
    ));
    out[6..12].copy_from_slice(&tlv_u32(NFTNL_UDATA_SET_DATABYTEORDER, BYTEORDER_INVALID));
    out[12..].copy_from_slice(&tlv_u32(NFTNL_UDATA_SET_DATA_INTERVAL, 0));
    out
}

/// An anonymous set of port ranges: big-endian ports, ranges merged as nft merges them.
pub fn port_set() -> [u8; 12] {
    let mut out = [0; 12];
    out[..6].copy_from_slice(&tlv_u32(NFTNL_UDATA_SET_KEYBYTEORDER, BYTEORDER_BIG_ENDIAN));
    out[6..].copy_from_slice(&tlv_u32(NFTNL_UDATA_SET_MERGE_ELEMENTS, 1));
    out
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    // The userdata nft 1.0.6 sends (`nft --debug=mnl -f`) for the same declarations.
    #[test]
    fn userdata_is_what_nft_writes() {
        for key in [
            SetKey::Ipv4Addr,
            SetKey::Ipv4Net,
            SetKey::Ipv6Addr,
            SetKey::Ipv6Net,
        ] {
            assert_eq!(named_set(key), [0, 4, 2, 0, 0, 0], "{key:?}");
        }
        // `type ipv4_addr . inet_proto . inet_service`: nft also sends an empty typeof
        // nest, which it ignores when printing.
        assert_eq!(named_set(SetKey::Ipv4AddrProtoPort), [0, 4, 0, 0, 0, 0]);
        assert_eq!(
            iface_map(),
            [0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0]
        );
        assert_eq!(port_set(), [0, 4, 2, 0, 0, 0, 2, 4, 1, 0, 0, 0]);
    }
}

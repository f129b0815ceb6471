//! Any bytes → the BFD Control packet decoder: never panics, and what decodes encodes back
//! to a packet that decodes to the same (the encoding drops only what the decoder ignores:
//! bytes beyond the Length field).
#![no_main]

use calico_bgp::bfd::ControlPacket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ControlPacket::decode(data) {
        assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }
});

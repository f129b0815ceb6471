//! Any bytes → the BFD Control packet decoder and the authentication check: never panics;
//! what decodes encodes back to a packet that decodes to the same (the encoding drops only
//! what the decoder ignores: bytes beyond the Length field, or beyond the authentication
//! section); an authenticated packet checked under every authentication type gives a
//! verdict, never a panic.
#![no_main]

use std::time::Duration;

use calico_bgp::bfd::auth::Authenticator;
use calico_bgp::bfd::ControlPacket;
use calico_core::dataplane::{BfdAuth, BfdAuthType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ControlPacket::decode(data) {
        assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }
    let Ok((p, Some(section))) = ControlPacket::decode_authenticated(data) else {
        return;
    };
    let again = p.encode_authenticated(&section);
    assert_eq!(
        ControlPacket::decode_authenticated(&again),
        Ok((p, Some(section)))
    );
    for kind in BfdAuthType::ALL {
        let auth = BfdAuth {
            kind,
            key_id: section.key_id,
            password: "key".into(),
        };
        let mut a = Authenticator::new(&auth, 0);
        let now = tokio::time::Instant::now();
        let _ = a.check(data, Some(&section), p.detect_mult, Duration::from_secs(1), now);
    }
});

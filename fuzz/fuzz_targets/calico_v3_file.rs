//! Any bytes → the projectcalico.org/v3 reader: never panics, and whatever it accepts is a
//! valid resource.
#![no_main]

use calico_core::integrations::calico_v3::parse_v3;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(resources) = parse_v3(text) {
        for r in resources {
            r.validate().expect("parse_v3 returns only valid resources");
        }
    }
});

//! Any bytes → the resource file parser: never panics, and whatever it accepts is valid.
#![no_main]

use calico_core::model::parse_resources;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(resources) = parse_resources(text) {
        for r in resources {
            r.validate().expect("parse_resources returns only valid resources");
        }
    }
});

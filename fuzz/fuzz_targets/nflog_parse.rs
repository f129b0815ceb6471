//! Arbitrary bytes as an NFLOG datagram from the kernel, and as a flow-log prefix: the
//! parsers must give values or errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = calico_linux::flowlog::parse::parse_datagram(data);
    let _ = calico_linux::flowlog::parse::headers(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<calico_core::compile::LogRef>();
    }
});

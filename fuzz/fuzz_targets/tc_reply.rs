//! Arbitrary bytes as an rtnetlink reply to the eBPF backend's tc requests (qdisc and
//! filter dumps, link lookups, errors): the parsers must give values or errors, never a
//! panic.
#![no_main]

use calico_ebpf::tc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tc::parse_attrs(data);
    let _ = tc::parse_filter(data);
    let _ = tc::parse_qdisc(data);
    let _ = tc::parse_link_index(data);
    if let Ok(messages) = tc::parse_messages(data) {
        for m in &messages {
            let _ = tc::parse_error(m);
            if let Some(f) = tc::parse_filter(m.payload) {
                let _ = (f.is_ours(), f.direction());
            }
            let _ = tc::parse_qdisc(m.payload);
            let _ = tc::parse_link_index(m.payload);
        }
    }
});

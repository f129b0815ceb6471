//! Arbitrary bytes as an nf_tables netlink reply: framing, attributes, expressions and the
//! rule parser must give values or errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| calico_linux::fuzzing::nft_reply(data));

#![no_main]
// Placeholder: the real target is being written.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});

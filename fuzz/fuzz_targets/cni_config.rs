//! Any bytes → the CNI network configuration parser (and the result it carries): never
//! panics; a configuration that parses has a supported version and writes its
//! `prevResult` back out as JSON.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    calico_cni::fuzzing::config(data);
});

//! Any bytes → the selector parser: never panics; whatever parses prints to text that parses
//! back to the same selector.
#![no_main]

use calico_core::selector::Selector;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(selector) = Selector::parse(text) {
        let printed = selector.to_string();
        let back = Selector::parse(&printed).expect("printed selector parses");
        assert_eq!(back, selector, "round trip of {printed:?}");
    }
});

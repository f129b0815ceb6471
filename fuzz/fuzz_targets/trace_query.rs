//! Any text → the agent's `/api/trace` query parser (from an HTTP client, untrusted): never
//! panics, and what it accepts is written back by `to_query` to the same request. Any bytes
//! → the `calico-rs` tool's HTTP response parser: never panics.
#![no_main]

use calico_agent::explain::TraceRequest;
use calico_agent::tool::client::parse_response;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = parse_response(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(req) = TraceRequest::from_query(text) {
        assert_eq!(TraceRequest::from_query(&req.to_query()), Ok(req));
    }
});

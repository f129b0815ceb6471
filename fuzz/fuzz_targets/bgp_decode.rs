//! Any bytes → the BGP message decoder: never panics. The first byte chooses the session
//! encoding (bit 0: 4-byte AS; bit 2: ADD-PATH path identifiers on IPv4 unicast, bit 3: on
//! IPv6 unicast, RFC 7911) and whether the input is a whole message (bit 1 clear) or a
//! type octet and body to which a valid header is prepended (bit 1 set), so that the fuzzer
//! reaches the body decoders without guessing the 16-byte marker.
//!
//! Every attribute the codec knows is reached this way, LARGE_COMMUNITY (RFC 8092) included.
//!
//! Whatever decodes encodes back (or is refused as too long), and what that decodes to is
//! stable:
//! * on 4-byte AS sessions the re-decoded message equals the first (RFC 7606 notes aside);
//! * on 2-byte AS sessions (AS4_PATH merging is lossy by design, RFC 6793 §4.2.3) one more
//!   round trip changes nothing.
#![no_main]

use calico_bgp::packet::{decode, AddPathFamilies, AfiSafi, Context, Message};

fn without_notes(m: &Message) -> Message {
    match m {
        Message::Update(u) => {
            let mut u = u.clone();
            u.errors.clear();
            Message::Update(u)
        }
        other => other.clone(),
    }
}

fn again(m: &Message, ctx: &Context) -> Option<Message> {
    let bytes = m.encode(ctx).ok()?;
    assert!(bytes.len() <= 4096);
    Some(decode(&bytes, ctx).unwrap_or_else(|e| panic!("re-encoded {m:?} fails: {e}")))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let add_path = [(4, AfiSafi::IPV4_UNICAST), (8, AfiSafi::IPV6_UNICAST)]
        .into_iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, family)| family);
    let ctx = Context {
        four_octet_as: flags & 1 == 1,
        add_path: AddPathFamilies::of(add_path),
    };
    let framed;
    let bytes = if flags & 2 == 2 {
        let Some((&kind, body)) = rest.split_first() else {
            return;
        };
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()).min(0xffff) as u16).to_be_bytes());
        m.push(kind);
        m.extend_from_slice(body);
        framed = m;
        &framed[..]
    } else {
        rest
    };
    let Ok(first) = decode(bytes, &ctx) else {
        return;
    };
    let Some(second) = again(&first, &ctx) else {
        return;
    };
    if ctx.four_octet_as {
        assert_eq!(without_notes(&second), without_notes(&first));
    } else if let Some(third) = again(&second, &ctx) {
        assert_eq!(without_notes(&third), without_notes(&second));
    }
});

use proptest::prelude::*;

use super::*;
use crate::bfd::packet::tests::sample as packet;

fn auth(kind: BfdAuthType, password: &str) -> BfdAuth {
    BfdAuth {
        kind,
        key_id: 5,
        password: password.into(),
    }
}

const TYPES: [BfdAuthType; 5] = BfdAuthType::ALL;

const DETECT: Duration = Duration::from_millis(900);

/// Decodes what `a` sealed and has `b` check it.
fn deliver(a: &mut Authenticator, b: &mut Authenticator, now: Instant) -> Result<(), AuthError> {
    let bytes = a.seal(&packet());
    let (p, section) = ControlPacket::decode_authenticated(&bytes).expect("decodes");
    assert_eq!(p, packet());
    b.check(&bytes, section.as_ref(), p.detect_mult, DETECT, now)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The digests of RFC 5880 §6.7.3–6.7.4 (the packet with the key, zero-padded, in place of
/// the digest), as Python's hashlib computes them for the same bytes.
#[test]
fn seals_the_rfc_layout_with_independently_computed_digests() {
    let mut sha = Authenticator::new(
        &auth(BfdAuthType::MeticulousKeyedSha1, "secret"),
        0x01020304,
    );
    assert_eq!(
        sha.seal(&packet()),
        hex(
            "20e403341122334400000007000493e0000493e000000000051c050001020304\
             d1f9815f92f9f741cacfa2a10fb2259a63769961"
        )
    );
    let mut md5 = Authenticator::new(&auth(BfdAuthType::KeyedMd5, "secret"), 0x01020304);
    assert_eq!(
        md5.seal(&packet()),
        hex(
            "20e403301122334400000007000493e0000493e0000000000218050001020304\
             cbc849ad09d7ad530ee4ebe3712b9697"
        )
    );
    let mut simple = Authenticator::new(&auth(BfdAuthType::SimplePassword, "pw"), 9);
    let bytes = simple.seal(&packet());
    assert_eq!(bytes[3], 29, "24 + 3 + 2");
    assert_eq!(&bytes[24..], &[1, 5, 5, b'p', b'w']);
}

#[test]
fn every_type_accepts_its_own_key_and_refuses_another() {
    let now = Instant::now();
    for kind in TYPES {
        let mut a = Authenticator::new(&auth(kind, "0123456789abcdef"), 100);
        let mut b = Authenticator::new(&auth(kind, "0123456789abcdef"), 200);
        assert_eq!(deliver(&mut a, &mut b, now), Ok(()), "{kind}");
        assert_eq!(deliver(&mut b, &mut a, now), Ok(()), "{kind}");
        // Next in a's sequence, so that only the key differs.
        let mut wrong = Authenticator::new(&auth(kind, "0123456789abcdeX"), 101);
        assert_eq!(
            deliver(&mut wrong, &mut b, now),
            Err(AuthError::Mismatch),
            "{kind}"
        );
        let mut other_id = Authenticator::new(
            &BfdAuth {
                key_id: 6,
                ..auth(kind, "0123456789abcdef")
            },
            300,
        );
        assert_eq!(
            deliver(&mut other_id, &mut b, now),
            Err(AuthError::KeyId { got: 6, want: 5 }),
            "{kind}"
        );
    }
}

#[test]
fn a_changed_byte_fails_the_digest() {
    let now = Instant::now();
    for kind in &TYPES[1..] {
        let mut a = Authenticator::new(&auth(*kind, "k"), 1);
        let mut b = Authenticator::new(&auth(*kind, "k"), 1);
        let mut bytes = a.seal(&packet());
        bytes[9] ^= 1; // your discriminator
        let (_, s) = ControlPacket::decode_authenticated(&bytes).expect("decodes");
        assert_eq!(
            b.check(&bytes, s.as_ref(), 3, DETECT, now),
            Err(AuthError::Mismatch)
        );
    }
}

#[test]
fn presence_and_type_must_match_the_session() {
    let now = Instant::now();
    let mut b = Authenticator::new(&auth(BfdAuthType::KeyedSha1, "k"), 1);
    let plain = packet().encode();
    assert_eq!(
        b.check(&plain, None, 3, DETECT, now),
        Err(AuthError::Missing(BfdAuthType::KeyedSha1))
    );
    let mut md5 = Authenticator::new(&auth(BfdAuthType::KeyedMd5, "k"), 1);
    assert_eq!(
        deliver(&mut md5, &mut b, now),
        Err(AuthError::Type {
            got: BfdAuthType::KeyedMd5,
            want: BfdAuthType::KeyedSha1
        })
    );
}

/// §6.7.3: a meticulous receiver refuses a repeated sequence number (a replay), a keyed one
/// takes it; both refuse a number beyond 3 × Detect Mult, and forget the last one after
/// twice the detection time without a packet.
#[test]
fn sequence_numbers_follow_the_window() {
    let now = Instant::now();
    for (kind, replay_ok) in [
        (BfdAuthType::KeyedMd5, true),
        (BfdAuthType::MeticulousKeyedSha1, false),
    ] {
        let mut a = Authenticator::new(&auth(kind, "k"), u32::MAX - 1);
        let mut b = Authenticator::new(&auth(kind, "k"), 1);
        let first = a.seal(&packet());
        let (_, s) = ControlPacket::decode_authenticated(&first).expect("decodes");
        assert_eq!(b.check(&first, s.as_ref(), 3, DETECT, now), Ok(()));
        let again = b.check(&first, s.as_ref(), 3, DETECT, now);
        assert_eq!(again.is_ok(), replay_ok, "{kind}: {again:?}");
        // Across the wrap of the 32-bit space.
        assert_eq!(deliver(&mut a, &mut b, now), Ok(()), "{kind}");
        assert_eq!(deliver(&mut a, &mut b, now), Ok(()), "{kind}");
        for _ in 0..9 {
            a.seal(&packet());
        }
        assert!(
            matches!(
                deliver(&mut a, &mut b, now),
                Err(AuthError::Sequence { .. })
            ),
            "{kind}: 10 ahead of the last, the window is 9"
        );
        let later = now + DETECT * 2;
        assert_eq!(deliver(&mut a, &mut b, later), Ok(()), "{kind}");
    }
}

proptest! {
    /// The window in circular arithmetic: exactly the numbers `low..=3 × mult` ahead.
    #[test]
    fn window_is_circular(last in any::<u32>(), ahead in any::<u32>(), meticulous in any::<bool>(), mult in 1u8..) {
        let seq = last.wrapping_add(ahead);
        let ok = ahead >= u32::from(meticulous) && ahead <= 3 * u32::from(mult);
        prop_assert_eq!(window(last, seq, meticulous, mult).is_ok(), ok);
    }

    /// Whatever arrives, checking never panics.
    #[test]
    fn check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 24..64), kind in 0usize..5) {
        let mut b = Authenticator::new(&auth(TYPES[kind], "k"), 1);
        if let Ok((p, s)) = ControlPacket::decode_authenticated(&bytes) {
            let _ = b.check(&bytes, s.as_ref(), p.detect_mult, DETECT, Instant::now());
        }
    }
}

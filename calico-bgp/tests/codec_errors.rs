//! Hand-made byte vectors: what the codec makes of well-formed messages from the RFCs and of
//! every class of malformed input, and the NOTIFICATION each error maps to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_bgp::packet::notification::{
    ErrorCode, HeaderSubcode, OpenSubcode, RouteRefreshSubcode, UpdateSubcode,
};
use calico_bgp::packet::{
    decode, AddPathFamilies, AddPathFamily, AfiSafi, AsPath, Capability, Context, DecodeError,
    ErrorAction, Message, Origin, Segment, SegmentKind,
};

const FOUR: Context = Context::plain(true);
const TWO: Context = Context::plain(false);

/// A message of `kind` with `body`, with a correct header.
fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// An UPDATE body from withdrawn bytes, attribute bytes and NLRI bytes.
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(2, &b)
}

/// ORIGIN IGP, AS_PATH [65001] (4-byte), NEXT_HOP 192.0.2.1.
const BASE_ATTRS: &[u8] = &[
    0x40, 1, 1, 0, // ORIGIN IGP
    0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, // AS_PATH SEQ [65001]
    0x40, 3, 4, 192, 0, 2, 1, // NEXT_HOP
];

fn decode_update(bytes: &[u8], ctx: &Context) -> calico_bgp::packet::Update {
    match decode(bytes, ctx) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

fn code_of(bytes: &[u8], ctx: &Context) -> ErrorCode {
    match decode(bytes, ctx) {
        Err(e) => e.code(),
        Ok(m) => panic!("expected an error, got {m:?}"),
    }
}

#[test]
fn header_errors_map_to_message_header_notifications() {
    let mut bad_marker = msg(4, &[]);
    bad_marker[3] = 0;
    assert_eq!(
        code_of(&bad_marker, &FOUR),
        ErrorCode::MessageHeader(HeaderSubcode::ConnectionNotSynchronized)
    );
    assert_eq!(
        code_of(&msg(9, &[]), &FOUR),
        ErrorCode::MessageHeader(HeaderSubcode::BadMessageType)
    );
    // KEEPALIVE with a body; OPEN shorter than its fixed part; a truncated header.
    assert_eq!(
        code_of(&msg(4, &[0]), &FOUR),
        ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength)
    );
    assert_eq!(
        code_of(&msg(1, &[4, 0, 1]), &FOUR),
        ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength)
    );
    assert_eq!(
        code_of(&[0xff; 10], &FOUR),
        ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength)
    );
    // Length field disagreeing with the bytes given.
    let mut long = msg(4, &[]);
    long.push(0);
    assert!(matches!(
        decode(&long, &FOUR),
        Err(DecodeError::BadLength {
            length: 19,
            kind: 4
        })
    ));
    // The notification carries the bad length as data (RFC 4271 §6.1).
    let mut bad_len = msg(4, &[]);
    bad_len[17] = 20;
    let n = decode(&bad_len, &FOUR).unwrap_err().notification();
    assert_eq!(n.data, vec![0, 20]);
}

fn open_body(version: u8, asn: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&asn.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    b
}

#[test]
fn open_with_the_capabilities_bird_sends_decodes() {
    // Capabilities: MP IPv4 unicast, route refresh, GR (restart time 120, IPv4 unicast),
    // 4-byte AS 4200000000, extended next hop IPv4/unicast over IPv6.
    let caps: &[u8] = &[
        1, 4, 0, 1, 0, 1, //
        2, 0, //
        64, 6, 0x80, 120, 0, 1, 1, 0x80, //
        65, 4, 0xfa, 0x56, 0xea, 0x00, //
        5, 6, 0, 1, 0, 1, 0, 2,
    ];
    let mut params = vec![2, caps.len() as u8];
    params.extend_from_slice(caps);
    let m = decode(
        &msg(1, &open_body(4, 23456, 90, [10, 0, 0, 1], &params)),
        &FOUR,
    )
    .unwrap();
    let Message::Open(open) = m else {
        panic!("{m:?}")
    };
    assert_eq!(open.asn(), 4_200_000_000);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.router_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(open.families(), vec![AfiSafi::IPV4_UNICAST]);
    assert!(open.capabilities.contains(&Capability::RouteRefresh));
    assert!(
        matches!(&open.capabilities[2], Capability::GracefulRestart { flags: 8, time: 120, families } if families.len() == 1)
    );
    assert!(
        matches!(&open.capabilities[4], Capability::ExtendedNextHop(e) if e[0].next_hop_afi == 2)
    );
}

#[test]
fn open_errors_map_to_open_notifications() {
    let open = |b: Vec<u8>| code_of(&msg(1, &b), &FOUR);
    assert_eq!(
        open(open_body(3, 1, 90, [1, 1, 1, 1], &[])),
        ErrorCode::OpenMessage(OpenSubcode::UnsupportedVersionNumber)
    );
    assert_eq!(
        open(open_body(4, 1, 2, [1, 1, 1, 1], &[])),
        ErrorCode::OpenMessage(OpenSubcode::UnacceptableHoldTime)
    );
    assert_eq!(
        open(open_body(4, 1, 90, [0, 0, 0, 0], &[])),
        ErrorCode::OpenMessage(OpenSubcode::BadBgpIdentifier)
    );
    assert_eq!(
        open(open_body(4, 1, 90, [1, 1, 1, 1], &[1, 0])),
        ErrorCode::OpenMessage(OpenSubcode::UnsupportedOptionalParameter)
    );
    // Capability whose length overruns its parameter; MP capability of the wrong length.
    assert_eq!(
        open(open_body(4, 1, 90, [1, 1, 1, 1], &[2, 2, 65, 4])),
        ErrorCode::OpenMessage(OpenSubcode::Unspecific)
    );
    assert_eq!(
        open(open_body(4, 1, 90, [1, 1, 1, 1], &[2, 4, 1, 2, 0, 1])),
        ErrorCode::OpenMessage(OpenSubcode::Unspecific)
    );
    // Optional parameters length disagreeing with what follows.
    let mut b = open_body(4, 1, 90, [1, 1, 1, 1], &[]);
    b[9] = 3;
    assert_eq!(open(b), ErrorCode::OpenMessage(OpenSubcode::Unspecific));
    // Version error data names the version we support.
    let e = decode(&msg(1, &open_body(5, 1, 90, [1, 1, 1, 1], &[])), &FOUR).unwrap_err();
    assert_eq!(e.notification().data, vec![0, 4]);
}

#[test]
fn clean_update_decodes() {
    let u = decode_update(
        &update(&[8, 10], BASE_ATTRS, &[24, 10, 1, 2, 32, 10, 9, 9, 9]),
        &FOUR,
    );
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(u.withdrawn, vec!["10.0.0.0/8".parse().unwrap()]);
    assert_eq!(
        u.nlri,
        vec![
            "10.1.2.0/24".parse().unwrap(),
            "10.9.9.9/32".parse().unwrap()
        ]
    );
    assert_eq!(u.attributes.origin, Some(Origin::Igp));
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence(vec![65001])));
    assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(192, 0, 2, 1)));
}

#[test]
fn network_field_errors_reset_the_session() {
    let invalid = ErrorCode::UpdateMessage(UpdateSubcode::InvalidNetworkField);
    assert_eq!(
        code_of(&update(&[], BASE_ATTRS, &[33, 1, 2, 3, 4, 5]), &FOUR),
        invalid
    );
    assert_eq!(
        code_of(&update(&[], BASE_ATTRS, &[24, 10, 1]), &FOUR),
        invalid
    );
    assert_eq!(code_of(&update(&[16, 10], &[], &[]), &FOUR), invalid);
    // Withdrawn length beyond the message.
    let mut m = update(&[], &[], &[]);
    m[20] = 9;
    assert_eq!(
        code_of(&m, &FOUR),
        ErrorCode::UpdateMessage(UpdateSubcode::MalformedAttributeList)
    );
}

fn with_attr(attr: &[u8]) -> Vec<u8> {
    let mut a = BASE_ATTRS.to_vec();
    a.extend_from_slice(attr);
    update(&[], &a, &[24, 10, 1, 2])
}

#[test]
fn rfc7606_treat_as_withdraw_cases() {
    let cases: &[(&str, Vec<u8>, u8)] = &[
        (
            "ORIGIN value 3",
            update(
                &[],
                &[0x40, 1, 1, 3, 0x40, 2, 0, 0x40, 3, 4, 1, 2, 3, 4],
                &[24, 10, 1, 2],
            ),
            1,
        ),
        (
            "ORIGIN flagged optional",
            update(
                &[],
                &[0xc0, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 1, 2, 3, 4],
                &[24, 10, 1, 2],
            ),
            1,
        ),
        (
            "AS_PATH segment overrun",
            update(
                &[],
                &[
                    0x40, 1, 1, 0, 0x40, 2, 4, 2, 2, 0, 1, 0x40, 3, 4, 1, 2, 3, 4,
                ],
                &[24, 10, 1, 2],
            ),
            2,
        ),
        (
            "AS_PATH segment type 9",
            update(
                &[],
                &[
                    0x40, 1, 1, 0, 0x40, 2, 6, 9, 1, 0, 0, 0, 1, 0x40, 3, 4, 1, 2, 3, 4,
                ],
                &[24, 10, 1, 2],
            ),
            2,
        ),
        (
            "NEXT_HOP of 3 bytes",
            update(
                &[],
                &[0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 3, 1, 2, 3],
                &[24, 10, 1, 2],
            ),
            3,
        ),
        ("MED of 2 bytes", with_attr(&[0x80, 4, 2, 0, 1]), 4),
        (
            "COMMUNITIES of 5 bytes",
            with_attr(&[0xc0, 8, 5, 0, 0, 0, 1, 2]),
            8,
        ),
        ("CLUSTER_LIST empty", with_attr(&[0x80, 10, 0]), 10),
        ("LARGE_COMMUNITY empty", with_attr(&[0xc0, 32, 0]), 32),
        (
            "LARGE_COMMUNITY of 8 bytes",
            with_attr(&[0xc0, 32, 8, 0, 0, 0, 1, 0, 0, 0, 2]),
            32,
        ),
        (
            "attribute overruns the list",
            with_attr(&[0xc0, 8, 200, 0]),
            8,
        ),
        (
            "missing NEXT_HOP",
            update(&[], &[0x40, 1, 1, 0, 0x40, 2, 0], &[24, 10, 1, 2]),
            3,
        ),
        (
            "missing ORIGIN",
            update(&[], &[0x40, 2, 0, 0x40, 3, 4, 1, 2, 3, 4], &[24, 10, 1, 2]),
            1,
        ),
    ];
    for (what, bytes, type_code) in cases {
        let u = decode_update(bytes, &FOUR);
        assert!(u.treat_as_withdraw(), "{what}: {:?}", u.errors);
        assert_eq!(u.errors[0].type_code, *type_code, "{what}");
        assert_eq!(
            u.nlri.len(),
            1,
            "{what}: the NLRI are still known, to be withdrawn"
        );
    }
}

#[test]
fn rfc7606_attribute_discard_cases() {
    let cases: &[(&str, Vec<u8>)] = &[
        ("ATOMIC_AGGREGATE with a value", with_attr(&[0x40, 6, 1, 0])),
        (
            "AGGREGATOR of 7 bytes",
            with_attr(&[0xc0, 7, 7, 0, 0, 0, 1, 1, 2, 3]),
        ),
        ("repeated ORIGIN", with_attr(&[0x40, 1, 1, 2])),
    ];
    for (what, bytes) in cases {
        let u = decode_update(bytes, &FOUR);
        assert!(!u.treat_as_withdraw(), "{what}: {:?}", u.errors);
        assert_eq!(u.errors.len(), 1, "{what}");
        assert_eq!(u.errors[0].action, ErrorAction::AttributeDiscard, "{what}");
        assert!(
            !u.attributes.atomic_aggregate && u.attributes.aggregator.is_none(),
            "{what}"
        );
        assert_eq!(
            u.attributes.origin,
            Some(Origin::Igp),
            "{what}: first ORIGIN kept"
        );
    }
}

#[test]
fn unknown_attributes_are_kept_or_dropped_by_their_flags() {
    // Optional transitive 99 is kept (with partial as sent); optional non-transitive 98 is
    // dropped; unknown well-known 97 resets the session.
    let u = decode_update(&with_attr(&[0xe0, 99, 2, 7, 7, 0x80, 98, 1, 1]), &FOUR);
    assert!(u.errors.is_empty());
    assert_eq!(u.attributes.unknown.len(), 1);
    assert_eq!(
        (
            u.attributes.unknown[0].flags,
            u.attributes.unknown[0].type_code
        ),
        (0xe0, 99)
    );
    assert_eq!(
        code_of(&with_attr(&[0x40, 97, 0]), &FOUR),
        ErrorCode::UpdateMessage(UpdateSubcode::UnrecognizedWellKnownAttribute)
    );
}

#[test]
fn mp_reach_ipv6_with_link_local_next_hop() {
    let mut attr = vec![0x80, 14, 0, 0, 2, 1, 32];
    attr.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
    attr.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
    attr.push(0);
    attr.extend_from_slice(&[64, 0xfd, 0, 0, 0, 0, 0, 0, 1]);
    attr[2] = (attr.len() - 3) as u8;
    let mut attrs = vec![0x40, 1, 1, 0, 0x40, 2, 0];
    attrs.extend_from_slice(&attr);
    let u = decode_update(&update(&[], &attrs, &[]), &FOUR);
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    let mp = u.attributes.mp_reach.as_ref().unwrap();
    assert_eq!(mp.next_hop.global, "fd00::1".parse::<IpAddr>().unwrap());
    assert_eq!(mp.next_hop.link_local, Some("fe80::1".parse().unwrap()));
    assert_eq!(
        u.announced().collect::<Vec<_>>(),
        vec!["fd00:0:0:1::/64".parse().unwrap()]
    );
}

#[test]
fn malformed_multiprotocol_attributes_reset_the_session() {
    let opt = ErrorCode::UpdateMessage(UpdateSubcode::OptionalAttributeError);
    // Next hop length 5; AFI 25 (L2VPN) not negotiated; truncated NLRI.
    assert_eq!(
        code_of(
            &update(&[], &[0x80, 14, 9, 0, 2, 1, 5, 1, 2, 3, 4, 5], &[]),
            &FOUR
        ),
        opt
    );
    assert_eq!(
        code_of(&update(&[], &[0x80, 15, 3, 0, 25, 65], &[]), &FOUR),
        opt
    );
    assert_eq!(
        code_of(&update(&[], &[0x80, 15, 5, 0, 2, 1, 64, 0xfd], &[]), &FOUR),
        opt
    );
    // Twice MP_UNREACH_NLRI.
    assert_eq!(
        code_of(
            &update(&[], &[0x80, 15, 3, 0, 2, 1, 0x80, 15, 3, 0, 2, 1], &[]),
            &FOUR
        ),
        ErrorCode::UpdateMessage(UpdateSubcode::MalformedAttributeList)
    );
}

#[test]
fn as4_path_is_merged_on_two_byte_sessions() {
    // AS_PATH [65001 AS_TRANS AS_TRANS], AS4_PATH [4200000000 4200000001]: RFC 6793 keeps
    // the leading 65001 from AS_PATH and takes the rest from AS4_PATH.
    let attrs: &[u8] = &[
        0x40, 1, 1, 0, //
        0x40, 2, 8, 2, 3, 0xfd, 0xe9, 0x5b, 0xa0, 0x5b, 0xa0, //
        0x40, 3, 4, 1, 2, 3, 4, //
        0xc0, 17, 10, 2, 2, 0xfa, 0x56, 0xea, 0x00, 0xfa, 0x56, 0xea, 0x01,
    ];
    let u = decode_update(&update(&[], attrs, &[8, 10]), &TWO);
    assert!(u.errors.is_empty());
    assert_eq!(
        u.attributes.as_path.unwrap().segments,
        vec![
            Segment {
                kind: SegmentKind::Sequence,
                asns: vec![65001]
            },
            Segment {
                kind: SegmentKind::Sequence,
                asns: vec![4_200_000_000, 4_200_000_001]
            },
        ]
    );
    // On a 4-byte session the same bytes are a 4-byte AS_PATH and AS4_PATH is ignored.
    let u = decode_update(&update(&[], attrs, &[8, 10]), &FOUR);
    assert!(
        u.treat_as_withdraw(),
        "8 bytes of AS_PATH are not 3 four-byte ASNs"
    );
}

#[test]
fn other_message_errors() {
    assert_eq!(
        code_of(&msg(3, &[6]), &FOUR),
        ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength)
    );
    assert_eq!(
        code_of(&msg(5, &[0, 1, 0]), &FOUR),
        ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength)
    );
    assert_eq!(
        calico_bgp::packet::decode_body(5, &[0, 1, 0], &FOUR)
            .unwrap_err()
            .code(),
        ErrorCode::RouteRefresh(RouteRefreshSubcode::InvalidMessageLength)
    );
    let n = decode(&msg(3, &[6, 2, 0xaa]), &FOUR).unwrap();
    assert!(
        matches!(n, Message::Notification(n) if n.code == ErrorCode::from_octets(6, 2) && n.data == [0xaa])
    );
}

#[test]
fn end_of_rib_markers_are_recognised() {
    let v4 = decode_update(&update(&[], &[], &[]), &FOUR);
    assert!(v4.is_end_of_rib());
    let v6 = decode_update(&update(&[], &[0x80, 15, 3, 0, 2, 1], &[]), &FOUR);
    assert!(v6.is_end_of_rib());
    assert!(!decode_update(&update(&[8, 10], &[], &[]), &FOUR).is_end_of_rib());
}

/// RFC 4271 §6.3: for an unrecognized well-known attribute "the Data field MUST contain the
/// unrecognized attribute (type, length, and value)".
#[test]
fn an_unrecognized_well_known_attribute_is_returned_whole_in_the_notification() {
    for attr in [
        vec![0x40, 97, 3, 1, 2, 3],
        // Extended length: two length octets.
        vec![0x50, 97, 0, 2, 9, 9],
    ] {
        let err = decode(&with_attr(&attr), &FOUR).unwrap_err();
        let n = err.notification();
        assert_eq!(
            n.code,
            ErrorCode::UpdateMessage(UpdateSubcode::UnrecognizedWellKnownAttribute)
        );
        assert_eq!(n.data, attr);
    }
}

// ADD-PATH (RFC 7911).

fn add_path(families: &[AfiSafi]) -> Context {
    Context {
        four_octet_as: true,
        add_path: AddPathFamilies::of(families.iter().copied()),
    }
}

#[test]
fn the_add_path_capability_decodes_per_family_and_a_malformed_one_is_kept_as_unknown() {
    let open_with = |cap: &[u8]| {
        let mut params = vec![2, cap.len() as u8];
        params.extend_from_slice(cap);
        match decode(
            &msg(1, &open_body(4, 65001, 90, [10, 0, 0, 1], &params)),
            &FOUR,
        ) {
            Ok(Message::Open(o)) => o.capabilities,
            other => panic!("{other:?}"),
        }
    };
    // IPv4 unicast receive (1), IPv6 unicast send+receive (3): what BIRD sends for
    // "add paths rx" and "add paths on".
    assert_eq!(
        open_with(&[69, 8, 0, 1, 1, 1, 0, 2, 1, 3]),
        vec![Capability::AddPath(vec![
            AddPathFamily {
                family: AfiSafi::IPV4_UNICAST,
                receive: true,
                send: false
            },
            AddPathFamily {
                family: AfiSafi::IPV6_UNICAST,
                receive: true,
                send: true
            },
        ])]
    );
    // Malformed (length 5; Send/Receive 0 and 7): not understood, ignored (RFC 7911 §4),
    // the OPEN is still accepted.
    for cap in [
        &[69, 5, 0, 1, 1, 1, 0][..],
        &[69, 4, 0, 1, 1, 0],
        &[69, 4, 0, 1, 1, 7],
    ] {
        assert_eq!(
            open_with(cap),
            vec![Capability::Unknown {
                code: 69,
                value: cap[2..].to_vec()
            }]
        );
    }
}

#[test]
fn nlri_carry_path_identifiers_only_on_add_path_families() {
    let v4 = AfiSafi::IPV4_UNICAST;
    // Path 7: 10.1.0.0/16; path 0x01020304: 10.2.0.0/16.
    let nlri = [0, 0, 0, 7, 16, 10, 1, 1, 2, 3, 4, 16, 10, 2];
    let withdrawn = [0, 0, 0, 9, 24, 10, 3, 0];
    let u = decode_update(&update(&withdrawn, BASE_ATTRS, &nlri), &add_path(&[v4]));
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(
        u.announced_paths().collect::<Vec<_>>(),
        vec![
            ("10.1.0.0/16".parse().unwrap(), 7),
            ("10.2.0.0/16".parse().unwrap(), 0x01020304)
        ]
    );
    assert_eq!(
        u.withdrawn_paths().collect::<Vec<_>>(),
        vec![("10.3.0.0/24".parse().unwrap(), 9)]
    );
    // The same bytes without ADD-PATH are other prefixes or invalid: 0/0, 0/0, 0/7, ...
    assert_ne!(
        decode(&update(&[], BASE_ATTRS, &nlri), &FOUR).map(|m| match m {
            Message::Update(u) => u.announced().count(),
            _ => 0,
        }),
        Ok(2)
    );
    // ADD-PATH for IPv6 only: IPv4 NLRI carry no identifier.
    let u = decode_update(
        &update(&[], BASE_ATTRS, &[16, 10, 1]),
        &add_path(&[AfiSafi::IPV6_UNICAST]),
    );
    assert_eq!(
        u.announced_paths().collect::<Vec<_>>(),
        vec![("10.1.0.0/16".parse().unwrap(), 0)]
    );
}

#[test]
fn mp_reach_and_unreach_carry_path_identifiers_on_add_path_families() {
    let v6 = AfiSafi::IPV6_UNICAST;
    let mut reach = vec![0x80, 14, 0, 0, 2, 1, 16];
    reach.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
    reach.push(0);
    reach.extend_from_slice(&[0, 0, 0, 5, 64, 0xfd, 0, 0, 0, 0, 0, 0, 1]);
    reach[2] = (reach.len() - 3) as u8;
    let unreach = [0x80, 15, 12, 0, 2, 1, 0, 0, 0, 6, 32, 0xfd, 0, 0, 2];
    let mut attrs = vec![0x40, 1, 1, 0, 0x40, 2, 0];
    attrs.extend_from_slice(&reach);
    attrs.extend_from_slice(&unreach);
    let u = decode_update(&update(&[], &attrs, &[]), &add_path(&[v6]));
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(
        u.announced_paths().collect::<Vec<_>>(),
        vec![("fd00:0:0:1::/64".parse().unwrap(), 5)]
    );
    assert_eq!(
        u.withdrawn_paths().collect::<Vec<_>>(),
        vec![("fd00:2::/32".parse().unwrap(), 6)]
    );
}

#[test]
fn truncated_path_identifiers_reset_the_session() {
    let ctx = add_path(&[AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]);
    let invalid = ErrorCode::UpdateMessage(UpdateSubcode::InvalidNetworkField);
    // Identifier cut short; identifier without its prefix; in the withdrawn routes.
    assert_eq!(code_of(&update(&[], BASE_ATTRS, &[0, 0, 1]), &ctx), invalid);
    assert_eq!(
        code_of(&update(&[], BASE_ATTRS, &[0, 0, 0, 1]), &ctx),
        invalid
    );
    assert_eq!(code_of(&update(&[0, 0], &[], &[]), &ctx), invalid);
    // In MP_UNREACH_NLRI: RFC 7606 §7.3, session reset with an optional attribute error.
    assert_eq!(
        code_of(&update(&[], &[0x80, 15, 5, 0, 2, 1, 0, 0], &[]), &ctx),
        ErrorCode::UpdateMessage(UpdateSubcode::OptionalAttributeError)
    );
}

#[test]
fn large_communities_decode_without_repeats() {
    let mut attr = vec![0xc0, 32, 36];
    for c in [[65001u32, 1, 2], [4_200_000_000, 0, 7], [65001, 1, 2]] {
        attr.extend(c.iter().flat_map(|v| v.to_be_bytes()));
    }
    let u = decode_update(&with_attr(&attr), &FOUR);
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(
        u.attributes.large_communities,
        vec![[65001, 1, 2], [4_200_000_000, 0, 7]]
    );
    assert!(u.attributes.unknown.is_empty(), "type 32 is known now");
}

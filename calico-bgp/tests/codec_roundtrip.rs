//! Property tests: every message the codec can represent encodes to bytes that decode back
//! to the same message, for 4-byte and 2-byte AS sessions, with and without ADD-PATH
//! (RFC 7911) path identifiers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_bgp::packet::notification::ErrorCode;
use calico_bgp::packet::open::{ExtendedNextHop, GracefulRestartFamily};
use calico_bgp::packet::RouteRefresh;
use calico_bgp::packet::{
    decode, AddPathFamilies, AddPathFamily, AfiSafi, Aggregator, AsPath, Capability, Context,
    Message, MpNextHop, MpReach, MpUnreach, Notification, Open, Origin, PathAttributes,
    RawAttribute, Segment, SegmentKind, Update,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::prelude::*;

fn v4net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

fn v6net() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        (any::<u16>(), any::<u8>())
            .prop_map(|(afi, safi)| Capability::Multiprotocol(AfiSafi { afi, safi })),
        Just(Capability::RouteRefresh),
        vec((any::<u16>(), any::<u16>(), any::<u16>()), 0..4).prop_map(|v| {
            Capability::ExtendedNextHop(
                v.into_iter()
                    .map(|(a, s, n)| ExtendedNextHop {
                        nlri_afi: a,
                        nlri_safi: s,
                        next_hop_afi: n,
                    })
                    .collect(),
            )
        }),
        (
            0u8..16,
            0u16..4096,
            vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..3)
        )
            .prop_map(|(flags, time, fams)| Capability::GracefulRestart {
                flags,
                time,
                families: fams
                    .into_iter()
                    .map(|(afi, safi, flags)| GracefulRestartFamily {
                        family: AfiSafi { afi, safi },
                        flags
                    })
                    .collect(),
            }),
        any::<u32>().prop_map(Capability::FourOctetAs),
        vec((any::<u16>(), any::<u8>(), 1u8..=3), 0..4).prop_map(|v| {
            Capability::AddPath(
                v.into_iter()
                    .map(|(afi, safi, sr)| AddPathFamily {
                        family: AfiSafi { afi, safi },
                        receive: sr & 1 != 0,
                        send: sr & 2 != 0,
                    })
                    .collect(),
            )
        }),
        (70u8..=255, vec(any::<u8>(), 0..8))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..=u16::MAX],
        1u32..,
        vec(capability(), 0..8),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| Open {
            my_as,
            hold_time,
            router_id: Ipv4Addr::from(id),
            capabilities,
        })
}

fn segment(four_byte: bool) -> impl Strategy<Value = Segment> {
    let kinds = if four_byte {
        vec![
            SegmentKind::Set,
            SegmentKind::Sequence,
            SegmentKind::ConfedSequence,
            SegmentKind::ConfedSet,
        ]
    } else {
        // A 2-byte session carries AS4_PATH, which cannot hold confederation segments.
        vec![SegmentKind::Set, SegmentKind::Sequence]
    };
    (proptest::sample::select(kinds), vec(any::<u32>(), 1..6))
        .prop_map(|(kind, asns)| Segment { kind, asns })
}

fn attributes(four_byte: bool) -> impl Strategy<Value = PathAttributes> {
    let aggregator = if four_byte {
        proptest::option::of((any::<u32>(), any::<u32>())).boxed()
    } else {
        // An AGGREGATOR below 65536 next to AS4_PATH means "ignore AS4_PATH" (RFC 6793).
        proptest::option::of((65536u32.., any::<u32>())).boxed()
    };
    (
        (
            proptest::option::of(proptest::sample::select(vec![
                Origin::Igp,
                Origin::Egp,
                Origin::Incomplete,
            ])),
            proptest::option::of(
                vec(segment(four_byte), 0..4).prop_map(|segments| AsPath { segments }),
            ),
            proptest::option::of(any::<u32>().prop_map(Ipv4Addr::from)),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
            aggregator,
        ),
        (
            vec(any::<u32>(), 0..4),
            proptest::option::of(any::<u32>().prop_map(Ipv4Addr::from)),
            vec(any::<u32>().prop_map(Ipv4Addr::from), 0..3),
            proptest::option::of(mp_reach().prop_map(Box::new)),
            proptest::option::of(vec(v6net(), 0..5).prop_map(|w| {
                Box::new(MpUnreach {
                    family: AfiSafi::IPV6_UNICAST,
                    withdrawn: w.into_iter().map(IpNet::V6).collect(),
                    path_ids: Vec::new(),
                })
            })),
            vec(any::<[u32; 3]>(), 0..4).prop_map(|mut v| {
                let mut seen = Vec::new();
                v.retain(|c| {
                    !seen.contains(c) && {
                        seen.push(*c);
                        true
                    }
                });
                v
            }),
            vec(
                (
                    prop_oneof![Just(0xc0u8), Just(0xe0u8)],
                    (19u8..=255).prop_filter("a known type", |t| *t != 32),
                    vec(any::<u8>(), 0..300),
                ),
                0..3,
            ),
        ),
    )
        .prop_map(
            |(
                (origin, as_path, next_hop, med, local_pref, atomic, agg),
                (communities, originator_id, cluster_list, mp_reach, mp_unreach, large, unknown),
            )| {
                let mut unknown: Vec<RawAttribute> = unknown
                    .into_iter()
                    .map(|(flags, type_code, value)| RawAttribute {
                        flags,
                        type_code,
                        value,
                    })
                    .collect();
                unknown.sort_by_key(|r| r.type_code);
                unknown.dedup_by_key(|r| r.type_code);
                PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate: atomic,
                    aggregator: agg.map(|(asn, a)| Aggregator {
                        asn,
                        address: Ipv4Addr::from(a),
                    }),
                    communities: communities.into(),
                    large_communities: large.into(),
                    originator_id,
                    cluster_list: cluster_list.into(),
                    mp_reach,
                    mp_unreach,
                    unknown: unknown.into(),
                }
            },
        )
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    prop_oneof![
        (
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            vec(v6net(), 0..5)
        )
            .prop_map(|(g, ll, nlri)| MpReach {
                family: AfiSafi::IPV6_UNICAST,
                next_hop: MpNextHop {
                    global: IpAddr::V6(g.into()),
                    link_local: ll.map(Ipv6Addr::from)
                },
                nlri: nlri.into_iter().map(IpNet::V6).collect(),
                path_ids: Vec::new(),
            }),
        // IPv4 NLRI with an IPv4 or (RFC 8950) IPv6 next hop.
        (
            prop_oneof![
                any::<u32>().prop_map(|a| IpAddr::V4(a.into())),
                any::<u128>().prop_map(|a| IpAddr::V6(a.into()))
            ],
            vec(v4net(), 0..5)
        )
            .prop_map(|(global, nlri)| MpReach {
                family: AfiSafi::IPV4_UNICAST,
                next_hop: MpNextHop {
                    global,
                    link_local: None
                },
                nlri: nlri.into_iter().map(IpNet::V4).collect(),
                path_ids: Vec::new(),
            }),
    ]
}

fn update(four_byte: bool) -> impl Strategy<Value = Update> {
    (
        vec(v4net(), 0..20),
        attributes(four_byte),
        vec(v4net(), 0..20),
    )
        .prop_map(|(withdrawn, attributes, nlri)| {
            let mut u = Update {
                withdrawn,
                attributes,
                nlri,
                ..Update::default()
            };
            // A message announcing prefixes without the mandatory attributes decodes with a
            // treat-as-withdraw note; give generated announcements what they need.
            let announces = !u.nlri.is_empty()
                || u.attributes
                    .mp_reach
                    .as_ref()
                    .is_some_and(|m| !m.nlri.is_empty());
            if announces {
                u.attributes.origin.get_or_insert(Origin::Igp);
                u.attributes.as_path.get_or_insert_with(AsPath::default);
                if !u.nlri.is_empty() {
                    u.attributes
                        .next_hop
                        .get_or_insert(Ipv4Addr::new(192, 0, 2, 1));
                }
            }
            u
        })
}

fn message(four_byte: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(four_byte).prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..40)).prop_map(|(c, s, data)| {
            Message::Notification(Notification {
                code: ErrorCode::from_octets(c, s),
                data,
            })
        }),
        Just(Message::Keepalive),
        (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(afi, subtype, safi)| {
            Message::RouteRefresh(RouteRefresh {
                family: AfiSafi { afi, safi },
                subtype,
            })
        }),
    ]
}

/// `m` as on a session with ADD-PATH for both unicast families: every NLRI, withdrawn route
/// and MP_(UN)REACH_NLRI prefix gets a path identifier (drawn from `seed`).
fn with_path_ids(m: Message, seed: u64) -> Message {
    let Message::Update(mut u) = m else { return m };
    let mut state = seed;
    let mut ids = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Small identifiers (as daemons use) and any 32-bit value.
                let x = (state >> 32) as u32;
                if state & 1 == 0 {
                    x % 4
                } else {
                    x
                }
            })
            .collect()
    };
    u.withdrawn_path_ids = ids(u.withdrawn.len());
    u.nlri_path_ids = ids(u.nlri.len());
    if let Some(mp) = u.attributes.mp_reach.as_mut() {
        mp.path_ids = ids(mp.nlri.len());
    }
    if let Some(mp) = u.attributes.mp_unreach.as_mut() {
        mp.path_ids = ids(mp.withdrawn.len());
    }
    Message::Update(u)
}

fn add_path_both(four_octet_as: bool) -> Context {
    Context {
        four_octet_as,
        add_path: AddPathFamilies::of([AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]),
    }
}

fn round_trip(m: &Message, ctx: &Context) -> Result<(), TestCaseError> {
    let bytes = match m.encode(ctx) {
        Ok(b) => b,
        // Generated messages may exceed 4096 bytes; the encoder must say so, not truncate.
        Err(calico_bgp::packet::EncodeError::TooLong(n)) => {
            prop_assert!(n > 4096);
            return Ok(());
        }
        Err(e) => return Err(TestCaseError::fail(format!("encode: {e}"))),
    };
    let back = decode(&bytes, ctx).map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    prop_assert_eq!(&back, m);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn four_byte_sessions_round_trip(m in message(true)) {
        round_trip(&m, &Context::plain(true))?;
    }

    #[test]
    fn add_path_sessions_round_trip(m in message(true), seed in any::<u64>()) {
        round_trip(&with_path_ids(m, seed), &add_path_both(true))?;
    }

    #[test]
    fn two_byte_add_path_sessions_round_trip(m in message(false), seed in any::<u64>()) {
        round_trip(&with_path_ids(m, seed), &add_path_both(false))?;
    }

    #[test]
    fn path_identifiers_are_refused_on_a_session_without_add_path(m in update(true), seed in any::<u64>()) {
        let m = with_path_ids(Message::Update(m), seed);
        let Message::Update(u) = &m else { unreachable!() };
        let any_ids = u.announced_paths().count() + u.withdrawn_paths().count() > 0;
        let encoded = m.encode(&Context::plain(true));
        if any_ids {
            prop_assert!(encoded.is_err(), "path identifiers dropped silently");
        }
    }

    #[test]
    fn two_byte_sessions_round_trip(m in message(false)) {
        round_trip(&m, &Context::plain(false))?;
    }

    #[test]
    fn packed_announcements_fit_and_carry_every_prefix(prefixes in vec(v4net(), 0..3000), attrs in attributes(true)) {
        let attrs = PathAttributes { mp_reach: None, mp_unreach: None, ..attrs };
        let prefixes: Vec<IpNet> = prefixes.into_iter().map(IpNet::V4).collect();
        let Ok(updates) = calico_bgp::packet::update::pack_announcements(&attrs, None, &prefixes) else {
            return Ok(());
        };
        let mut seen = Vec::new();
        for u in updates {
            let Ok(bytes) = Message::Update(u).encode(&Context::default()) else {
                // Only attributes too large for any message may fail.
                prop_assert!(attrs.unknown.iter().map(|u| u.value.len()).sum::<usize>() > 3000);
                return Ok(());
            };
            prop_assert!(bytes.len() <= 4096);
            let Message::Update(back) = decode(&bytes, &Context::default()).unwrap() else { unreachable!() };
            seen.extend(back.nlri.into_iter().map(IpNet::V4));
        }
        prop_assert_eq!(seen, prefixes);
    }

    #[test]
    fn packed_path_announcements_and_withdrawals_fit_and_carry_every_path(
        prefixes in vec(v4net(), 1..3000),
        v6 in any::<bool>(),
        attrs in attributes(true),
    ) {
        let attrs = PathAttributes { mp_reach: None, mp_unreach: None, ..attrs };
        let prefixes: Vec<IpNet> = prefixes
            .into_iter()
            .map(|p| if v6 { IpNet::V6(Ipv6Net::new(p.addr().to_ipv6_mapped(), p.prefix_len() + 96).unwrap()) } else { IpNet::V4(p) })
            .collect();
        let ids: Vec<u32> = (0..prefixes.len() as u32).map(|i| i.wrapping_mul(2654435761)).collect();
        let nh = v6.then(|| MpNextHop { global: "fd00::1".parse().unwrap(), link_local: None });
        let ctx = add_path_both(true);
        let Ok(updates) = calico_bgp::packet::update::pack_path_announcements(&attrs, nh, &prefixes, &ids) else {
            return Ok(());
        };
        let mut seen = Vec::new();
        for u in updates {
            let Ok(bytes) = Message::Update(u).encode(&ctx) else {
                prop_assert!(attrs.unknown.iter().map(|u| u.value.len()).sum::<usize>() > 3000);
                return Ok(());
            };
            prop_assert!(bytes.len() <= 4096);
            let Message::Update(back) = decode(&bytes, &ctx).unwrap() else { unreachable!() };
            seen.extend(back.announced_paths());
        }
        let want: Vec<(IpNet, u32)> = prefixes.iter().copied().zip(ids.iter().copied()).collect();
        prop_assert_eq!(&seen, &want);
        let mut seen = Vec::new();
        for u in calico_bgp::packet::update::pack_path_withdrawals(&prefixes, &ids).unwrap() {
            let bytes = Message::Update(u).encode(&ctx).unwrap();
            prop_assert!(bytes.len() <= 4096);
            let Message::Update(back) = decode(&bytes, &ctx).unwrap() else { unreachable!() };
            seen.extend(back.withdrawn_paths());
        }
        prop_assert_eq!(seen, want);
        // Identifiers for some prefixes only: refused, not guessed.
        if ids.len() > 1 {
            prop_assert!(calico_bgp::packet::update::pack_path_withdrawals(&prefixes, &ids[1..]).is_err());
            let short = calico_bgp::packet::update::pack_path_announcements(&attrs, nh, &prefixes, &ids[1..]);
            prop_assert!(short.is_err());
        }
    }

    #[test]
    fn packed_withdrawals_fit_and_carry_every_prefix(
        v4 in vec(v4net(), 0..3000),
        v6 in vec(v6net(), 0..1000),
    ) {
        for prefixes in [
            v4.into_iter().map(IpNet::V4).collect::<Vec<_>>(),
            v6.into_iter().map(IpNet::V6).collect(),
        ] {
            let mut seen = Vec::new();
            for u in calico_bgp::packet::update::pack_withdrawals(&prefixes) {
                let bytes = Message::Update(u).encode(&Context::default()).unwrap();
                prop_assert!(bytes.len() <= 4096);
                let Message::Update(back) = decode(&bytes, &Context::default()).unwrap() else { unreachable!() };
                seen.extend(back.withdrawn.into_iter().map(IpNet::V4));
                seen.extend(back.attributes.mp_unreach.into_iter().flat_map(|m| m.withdrawn));
            }
            prop_assert_eq!(seen, prefixes);
        }
    }
}

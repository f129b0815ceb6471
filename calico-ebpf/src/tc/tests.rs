//! The netlink encoding and decoding, without a kernel: byte layouts written out by hand
//! from the kernel's headers, and parsers fed truncated and random input.

use proptest::prelude::*;

use super::socket::filter_ctx;
use super::*;

fn ne16(v: u16) -> [u8; 2] {
    v.to_ne_bytes()
}

fn ne32(v: u32) -> [u8; 4] {
    v.to_ne_bytes()
}

/// A netlink header, written out field by field.
fn header(len: u32, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
    [
        &ne32(len)[..],
        &ne16(kind),
        &ne16(flags),
        &ne32(seq),
        &ne32(0),
    ]
    .concat()
}

/// A `struct tcmsg`, written out field by field.
fn tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
    [
        &[0u8, 0, 0, 0][..],
        &ne32(ifindex),
        &ne32(handle),
        &ne32(parent),
        &ne32(info),
    ]
    .concat()
}

#[test]
fn clsact_add_is_a_newqdisc_with_create_and_excl() {
    let m = encode_add_clsact(7, 42);
    let kind = [&ne16(11)[..], &ne16(TCA_KIND), b"clsact\0", &[0]].concat();
    // NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
    let expect = [
        header(16 + 20 + 12, 36, 0x0605, 7),
        tcmsg(42, 0xffff_0000, 0xffff_fff1, 0),
        kind,
    ]
    .concat();
    assert_eq!(m, expect);
}

#[test]
fn filter_set_is_a_direct_action_bpf_filter_at_our_place() {
    let spec = FilterSpec {
        ifindex: 9,
        direction: Direction::Egress,
        priority: PRIORITY,
        program_fd: 33,
        name: "calico-rs:x",
    };
    let m = encode_set_filter(3, &spec, Existing::Replace);
    let options = [
        &ne16(8)[..],
        &ne16(6), // TCA_BPF_FD
        &ne32(33),
        &ne16(16),
        &ne16(7), // TCA_BPF_NAME, 12 bytes with its NUL
        b"calico-rs:x\0",
        &ne16(8),
        &ne16(8), // TCA_BPF_FLAGS: TCA_BPF_FLAG_ACT_DIRECT
        &ne32(1),
    ]
    .concat();
    // prio 0xca1, protocol htons(ETH_P_ALL)
    let info = (0xca1u32 << 16) | u32::from(0x0003u16.to_be());
    let expect = [
        header(16 + 20 + 8 + 4 + options.len() as u32, 44, 0x0505, 3),
        tcmsg(9, HANDLE, 0xffff_fff3, info),
        [&ne16(8)[..], &ne16(1), b"bpf\0"].concat(),
        [&ne16(4 + options.len() as u16)[..], &ne16(2)].concat(),
        options,
    ]
    .concat();
    assert_eq!(m, expect);
    // Exclusive: NLM_F_EXCL in place of NLM_F_REPLACE, nothing else differs.
    let excl = encode_set_filter(3, &spec, Existing::Fail);
    assert_eq!(u16::from_ne_bytes([excl[6], excl[7]]), 0x0605);
    assert_eq!(excl[8..], m[8..]);
}

#[test]
fn filter_delete_and_dump_name_the_place() {
    let info = (u32::from(PRIORITY) << 16) | u32::from(0x0003u16.to_be());
    let del = encode_del_filter(5, 4, Direction::Ingress, PRIORITY);
    let expect = [
        header(16 + 20 + 8, 45, 0x0005, 5),
        tcmsg(4, HANDLE, 0xffff_fff2, info),
        [&ne16(8)[..], &ne16(1), b"bpf\0"].concat(),
    ]
    .concat();
    assert_eq!(del, expect);
    let dump = encode_dump_filters(6, 4, Direction::Egress);
    let expect = [header(36, 46, 0x0301, 6), tcmsg(4, 0, 0xffff_fff3, 0)].concat();
    assert_eq!(dump, expect);
    assert_eq!(
        encode_dump_qdiscs(1)[4..8],
        [&ne16(38)[..], &ne16(0x0301)].concat()
    );
    assert_eq!(encode_del_clsact(2, 4)[4..6], ne16(37));
}

/// A filter message as a dump sends it: tcmsg, kind, options with the program's id, name,
/// flags and tag.
fn dumped_filter(name: &str, priority: u16, handle: u32) -> Vec<u8> {
    let mut options = Vec::new();
    put_attr(&mut options, TCA_BPF_ID, &ne32(77));
    put_attr(&mut options, TCA_BPF_NAME, &cstr(name));
    put_attr(&mut options, TCA_BPF_FLAGS, &ne32(1));
    put_attr(&mut options, 10, &[0xab; 8]); // TCA_BPF_TAG
    let mut payload = tcmsg(5, handle, 0xffff_fff2, filter_info(priority));
    put_attr(&mut payload, TCA_KIND, b"bpf\0");
    // The kernel's nest carries NLA_F_NESTED on newer paths: masked off.
    put_attr(&mut payload, TCA_OPTIONS | 0x8000, &options);
    payload
}

#[test]
fn a_dumped_filter_is_read_back_and_recognised_as_ours() {
    let payload = dumped_filter("calico-rs:cali_i1", PRIORITY, HANDLE);
    let f = parse_filter(&payload).unwrap();
    assert_eq!(
        f,
        Filter {
            ifindex: 5,
            parent: 0xffff_fff2,
            handle: HANDLE,
            priority: PRIORITY,
            protocol: 0x0003u16.to_be(),
            kind: "bpf".into(),
            name: Some("calico-rs:cali_i1".into()),
            program_id: Some(77),
            flags: 1,
        }
    );
    assert!(f.is_ours());
    assert_eq!(f.direction(), Some(Direction::Ingress));
    for other in [
        dumped_filter("t.o:[tc]", PRIORITY, HANDLE),
        dumped_filter("calico-rs:x", 1, HANDLE),
        dumped_filter("calico-rs:x", PRIORITY, 1),
    ] {
        assert!(!parse_filter(&other).unwrap().is_ours());
    }
}

#[test]
fn a_datagram_of_several_messages_is_split() {
    let one = dumped_filter("calico-rs:a", PRIORITY, HANDLE);
    let mut buf = header(16 + one.len() as u32, 44, 2, 9);
    buf.extend_from_slice(&one);
    buf.extend(header(20, NLMSG_DONE, 2, 9));
    buf.extend_from_slice(&ne32(0));
    let ms = parse_messages(&buf).unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!((ms[0].kind, ms[0].seq, ms[0].payload), (44, 9, &one[..]));
    assert_eq!((ms[1].kind, ms[1].payload.len()), (NLMSG_DONE, 4));
    // A length past the end, or below a header, is an error.
    let mut bad = buf.clone();
    bad[..4].copy_from_slice(&ne32(10_000));
    assert!(parse_messages(&bad).is_err());
    bad[..4].copy_from_slice(&ne32(3));
    assert!(parse_messages(&bad).is_err());
    assert!(parse_messages(&buf[..buf.len() - 2]).is_err());
}

/// An error message answering a request with `errno`, with `text` as extended ack.
fn error_message(errno: i32, capped: bool, text: Option<&str>) -> Vec<u8> {
    let request = encode_del_filter(4, 1, Direction::Egress, PRIORITY);
    let mut payload = (-errno).to_ne_bytes().to_vec();
    payload.extend_from_slice(if capped { &request[..16] } else { &request });
    let mut flags = if capped { NLM_F_CAPPED } else { 0 };
    if let Some(t) = text {
        flags |= NLM_F_ACK_TLVS;
        put_attr(&mut payload, NLMSGERR_ATTR_MSG, &cstr(t));
        put_attr(&mut payload, 2, &ne32(20)); // NLMSGERR_ATTR_OFFS
    }
    let mut buf = header(16 + payload.len() as u32, NLMSG_ERROR, flags, 4);
    buf.extend(payload);
    buf
}

#[test]
fn errors_carry_the_errno_and_the_kernels_message() {
    for capped in [true, false] {
        let buf = error_message(
            libc::ENOENT,
            capped,
            Some("Filter with specified priority/protocol not found"),
        );
        let ms = parse_messages(&buf).unwrap();
        let (errno, text) = parse_error(&ms[0]).unwrap();
        assert_eq!(errno, libc::ENOENT);
        assert_eq!(
            text.as_deref(),
            Some("Filter with specified priority/protocol not found"),
            "capped: {capped}"
        );
        let buf = error_message(0, capped, None);
        let ms = parse_messages(&buf).unwrap();
        assert_eq!(parse_error(&ms[0]), Some((0, None)));
    }
}

#[test]
fn kernel_errors_name_the_interface_direction_and_message() {
    let dev = Dev {
        name: "calia",
        index: 7,
    };
    let e = filter_ctx("set", dev, Direction::Egress)
        .kernel(libc::EINVAL, Some("Parent Qdisc doesn't exists".into()));
    let text = e.to_string();
    for part in [
        "calia",
        "ifindex 7",
        "egress",
        "Parent Qdisc doesn't exists",
        "Invalid argument",
    ] {
        assert!(text.contains(part), "{text}");
    }
    assert_eq!(e.errno(), Some(libc::EINVAL));
    let TcError::Kernel {
        direction, iface, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(
        (direction, iface.as_str()),
        (Some(Direction::Egress), "calia")
    );
}

#[test]
fn a_link_lookup_names_the_interface() {
    let m = encode_get_link(8, "calia");
    let expect = [
        header(16 + 16 + 12, 18, 0x0001, 8),
        vec![0u8; 16],
        [&ne16(10)[..], &ne16(3), b"calia\0", &[0, 0]].concat(),
    ]
    .concat();
    assert_eq!(m, expect);
    let mut payload = vec![0u8; 4];
    payload.extend_from_slice(&ne32(12));
    payload.extend_from_slice(&[0u8; 8]);
    assert_eq!(parse_link_index(&payload), Some(12));
    assert_eq!(parse_link_index(&payload[..7]), None);
}

#[test]
fn a_qdisc_message_gives_its_interface_and_kind() {
    let mut payload = tcmsg(3, 0xffff_0000, 0xffff_fff1, 0);
    put_attr(&mut payload, TCA_KIND, b"clsact\0");
    assert_eq!(parse_qdisc(&payload), Some((3, "clsact".into())));
    assert_eq!(parse_qdisc(&payload[..10]), None);
}

#[test]
fn truncated_messages_are_refused_not_panicked_on() {
    let filter = dumped_filter("calico-rs:a", PRIORITY, HANDLE);
    for n in 0..filter.len() {
        let _ = parse_filter(&filter[..n]);
        let _ = parse_qdisc(&filter[..n]);
        let _ = parse_attrs(&filter[..n]);
    }
    assert_eq!(parse_filter(&filter[..19]), None);
    let error = error_message(libc::EPERM, false, Some("no"));
    for n in 0..error.len() {
        if let Ok(ms) = parse_messages(&error[..n]) {
            ms.iter().for_each(|m| drop(parse_error(m)));
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_filter(&bytes);
        let _ = parse_qdisc(&bytes);
        let _ = parse_link_index(&bytes);
        let _ = parse_attrs(&bytes);
        if let Ok(ms) = parse_messages(&bytes) {
            for m in &ms {
                let _ = parse_error(m);
                let _ = parse_filter(m.payload);
            }
        }
        // And inside a well-formed header.
        let mut framed = header(16 + bytes.len() as u32, NLMSG_ERROR, NLM_F_ACK_TLVS, 1);
        framed.extend_from_slice(&bytes);
        framed.resize(align(framed.len()), 0);
        if let Ok(ms) = parse_messages(&framed) {
            for m in &ms {
                let _ = parse_error(m);
            }
        }
    }
}

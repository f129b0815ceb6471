//! The backend's start-up errors.

use super::*;

/// What a kernel without the bpf classifier answers (`tc_new_tfilter`: ENOENT, "TC
/// classifier not found"), as the start-up error shows it: one sentence naming what is
/// missing, the interface and the kernel's message.
#[test]
fn a_kernel_without_cls_bpf_is_named_in_the_start_error() {
    let msgs = [
        (
            NEEDS_CLS_BPF,
            "CONFIG_NET_CLS_BPF",
            "TC classifier not found",
        ),
        (
            NEEDS_CLSACT,
            "CONFIG_NET_SCH_INGRESS",
            "Specified qdisc kind is unknown",
        ),
    ];
    for (needs, config, extack) in msgs {
        let source = TcError::Kernel {
            op: "set",
            what: "the ingress filter of lo (ifindex 1)".into(),
            iface: "lo".into(),
            direction: Some(Direction::Ingress),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
            extack: Some(extack.into()),
        };
        let text = StartError::Attach { needs, source }.to_string();
        for part in [
            config,
            extack,
            "lo (ifindex 1)",
            "No such file or directory",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }
}

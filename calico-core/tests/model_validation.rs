//! Validation as specification: each invalid resource names the field and the reason Calico
//! would give; each valid one round-trips through JSON and YAML unchanged.

use calico_core::model::{parse_resources, Reason, Resource};

const WEP: &str =
    "kind: WorkloadEndpoint\norchestrator: k8s\nworkload: w\nendpoint: eth0\nnode: n1\n";

fn invalid(doc: &str) -> calico_core::model::ValidationError {
    let resources: Vec<Resource> = serde_yaml_ng::Deserializer::from_str(doc)
        .map(|d| {
            let v: serde_yaml_ng::Value = serde::Deserialize::deserialize(d).unwrap();
            serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{doc}: {e}"))
        })
        .collect();
    resources[0]
        .validate()
        .expect_err(&format!("should be invalid:\n{doc}"))
}

#[test]
fn invalid_resources_name_field_and_reason() {
    let rule = |r: &str| format!("kind: Policy\nname: p\ningress:\n  - {r}\n");
    let many = |n: usize, item: &str| (0..n).map(|_| item).collect::<Vec<_>>().join(", ");
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("{WEP}interfaceName: cali0123456789abcdef\n"), "interfaceName", "limit of 15"),
        (format!("{WEP}interfaceName: 'a/b'\n"), "interfaceName", "not a valid interface name"),
        (format!("{WEP}interfaceName: ''\n"), "interfaceName", "must not be empty"),
        (format!("{WEP}interfaceName: c1\nipNetworks: [10.0.0.0/24]\n"), "ipNetworks[0]", "/32"),
        (format!("{WEP}interfaceName: c1\nipNetworks: ['fd00::/64']\n"), "ipNetworks[0]", "/128"),
        (format!("{WEP}interfaceName: c1\nipNetworks: [10.0.0.1/32, 10.0.0.1/32]\n"), "ipNetworks[1]", "more than once"),
        (format!("{WEP}interfaceName: c1\nlabels: {{'bad key!': x}}\n"), "labels.bad key!", "not a valid label key"),
        (format!("{WEP}interfaceName: c1\nlabels: {{app: '-x'}}\n"), "labels.app", "not a valid label value"),
        (format!("{WEP}interfaceName: c1\nports: [{{name: http, protocol: ICMP, port: 80}}]\n"), "ports[0].protocol", "TCP, UDP or SCTP"),
        (format!("{WEP}interfaceName: c1\nports: [{{name: http, protocol: TCP, port: 80}}, {{name: http, protocol: UDP, port: 81}}]\n"), "ports[1].name", "more than once"),
        (format!("{WEP}interfaceName: c1\nports: [{{name: '80', protocol: TCP, port: 80}}]\n"), "ports[0].name", "not all digits"),
        (format!("{WEP}interfaceName: c1\nports: [{{name: http, protocol: TCP, port: 0}}]\n"), "ports[0].port", "outside the range 1-65535"),
        (format!("{WEP}interfaceName: c1\nnamespace: Bad_NS\n"), "namespace", "not a valid name"),
        (format!("{WEP}interfaceName: c1\nipNetworks: [10.0.0.1/32]\nipNATs: [{{internalIP: 10.0.0.2, externalIP: 172.16.0.1}}]\n"), "ipNATs[0].internalIP", "not one of the endpoint's ipNetworks"),
        (format!("{WEP}interfaceName: c1\nipNetworks: [10.0.0.1/32, 'fd00::1/128']\nipNATs: [{{internalIP: 10.0.0.1, externalIP: 172.16.0.1}}, {{internalIP: 'fd00::1', externalIP: 172.16.0.2}}]\n"), "ipNATs[1].externalIP", "not of the family of internalIP fd00::1"),
        ("kind: HostEndpoint\nname: h\nnode: n1\n".into(), "interfaceName", "requires interfaceName or expectedIPs"),
        ("kind: Policy\nname: Bad\n".into(), "name", "not a valid name"),
        ("kind: Policy\nname: p\norder: .nan\n".into(), "order", "not a finite number"),
        ("kind: Policy\nname: p\ntypes: [Ingress, Ingress]\n".into(), "types[1]", "more than once"),
        ("kind: Policy\nname: p\ntypes: [Ingress]\negress: [{action: Allow}]\n".into(), "egress", "requires types to include Egress"),
        (rule("{action: Allow, protocol: TCP, notProtocol: TCP}"), "ingress[0].notProtocol", "could never match"),
        (rule("{action: Allow, icmp: {type: 8}}"), "ingress[0].icmp", "requires protocol ICMP or ICMPv6"),
        (rule("{action: Allow, protocol: ICMP, icmp: {code: 0}}"), "ingress[0].icmp.code", "requires an ICMP type"),
        (rule("{action: Allow, protocol: ICMP, icmp: {type: 255}}"), "ingress[0].icmp.type", "outside the range 0-254"),
        (rule("{action: Allow, protocol: ICMP, ipVersion: 6, notICMP: {type: 8}}"), "ingress[0].notICMP", "ipVersion 4"),
        (rule("{action: Allow, protocol: ICMPv6, ipVersion: 4, icmp: {type: 128}}"), "ingress[0].icmp", "ipVersion 6"),
        (rule("{action: Allow, destination: {ports: [80]}}"), "ingress[0].destination.ports", "requires protocol TCP, UDP, SCTP"),
        (rule("{action: Allow, protocol: ICMP, source: {notPorts: [80]}}"), "ingress[0].source.notPorts", "requires protocol"),
        (rule("{action: Allow, ipVersion: 4, source: {nets: ['fd00::/8']}}"), "ingress[0].source.nets[0]", "not an IPv4 network"),
        (rule("{action: Allow, ipVersion: 6, destination: {notNets: [10.0.0.0/8]}}"), "ingress[0].destination.notNets[0]", "not an IPv6 network"),
        (rule(&format!("{{action: Allow, protocol: TCP, destination: {{ports: [{}]}}}}", many(51, "80"))), "ingress[0].destination.ports", "51 entries, more than the limit of 50"),
        (rule(&format!("{{action: Allow, source: {{nets: [{}]}}}}", many(257, "10.0.0.0/8"))), "ingress[0].source.nets", "257 entries, more than the limit of 256"),
        ("kind: IpPool\nname: p\ncidr: 10.0.0.1/16\n".into(), "cidr", "host bits set"),
        ("kind: IpPool\nname: p\ncidr: 10.0.0.0/16\nblockSize: 19\n".into(), "blockSize", "outside the range 20-32"),
        ("kind: IpPool\nname: p\ncidr: 'fd00::/120'\nblockSize: 116\n".into(), "blockSize", "larger than the pool"),
        ("kind: BgpConfiguration\nname: other\n".into(), "name", "\"default\" or \"node.<nodename>\""),
        ("kind: BgpConfiguration\nname: default\nasNumber: 0\n".into(), "asNumber", "outside the range"),
        ("kind: BgpPeer\nname: p\nnode: n1\nnodeSelector: all()\npeerIP: 192.0.2.1\nasNumber: 64512\n".into(), "nodeSelector", "together with node"),
        ("kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 64512\nholdTime: 2\n".into(), "holdTime", "at least 3 s"),
        ("kind: BgpPeer\nname: p\npeerIP: 0.0.0.0\nasNumber: 64512\n".into(), "peerIP", "not a unicast address"),
        ("kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 64512\nbfd: {multiplier: 0}\n".into(), "bfd.multiplier", "not 0"),
        ("kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 64512\nbfd: {minRxIntervalMs: 5}\n".into(), "bfd.minRxIntervalMs", "5 ms is outside 10-60000 ms"),
        ("kind: Node\nname: N1\n".into(), "name", "not a valid name"),
    ];
    assert!(cases.len() >= 35);
    for (doc, field, reason) in cases {
        let e = invalid(&doc);
        assert_eq!(e.field, field, "{doc}\n{e}");
        assert!(
            e.to_string().contains(reason),
            "{doc}\nwanted {reason:?} in: {e}"
        );
    }
}

#[test]
fn too_many_rules_is_a_typed_reason() {
    let rules = (0..1025)
        .map(|_| "  - {action: Deny}\n")
        .collect::<String>();
    let e = invalid(&format!("kind: Profile\nname: p\negress:\n{rules}"));
    assert_eq!(e.field, "egress");
    assert_eq!(
        e.reason,
        Reason::TooMany {
            len: 1025,
            limit: 1024
        }
    );
}

#[test]
fn valid_resources_round_trip_through_json_and_yaml() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/demo/model.yaml"
    ))
    .unwrap();
    let resources = parse_resources(&text).unwrap();
    assert!(resources.len() >= 6);
    for r in resources {
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            serde_json::from_str::<Resource>(&json).unwrap(),
            r,
            "{json}"
        );
        let yaml = serde_yaml_ng::to_string(&r).unwrap();
        assert_eq!(
            serde_yaml_ng::from_str::<Resource>(&yaml).unwrap(),
            r,
            "{yaml}"
        );
    }
}

#[test]
fn protocols_ports_and_as_numbers_accept_every_wire_form() {
    let doc = "kind: Policy\nname: p\ningress:\n  - {action: Allow, protocol: udplite, destination: {ports: [1, '2:3', dns]}}\n  - {action: Deny, protocol: 47}\n";
    let r = parse_resources(doc).unwrap();
    let Resource::Policy(p) = &r[0] else { panic!() };
    assert_eq!(p.ingress[0].protocol.unwrap().0, 136);
    assert_eq!(p.ingress[1].protocol.unwrap().0, 47);
    assert_eq!(p.ingress[0].destination.ports.len(), 3);
    let e = parse_resources("kind: Policy\nname: p\ningress: [{action: Allow, protocol: GRE}]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown protocol \"GRE\""), "{e}");
    let e = parse_resources("kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 4294967296\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");
    // `bfd: {}` is BFD with the defaults; a field it does not have is refused by name.
    let r = parse_resources("kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 1\nbfd: {}\n")
        .unwrap();
    let Resource::BgpPeer(peer) = &r[0] else {
        panic!()
    };
    assert_eq!(peer.bfd, Some(calico_core::dataplane::BfdConfig::default()));
    assert_eq!(
        peer.bfd.as_ref().unwrap().min_tx,
        std::time::Duration::from_millis(300)
    );
    let e = parse_resources(
        "kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 1\nbfd: {interval: 3}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("interval"), "{e}");
    // BFD authentication: the key must fit its type (16 bytes for MD5, 20 for SHA-1), the
    // type is one of RFC 5880's; the password never shows in a debug print.
    let peer_with = |auth: &str| {
        parse_resources(&format!(
            "kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 1\nbfd: {{authentication: {auth}}}\n"
        ))
    };
    let r =
        peer_with("{type: MeticulousKeyedSHA1, keyID: 3, password: 20-bytes-of-key-here}").unwrap();
    let Resource::BgpPeer(peer) = &r[0] else {
        panic!()
    };
    let auth = peer.bfd.as_ref().unwrap().authentication.as_ref().unwrap();
    assert_eq!(
        (auth.kind, auth.key_id),
        (calico_core::dataplane::BfdAuthType::MeticulousKeyedSha1, 3)
    );
    assert!(!format!("{peer:?}").contains("20-bytes-of-key-here"));
    let e = peer_with("{type: KeyedMD5, password: 17-bytes-of-keyXY}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bfd.authentication.password"), "{e}");
    assert!(e.contains("17 bytes; KeyedMD5 takes 1-16"), "{e}");
    let e = peer_with("{type: KeyedSHA256, password: k}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("KeyedSHA256"), "{e}");
    // ADD-PATH: each direction defaults to off; a misspelt field is refused by name.
    let r = parse_resources(
        "kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 1\naddPath: {receive: true}\n",
    )
    .unwrap();
    let Resource::BgpPeer(peer) = &r[0] else {
        panic!()
    };
    assert_eq!(
        peer.add_path,
        Some(calico_core::dataplane::AddPathConfig {
            send: false,
            receive: true
        })
    );
    let e = parse_resources(
        "kind: BgpPeer\nname: p\npeerIP: 192.0.2.1\nasNumber: 1\naddPath: {tx: true}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tx"), "{e}");
}

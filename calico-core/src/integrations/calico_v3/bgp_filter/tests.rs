use crate::integrations::calico_v3::{parse_v3, to_v3};
use crate::model::{FilterAction, MatchOperator, Resource};

/// Calico's documented sample.
const SAMPLE: &str = "
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: my-filter
spec:
  exportV4:
    - action: Accept
      matchOperator: In
      cidr: 77.0.0.0/16
      source: RemotePeers
    - action: Reject
      interface: '*.calico'
  importV4:
    - action: Accept
      matchOperator: In
      cidr: 55.0.0.0/16
      prefixLength:
        min: 30
    - action: Reject
      matchOperator: NotIn
      cidr: 44.0.0.0/16
  exportV6:
    - action: Reject
      source: RemotePeers
  importV6:
    - action: Accept
      matchOperator: Equal
      cidr: 5000::0/64
    - action: Reject
";

#[test]
fn calicos_sample_filter_reads_and_writes_back() {
    let rs = parse_v3(SAMPLE).unwrap();
    let Resource::BgpFilter(f) = &rs[0] else {
        panic!("{rs:?}")
    };
    assert_eq!(f.name, "my-filter");
    assert_eq!(f.import_v4[0].prefix_length.unwrap().min, Some(30));
    assert_eq!(f.import_v4[1].match_operator, Some(MatchOperator::NotIn));
    assert_eq!(f.import_v6[1].action, FilterAction::Reject);
    assert_eq!(f.export_v4[1].interface.as_deref(), Some("*.calico"));
    let v3 = to_v3(&rs[0]).unwrap();
    assert_eq!(v3.kind, "BGPFilter");
    assert_eq!(parse_v3(&v3.value.to_string()).unwrap(), rs);
}

#[test]
fn communities_and_peer_filters_round_trip() {
    let text = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  communities:
  - {name: bgp-large-community, value: '63400:300:100'}
  prefixAdvertisements:
  - cidr: 172.218.4.0/26
    communities: [bgp-large-community, '63400:120']
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 192.0.2.1, asNumber: 65001, filters: [my-filter, other]}
";
    let rs = parse_v3(text).unwrap();
    let Resource::BgpConfiguration(c) = &rs[0] else {
        panic!("{rs:?}")
    };
    assert_eq!(c.prefix_advertisements[0].communities.len(), 2);
    let Resource::BgpPeer(p) = &rs[1] else {
        panic!("{rs:?}")
    };
    assert_eq!(p.filters, ["my-filter", "other"]);
    for r in &rs {
        let v3 = to_v3(r).unwrap();
        assert_eq!(&parse_v3(&v3.value.to_string()).unwrap()[0], r);
    }
}

#[test]
fn bad_v3_input_is_refused_naming_the_field() {
    let filter = |rules: &str| {
        format!("apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: f}}\nspec: {{{rules}}}\n")
    };
    for (spec, field) in [
        ("exportV4: [{action: Accept, matchOperator: In, cidr: 'fd00::/8'}]", "exportV4[0].cidr"),
        ("importV4: [{action: Reject, interface: 'eth?'}]", "importV4[0].interface"),
        ("importV4: [{action: Reject, interface: 'a-name-too-long16'}]", "importV4[0].interface"),
        ("exportV6: [{action: Accept, matchOperator: In, cidr: 'fd00::/8', prefixLength: {min: 64, max: 48}}]", "exportV6[0].prefixLength"),
        ("exportV4: [{action: Accept}], bogus: 1", "bogus"),
    ] {
        let e = parse_v3(&filter(spec)).unwrap_err().to_string();
        assert!(e.contains(field), "{spec}: {e}");
    }
    let config = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [gold]}]}\n";
    let e = parse_v3(config).unwrap_err().to_string();
    assert!(e.contains("prefixAdvertisements[0].communities[0]"), "{e}");
}

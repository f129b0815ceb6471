//! Route policy shared by the BIRD and FRR drivers' rendering tests.

use calico_core::dataplane::{BgpSettings, RoutePolicy};
use calico_core::model::parse_resources;

/// Two filters (Calico's documented sample rules, less `interface`, and a catch-all
/// reject) and advertisements of both families, one with a well-known community.
pub(crate) const POLICY: &str = "
kind: BgpFilter
name: my-filter
exportV4:
- {action: Accept, matchOperator: In, cidr: 77.0.0.0/16, source: RemotePeers}
- {action: Reject, matchOperator: NotEqual, cidr: 10.65.0.0/26}
importV4:
- {action: Accept, matchOperator: In, cidr: 55.0.0.0/16, prefixLength: {min: 30}}
- {action: Reject, matchOperator: NotIn, cidr: 44.0.0.0/16, prefixLength: {max: 24}}
importV6:
- {action: Accept, matchOperator: Equal, cidr: '5000::/64'}
- {action: Reject}
---
kind: BgpFilter
name: second
exportV4: [{action: Reject}]
---
kind: BgpConfiguration
name: default
prefixAdvertisements:
- {cidr: 10.65.0.0/16, communities: ['65001:100', '4200000000:1:2']}
- {cidr: 'fd00:65::/48', communities: ['65535:65281']}
";

/// `s` with the filters and advertisements of `yaml` on every peer.
pub(crate) fn with_policy(mut s: BgpSettings, yaml: &str) -> BgpSettings {
    let resources = parse_resources(yaml).unwrap();
    let peers: Vec<_> = s.peers.iter().map(|p| p.address).collect();
    s.policy = RoutePolicy::from_resources(&resources, &peers);
    s
}

//! A deterministic model at a chosen scale, for benchmarks and load tests: local and remote
//! workload endpoints spread over namespaces and apps, one namespace profile each, and
//! policies that select an app and admit TCP from another app plus a network.
//!
//! ```
//! use calico_core::scale::Scale;
//! let scale = Scale { local: 10, remote: 100, policies: 20, ..Scale::default() };
//! let model = scale.model();
//! assert_eq!(model.workload_endpoints.len(), 110);
//! ```

use crate::model::{
    Action, EntityRule, Labels, Model, NetworkSet, Policy, PortSpec, Profile, Protocol, Resource,
    Rule, Tier, TierAction, WorkloadEndpoint, WorkloadEndpointId,
};
use crate::selector::Selector;

/// How big a model to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Workload endpoints on the local node `h1` (endpoint indexes `0..local`).
    pub local: usize,
    /// Workload endpoints on 40 other nodes.
    pub remote: usize,
    /// Namespaced policies.
    pub policies: usize,
    /// Distinct `app` label values.
    pub apps: usize,
    /// Namespaces (each with a profile `kns.nsN`).
    pub namespaces: usize,
}

impl Default for Scale {
    /// The scale of the benchmarks: 250 local and 10,000 remote endpoints, 2,000 policies.
    fn default() -> Self {
        Scale {
            local: 250,
            remote: 10_000,
            policies: 2_000,
            apps: 100,
            namespaces: 20,
        }
    }
}

impl Scale {
    /// Endpoint number `i`: local (node `h1`) when `i < local`, interface `cali` + 11
    /// digits, address `10.64.0.0/10` + `i`.
    pub fn endpoint(&self, i: usize) -> WorkloadEndpoint {
        let mut labels = Labels::new();
        labels.insert("app".into(), format!("app{}", i % self.apps));
        labels.insert("tier".into(), ["web", "api", "db"][i % 3].into());
        WorkloadEndpoint {
            id: WorkloadEndpointId {
                orchestrator: "k8s".into(),
                workload: format!("pod{i}"),
                endpoint: "eth0".into(),
            },
            namespace: Some(format!("ns{}", i % self.namespaces)),
            node: if i < self.local {
                "h1".into()
            } else {
                format!("h{}", 2 + i % 40)
            },
            interface_name: format!("cali{i:011}"),
            mac: None,
            ip_networks: vec![ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0x0a40_0000u32 + i as u32), 32)
                    .expect("a /32 is valid"),
            )],
            labels,
            profiles: vec![format!("kns.ns{}", i % self.namespaces)],
            ports: vec![],
            allow_spoofed_source_prefixes: vec![],
        }
    }

    /// Policy number `k`: selects `app{k}`, admits TCP to `port` and 443 from another app,
    /// and anything from `192.168.k.0/24`.
    pub fn policy(&self, k: usize, port: u16) -> Policy {
        let ns = k % self.namespaces;
        let mut from_peers = Rule::new(Action::Allow);
        from_peers.protocol = Some(Protocol::TCP);
        from_peers.source = EntityRule {
            selector: Some(
                Selector::parse(&format!("app == 'app{}'", (k + 20) % self.apps))
                    .expect("a valid selector"),
            ),
            ..Default::default()
        };
        from_peers.destination.ports = vec![PortSpec::single(port), PortSpec::single(443)];
        let mut from_net = Rule::new(Action::Allow);
        from_net.source.nets = vec![ipnet::IpNet::V4(
            ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(192, 168, (k % 256) as u8, 0), 24)
                .expect("a /24 is valid"),
        )];
        Policy {
            name: format!("pol{k}"),
            namespace: Some(format!("ns{ns}")),
            tier: crate::model::DEFAULT_TIER.into(),
            order: Some((k % 10) as f64),
            selector: Selector::parse(&format!("app == 'app{}'", k % self.apps))
                .expect("a valid selector"),
            types: vec![],
            ingress: vec![from_peers, from_net],
            egress: vec![],
            apply_on_forward: false,
            pre_dnat: false,
            do_not_track: false,
            staged_action: None,
        }
    }

    /// Global policy number `k` (no namespace, like a `GlobalNetworkPolicy`), for bulk
    /// changes: one in ten selects every endpoint with an `app` label, one in ten a `tier`
    /// (a third of the endpoints), the others one app; each admits TCP to `port` from
    /// another app (one in fifty to `port` and 443) and anything from a `172.16.0.0/12`
    /// network of its own. Names are `gpol<k>`, orders `k % 100`, so a local endpoint's
    /// policies interleave. (A port list is an anonymous set in nftables, which the kernel
    /// creates and binds at a cost that grows with the table and the transaction: 10,000 of
    /// them in one transaction take minutes.)
    pub fn global_policy(&self, k: usize, port: u16) -> Policy {
        let mut p = self.policy(k, port);
        p.name = format!("gpol{k}");
        p.namespace = None;
        p.order = Some((k % 100) as f64);
        let selector = match k % 10 {
            0 => "has(app)".to_string(),
            1 => format!("tier == '{}'", ["web", "api", "db"][(k / 10) % 3]),
            _ => format!("app == 'app{}'", k % self.apps),
        };
        p.selector = Selector::parse(&selector).expect("a valid selector");
        if k % 50 != 0 {
            p.ingress[0].destination.ports = vec![PortSpec::single(port)];
        }
        p.ingress[1].source.nets = vec![ipnet::IpNet::V4(
            ipnet::Ipv4Net::new(
                std::net::Ipv4Addr::new(172, 16 + (k / 256 % 16) as u8, (k % 256) as u8, 0),
                24,
            )
            .expect("a /24 is valid"),
        )];
        p
    }

    /// Network set number `j`, in namespace `ns{j % namespaces}` with label `app{j % apps}`,
    /// so that the rule selectors of the policies of its namespace pick it as they pick that
    /// app's endpoints: an IPv4 /24 of `100.64.0.0/10` and an IPv6 /112 of `fd10::/16`, the
    /// /24 moved to `100.127.0.0/16` (`moved`) for changes.
    pub fn network_set(&self, j: usize, moved: bool) -> NetworkSet {
        let v4 = if moved {
            format!("100.127.{}.0/24", j % 256)
        } else {
            format!("100.{}.{}.0/24", 64 + j / 256 % 63, j % 256)
        };
        let v6 = format!("fd10::{:x}:0/112", j);
        NetworkSet {
            name: format!("netset{j}"),
            namespace: Some(format!("ns{}", j % self.namespaces)),
            labels: [("app".to_string(), format!("app{}", j % self.apps))].into(),
            nets: [v4, v6]
                .iter()
                .map(|n| n.parse().expect("a valid network"))
                .collect(),
        }
    }

    /// The whole model with `sets` network sets ([`Scale::network_set`]) added.
    pub fn model_with_network_sets(&self, sets: usize) -> Model {
        let mut model = self.model();
        for j in 0..sets {
            let set = Resource::NetworkSet(self.network_set(j, false));
            model
                .apply(crate::model::Update::Upsert(set))
                .expect("the scale network sets are valid");
        }
        model
    }

    /// The tiers of [`Scale::model_with_tiers`]: `security` (order 100, default Deny),
    /// `platform` (order 200, default Pass) and `late` (order 2,000,000: after the default
    /// tier, default Pass).
    pub fn tiers(&self) -> Vec<Tier> {
        let tier = |name: &str, order: f64, default_action| Tier {
            name: name.into(),
            order: Some(order),
            default_action,
        };
        vec![
            tier("security", 100.0, TierAction::Deny),
            tier("platform", 200.0, TierAction::Pass),
            tier("late", 2_000_000.0, TierAction::Pass),
        ]
    }

    /// The model with `sets` network sets and three tiers ([`Scale::tiers`]) holding three
    /// policies in seven (policy `k` in tier `k % 7` for 0–2, the default tier otherwise).
    pub fn model_with_tiers(&self, sets: usize) -> Model {
        let mut model = self.model_with_network_sets(sets);
        let tiers = self.tiers();
        for t in &tiers {
            model
                .apply(crate::model::Update::Upsert(Resource::Tier(t.clone())))
                .expect("the scale tiers are valid");
        }
        for k in 0..self.policies {
            if let Some(t) = tiers.get(k % 7) {
                let mut p = self.policy(k, 80);
                p.tier = t.name.clone();
                model
                    .apply(crate::model::Update::Upsert(Resource::Policy(p)))
                    .expect("the scale policies are valid");
            }
        }
        model
    }

    /// The whole model.
    pub fn model(&self) -> Model {
        let mut resources: Vec<Resource> = (0..self.namespaces)
            .map(|n| {
                Resource::Profile(Profile {
                    name: format!("kns.ns{n}"),
                    labels_to_apply: [("pcns.name".to_string(), format!("ns{n}"))].into(),
                    ingress: vec![Rule::new(Action::Allow)],
                    egress: vec![Rule::new(Action::Allow)],
                })
            })
            .collect();
        resources.extend(
            (0..self.local + self.remote).map(|i| Resource::WorkloadEndpoint(self.endpoint(i))),
        );
        resources.extend((0..self.policies).map(|k| Resource::Policy(self.policy(k, 80))));
        Model::from_resources(resources).expect("the scale model is valid")
    }
}

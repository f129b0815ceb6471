//! The compiled IR, run by the interpreter, gives the reference evaluator's verdict.
//!
//! For random valid models (every rule field in play) and random first packets between
//! their workloads (or outside addresses), host `h1`'s compiled ruleset accepts a forwarded
//! packet exactly when the reference evaluator allows it: egress of the source if it is a
//! local workload, and ingress of the destination if it is one; for a packet that arrives
//! or leaves through the uplink, the policy of the host endpoint on it too (untracked,
//! pre-DNAT, then `applyOnForward`, through the prerouting and forward hooks). The simulated network fed
//! the same models update by update (so through the incremental compiler) delivers a packet
//! between two workloads exactly when the reference evaluator allows the flow.

use calico_core::arbitrary;
use calico_core::compile::{compile, CompileConfig, HostConfig, HostPath};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::{Hook, Ruleset};
use calico_core::eval::{
    evaluate, evaluate_flow, evaluate_host, Direction, EndpointRef, Packet, RuleSource, TraceStep,
    Verdict,
};
use calico_core::model::{
    Action, HostEndpoint, Model, NamedPort, Protocol, Resource, Update, WorkloadEndpoint,
};
use calico_mock::{interpret, interpret_marked, ConnState, MockNetwork, PacketContext};
use proptest::prelude::*;

const NODE: &str = arbitrary::NODES[0];
const UPLINK: &str = "eth0";

fn local_owner(model: &Model, addr: std::net::IpAddr) -> Option<&WorkloadEndpoint> {
    model
        .workload_endpoints
        .values()
        .find(|ep| ep.node == NODE && ep.ip_networks.iter().any(|n| n.addr() == addr))
}

/// The host endpoint `NODE` programs on the uplink: the one naming it (the first by
/// name), else the all-interfaces one.
fn uplink_endpoint(model: &Model) -> Option<&str> {
    let on = |iface: &str| {
        model
            .host_endpoints
            .values()
            .find(|h| h.node == NODE && h.interface_name.as_deref() == Some(iface))
    };
    on(UPLINK).or_else(|| on("*")).map(|h| h.name.as_str())
}

/// What the reference evaluator says about a forwarded packet at `NODE`: the workloads'
/// policy, and that of the uplink's host endpoint for the traffic it carries (pre-DNAT,
/// then `applyOnForward` on the way in; `applyOnForward` on the way out). `None` when no
/// local workload is involved (the agent's rules do not apply).
fn reference(model: &Model, p: &Packet) -> Option<(bool, String)> {
    let src = local_owner(model, p.src);
    let dst = local_owner(model, p.dst);
    if src.is_none() && dst.is_none() {
        return None;
    }
    let mut allowed = true;
    let mut why = String::new();
    let host = |path, why: &mut String| {
        let name = uplink_endpoint(model)?;
        let e = evaluate_host(model, name, path, p, &HostConfig::default()).unwrap();
        why.push_str(&format!("host endpoint {name} {path:?}: {:?}\n", e.verdict));
        e.verdict
    };
    if src.is_none() {
        // The first stage that decides: untracked, pre-DNAT, then applyOnForward policy
        // (none governing: allowed).
        let stages = [HostPath::UntrackedIn, HostPath::PreDnat, HostPath::FwdIn];
        let first = stages.iter().find_map(|&s| host(s, &mut why));
        allowed &= first != Some(Verdict::Deny);
    }
    for (ep, dir) in [(src, Direction::Egress), (dst, Direction::Ingress)] {
        if let Some(ep) = ep {
            let e = evaluate(model, &EndpointRef::Workload(ep.id.clone()), dir, p).unwrap();
            why.push_str(&format!("{e}\n"));
            allowed &= e.verdict.is_allow();
        }
    }
    if dst.is_none() {
        allowed &= host(HostPath::FwdOut, &mut why) != Some(Verdict::Deny);
    }
    Some((allowed, why))
}

fn judge(ruleset: &Ruleset, model: &Model, p: &Packet, ct: ConnState) -> bool {
    let iif = local_owner(model, p.src).map_or(UPLINK, |e| e.interface_name.as_str());
    let oif = local_owner(model, p.dst).map_or(UPLINK, |e| e.interface_name.as_str());
    let ctx = |oif| PacketContext {
        packet: p,
        iif,
        oif,
        ct,
    };
    let pre = interpret(ruleset, Hook::Prerouting, &ctx(""));
    pre.accepted && interpret_marked(ruleset, Hook::Forward, &ctx(oif), pre.mark).accepted
}

/// Half the time, a host endpoint on the other node owning two of the outside addresses
/// packets use (`10.0.9.9`, `fd00::99`), with random labels, profiles and a named port: rule
/// selectors and named ports must then see it as the reference evaluator does.
fn model_with_host_endpoint() -> impl Strategy<Value = Model> {
    let labels = prop::collection::btree_map(
        prop::sample::select(vec!["app", "tier"]).prop_map(String::from),
        prop::sample::select(vec!["x", "y", "z"]).prop_map(String::from),
        0..3,
    );
    let profiles = prop::sample::subsequence(vec!["p1", "kns.a", "p3"], 0..2);
    (
        arbitrary::model(),
        any::<bool>(),
        labels,
        profiles,
        any::<bool>(),
    )
        .prop_map(|(mut m, with_hep, labels, profiles, http)| {
            if with_hep {
                let hep = HostEndpoint {
                    name: "hep".into(),
                    node: arbitrary::NODES[1].into(),
                    interface_name: Some("eth0".into()),
                    expected_ips: vec!["10.0.9.9".parse().unwrap(), "fd00::99".parse().unwrap()],
                    labels,
                    profiles: profiles.into_iter().map(String::from).collect(),
                    ports: if http {
                        vec![NamedPort {
                            name: "http".into(),
                            protocol: Protocol::TCP,
                            port: 8080,
                        }]
                    } else {
                        vec![]
                    },
                };
                m.host_endpoints.insert(hep.name.clone(), hep);
            }
            m
        })
}

fn model_and_packets() -> impl Strategy<Value = (Model, Vec<Packet>)> {
    model_with_host_endpoint().prop_flat_map(|m| {
        let packets = prop::collection::vec(arbitrary::packet(&m), 10);
        (Just(m), packets)
    })
}

proptest! {
    // 4,000 models × 10 packets; about half the packets involve a local workload, so some
    // 20,000 verdicts are compared per run (`cargo test -p calico-mock --test equivalence`:
    // about a second per 1,000 cases in the test profile).
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn interpreter_on_compiled_ir_agrees_with_the_reference((model, packets) in model_and_packets()) {
        let ruleset = compile(&CompileConfig::new(NODE), &model);
        for p in &packets {
            let Some((want, why)) = reference(&model, p) else { continue };
            let got = judge(&ruleset, &model, p, ConnState::New);
            prop_assert_eq!(got, want, "packet {:?}\nreference:\n{}", p, why);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn established_flows_pass_and_invalid_ones_drop((model, packets) in model_and_packets()) {
        let ruleset = compile(&CompileConfig::new(NODE), &model);
        for p in &packets {
            if reference(&model, p).is_none() { continue }
            // Untracked policy judges every packet, established or not (it runs before
            // conntrack).
            let untracked_deny = local_owner(&model, p.src).is_none()
                && uplink_endpoint(&model).is_some_and(|h| {
                    let e = evaluate_host(&model, h, HostPath::UntrackedIn, p, &HostConfig::default());
                    e.unwrap().verdict == Some(Verdict::Deny)
                });
            prop_assert_eq!(judge(&ruleset, &model, p, ConnState::Established), !untracked_deny);
            prop_assert!(!judge(&ruleset, &model, p, ConnState::Invalid));
        }
    }

    #[test]
    fn diff_applied_to_the_mock_acl_gives_the_new_ruleset(a in arbitrary::model(), b in arbitrary::model()) {
        use calico_core::dataplane::AclBackend;
        let config = CompileConfig::new(NODE);
        let (ra, rb) = (compile(&config, &a), compile(&config, &b));
        let acl = calico_mock::MockAcl::new();
        acl.set_ruleset(ra.clone());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(acl.apply(&diff(&ra, &rb))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(acl.ruleset(), rb);
    }
}

#[test]
fn a_spoofed_source_is_dropped() {
    let model = calico_core::model::Model::from_resources(
        calico_core::model::parse_resources(
            "kind: WorkloadEndpoint\norchestrator: k8s\nworkload: a\nendpoint: eth0\nnode: h1\ninterfaceName: cali-a\nipNetworks: [10.0.0.1/32]\nprofiles: [open]\n---\nkind: Profile\nname: open\ningress: [{action: Allow}]\negress: [{action: Allow}]\n",
        )
        .unwrap(),
    )
    .unwrap();
    let ruleset = compile(&CompileConfig::new(NODE), &model);
    let own = Packet::tcp(
        "10.0.0.1".parse().unwrap(),
        1,
        "198.51.100.1".parse().unwrap(),
        80,
    );
    let spoofed = Packet::tcp(
        "10.0.0.99".parse().unwrap(),
        1,
        "198.51.100.1".parse().unwrap(),
        80,
    );
    let ctx = |p| PacketContext {
        packet: p,
        iif: "cali-a",
        oif: UPLINK,
        ct: ConnState::New,
    };
    assert!(interpret(&ruleset, Hook::Forward, &ctx(&own)).accepted);
    let out = interpret(&ruleset, Hook::Forward, &ctx(&spoofed));
    assert!(!out.accepted, "{out:?}");
}

/// Calico's `allowSpoofedSourcePrefixes`: with workload source spoofing allowed, a source
/// in the listed networks passes anti-spoofing (and then the policy, as the reference
/// evaluator says), one outside them does not; without it, the list changes nothing. IPv4
/// and IPv6 alike, a family with no own address included.
#[test]
fn allowed_spoofed_prefixes_pass_only_where_spoofing_is_allowed() {
    let model = calico_core::model::Model::from_resources(
        calico_core::model::parse_resources(
            "kind: WorkloadEndpoint\norchestrator: k8s\nworkload: a\nendpoint: eth0\nnode: h1\n\
             interfaceName: cali-a\nipNetworks: [10.0.0.1/32]\nprofiles: [open]\n\
             allowSpoofedSourcePrefixes: [10.99.0.0/24, 10.99.1.0/24, \"fd00:99::/64\"]\n---\n\
             kind: Profile\nname: open\negress: [{action: Allow, protocol: TCP}]\n",
        )
        .unwrap(),
    )
    .unwrap();
    let a = EndpointRef::Workload(calico_core::model::WorkloadEndpointId {
        orchestrator: "k8s".into(),
        workload: "a".into(),
        endpoint: "eth0".into(),
    });
    let tcp = |src: &str| Packet::tcp(src.parse().unwrap(), 1, "198.51.100.1".parse().unwrap(), 80);
    let tcp6 = |src: &str| Packet::tcp(src.parse().unwrap(), 1, "2001:db8::1".parse().unwrap(), 80);
    let udp = Packet::udp(
        "10.99.0.7".parse().unwrap(),
        1,
        "198.51.100.1".parse().unwrap(),
        53,
    );
    let cases = [
        (tcp("10.0.0.1"), true, true),
        (tcp("10.99.0.7"), false, true),
        (tcp("10.99.1.200"), false, true),
        (tcp("10.98.0.1"), false, false),
        (tcp6("fd00:99::5"), false, true),
        (tcp6("fd00:98::5"), false, false),
        // Past anti-spoofing, the policy still decides: the profile allows TCP only.
        (udp.clone(), false, false),
    ];
    for allow in [false, true] {
        let config = CompileConfig {
            workload_source_spoofing: allow,
            ..CompileConfig::new(NODE)
        };
        let ruleset = compile(&config, &model);
        for (p, without, with) in &cases {
            let ctx = PacketContext {
                packet: p,
                iif: "cali-a",
                oif: UPLINK,
                ct: ConnState::New,
            };
            let want = if allow { *with } else { *without };
            let got = interpret(&ruleset, Hook::Forward, &ctx).accepted;
            assert_eq!(got, want, "spoofing allowed: {allow}, {p:?}");
            if allow && want {
                let e = evaluate(&model, &a, Direction::Egress, p).unwrap();
                assert!(e.verdict.is_allow(), "reference: {e}");
            }
        }
    }
    // The reference takes a listed source as the workload's own; policy decides.
    let e = evaluate(&model, &a, Direction::Egress, &udp).unwrap();
    assert!(!e.verdict.is_allow(), "reference: {e}");
    assert!(evaluate(&model, &a, Direction::Egress, &tcp("10.98.0.1")).is_err());
}

/// A Pass in the sender's egress policy leaves the Pass mark on the packet; the receiver's
/// ingress policies (shared policy-list chain, early return after a policy that may Pass)
/// must not read it as their own Pass. Here the receiver has no profiles, so a stale mark
/// would end its policies early and drop what its second policy allows.
#[test]
fn the_senders_pass_mark_does_not_end_the_receivers_policies() {
    let model = calico_core::model::Model::from_resources(
        calico_core::model::parse_resources(
            "kind: WorkloadEndpoint\norchestrator: k8s\nworkload: a\nendpoint: eth0\nnode: h1\n\
             interfaceName: cali-a\nipNetworks: [10.0.0.1/32]\nlabels: {app: a}\nprofiles: [open]\n---\n\
             kind: WorkloadEndpoint\norchestrator: k8s\nworkload: b\nendpoint: eth0\nnode: h1\n\
             interfaceName: cali-b\nipNetworks: [10.0.0.2/32]\nlabels: {app: b}\n---\n\
             kind: Profile\nname: open\ningress: [{action: Allow}]\negress: [{action: Allow}]\n---\n\
             kind: Policy\nname: a-out\norder: 1\nselector: app == 'a'\negress: [{action: Pass}]\n---\n\
             kind: Policy\nname: b-in-1\norder: 1\nselector: app == 'b'\n\
             ingress: [{action: Pass, source: {nets: [192.0.2.0/24]}}]\n---\n\
             kind: Policy\nname: b-in-2\norder: 2\nselector: app == 'b'\ningress: [{action: Allow}]\n",
        )
        .unwrap(),
    )
    .unwrap();
    let ruleset = compile(&CompileConfig::new(NODE), &model);
    let p = Packet::tcp(
        "10.0.0.1".parse().unwrap(),
        1000,
        "10.0.0.2".parse().unwrap(),
        80,
    );
    let (allowed, why) = reference(&model, &p).unwrap();
    assert!(allowed, "{why}");
    assert!(judge(&ruleset, &model, &p, ConnState::New), "{why}");
}

/// The model as the updates an orchestrator would send, endpoints first, tiers last (so
/// that policies of a tier are held until it arrives, then take effect).
fn updates(model: &Model) -> Vec<Update> {
    let eps = model
        .workload_endpoints
        .values()
        .cloned()
        .map(Resource::WorkloadEndpoint)
        .chain(
            model
                .host_endpoints
                .values()
                .cloned()
                .map(Resource::HostEndpoint),
        );
    let profiles = model.profiles.values().cloned().map(Resource::Profile);
    let policies = model.policies.values().cloned().map(Resource::Policy);
    let sets = model
        .network_sets
        .values()
        .cloned()
        .map(Resource::NetworkSet);
    let tiers = model.tiers.values().cloned().map(Resource::Tier);
    eps.chain(profiles)
        .chain(policies)
        .chain(sets)
        .chain(tiers)
        .map(Update::Upsert)
        .collect()
}

fn workload_packets() -> impl Strategy<Value = (Model, Vec<Packet>)> {
    model_and_packets().prop_map(|(mut m, packets)| {
        // `evaluate_flow` judges the workloads' policy alone; an all-interfaces host
        // endpoint would also police the fabric interface (the forward hook equivalence
        // above covers that).
        m.host_endpoints
            .retain(|_, h| h.interface_name.as_deref() != Some("*"));
        let addrs = arbitrary::endpoint_addresses(&m);
        let between_workloads = packets
            .into_iter()
            .filter(|p| p.src != p.dst && addrs.contains(&p.src) && addrs.contains(&p.dst))
            .collect();
        (m, between_workloads)
    })
}

proptest! {
    // 300 models fed incrementally to a two-host network; every packet between two of their
    // workloads (on the same host or across the fabric) is delivered exactly when the
    // reference evaluator allows the flow.
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_simulated_network_delivers_what_the_reference_allows((model, packets) in workload_packets()) {
        let mut net = MockNetwork::new();
        for (i, node) in arbitrary::NODES.iter().enumerate() {
            net.add_host(node, std::net::IpAddr::from([192, 0, 2, i as u8 + 1]));
        }
        for u in updates(&model) {
            net.apply(u).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(net.model(), &model);
        for p in &packets {
            let want = evaluate_flow(&model, p).unwrap();
            let got = net.send(p).unwrap();
            prop_assert_eq!(got.delivered, want.verdict.is_allow(), "packet {:?}\nnetwork: {}\nreference:\n{}", p, got, want);
        }
    }
}

/// What decided one evaluation, coarsely: to check that the random models reach every
/// outcome, so that the equivalence above is not vacuous.
fn outcome_kinds(e: &calico_core::eval::Evaluation) -> Vec<&'static str> {
    let mut kinds = vec![];
    for step in &e.trace {
        kinds.push(match step {
            TraceStep::Rule {
                source: RuleSource::Policy(_),
                action: Action::Allow,
                ..
            } => "policy allow",
            TraceStep::Rule {
                source: RuleSource::Policy(_),
                action: Action::Deny,
                ..
            } => "policy deny",
            TraceStep::Rule {
                source: RuleSource::Policy(_),
                action: Action::Pass,
                ..
            } => "policy pass",
            TraceStep::Rule {
                source: RuleSource::Profile(_),
                action: Action::Allow,
                ..
            } => "profile allow",
            TraceStep::Rule {
                source: RuleSource::Profile(_),
                action: Action::Deny,
                ..
            } => "profile deny",
            TraceStep::Rule {
                source: RuleSource::Profile(_),
                action: Action::Pass,
                ..
            } => "profile pass",
            TraceStep::Rule {
                action: Action::Log,
                ..
            } => "log",
            TraceStep::NoRuleMatched { .. } => "no rule matched",
            TraceStep::EndOfTier(t) if t == "default" => "end of policies",
            TraceStep::EndOfTier(_) => "end of another tier",
            TraceStep::TierPassed(_) => "tier passed by default",
            TraceStep::EndOfProfiles => "end of profiles",
            TraceStep::MissingProfile(_) => "missing profile",
            TraceStep::NoPolicyOrProfile => "no policy or profile",
            TraceStep::Endpoint { .. } => continue,
            _ => "other",
        });
    }
    kinds
}

#[test]
fn random_models_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    let (mut allowed, mut denied, mut by_network_sets, mut by_accounts) = (0, 0, 0, 0);
    for _ in 0..600 {
        let (model, packets) = model_and_packets().new_tree(&mut runner).unwrap().current();
        let mut without_sets = model.clone();
        without_sets.network_sets.clear();
        let without_accounts = without_service_accounts(&model);
        for p in &packets {
            let Ok(e) = evaluate_flow(&model, p) else {
                continue;
            };
            // Network sets decided it: without them the verdict would differ.
            let other = evaluate_flow(&without_sets, p).map(|o| o.verdict);
            if other.is_ok_and(|v| v != e.verdict) {
                by_network_sets += 1;
            }
            let other = evaluate_flow(&without_accounts, p).map(|o| o.verdict);
            if other.is_ok_and(|v| v != e.verdict) {
                by_accounts += 1;
            }
            if e.verdict.is_allow() {
                allowed += 1
            } else {
                denied += 1
            }
            for k in outcome_kinds(&e) {
                *seen.entry(k).or_default() += 1;
            }
        }
    }
    for kind in [
        "policy allow",
        "policy deny",
        "policy pass",
        "profile allow",
        "profile deny",
        "profile pass",
        "log",
        "no rule matched",
        "end of policies",
        "end of another tier",
        "tier passed by default",
        "end of profiles",
        "missing profile",
        "no policy or profile",
    ] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) >= 3,
            "outcome {kind:?} rare or never reached: {seen:?}"
        );
    }
    // As for the outcome kinds above: reached, in every run (the runner is deterministic).
    assert!(
        by_network_sets >= 3,
        "network sets decided only {by_network_sets} verdicts of {}",
        allowed + denied
    );
    assert!(
        by_accounts >= 3,
        "service accounts decided only {by_accounts} verdicts of {}",
        allowed + denied
    );
    // Both verdicts must be common (at least a tenth each) for agreement to mean much.
    let total = allowed + denied;
    assert!(
        allowed * 10 >= total && denied * 10 >= total,
        "allowed {allowed}, denied {denied}"
    );
}

/// The model with every rule's `serviceAccounts` match removed.
fn without_service_accounts(model: &Model) -> Model {
    let mut m = model.clone();
    let rules =
        (m.policies.values_mut()).flat_map(|p| p.ingress.iter_mut().chain(p.egress.iter_mut()));
    for r in rules {
        r.source.service_accounts = None;
        r.destination.service_accounts = None;
    }
    m
}

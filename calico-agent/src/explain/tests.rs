//! The trace and the matrix against the compiler's IR (the kernel's stand-in) and a
//! tampered copy of it.

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::{Ruleset, Verdict as IrVerdict};
use calico_core::dataplane::InterfaceAddresses;
use calico_core::model::{parse_resources, Model};

use super::*;

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: web
endpoint: eth0
namespace: prod
node: h1
interfaceName: cali-web
ipNetworks: [10.0.0.1/32]
labels: {app: web}
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: db
endpoint: eth0
namespace: prod
node: h1
interfaceName: cali-db
ipNetworks: [10.0.0.2/32]
labels: {app: db}
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: far
endpoint: eth0
node: h2
interfaceName: cali-far
ipNetworks: [10.0.1.1/32]
profiles: [open]
---
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: Policy
name: db-access
namespace: prod
selector: app == 'db'
ingress:
- {action: Deny, protocol: TCP, destination: {ports: [22]}}
- {action: Allow, protocol: TCP, source: {selector: app == 'web'}, destination: {ports: [5432]}}
"#;

fn model() -> Model {
    Model::from_resources(parse_resources(MODEL).unwrap()).unwrap()
}

/// No interface addresses (no host endpoint of the tests names none).
const NO_ADDRS: InterfaceAddresses = InterfaceAddresses::new();

fn ir(model: &Model) -> Ruleset {
    compile(&CompileConfig::new("h1"), model)
}

/// The trace of the query `q` on h1, the agent having compiled `m` as a default compile
/// does, against the table `kernel`.
fn on_h1(
    m: &Model,
    kernel: Result<&Ruleset, String>,
    q: &str,
) -> Result<TraceReport, RequestError> {
    trace(m, &ir(m), &NO_ADDRS, "h1", kernel, &req(q))
}

fn req(q: &str) -> TraceRequest {
    TraceRequest::from_query(q).unwrap()
}

#[test]
fn model_compiled_and_kernel_agree_and_name_the_policy() {
    let m = model();
    let r = on_h1(&m, Ok(&ir(&m)), "from=web&to=prod-db&proto=tcp&port=5432");
    // "prod-db" is no name of anything: the error names the parameter.
    let e = r.unwrap_err().to_string();
    assert!(e.starts_with("parameter to:"), "{e}");

    let r = on_h1(&m, Ok(&ir(&m)), "from=web&to=k8s/db/eth0&port=5432").unwrap();
    assert_eq!(r.model.verdict, "allow");
    assert_eq!(
        r.model.decided_by,
        "policy prod/db-access ingress rule 1 (Allow)"
    );
    assert_eq!(r.kernel.verdict.as_deref(), Some("allow"));
    assert_eq!(r.compiled.as_deref(), Some("allow"));
    assert!(!r.drift && r.diagnosis.is_none());
    let by = r.kernel.decided_by.unwrap();
    assert_eq!(by, "policy prod/db-access ingress rule 1");
    assert_eq!(r.to.local_interface.as_deref(), Some("cali-db"));

    let r = on_h1(&m, Ok(&ir(&m)), "from=10.0.0.1&to=db&port=22").unwrap();
    assert_eq!(r.model.verdict, "deny");
    assert_eq!(
        r.model.decided_by,
        "policy prod/db-access ingress rule 0 (Deny)"
    );
    assert_eq!(r.kernel.verdict.as_deref(), Some("deny"));
    assert!(!r.drift);
}

/// `model`'s rules with every accept of the policies' ingress chains turned into a drop.
fn tampered(m: &Model) -> Ruleset {
    let mut rules = ir(m);
    let mut turned = 0;
    for (name, chain) in rules.chains.iter_mut() {
        if name.starts_with("pol-in") {
            for rule in &mut chain.rules {
                if rule.verdict == Some(IrVerdict::Accept) {
                    rule.verdict = Some(IrVerdict::Drop);
                    turned += 1;
                }
            }
        }
    }
    assert!(turned > 0, "{:#?}", rules.chains.keys());
    rules
}

#[test]
fn a_tampered_table_is_drift() {
    let m = model();
    let kernel = tampered(&m);
    let r = on_h1(&m, Ok(&kernel), "from=web&to=db&port=5432").unwrap();
    assert_eq!(r.model.verdict, "allow");
    assert_eq!(r.kernel.verdict.as_deref(), Some("deny"));
    assert_eq!(r.compiled.as_deref(), Some("allow"));
    assert!(r.drift);
    assert!(r.diagnosis.unwrap().contains("drift"));
    // The kernel's deciding rule is named by its policy, not by the chain's hash.
    let by = r.kernel.decided_by.unwrap();
    assert!(by.starts_with("policy prod/db-access ingress"), "{by}");
    // The untouched port is not drift.
    let r = on_h1(&m, Ok(&kernel), "from=web&to=db&port=22").unwrap();
    assert!(!r.drift);
}

/// The compiled verdict is that of the rules the agent compiled (with its settings), not of
/// a compile of the trace's own: the agent's rules disagreeing with the model is a compiler
/// bug, not drift.
#[test]
fn the_compiled_verdict_is_the_agents_rules() {
    let m = model();
    let rules = tampered(&m);
    let q = req("from=web&to=db&port=5432");
    let r = trace(&m, &rules, &NO_ADDRS, "h1", Ok(&rules), &q).unwrap();
    assert_eq!(r.model.verdict, "allow");
    assert_eq!(r.compiled.as_deref(), Some("deny"));
    assert!(r.drift);
    assert!(r.diagnosis.unwrap().contains("compiler"));
}

#[test]
fn an_unreadable_table_is_reported_not_called_drift() {
    let m = model();
    let r = on_h1(&m, Err("no table".into()), "from=web&to=db&port=5432").unwrap();
    assert_eq!(r.kernel.verdict, None);
    assert_eq!(r.kernel.error.as_deref(), Some("no table"));
    assert!(!r.drift);
}

#[test]
fn remote_ends_are_noted_and_a_packet_not_enforced_here_is_refused() {
    let m = model();
    let r = on_h1(&m, Ok(&ir(&m)), "from=far&to=db&port=22").unwrap();
    assert!(r.notes[0].contains("node h2"), "{:?}", r.notes);
    assert_eq!(r.model.verdict, "deny");
    let e = on_h1(&m, Ok(&ir(&m)), "from=far&to=8.8.8.8&port=53")
        .unwrap_err()
        .to_string();
    assert!(e.contains("enforces no policy"), "{e}");
    let e = on_h1(&m, Ok(&ir(&m)), "from=web&to=2001:db8::1&port=53")
        .unwrap_err()
        .to_string();
    assert!(e.contains("different address families"), "{e}");
}

#[test]
fn the_matrix_probes_the_ports_policy_names() {
    let m = model();
    let x = matrix(&m, "h1", Ok(&ir(&m)));
    assert_eq!(x.endpoints, ["k8s/db/eth0", "k8s/web/eth0"]);
    assert_eq!(x.probes, ["icmp", "tcp/22", "tcp/5432"]);
    let web_db = x
        .cells
        .iter()
        .find(|c| c.from == "k8s/web/eth0" && c.to == "k8s/db/eth0")
        .unwrap();
    let verdicts: Vec<_> = web_db
        .probes
        .iter()
        .map(|p| (p.model.as_str(), p.kernel.as_deref()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("deny", Some("deny")),
            ("deny", Some("deny")),
            ("allow", Some("allow"))
        ]
    );
    assert_eq!(x.cells.len(), 2);
}

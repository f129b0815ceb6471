//! The evaluator's API: typed errors, applicable policies, the trace.

use super::*;

#[test]
fn bad_requests_are_typed_errors() {
    let model = Model::from_resources(parse_resources(BASE).unwrap()).unwrap();
    let missing = EndpointRef::Host("nope".into());
    assert_eq!(
        evaluate(&model, &missing, Direction::Ingress, &tcp("fe1", "be1", 80)),
        Err(EvalError::UnknownEndpoint(missing))
    );
    let be1 = model
        .workload_endpoints
        .keys()
        .find(|id| id.workload == "shop.be1")
        .unwrap()
        .clone();
    assert!(matches!(
        evaluate(
            &model,
            &EndpointRef::Workload(be1),
            Direction::Ingress,
            &tcp("be1", "fe1", 80)
        ),
        Err(EvalError::NotEndpointAddress { .. })
    ));
    assert!(matches!(
        evaluate_flow(&model, &tcp("192.0.2.1", "192.0.2.2", 80)),
        Err(EvalError::NoEndpoint { .. })
    ));
}

#[test]
fn applicable_policies_are_listed_in_order() {
    let extra = policy(
        "shop",
        "b",
        "20",
        "app == 'backend'",
        "ingress: [{action: Allow}]",
    ) + &policy(
        "",
        "a",
        "10",
        "all()",
        "ingress: [{action: Allow}]\negress: [{action: Allow}]",
    ) + &policy("other", "c", "1", "all()", "ingress: [{action: Allow}]");
    let model = Model::from_resources(parse_resources(&format!("{BASE}{extra}")).unwrap()).unwrap();
    let be1 = model
        .workload_endpoints
        .values()
        .find(|e| e.id.workload == "shop.be1")
        .unwrap();
    let a = applicable_policies(&model, be1);
    assert_eq!(a.ingress, vec!["a".to_string(), "shop/b".to_string()]);
    assert_eq!(a.egress, vec!["a".to_string()]);
}

#[test]
fn the_trace_reads_as_an_explanation() {
    let gate = policy(
        "shop",
        "gate",
        "1",
        "app == 'backend'",
        "ingress: [{action: Log}, {action: Pass}]",
    );
    let model = Model::from_resources(parse_resources(&format!("{BASE}{gate}")).unwrap()).unwrap();
    let id = |w: &str| {
        model
            .workload_endpoints
            .values()
            .find(|e| e.id.workload == w)
            .unwrap()
            .id
            .to_string()
    };
    let e = evaluate_flow(&model, &tcp("fe1", "be1", 80)).unwrap();
    let want = format!(
        "Egress of {}:\n  profile kns.shop: rule 0 matched: Allow\n\
         Ingress of {}:\n  policy shop/gate: rule 0 matched: Log (recorded; evaluation goes on)\n  \
         policy shop/gate: rule 1 matched: Pass (rest of the tier skipped; on to the next tier, then the profiles)\n  \
         profile kns.shop: rule 0 matched: Allow\nverdict: ALLOW",
        id("shop.fe1"),
        id("shop.be1")
    );
    assert_eq!(e.to_string(), want);

    let e = evaluate_flow(&model, &tcp("fe1", "ps1", 80)).unwrap();
    assert!(
        e.to_string()
            .contains("profile passer: rule 0 matched: Pass (on to the next profile)"),
        "{e}"
    );
    let e = evaluate_flow(&model, &tcp("fe1", "lone", 80)).unwrap();
    assert!(
        e.to_string()
            .ends_with("  no policy applies and the endpoint has no profile: Deny\nverdict: DENY"),
        "{e}"
    );
}

use std::path::Path;

use crate::frr::conf::tests::{exports, frr_parses, settings};
use crate::frr::conf::{render, ConfError};
use crate::frr::reload::{parse_running, stale_policy};

fn with_policy(yaml: &str) -> calico_core::dataplane::BgpSettings {
    crate::policy_tests::with_policy(settings(), yaml)
}

#[test]
fn filters_and_communities_become_route_maps_frr_parses() {
    let c = render(
        &with_policy(crate::policy_tests::POLICY),
        &exports(),
        Path::new("/run/x/frr.log"),
    )
    .unwrap();
    for want in [
        " match ip address prefix-list CALICO-EXPORTS4\n on-match goto 100\n",
        " set community 65001:100 additive\n set large-community 4200000000:1:2 additive\n on-match next\n",
        " set community 65535:65281 additive\n",
        "-r0 seq 5 permit 77.0.0.0/16 le 32\n",
        "-r1 seq 5 deny 10.65.0.0/26\n",
        "-r1 seq 10 permit 0.0.0.0/0 le 32\n",
        "-r0 seq 5 permit 55.0.0.0/16 ge 30 le 32\n",
        "-r1 seq 5 deny 44.0.0.0/16 le 24\n",
        "-r0 seq 5 permit 5000::/64\n",
        " deny 1015\nexit\n",
        " permit 1020\nexit\n",
    ] {
        assert!(c.contains(want), "missing {want:?} in\n{c}");
    }
    // The RemotePeers rule is skipped for our own exports.
    assert!(
        c.contains(
            " permit 1000\n match ip address prefix-list CALICO-EXPORTS4\n on-match goto 1010\n"
        ),
        "{c}"
    );
    assert!(
        !c.contains("route-map CALICO-IMPORT in"),
        "both peers have import rules: {c}"
    );
    if let Some(parsed) = frr_parses(&c) {
        parsed.unwrap_or_else(|e| panic!("{e}\n{c}"));
    }
}

#[test]
fn a_changed_policy_gets_new_names_and_the_old_ones_go_after() {
    let old = with_policy(crate::policy_tests::POLICY);
    let c = render(&old, &exports(), Path::new("/run/x/frr.log")).unwrap();
    let running = parse_running(&c);
    assert!(!running.policy_maps.is_empty() && !running.policy_lists.is_empty());
    assert!(
        stale_policy(&running, &old).is_empty(),
        "unchanged: nothing to remove"
    );
    let new = with_policy(&crate::policy_tests::POLICY.replace("65001:100", "65001:101"));
    let removals = stale_policy(&running, &new);
    assert!(removals.contains("no route-map CALICO-P-"), "{removals}");
    // Only the export maps changed: the import maps stay.
    let c2 = render(&new, &exports(), Path::new("/run/x/frr.log")).unwrap();
    let kept = parse_running(&c2)
        .policy_maps
        .intersection(&running.policy_maps)
        .count();
    assert!(kept > 0, "{c2}");
    assert_eq!(
        stale_policy(&running, &settings())
            .matches("no route-map")
            .count(),
        running.policy_maps.len()
    );
}

#[test]
fn a_filter_the_model_would_refuse_is_refused_here_too() {
    let mut s = with_policy("kind: BgpFilter\nname: f\nimportV6: [{action: Reject}]\n");
    for filters in s.policy.filters.values_mut() {
        filters[0].import_v6[0].interface = Some("eth?".into());
    }
    let e = render(&s, &exports(), Path::new("/run/x/frr.log")).unwrap_err();
    assert!(e.to_string().contains("importV6[0].interface"), "{e}");
}

#[test]
fn interface_rules_are_refused_by_name() {
    let s =
        with_policy("kind: BgpFilter\nname: f\nimportV6: [{action: Reject, interface: eth0}]\n");
    let e = render(&s, &exports(), Path::new("/run/x/frr.log")).unwrap_err();
    assert!(
        matches!(
            e,
            ConfError::Unsupported {
                field: "filters: interface",
                ..
            }
        ),
        "{e}"
    );
}

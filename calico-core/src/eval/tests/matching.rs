//! What rules match on: nets, selectors and namespaces, host endpoints, protocols, ICMP,
//! IP versions, ports.

use super::*;

#[test]
fn nets_and_not_nets() {
    let p = be_in("{action: Allow, source: {nets: [10.0.0.0/30]}}");
    run(
        "source in net",
        &p,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "source outside net",
        &p,
        Flow(tcp("ot1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let except = be_in("{action: Allow, source: {nets: [10.0.0.0/24], notNets: [10.0.0.3/32]}}");
    run(
        "notNets excludes",
        &except,
        Flow(tcp("db1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "notNets leaves the rest",
        &except,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let any = be_in("{action: Allow, source: {nets: [192.0.2.0/24, 10.0.1.0/24]}}");
    run(
        "nets are ORed",
        &any,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let dst = be_in("{action: Allow, destination: {nets: [10.0.0.2/32]}}");
    run(
        "destination nets",
        &dst,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let not_dst = be_in("{action: Allow, destination: {notNets: [10.0.0.2/32]}}");
    run(
        "destination notNets",
        &not_dst,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let v6 = be_in("{action: Allow, source: {nets: [\"fd00::/64\"]}}");
    run(
        "IPv6 nets",
        &v6,
        Flow(tcp("fe1v6", "be1v6", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "IPv6 nets do not match IPv4",
        &v6,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn selectors_not_selectors_and_namespaces() {
    let not_db = be_in("{action: Allow, source: {notSelector: \"app == 'db'\"}}");
    run(
        "notSelector excludes",
        &not_db,
        Flow(tcp("db1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "notSelector allows others",
        &not_db,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    // Calico limits a side to the policy's namespace as soon as any selector field is used,
    // notSelector included (libcalico-go getEndpointSelector).
    run(
        "notSelector of a namespaced policy: other namespaces do not match",
        &not_db,
        Flow(tcp("ot1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "notSelector of a namespaced policy: non-endpoint addresses do not match",
        &not_db,
        Ingress("be1", tcp("198.51.100.9", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let lone_not = policy(
        "",
        "lone-in",
        "",
        "role == 'lonely'",
        "ingress: [{action: Allow, source: {notSelector: \"role == 'x'\"}}]",
    );
    run(
        "notSelector matches non-endpoint addresses",
        &lone_not,
        Flow(tcp("198.51.100.9", "lone", 80)),
        A,
        By::Policy("lone-in", 0),
    );
    let lone_sel = policy(
        "",
        "lone-in",
        "",
        "role == 'lonely'",
        "ingress: [{action: Allow, source: {selector: all()}}]",
    );
    run(
        "selector never matches a non-endpoint address",
        &lone_sel,
        Flow(tcp("198.51.100.9", "lone", 80)),
        D,
        By::EndOfPolicies,
    );
    let global = policy(
        "",
        "g",
        "",
        "app == 'backend'",
        "ingress: [{action: Allow, source: {selector: \"app == 'frontend'\"}}]",
    );
    run(
        "global policy selectors see every namespace",
        &global,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("g", 0),
    );
    let ns_sel = be_in("{action: Allow, source: {namespaceSelector: \"team == 'other'\", selector: \"app == 'frontend'\"}}");
    run(
        "namespaceSelector picks the namespace",
        &ns_sel,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "namespaceSelector excludes own namespace",
        &ns_sel,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let ns_only = be_in("{action: Allow, source: {namespaceSelector: \"team == 'other'\"}}");
    run(
        "namespaceSelector alone",
        &ns_only,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let ns_all = be_in("{action: Allow, source: {namespaceSelector: all()}}");
    run(
        "namespaceSelector all()",
        &ns_all,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    // all() means every namespace: namespaced endpoints only.
    run(
        "namespaceSelector all() leaves out host endpoints",
        &ns_all,
        Ingress("be1", tcp("hep", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "namespaceSelector all() leaves out non-namespaced workloads",
        &ns_all,
        Ingress("be1", tcp("lone", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let ns_global = be_in("{action: Allow, source: {namespaceSelector: global()}}");
    run(
        "namespaceSelector global() picks non-namespaced endpoints",
        &ns_global,
        Ingress("be1", tcp("lone", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "namespaceSelector global() leaves out namespaced ones",
        &ns_global,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let ns_label = policy("", "g", "", "app == 'backend'", "ingress: [{action: Allow, source: {selector: \"projectcalico.org/namespace == 'other'\"}}]");
    run(
        "implicit namespace label",
        &ns_label,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("g", 0),
    );
    let orch = policy("", "g", "", "app == 'backend'", "ingress: [{action: Allow, source: {selector: \"projectcalico.org/orchestrator == 'openstack'\"}}]");
    run(
        "implicit orchestrator label",
        &orch,
        Ingress("be1", tcp("lone", "be1", 80)),
        A,
        By::Policy("g", 0),
    );
    run(
        "implicit orchestrator label, no match",
        &orch,
        Ingress("be1", tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let inherited = policy(
        "",
        "g",
        "",
        "app == 'backend'",
        "ingress: [{action: Allow, source: {selector: \"pcns.env == 'prod'\"}}]",
    );
    run(
        "labels inherited from profiles",
        &inherited,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("g", 0),
    );
    run(
        "labels inherited from profiles, absent",
        &inherited,
        Flow(tcp("ot1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let own_wins = policy("", "t", "", "tier == 'api'", "ingress: [{action: Deny}]");
    run(
        "own label wins over profile label",
        &own_wins,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("t", 0),
    );
    let profile_tier = policy(
        "",
        "t",
        "",
        "tier == 'profile-tier'",
        "ingress: [{action: Deny}]",
    );
    run(
        "profile label applies where no own label",
        &profile_tier,
        Flow(tcp("be1", "fe1", 80)),
        D,
        By::Policy("t", 0),
    );
    let ns_all_deny = policy("shop", "deny", "", "all()", "ingress: [{action: Deny}]");
    run(
        "namespaced policy does not reach other namespaces",
        &ns_all_deny,
        Flow(tcp("fe1", "ot1", 80)),
        A,
        By::Profile("kns.other", 0),
    );
    run(
        "namespaced policy all() in its namespace",
        &ns_all_deny,
        Flow(tcp("ot1", "fe1", 80)),
        D,
        By::Policy("shop/deny", 0),
    );
    let has_sel = be_in("{action: Allow, source: {selector: \"has(app) && app not in {'db'}\"}}");
    run(
        "has() and not in",
        &has_sel,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "has() and not in, excluded",
        &has_sel,
        Flow(tcp("db1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn host_endpoints() {
    let ssh = policy(
        "",
        "ssh",
        "",
        "role == 'host'",
        "ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]",
    );
    run(
        "host endpoint allowed",
        &ssh,
        HostIngress("h1-eth0", tcp("fe1", "hep", 22)),
        A,
        By::Policy("ssh", 0),
    );
    run(
        "host endpoint default deny",
        &ssh,
        HostIngress("h1-eth0", tcp("fe1", "hep", 23)),
        D,
        By::EndOfPolicies,
    );
    let ns = policy("shop", "all", "", "all()", "ingress: [{action: Allow}]");
    run(
        "namespaced policies skip host endpoints",
        &ns,
        HostIngress("h1-eth0", tcp("fe1", "hep", 22)),
        D,
        By::NoPolicyOrProfile,
    );
}

#[test]
fn protocols() {
    let udp_only = be_in("{action: Allow, protocol: UDP}");
    run(
        "protocol mismatch",
        &udp_only,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "protocol match",
        &udp_only,
        Flow(udp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let gre = be_in("{action: Allow, protocol: 47}");
    run(
        "protocol by number",
        &gre,
        Flow(proto(47, "fe1", "be1")),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "protocol by number, other",
        &gre,
        Flow(proto(50, "fe1", "be1")),
        D,
        By::EndOfPolicies,
    );
    let not_tcp = be_in("{action: Allow, notProtocol: TCP}");
    run(
        "notProtocol lets others through",
        &not_tcp,
        Flow(udp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "notProtocol excludes",
        &not_tcp,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn icmp_types_and_codes() {
    let echo = be_in("{action: Allow, protocol: ICMP, icmp: {type: 8}}");
    run(
        "ICMP type",
        &echo,
        Flow(icmp("fe1", "be1", 8, 0)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "ICMP other type",
        &echo,
        Flow(icmp("fe1", "be1", 0, 0)),
        D,
        By::EndOfPolicies,
    );
    let unreach = be_in("{action: Allow, protocol: ICMP, icmp: {type: 3, code: 4}}");
    run(
        "ICMP type and code",
        &unreach,
        Flow(icmp("fe1", "be1", 3, 4)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "ICMP other code",
        &unreach,
        Flow(icmp("fe1", "be1", 3, 1)),
        D,
        By::EndOfPolicies,
    );
    let not_echo = be_in("{action: Allow, protocol: ICMP, notICMP: {type: 8}}");
    run(
        "notICMP lets others through",
        &not_echo,
        Flow(icmp("fe1", "be1", 0, 0)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "notICMP excludes",
        &not_echo,
        Flow(icmp("fe1", "be1", 8, 0)),
        D,
        By::EndOfPolicies,
    );
    let v6 = be_in("{action: Allow, protocol: ICMPv6, ipVersion: 6, icmp: {type: 128}}");
    run(
        "ICMPv6 echo",
        &v6,
        Flow(icmp6("fe1v6", "be1v6", 128, 0)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "ICMP rule vs ICMPv6 packet",
        &echo,
        Flow(icmp6("fe1v6", "be1v6", 128, 0)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn ip_versions() {
    let v6 = be_in("{action: Allow, ipVersion: 6}");
    run(
        "ipVersion 6 match",
        &v6,
        Flow(tcp("fe1v6", "be1v6", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "ipVersion 6 vs IPv4",
        &v6,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let v4 = be_in("{action: Allow, ipVersion: 4, source: {nets: [10.0.0.0/8]}}");
    run(
        "ipVersion 4 with nets",
        &v4,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
}

#[test]
fn ports_ranges_and_negations() {
    let range = be_in("{action: Allow, protocol: TCP, destination: {ports: [\"8000:8100\"]}}");
    run(
        "in range",
        &range,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "range end is inclusive",
        &range,
        Flow(tcp("fe1", "be1", 8100)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "above range",
        &range,
        Flow(tcp("fe1", "be1", 8101)),
        D,
        By::EndOfPolicies,
    );
    let list =
        be_in("{action: Allow, protocol: TCP, destination: {ports: [80, 443, \"8000:8100\"]}}");
    run(
        "port lists are ORed",
        &list,
        Flow(tcp("fe1", "be1", 443)),
        A,
        By::Policy("shop/be", 0),
    );
    let not22 = be_in("{action: Allow, protocol: TCP, destination: {notPorts: [22]}}");
    run(
        "notPorts lets others through",
        &not22,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "notPorts excludes",
        &not22,
        Flow(tcp("fe1", "be1", 22)),
        D,
        By::EndOfPolicies,
    );
    let sport = be_in("{action: Allow, protocol: TCP, source: {ports: [40000]}}");
    run(
        "source port",
        &sport,
        Flow(tcp_from("fe1", 40000, "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "source port mismatch",
        &sport,
        Flow(tcp_from("fe1", 40001, "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let both =
        be_in("{action: Allow, protocol: TCP, destination: {ports: [\"1:1024\"], notPorts: [22]}}");
    run(
        "ports minus notPorts",
        &both,
        Flow(tcp("fe1", "be1", 22)),
        D,
        By::EndOfPolicies,
    );
    run(
        "ports minus notPorts, allowed",
        &both,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let udp_ports = be_in("{action: Allow, protocol: UDP, destination: {ports: [53]}}");
    run(
        "port match needs the protocol",
        &udp_ports,
        Flow(tcp("fe1", "be1", 53)),
        D,
        By::EndOfPolicies,
    );
}

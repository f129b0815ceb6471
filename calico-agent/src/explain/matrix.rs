//! What policy predicts between the endpoints on this host: for each ordered pair, a few
//! probes (an ICMP echo, and the TCP and UDP ports the policies name), judged by the model
//! and, when the table could be read, by the kernel's IR.

use std::collections::BTreeSet;

use calico_core::dataplane::ir::Ruleset;
use calico_core::model::{Model, PortSpec, Protocol, Rule, WorkloadEndpoint};

use super::request::{Proto, Resolved, TraceRequest, DEFAULT_SRC_PORT};
use super::types::{Matrix, MatrixCell, ProbeResult};
use super::{interfaces, judge_here, packet_of, run_ir, steps, verdict_word};

/// Most endpoints in the matrix (the rest are counted in [`Matrix::omitted`]): it grows with
/// the square of this.
pub const MAX_MATRIX_ENDPOINTS: usize = 24;

/// Most port probes per pair (besides the ICMP echo).
const MAX_PORT_PROBES: usize = 6;

/// The ports the model's rules name, as probes (`(protocol, port)`), fewest first.
fn port_probes(model: &Model) -> Vec<(Proto, u16)> {
    let rules = model
        .policies
        .values()
        .flat_map(|p| p.ingress.iter().chain(&p.egress))
        .chain(
            model
                .profiles
                .values()
                .flat_map(|p| p.ingress.iter().chain(&p.egress)),
        );
    let mut probes = BTreeSet::new();
    for rule in rules {
        probes.extend(rule_ports(rule));
    }
    probes.into_iter().take(MAX_PORT_PROBES).collect()
}

fn rule_ports(rule: &Rule) -> Vec<(Proto, u16)> {
    let proto = match rule.protocol {
        Some(Protocol::TCP) => Proto::Tcp,
        Some(Protocol::UDP) => Proto::Udp,
        _ => return vec![],
    };
    rule.destination
        .ports
        .iter()
        .filter_map(|p| match p {
            PortSpec::Range { min, .. } => Some((proto, *min)),
            PortSpec::Named(_) => None,
        })
        .collect()
}

fn probe_name(proto: Proto, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{}/{p}", proto.name(false)),
        None => proto.name(false).to_string(),
    }
}

/// The matrix between `node`'s endpoints (`kernel`: the ruleset read back, or why not).
pub fn matrix(model: &Model, node: &str, kernel: Result<&Ruleset, String>) -> Matrix {
    let local: Vec<&WorkloadEndpoint> = model
        .workload_endpoints
        .values()
        .filter(|ep| ep.node == node)
        .collect();
    let omitted = local.len().saturating_sub(MAX_MATRIX_ENDPOINTS);
    let local = &local[..local.len().min(MAX_MATRIX_ENDPOINTS)];
    let mut probes: Vec<(Proto, Option<u16>)> = vec![(Proto::Icmp, None)];
    probes.extend(port_probes(model).into_iter().map(|(p, n)| (p, Some(n))));
    let mut cells = Vec::new();
    for a in local {
        for b in local {
            if a.id == b.id {
                continue;
            }
            let results = probes
                .iter()
                .filter_map(|(proto, port)| probe(model, node, &kernel, (a, b), *proto, *port))
                .collect();
            cells.push(MatrixCell {
                from: a.id.to_string(),
                to: b.id.to_string(),
                probes: results,
            });
        }
    }
    Matrix {
        endpoints: local.iter().map(|ep| ep.id.to_string()).collect(),
        probes: probes.iter().map(|(p, n)| probe_name(*p, *n)).collect(),
        cells,
        omitted,
        kernel_error: kernel.err(),
    }
}

/// One probe from `a` to `b`; `None` when they share no address family.
fn probe(
    model: &Model,
    node: &str,
    kernel: &Result<&Ruleset, String>,
    (a, b): (&WorkloadEndpoint, &WorkloadEndpoint),
    proto: Proto,
    port: Option<u16>,
) -> Option<ProbeResult> {
    let (src, dst) = a.ip_networks.iter().find_map(|s| {
        let d = b
            .ip_networks
            .iter()
            .find(|d| d.addr().is_ipv6() == s.addr().is_ipv6())?;
        Some((s.addr(), d.addr()))
    })?;
    let req = TraceRequest {
        from: String::new(),
        to: String::new(),
        proto,
        port,
        src_port: DEFAULT_SRC_PORT,
    };
    let packet = packet_of(&req, src, dst);
    let from = Resolved {
        address: src,
        endpoint: Some(a),
    };
    let to = Resolved {
        address: dst,
        endpoint: Some(b),
    };
    let (verdict, trace) = judge_here(model, node, &from, &to, &packet)?;
    let (iif, oif) = interfaces(node, &from, &to);
    let kernel = kernel
        .as_ref()
        .ok()
        .map(|r| verdict_word(run_ir(r, &packet, iif, oif).accepted));
    Some(ProbeResult {
        probe: probe_name(proto, port),
        model: verdict_word(verdict.is_allow()),
        kernel,
        decided_by: steps::model_verdict(model, verdict, &trace).decided_by,
    })
}

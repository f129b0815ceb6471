//! Explaining the agent's decisions, for the `calico-rs` tool and the agent's page: a packet
//! judged by the reference evaluator (the model, named as the user wrote it) and by the IR
//! read back from the kernel (run through calico-mock's interpreter), with a difference
//! flagged as drift; the endpoints on this host; a connectivity matrix between them.
//!
//! Everything here is pure: the model, the node and the kernel's ruleset (or why it could
//! not be read) in, a report out. The daemon's `api` module fetches those and serves the
//! reports as JSON.

mod endpoints;
mod matrix;
mod names;
mod request;
mod steps;
mod types;

use std::net::IpAddr;

use calico_core::dataplane::ir::{Hook, Ruleset};
use calico_core::dataplane::InterfaceAddresses;
use calico_core::eval::{evaluate, Direction, EndpointRef, Packet, TraceStep, Verdict};
use calico_core::model::Model;
use calico_linux::acl::FOREIGN_RULE;
use calico_mock::{interpret, ConnState, PacketContext};

pub use endpoints::endpoint_list;
pub use matrix::{matrix, MAX_MATRIX_ENDPOINTS};
pub use names::ChainNames;
pub use request::{
    percent_decode, percent_encode, resolve, Proto, RequestError, Resolved, TraceRequest,
    DEFAULT_SRC_PORT,
};
pub use types::{
    End, EndpointInfo, EndpointList, KernelStep, KernelVerdict, Matrix, MatrixCell, ModelStep,
    ModelVerdict, PacketInfo, ProbeResult, TraceReport,
};

/// `allow` or `deny`.
pub fn verdict_word(allowed: bool) -> String {
    if allowed { "allow" } else { "deny" }.to_string()
}

/// The packet a request describes, between resolved addresses.
pub fn packet_of(req: &TraceRequest, src: IpAddr, dst: IpAddr) -> Packet {
    let v6 = src.is_ipv6();
    match req.proto {
        Proto::Icmp if v6 => Packet::icmpv6(src, dst, 128, 0),
        Proto::Icmp => Packet::icmp(src, dst, 8, 0),
        p => Packet::ported(
            p.protocol(v6),
            src,
            req.src_port,
            dst,
            req.port.unwrap_or(0),
        ),
    }
}

/// The reference evaluator's verdict on `packet` as this host enforces it: the egress
/// policy of the source if it is a workload here, then the ingress policy of the
/// destination if it is one here. `None` when neither end is a workload on `node`.
pub fn judge_here(
    model: &Model,
    node: &str,
    src: &Resolved<'_>,
    dst: &Resolved<'_>,
    packet: &Packet,
) -> Option<(Verdict, Vec<TraceStep>)> {
    let mut trace = Vec::new();
    let mut any = false;
    for (end, direction) in [(src, Direction::Egress), (dst, Direction::Ingress)] {
        let Some(ep) = end.endpoint.filter(|ep| ep.node == node) else {
            continue;
        };
        any = true;
        let endpoint = EndpointRef::Workload(ep.id.clone());
        // The address is the endpoint's own (resolved from it), so this cannot fail; a
        // failure is shown as a denial with its reason rather than hidden.
        match evaluate(model, &endpoint, direction, packet) {
            Ok(mut e) => {
                trace.push(TraceStep::Endpoint {
                    endpoint,
                    direction,
                });
                trace.append(&mut e.trace);
                if e.verdict == Verdict::Deny {
                    return Some((Verdict::Deny, trace));
                }
            }
            Err(_) => return Some((Verdict::Deny, trace)),
        }
    }
    any.then_some((Verdict::Allow, trace))
}

/// The interfaces the kernel sees the packet on: the source's if it is a workload here
/// (else none), the destination's likewise.
pub fn interfaces<'a>(node: &str, src: &Resolved<'a>, dst: &Resolved<'a>) -> (&'a str, &'a str) {
    let here = |r: &Resolved<'a>| {
        r.endpoint
            .filter(|ep| ep.node == node)
            .map_or("", |ep| ep.interface_name.as_str())
    };
    (here(src), here(dst))
}

/// Runs `packet` (the first of a flow) through `ruleset`'s forward hook.
pub fn run_ir(ruleset: &Ruleset, packet: &Packet, iif: &str, oif: &str) -> calico_mock::Outcome {
    interpret(
        ruleset,
        Hook::Forward,
        &PacketContext {
            packet,
            iif,
            oif,
            ct: ConnState::New,
        },
    )
}

/// Traces `req` on `node`: the model's verdict and steps, the verdict of `compiled` (the
/// rules the agent compiled from `model`, with its settings, and the interface addresses
/// `addrs` it placed host endpoints by: [`calico_core::agent::AgentHandle::compiled`]), and
/// the kernel's (`kernel`: the ruleset read back, or why it could not be).
pub fn trace(
    model: &Model,
    compiled: &Ruleset,
    addrs: &InterfaceAddresses,
    node: &str,
    kernel: Result<&Ruleset, String>,
    req: &TraceRequest,
) -> Result<TraceReport, RequestError> {
    let from = resolve(model, node, "from", &req.from, None)?;
    let to = resolve(model, node, "to", &req.to, Some(from.address.is_ipv6()))?;
    if from.address.is_ipv6() != to.address.is_ipv6() {
        return Err(RequestError::Unsupported(format!(
            "{} and {} are of different address families",
            from.address, to.address
        )));
    }
    let packet = packet_of(req, from.address, to.address);
    let (verdict, model_trace) = judge_here(model, node, &from, &to, &packet).ok_or_else(|| {
        RequestError::Unsupported(format!(
            "neither {} nor {} is a workload endpoint on node {node}: this host enforces no \
             policy on that packet",
            req.from, req.to
        ))
    })?;
    let (iif, oif) = interfaces(node, &from, &to);
    let compiled_allows = run_ir(compiled, &packet, iif, oif).accepted;
    let mut notes = Vec::new();
    let kernel = match kernel {
        Ok(ruleset) => {
            let out = run_ir(ruleset, &packet, iif, oif);
            let names = ChainNames::with_interfaces(model, node, addrs, ruleset);
            if out.logged.iter().any(|l| l == FOREIGN_RULE) {
                notes.push(
                    "the packet met rules in the kernel's table that calico-rs did not write \
                     (added or edited by hand); they are shown as foreign rules"
                        .to_string(),
                );
            }
            steps::kernel_verdict(&names, &out)
        }
        Err(error) => KernelVerdict {
            verdict: None,
            error: Some(error),
            steps: vec![],
            decided_by: None,
        },
    };
    let model_verdict = steps::model_verdict(model, verdict, &model_trace);
    let drift = kernel
        .verdict
        .as_ref()
        .is_some_and(|k| *k != model_verdict.verdict);
    let compiled = verdict_word(compiled_allows);
    let diagnosis = drift.then(|| diagnose(&model_verdict.verdict, &compiled));
    for end in [&from, &to] {
        if let Some(ep) = end.endpoint.filter(|ep| ep.node != node) {
            notes.push(format!(
                "{} is on node {}: its policy is enforced there, not traced here",
                ep.id, ep.node
            ));
        }
    }
    Ok(TraceReport {
        node: node.to_string(),
        packet: steps::packet_info(&packet, req),
        from: end_of(&from, node),
        to: end_of(&to, node),
        model: model_verdict,
        compiled: Some(compiled),
        kernel,
        drift,
        diagnosis,
        notes,
    })
}

/// What a difference between the model and the kernel means.
fn diagnose(model: &str, compiled: &str) -> String {
    if model == compiled {
        "the kernel's table does not hold what the agent compiled: drift (the table was \
         changed behind the agent's back) or a failed update; the agent repairs it at its \
         next resync (see /status for backend errors)"
            .into()
    } else {
        "the IR compiled from the model disagrees with the reference evaluator: a bug in \
         calico-rs's compiler; please report it with this trace (--json)"
            .into()
    }
}

fn end_of(r: &Resolved<'_>, node: &str) -> End {
    End {
        address: r.address.to_string(),
        endpoint: r.endpoint.map(|ep| ep.id.to_string()),
        node: r.endpoint.map(|ep| ep.node.clone()),
        local_interface: r
            .endpoint
            .filter(|ep| ep.node == node)
            .map(|ep| ep.interface_name.clone()),
    }
}

#[cfg(test)]
mod tests;

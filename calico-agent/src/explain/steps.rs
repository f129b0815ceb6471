//! The evaluator's and the interpreter's traces turned into report steps, named as the user
//! wrote them.

use calico_core::eval::{Direction, EndpointRef, Packet, RuleSource, TraceStep, Verdict};
use calico_mock::Outcome;

use calico_core::model::Model;

use super::names::{rule_name, ChainNames};
use super::request::TraceRequest;
use super::types::{KernelStep, KernelVerdict, ModelStep, ModelVerdict, PacketInfo};
use super::verdict_word;

/// The packet as the report shows it.
pub(super) fn packet_info(packet: &Packet, req: &TraceRequest) -> PacketInfo {
    PacketInfo {
        src: packet.src.to_string(),
        dst: packet.dst.to_string(),
        protocol: req.proto.name(packet.src.is_ipv6()).to_string(),
        src_port: packet.src_port,
        dst_port: packet.dst_port,
    }
}

fn direction_word(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn source_parts(s: &RuleSource) -> (&'static str, String) {
    match s {
        RuleSource::Policy(n) => ("policy", n.clone()),
        RuleSource::Profile(n) => ("profile", n.clone()),
        other => ("other", other.to_string()),
    }
}

fn step(kind: &str, text: String) -> ModelStep {
    ModelStep {
        kind: kind.into(),
        endpoint: None,
        direction: None,
        source: None,
        name: None,
        rule: None,
        rule_name: None,
        action: None,
        text,
    }
}

/// One evaluator step as a report step (`direction`: of the endpoint being evaluated).
pub(super) fn model_step(model: &Model, direction: Direction, s: &TraceStep) -> ModelStep {
    let mut text = s.to_string().trim().to_string();
    match s {
        TraceStep::Endpoint {
            endpoint,
            direction,
        } => ModelStep {
            endpoint: Some(match endpoint {
                EndpointRef::Workload(id) => id.to_string(),
                EndpointRef::Host(n) => format!("host endpoint {n}"),
            }),
            direction: Some(direction_word(*direction).into()),
            ..step("endpoint", text)
        },
        TraceStep::Rule {
            source,
            index,
            action,
        } => {
            let (kind, name) = source_parts(source);
            let rule_name = rule_name(model, source, direction, *index);
            if let Some(n) = &rule_name {
                text += &format!(" (rule {n:?})");
            }
            ModelStep {
                source: Some(kind.into()),
                name: Some(name),
                rule: Some(*index),
                rule_name,
                action: Some(format!("{action:?}")),
                ..step("rule", text)
            }
        }
        TraceStep::NoRuleMatched { source } => {
            let (kind, name) = source_parts(source);
            ModelStep {
                source: Some(kind.into()),
                name: Some(name),
                ..step("no-match", text)
            }
        }
        _ => step("default", text),
    }
}

/// The evaluator's verdict and trace as the report shows them.
pub(super) fn model_verdict(model: &Model, verdict: Verdict, trace: &[TraceStep]) -> ModelVerdict {
    let mut direction = Direction::Egress;
    let mut decided_by = String::from("no rule");
    let mut steps = Vec::with_capacity(trace.len());
    for s in trace {
        if let TraceStep::Endpoint { direction: d, .. } = s {
            direction = *d;
        }
        let step = model_step(model, direction, s);
        match s {
            TraceStep::Rule {
                source,
                index,
                action,
            } if *action != calico_core::model::Action::Log => {
                decided_by = format!(
                    "{source} {} rule {index}{} ({action:?})",
                    direction_word(direction),
                    step.rule_name
                        .as_ref()
                        .map(|n| format!(" {n:?}"))
                        .unwrap_or_default()
                );
            }
            TraceStep::Endpoint { .. }
            | TraceStep::Rule { .. }
            | TraceStep::NoRuleMatched { .. } => {}
            other => decided_by = other.to_string().trim().to_string(),
        }
        steps.push(step);
    }
    // The last deciding step decides: an Allow of the source's egress is followed by the
    // destination's ingress.
    ModelVerdict {
        verdict: verdict_word(verdict == Verdict::Allow),
        steps,
        decided_by,
    }
}

/// The interpreter's outcome as the report shows it, chains named.
pub(super) fn kernel_verdict(names: &ChainNames, out: &Outcome) -> KernelVerdict {
    let steps = out
        .trace
        .iter()
        .filter_map(|s| {
            let (chain, index) = s.rsplit_once('#')?;
            let index = index.parse().ok()?;
            Some(KernelStep {
                chain: chain.to_string(),
                index,
                meaning: names.describe(chain, index),
            })
        })
        .collect();
    let decided_by = Some(match &out.decided_by {
        Some((chain, index)) if *index != usize::MAX => names.describe(chain, *index),
        Some((chain, _)) => format!("chain {chain} (missing or too deep)"),
        None if out.accepted => "no rule decided: the forward chain's policy (accept)".into(),
        None => "the base chain's policy (drop)".into(),
    });
    KernelVerdict {
        verdict: Some(verdict_word(out.accepted)),
        error: None,
        steps,
        decided_by,
    }
}

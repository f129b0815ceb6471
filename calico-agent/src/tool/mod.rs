//! `calico-rs`, the operator's tool: asks a running agent (its HTTP server, `--agent`) and
//! explains.
//!
//! * `calico-rs trace --from A --to B [--proto tcp|udp|icmp] [--port N]`: the verdict the
//!   model gives and why (policies and rules as written), the verdict of the table read back
//!   from the kernel, and a loud warning when they differ;
//! * `calico-rs flows [--denied] [--follow]`: recent flows with their deciding policy;
//! * `calico-rs status`: the agent's state in a few lines.
//!
//! Each prints for a person by default and JSON with `--json`.
//!
//! Exit codes: [`EXIT_OK`] 0 (done; a denied packet is an answer, not an error),
//! [`EXIT_ERROR`] 1 (the agent could not be reached or refused the request), [`EXIT_DRIFT`]
//! 2 (`trace`: the kernel disagrees with the model).

pub mod client;
pub mod flows_text;
pub mod status_text;
pub mod trace_text;

use std::collections::HashSet;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::explain::{Proto, TraceReport, TraceRequest, DEFAULT_SRC_PORT};
use client::Agent;

/// Done.
pub const EXIT_OK: u8 = 0;
/// The agent could not be reached, or refused the request.
pub const EXIT_ERROR: u8 = 1;
/// `trace`: the kernel's table disagrees with the model (drift or a bug).
pub const EXIT_DRIFT: u8 = 2;

/// calico-rs: ask the agent on this host why a packet is allowed or denied, what flows it
/// saw, and how it is.
///
/// Exit codes: 0 done, 1 error (agent unreachable, bad request), 2 the kernel's table
/// disagrees with the model (trace: drift or a bug).
#[derive(Clone, Debug, Parser)]
#[command(name = "calico-rs", version, about, long_about)]
pub struct ToolOptions {
    /// The agent's HTTP address (its `--http`).
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9091",
        env = "CALICO_RS_AGENT"
    )]
    pub agent: String,

    /// Print the agent's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: ToolCommand,
}

/// The protocol of a traced packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtoArg {
    /// TCP (needs --port).
    Tcp,
    /// UDP (needs --port).
    Udp,
    /// An ICMP echo request (ICMPv6 between IPv6 addresses).
    Icmp,
}

/// A subcommand.
#[derive(Clone, Debug, Subcommand)]
pub enum ToolCommand {
    /// Why is a packet allowed or denied? The model's answer and the kernel's, compared.
    Trace {
        /// The source: an endpoint (orchestrator/workload/endpoint, the workload name, or its
        /// interface) or an address.
        #[arg(long)]
        from: String,
        /// The destination, the same way.
        #[arg(long)]
        to: String,
        /// The protocol.
        #[arg(long, value_enum, default_value = "tcp")]
        proto: ProtoArg,
        /// The destination port (TCP, UDP).
        #[arg(long, required_if_eq_any([("proto", "tcp"), ("proto", "udp")]))]
        port: Option<u16>,
        /// The source port (TCP, UDP).
        #[arg(long, default_value_t = DEFAULT_SRC_PORT)]
        sport: u16,
    },
    /// Recent flows and the policy that decided each (the agent needs --flow-logs).
    Flows {
        /// Only denied flows.
        #[arg(long)]
        denied: bool,
        /// Keep printing flows as the agent makes them (`/flows?follow=1`), until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// The agent's state: in sync, ready, backends, endpoints, BGP peers.
    Status,
}

/// Runs the tool; returns the exit code (output already printed).
pub fn run(o: ToolOptions) -> u8 {
    let agent = match Agent::parse(&o.agent) {
        Ok(a) => a,
        Err(e) => return fail(&e.to_string()),
    };
    let outcome = match &o.command {
        ToolCommand::Trace {
            from,
            to,
            proto,
            port,
            sport,
        } => {
            let req = TraceRequest {
                from: from.clone(),
                to: to.clone(),
                proto: match proto {
                    ProtoArg::Tcp => Proto::Tcp,
                    ProtoArg::Udp => Proto::Udp,
                    ProtoArg::Icmp => Proto::Icmp,
                },
                port: *port,
                src_port: *sport,
            };
            trace(&agent, &req, o.json)
        }
        ToolCommand::Flows { denied, follow } => flows(&agent, *denied, *follow, o.json),
        ToolCommand::Status => status(&agent, o.json),
    };
    outcome.unwrap_or_else(|e| fail(&e))
}

fn fail(e: &str) -> u8 {
    eprintln!("calico-rs: {e}");
    EXIT_ERROR
}

/// `GET path`; the body of a 200, else the error the agent gave.
fn get_ok(agent: &Agent, path: &str) -> Result<String, String> {
    let (status, body) = agent.get(path).map_err(|e| e.to_string())?;
    ok_body(path, status, body)
}

/// `body` of a 200 answer to `GET path`, or an error with the agent's reason.
fn ok_body(path: &str, status: u16, body: String) -> Result<String, String> {
    if status == 200 {
        return Ok(body);
    }
    let reason = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    Err(format!("{path}: HTTP {status}: {reason}"))
}

fn trace(agent: &Agent, req: &TraceRequest, json: bool) -> Result<u8, String> {
    let body = get_ok(agent, &format!("/api/trace?{}", req.to_query()))?;
    let report: TraceReport =
        serde_json::from_str(&body).map_err(|e| format!("/api/trace: unexpected JSON: {e}"))?;
    if json {
        print!("{body}");
        if report.drift {
            eprint!("{}", trace_text::drift_warning(&report));
        }
    } else {
        print!("{}", trace_text::render(&report));
    }
    Ok(if report.drift { EXIT_DRIFT } else { EXIT_OK })
}

fn flows(agent: &Agent, denied: bool, follow: bool, json: bool) -> Result<u8, String> {
    let (status, body) = agent.get("/flows").map_err(|e| e.to_string())?;
    if status == 404 {
        return Err("this agent serves no flows: start it with --flow-logs".into());
    }
    if !json {
        println!("{}", flows_text::HEADER);
    }
    // Following, a record printed already (when the stream is opened again, it starts with
    // the recent records); bounded memory: after a clear, a record may be printed twice.
    let mut seen: HashSet<String> = HashSet::new();
    let mut print = |line: &str| {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            return true;
        };
        if (denied && !flows_text::is_denied(&record)) || (follow && !seen.insert(line.to_string()))
        {
            return true;
        }
        if seen.len() > 1_000_000 {
            seen.clear();
        }
        if json {
            println!("{line}");
        } else {
            println!("{}", flows_text::row(&record));
        }
        true
    };
    if !follow {
        for l in ok_body("/flows", status, body)?.lines() {
            print(l);
        }
        return Ok(EXIT_OK);
    }
    loop {
        // The agent ends a stream after an hour, or when this client falls behind: go on.
        match agent.follow("/flows?follow=1", &mut print) {
            Ok(200) => {}
            Ok(status) => return Err(format!("GET /flows?follow=1: HTTP {status}")),
            Err(e) => return Err(e.to_string()),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn status(agent: &Agent, json: bool) -> Result<u8, String> {
    let body = get_ok(agent, "/status")?;
    if json {
        print!("{body}");
    } else {
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("/status: unexpected JSON: {e}"))?;
        print!("{}", status_text::render(&v));
    }
    Ok(EXIT_OK)
}

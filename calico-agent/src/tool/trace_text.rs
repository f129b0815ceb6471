//! `calico-rs trace`'s words: the report of `/api/trace` for a person.

use std::fmt::Write as _;

use crate::explain::{End, TraceReport};

fn end_text(e: &End) -> String {
    let mut s = match &e.endpoint {
        Some(ep) => format!("{ep} ({}", e.address),
        None => format!("{} (no workload endpoint", e.address),
    };
    match (&e.local_interface, &e.node) {
        (Some(iface), _) => s += &format!(", on this host, interface {iface})"),
        (None, Some(node)) => s += &format!(", on node {node})"),
        (None, None) => s += ")",
    }
    s
}

fn upper(v: &str) -> String {
    v.to_ascii_uppercase()
}

/// The banner shown when the kernel and the model disagree.
pub fn drift_warning(r: &TraceReport) -> String {
    let bar = "!".repeat(78);
    let kernel = r.kernel.verdict.as_deref().unwrap_or("?");
    let mut w =
        format!("{bar}\n!! WARNING: THE KERNEL DISAGREES WITH THE MODEL (drift or a bug)\n");
    let _ = writeln!(
        w,
        "!! the model says {}, the kernel's table says {} for this packet",
        upper(&r.model.verdict),
        upper(kernel)
    );
    if let Some(by) = &r.kernel.decided_by {
        let _ = writeln!(w, "!! the kernel decided at: {by}");
    }
    if let Some(d) = &r.diagnosis {
        let _ = writeln!(w, "!! {d}");
    }
    w + &bar + "\n"
}

/// The whole report.
pub fn render(r: &TraceReport) -> String {
    let p = &r.packet;
    let ports = |port: Option<u16>| port.map(|p| format!(":{p}")).unwrap_or_default();
    let mut t = format!(
        "trace on node {}: {} {}{} -> {}{}\n  from {}\n  to   {}\n",
        r.node,
        p.protocol,
        p.src,
        ports(p.src_port),
        p.dst,
        ports(p.dst_port),
        end_text(&r.from),
        end_text(&r.to),
    );
    for n in &r.notes {
        let _ = writeln!(t, "  note: {n}");
    }
    let _ = writeln!(
        t,
        "\nmodel (reference evaluator): {}",
        upper(&r.model.verdict)
    );
    for s in &r.model.steps {
        let indent = if s.kind == "endpoint" { "  " } else { "    " };
        let _ = writeln!(t, "{indent}{}", s.text);
    }
    let _ = writeln!(t, "  decided by: {}", r.model.decided_by);
    match (&r.kernel.verdict, &r.kernel.error) {
        (Some(v), _) => {
            let _ = writeln!(
                t,
                "\nkernel (the table read back, run through the interpreter): {}",
                upper(v)
            );
            for s in &r.kernel.steps {
                let _ = writeln!(t, "    {}", s.meaning);
            }
            if let Some(by) = &r.kernel.decided_by {
                let _ = writeln!(t, "  decided by: {by}");
            }
        }
        (None, e) => {
            let _ = writeln!(
                t,
                "\nkernel: not compared: {}",
                e.as_deref().unwrap_or("unknown reason")
            );
        }
    }
    if let Some(c) = &r.compiled {
        let _ = writeln!(t, "\ncompiled from the model now: {}", upper(c));
    }
    if r.drift {
        t.push('\n');
        t += &drift_warning(r);
    } else if r.kernel.verdict.is_some() {
        t += "\nthe kernel agrees with the model.\n";
    }
    t
}

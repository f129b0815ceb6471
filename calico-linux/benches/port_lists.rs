//! What a short port list costs a packet: as an anonymous set (one rule, one lookup) or
//! split into one rule per port (`calico_core::compile::rules`' split: compares only), in
//! the forward hook of a namespace router, against no rules. Needs root and iperf3; run
//! with `cargo bench -p calico-linux --bench port_lists`. Prints a table.
//!
//! A client namespace floods 64-byte UDP through the router to a server namespace
//! (iperf3, as fast as the sender can) for [`SECONDS`]; the table gives the datagrams
//! received per second, median and spread of [`ROUNDS`] alternating runs. The router's
//! chain has [`RULES`] rules the flood must pass without matching (another port), then an
//! accept, and no established-accept rule: every packet walks them, where the agent's
//! chains only make a connection's first packets do.

use calico_netns::fixtures::FloodRouter;

/// Rules with a two-port list the flood passes.
const RULES: usize = 200;
/// Runs of each variant, alternating.
const ROUNDS: usize = 3;
/// Seconds of each run.
const SECONDS: u32 = 4;

/// The router's table: `RULES` two-port rules, as a set or split, or none.
fn script(variant: &str) -> String {
    let mut rules = String::new();
    for i in 0..RULES {
        let (a, b) = (10_000 + 2 * i, 10_001 + 2 * i);
        let net = format!("10.99.{}.0/24", i % 250);
        let line =
            |ports: &str| format!("  meta l4proto udp udp dport {ports} ip saddr {net} accept\n");
        match variant {
            "set" => rules.push_str(&line(&format!("{{ {a}, {b} }}"))),
            "split" => {
                rules.push_str(&line(&a.to_string()));
                rules.push_str(&line(&b.to_string()));
            }
            _ => {}
        }
    }
    format!(
        "table inet bench {{\n chain filt {{ type filter hook forward priority 0; policy drop;\n{rules}  accept\n }}\n}}\n"
    )
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("port_lists bench: skipped: needs root (namespaces, nftables)");
        return;
    }
    let net = FloodRouter::new().unwrap();
    let r = &net.router;
    let variants = ["none", "set", "split"];
    let mut kpps: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..ROUNDS {
        for (i, v) in variants.iter().enumerate() {
            let _ = r.run(&["nft", "delete", "table", "inet", "bench"]);
            let path = std::env::temp_dir().join(format!("calico-plb-{}.nft", std::process::id()));
            std::fs::write(&path, script(v)).unwrap();
            r.run(&["nft", "-f", path.to_str().unwrap()]).unwrap();
            let _ = std::fs::remove_file(&path);
            kpps[i].push(net.flood(SECONDS).unwrap());
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (none, ..) = median(&kpps[0]);
    println!("\n64-byte UDP through a router whose chain the flood walks ({RULES} two-port rules)");
    println!("| rules | kpps received (spread) | ns a packet over no rules | ns per rule passed |");
    println!("|---|---|---|---|");
    for (i, v) in variants.iter().enumerate() {
        let (m, lo, hi) = median(&kpps[i]);
        let extra = 1e6 / m - 1e6 / none;
        let per = match *v {
            "set" => format!("{:.0} (1 rule a list)", extra / RULES as f64),
            "split" => format!("{:.0} (2 rules a list)", extra / (2 * RULES) as f64),
            _ => "-".into(),
        };
        println!("| {v} | {m:.0} ({lo:.0}–{hi:.0}) | {extra:.0} | {per} |");
    }
}

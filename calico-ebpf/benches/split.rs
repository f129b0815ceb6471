//! What splitting a policy into pieces chained with tail calls costs. Needs root; run
//! with `cargo bench -p calico-ebpf --bench split`. Prints:
//!
//! * generate + load of N linear rules (TCP, one destination port each, drop; the
//!   chain accepts), unsplit (one program, as before) and split with the default budget:
//!   pieces, instructions, generation time, and load time (the verifier, all pieces);
//! * per packet (`BPF_PROG_TEST_RUN`'s mean over many runs) of an IPv4 TCP frame matching
//!   rule k of 4,000: the unsplit program, split with the default budget (3 pieces), and
//!   split into pieces of 400 conditional jumps (31 pieces), with the tail calls the
//!   packet makes; and the last rule of the largest policy that loads.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use calico_core::dataplane::ir::Verdict;
use calico_core::dataplane::ir::{BaseChain, Chain, ChainType, Hook, Match, Rule, Ruleset, Side};
use calico_core::eval::Packet;
use calico_ebpf::generate::{generate, Options, PieceBudget, Pieces, Plan, Stage};
use calico_ebpf::program::Loaded;
use calico_ebpf::sets::Maps;
use calico_ebpf::{frame, layout, Error};

const REPEAT: u32 = 200_000;
const FIRST_PORT: u16 = 10_000;

fn linear(n: usize) -> Ruleset {
    let rule = |i: usize| {
        let port = FIRST_PORT + i as u16;
        let tcp = Match::L4Proto {
            proto: 6,
            negate: false,
        };
        let port = Match::Port {
            side: Side::Dst,
            ranges: vec![(port, port)],
            negate: false,
        };
        Rule::new(vec![tcp, port], Verdict::Drop)
    };
    let mut r = Ruleset::default();
    r.chains.insert(
        "fw".into(),
        Chain {
            base: Some(BaseChain::accepting(ChainType::Filter, Hook::Forward, 0)),
            rules: (0..n).map(rule).collect(),
        },
    );
    r
}

/// The pieces of `r` under `budget`, loaded; generation and load times.
fn load(
    r: &Ruleset,
    maps: &Maps,
    budget: PieceBudget,
) -> Result<(Pieces, Loaded, Duration, Duration), Error> {
    let plan = Plan::Always(vec![Stage {
        hook: Hook::Forward,
        bindings: Default::default(),
    }]);
    let options = Options {
        pieces: budget,
        ..Options::default()
    };
    let t = Instant::now();
    let p = generate(r, &plan, &BTreeMap::new(), options)?.pieces;
    let generated = t.elapsed();
    let t = Instant::now();
    let l = Loaded::load_pieces("cali_split", &p, maps, None, c"GPL")?;
    Ok((p, l, generated, t.elapsed()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Mean ns per run of a TCP frame to rule `k`'s port.
fn per_packet(l: &Loaded, k: usize) -> u32 {
    let tcp = Packet::tcp(
        "10.0.0.1".parse().unwrap(),
        40_000,
        "10.0.0.2".parse().unwrap(),
        FIRST_PORT + k as u16,
    );
    let f = frame::build(&tcp).unwrap();
    let ct = layout::ct::NEW | layout::ct::UNCONFIRMED;
    assert!(!l.run(&f, ct, 0).unwrap().accepted, "rule {k} drops");
    l.time(&f, ct, REPEAT).unwrap()
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("split bench: skipped: needs root (BPF programs and maps)");
        return;
    }
    let maps = Maps::create(16).expect("create the maps");
    println!("generate + load (verifier), N linear rules: unsplit | split (default budget)");
    let mut largest = 0;
    for n in [1_000, 4_000, 8_000, 16_000, 32_000, 45_000, 50_000] {
        let r = linear(n);
        let unsplit = match load(&r, &maps, PieceBudget::UNSPLIT) {
            Ok((p, _, g, v)) => format!(
                "{:>6} insns gen {:>6.2} ms load {:>8.2} ms",
                p.insns(),
                ms(g),
                ms(v)
            ),
            Err(e) => format!("refused: {}", e.to_string().lines().next().unwrap_or("")),
        };
        let split = match load(&r, &maps, PieceBudget::DEFAULT) {
            Ok((p, _, g, v)) => {
                largest = n;
                format!(
                    "{:>2} pieces {:>6} insns gen {:>6.2} ms load {:>8.2} ms",
                    p.len(),
                    p.insns(),
                    ms(g),
                    ms(v)
                )
            }
            Err(e) => format!("refused: {e}"),
        };
        println!("  {n:>6} | {unsplit:<52} | {split}");
    }

    println!("per packet, TCP to rule k's port (mean of {REPEAT} runs)");
    let r = linear(4_000);
    let (_, unsplit, _, _) = load(&r, &maps, PieceBudget::UNSPLIT).unwrap();
    let (p, split, _, _) = load(&r, &maps, PieceBudget::DEFAULT).unwrap();
    let small = PieceBudget {
        insns: usize::MAX,
        branches: 400,
    };
    let (q, many, _, _) = load(&r, &maps, small).unwrap();
    println!(
        "  k       unsplit   default budget ({} pieces)   400 branches a piece ({} pieces)",
        p.len(),
        q.len()
    );
    // The tail calls rule k's packet makes: the pieces of the first k + 1 rules, less
    // one (the cuts are chosen greedily, so those of a prefix are the prefix's).
    let calls = |k: usize, budget| {
        let options = Options {
            pieces: budget,
            ..Options::default()
        };
        let plan = Plan::Always(vec![Stage {
            hook: Hook::Forward,
            bindings: Default::default(),
        }]);
        let g = generate(&linear(k + 1), &plan, &BTreeMap::new(), options).unwrap();
        g.pieces.len() - 1
    };
    for k in [0, 1_000, 1_500, 3_000, 3_999] {
        println!(
            "  {k:>5} {:>7} ns {:>8} ns ({} calls) {:>20} ns ({} calls)",
            per_packet(&unsplit, k),
            per_packet(&split, k),
            calls(k, PieceBudget::DEFAULT),
            per_packet(&many, k),
            calls(k, small)
        );
    }
    let r = linear(largest);
    let (p, l, _, _) = load(&r, &maps, PieceBudget::DEFAULT).unwrap();
    println!(
        "  last of {largest} rules, {} pieces: {} ns",
        p.len(),
        per_packet(&l, largest - 1)
    );
}

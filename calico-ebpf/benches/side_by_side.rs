//! The two ACL backends side by side, in one run, on real packets (issue 21): the same IR
//! (a forward chain of N UDP rules, each dropping another port) programmed by `LinuxAcl`
//! (nftables) and by `EbpfBackend` into a namespace router, a 64-byte UDP flood (iperf3,
//! as fast as the sender can) through it, every packet walking the N rules. Needs root
//! and iperf3; run with `cargo bench -p calico-ebpf --bench side_by_side`
//! (`SIDE_RULES=10,100,1000` to choose N). Prints a table: datagrams received a second,
//! median and spread of [`ROUNDS`] alternating runs, and what one rule costs a packet.

use calico_core::dataplane::diff;
use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainType, Hook, IfaceKey, Match, Rule, Ruleset, Side, Verdict, VerdictMap,
};
use calico_ebpf::backend::{EbpfBackend, EbpfConfig};
use calico_linux::acl::LinuxAcl;
use calico_netns::fixtures::{FloodRouter, CLIENT_SIDE};

/// Runs of each backend and size, alternating.
const ROUNDS: usize = 3;
/// Seconds of each flood.
const SECONDS: u32 = 3;

/// A forward chain dispatching packets from the client's side (`c0`, through a verdict map,
/// as the agent's chains do per workload) to a chain of `n` rules, each dropping UDP to a
/// port the flood does not use.
fn linear(n: usize) -> Ruleset {
    let rules = (0..n)
        .map(|i| {
            let port = 10_000 + i as u16;
            Rule::new(
                vec![
                    Match::L4Proto {
                        proto: 17,
                        negate: false,
                    },
                    Match::Port {
                        side: Side::Dst,
                        ranges: vec![(port, port)],
                        negate: false,
                    },
                ],
                Verdict::Drop,
            )
        })
        .collect();
    let mut r = Ruleset::default();
    let base = BaseChain::accepting(ChainType::Filter, Hook::Forward, 0);
    let dispatch = Rule::new(
        vec![],
        Verdict::Dispatch {
            key: IfaceKey::Input,
            map: "from-client".into(),
        },
    );
    r.chains.insert(
        "fw".into(),
        Chain {
            base: Some(base),
            rules: vec![dispatch],
        },
    );
    r.chains.insert("rules".into(), Chain { base: None, rules });
    let mut map = VerdictMap::default();
    map.elements
        .insert(CLIENT_SIDE.into(), Verdict::Jump("rules".into()));
    r.maps.insert("from-client".into(), map);
    r
}

fn median(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("side_by_side bench: skipped: needs root (namespaces, nftables, eBPF)");
        return;
    }
    let sizes: Vec<usize> = std::env::var("SIDE_RULES")
        .unwrap_or_else(|_| "10,100,1000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("SIDE_RULES: numbers"))
        .collect();
    let net = FloodRouter::new().unwrap();
    let r = &net.router;
    let nft = LinuxAcl::in_netns(r.path().as_ref(), "calico").unwrap();
    let bpf = EbpfBackend::new(EbpfConfig {
        netns: Some(r.path().into()),
        host_interfaces: vec![],
        set_capacity: 1024,
        license: c"GPL".into(),
        blocks: calico_ebpf::tc::Blocks::DEFAULT,
    })
    .unwrap();
    let mut none = Vec::new();
    // kpps[size][backend]
    let mut kpps = vec![[Vec::new(), Vec::new()]; sizes.len()];
    for _ in 0..ROUNDS {
        none.push(net.flood(SECONDS).unwrap());
        for (i, &n) in sizes.iter().enumerate() {
            let ruleset = linear(n);
            let on = diff(&Ruleset::default(), &ruleset);
            let off = diff(&ruleset, &Ruleset::default());
            nft.apply_blocking(&on).unwrap();
            kpps[i][0].push(net.flood(SECONDS).unwrap());
            nft.apply_blocking(&off).unwrap();
            bpf.apply_blocking(&on).unwrap();
            kpps[i][1].push(net.flood(SECONDS).unwrap());
            bpf.apply_blocking(&off).unwrap();
        }
    }
    let (base, lo, hi) = median(&none);
    println!(
        "\n64-byte UDP through a router, every packet walking N forward rules ({ROUNDS} rounds)"
    );
    println!("no rules: {base:.0} kpps ({lo:.0}–{hi:.0})");
    println!("| N | nftables kpps | eBPF kpps | nftables ns/rule | eBPF ns/rule |");
    println!("|---|---|---|---|---|");
    for (i, n) in sizes.iter().enumerate() {
        let [a, b] = [median(&kpps[i][0]), median(&kpps[i][1])];
        let per = |k: f64| (1e6 / k - 1e6 / base) / *n as f64;
        println!(
            "| {n} | {:.0} ({:.0}–{:.0}) | {:.0} ({:.0}–{:.0}) | {:.1} | {:.1} |",
            a.0,
            a.1,
            a.2,
            b.0,
            b.1,
            b.2,
            per(a.0),
            per(b.0)
        );
    }
}

//! Recorded scenarios of the speaker above the session FSM, replayed against
//! [`SpeakerState`] without sockets, tasks or root: each file under `tests/scenarios/` is a
//! sequence of inputs (configuration and export changes, peer events, the passing of time,
//! queries), each followed by the exact outputs expected, one per line starting with `>`.
//! Every input's outputs must match its expected lines exactly, in order.
//!
//! Inputs (addresses name peers; times are seconds since the start):
//!
//! ```text
//! speaker [no-gr] [restarting]        options (before anything else; default: GR 120 s / 360 s)
//! configure as=N id=A [cluster=A] peer=ADDR/AS[/client][/passive] ... [reject=PEER:CIDR]
//!           [community=CIDR:AA:NN]
//!                                      (reject: the peer's export filter rejects CIDR)
//! exports [PREFIX ...]
//! state PEER STATE [ERROR ...]         the peering's FSM state report
//! up PEER local=A [id=A] [gr=SECONDS[/nofwd]] [restarted] [addpath]
//!                                      (addpath: we send the peer path identifiers, RFC 7911)
//! down PEER graceful|notification REASON ...
//! announce PEER PREFIX[,PREFIX] nh=A [path=AS,AS] [lp=N] [originator=A] [clusters=A,A]
//! withdraw PEER PREFIX[,PREFIX]
//! eor PEER [ipv4|ipv6]                 End-of-RIB
//! refresh PEER [ipv4|ipv6]             ROUTE-REFRESH
//! stalled PEER | drained PEER          the session's send queue passed its limit / drained
//! at SECONDS                           the clock moves on (no input to the speaker)
//! timers                               stale-route timers due now
//! deadline | routes | status           queries, answered as outputs
//! ```
//!
//! Outputs: `start PEER as=N [passive] [gr=T[/restarting]]`, `stop PEER SUBCODE`, `notify`,
//! and what a peer is sent, decoded from the bytes, one line per prefix: `send PEER
//! withdraw P`, `send PEER announce P nh=A path=.. [lp=N] [med=N] [originator=A]
//! [clusters=..]`, `send PEER end-of-rib FAMILY`. Between End-of-RIB markers the prefix
//! lines of one send are sorted (the speaker packs them in hash order); the markers stay
//! where they were sent.
//!
//! Run with `SCENARIO_PRINT=1` to print what each scenario produces, with
//! `SCENARIO_RECORD=1` to write it back into the files (then review the diff: a recording
//! is only as right as the reading of it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use calico_bgp::packet::{self, AfiSafi, AsPath, Context, Message, MpNextHop, MpReach, Update};
use calico_bgp::packet::{AddPathFamilies, Origin, PathAttributes, HEADER_LEN};
use calico_bgp::rib::PeerId;
use calico_bgp::session::io::{PeerEvent, SharedBytes};
use calico_bgp::session::{Direction, Negotiated, PeerGracefulRestart, SessionDown};
use calico_bgp::speaker::state::{Output, SpeakerState};
use calico_bgp::speaker::{GracefulRestartOptions, SpeakerOptions};
use calico_core::dataplane::{BgpSettings, PeerConfig, PeerState};
use calico_core::model::AsNumber;
use ipnet::IpNet;
use tokio::time::Instant;

/// One scenario being replayed.
struct Runner {
    state: SpeakerState,
    start: Instant,
    now: Instant,
    /// Peer addresses by id, learned from `start` outputs.
    names: HashMap<PeerId, IpAddr>,
    /// Configured remote AS by address.
    remote_as: HashMap<IpAddr, u32>,
    /// Peers whose session sends path identifiers (`up ... addpath`).
    add_path: HashMap<IpAddr, AddPathFamilies>,
}

fn options(words: &[&str]) -> SpeakerOptions {
    let graceful_restart = (!words.contains(&"no-gr")).then(|| GracefulRestartOptions {
        restarting: words.contains(&"restarting"),
        ..GracefulRestartOptions::default()
    });
    SpeakerOptions {
        graceful_restart,
        ..SpeakerOptions::default()
    }
}

impl Runner {
    fn new(options: SpeakerOptions) -> Runner {
        let start = Instant::now();
        Runner {
            state: SpeakerState::new(options),
            start,
            now: start,
            names: HashMap::new(),
            remote_as: HashMap::new(),
            add_path: HashMap::new(),
        }
    }

    fn id(&self, peer: &str) -> PeerId {
        let address: IpAddr = peer.parse().unwrap();
        self.state
            .peer_at(address)
            .unwrap_or_else(|| panic!("{peer} is not configured"))
    }

    /// Feeds one input line; returns the rendered outputs.
    fn input(&mut self, line: &str) -> Vec<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (command, args) = words.split_first().expect("an input");
        let outputs = match *command {
            "configure" => self.configure(args),
            "exports" => {
                let exports = args.iter().map(|p| (p.parse().unwrap(), None)).collect();
                self.state.set_exports(exports)
            }
            "at" => {
                self.now = self.start + Duration::from_secs(args[0].parse().unwrap());
                Vec::new()
            }
            "timers" => self.state.stale_timers(self.now),
            "deadline" | "routes" | "status" => return self.query(command),
            _ => {
                let id = self.id(args[0]);
                let event = self.event(command, args);
                if let PeerEvent::Up { negotiated, .. } = &event {
                    let peer = args[0].parse().unwrap();
                    self.add_path.insert(peer, negotiated.add_path_send);
                }
                self.state.peer_event(id, event, self.now)
            }
        };
        outputs.iter().flat_map(|o| self.render(o)).collect()
    }

    fn configure(&mut self, args: &[&str]) -> Vec<Output> {
        let mut settings = BgpSettings {
            local_as: AsNumber(0),
            router_id: Ipv4Addr::UNSPECIFIED,
            listen_port: 179,
            cluster_id: None,
            peers: BTreeSet::new(),
            policy: Default::default(),
        };
        for arg in args {
            let (key, value) = arg.split_once('=').expect("key=value");
            match key {
                "as" => settings.local_as = AsNumber(value.parse().unwrap()),
                "id" => settings.router_id = value.parse().unwrap(),
                "cluster" => settings.cluster_id = Some(value.parse().unwrap()),
                "reject" => {
                    let (peer, cidr) = value.split_once(':').expect("reject=PEER:CIDR");
                    let yaml = format!(
                        "kind: BgpFilter\nname: reject\n\
                         exportV4: [{{action: Reject, matchOperator: Equal, cidr: {cidr}}}]\n"
                    );
                    let resources = calico_core::model::parse_resources(&yaml).unwrap();
                    let Some(calico_core::model::Resource::BgpFilter(filter)) =
                        resources.into_iter().next()
                    else {
                        panic!("reject: not a BgpFilter");
                    };
                    let peer = peer.parse().unwrap();
                    settings
                        .policy
                        .filters
                        .entry(peer)
                        .or_default()
                        .push(filter);
                }
                "community" => {
                    // community=CIDR:AA:NN, a standard community for routes in CIDR.
                    let (cidr, value) = value.split_once(':').expect("community=CIDR:AA:NN");
                    let (aa, nn) = value.split_once(':').expect("community=CIDR:AA:NN");
                    let value = aa.parse::<u32>().unwrap() << 16 | nn.parse::<u32>().unwrap();
                    settings.policy.communities.push((
                        cidr.parse().unwrap(),
                        vec![calico_core::model::Community::Standard(value)],
                    ));
                }
                "peer" => {
                    let parts: Vec<&str> = value.split('/').collect();
                    let peer = PeerConfig {
                        address: parts[0].parse().unwrap(),
                        remote_as: AsNumber(parts[1].parse().unwrap()),
                        password: None,
                        hold_time: 90,
                        passive: parts.contains(&"passive"),
                        route_reflector_client: parts.contains(&"client"),
                        bfd: None,
                        add_path: Default::default(),
                        session: Default::default(),
                    };
                    self.remote_as.insert(peer.address, peer.remote_as.0);
                    settings.peers.insert(peer);
                }
                other => panic!("configure: unknown {other}"),
            }
        }
        self.state.validate(&settings).expect("valid settings");
        self.state.configure(settings)
    }

    fn event(&self, command: &str, args: &[&str]) -> PeerEvent {
        let peer: IpAddr = args[0].parse().unwrap();
        let family = |at: usize| match args.get(at).copied() {
            Some("ipv6") => AfiSafi::IPV6_UNICAST,
            Some("ipv4") => AfiSafi::IPV4_UNICAST,
            _ => family_of(peer),
        };
        match command {
            "state" => PeerEvent::State {
                state: peer_state(args[1]),
                last_error: (args.len() > 2).then(|| args[2..].join(" ")),
            },
            "up" => self.up(peer, &args[1..]),
            "down" => PeerEvent::Down(SessionDown {
                reason: args[2..].join(" "),
                graceful: match args[1] {
                    "graceful" => true,
                    "notification" => false,
                    other => panic!("down: {other}?"),
                },
            }),
            "announce" => PeerEvent::Updates(announcement(&args[1..]).into()),
            "withdraw" => PeerEvent::Updates(withdrawal(args[1]).into()),
            "eor" => PeerEvent::Updates(packet::update::end_of_rib(family(1)).into()),
            "refresh" => PeerEvent::Refresh(family(1)),
            "stalled" => PeerEvent::Stalled,
            "drained" => PeerEvent::Drained,
            other => panic!("unknown input {other}"),
        }
    }

    fn up(&self, peer: IpAddr, args: &[&str]) -> PeerEvent {
        let mut local = None;
        let mut remote_id = match peer {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::new(10, 255, 0, 1),
        };
        let mut graceful_restart = None;
        let mut restarted = false;
        let mut add_path = false;
        for arg in args {
            match arg.split_once('=') {
                Some(("local", a)) => local = Some(a.parse::<IpAddr>().unwrap()),
                Some(("id", a)) => remote_id = a.parse().unwrap(),
                Some(("gr", g)) => {
                    let (time, fwd) = match g.split_once('/') {
                        Some((t, "nofwd")) => (t, false),
                        _ => (g, true),
                    };
                    graceful_restart = Some((time.parse::<u16>().unwrap(), fwd));
                }
                None if *arg == "restarted" => restarted = true,
                None if *arg == "addpath" => add_path = true,
                _ => panic!("up: {arg}?"),
            }
        }
        let family = family_of(peer);
        let negotiated = Negotiated {
            hold_time: 90,
            keepalive: 30,
            four_octet_as: true,
            families: vec![family],
            route_refresh: true,
            remote_id,
            remote_as: self.remote_as[&peer],
            direction: Direction::Outbound,
            graceful_restart: graceful_restart.map(|(restart_time, fwd)| PeerGracefulRestart {
                restart_time,
                restarted,
                families: vec![(family, fwd)],
            }),
            add_path_send: if add_path {
                AddPathFamilies::of([family])
            } else {
                AddPathFamilies::NONE
            },
            add_path_receive: AddPathFamilies::NONE,
        };
        PeerEvent::Up {
            negotiated,
            local: SocketAddr::new(local.expect("up: local=ADDR"), 179),
            interface: None,
        }
    }

    fn query(&self, what: &str) -> Vec<String> {
        match what {
            "deadline" => vec![match self.state.next_deadline() {
                Some(at) => format!("deadline {}", (at - self.start).as_secs()),
                None => "deadline none".into(),
            }],
            "routes" => {
                let mut routes = self.state.learned_routes();
                routes.sort();
                routes
                    .iter()
                    .map(|r| format!("route {} via {}", r.prefix, list(&r.next_hops)))
                    .collect()
            }
            _ => self
                .state
                .peer_status()
                .iter()
                .map(|s| {
                    let error = s
                        .last_error
                        .as_ref()
                        .map_or(String::new(), |e| format!(" error={e}"));
                    format!(
                        "status {} {:?} received={} eor={}{error}",
                        s.address, s.state, s.prefixes_received, s.end_of_rib_received
                    )
                })
                .collect(),
        }
    }

    fn render(&mut self, output: &Output) -> Vec<String> {
        match output {
            Output::StartPeer(start) => {
                self.names.insert(start.peer, start.remote.ip());
                let s = &start.session;
                let mut line = format!("start {} as={}", start.remote.ip(), s.remote_as);
                if s.passive {
                    line.push_str(" passive");
                }
                if let Some(gr) = s.graceful_restart {
                    line.push_str(&format!(" gr={}", gr.restart_time));
                    if gr.restarting {
                        line.push_str("/restarting");
                    }
                }
                vec![line]
            }
            Output::StopPeer { peer, why } => vec![format!("stop {} {why:?}", self.names[peer])],
            Output::Send { peer, bytes } => {
                let name = self.names[peer];
                let add_path = self.add_path.get(&name).copied();
                render_send_with(name, bytes, add_path.unwrap_or(AddPathFamilies::NONE))
            }
            Output::Notify => vec!["notify".into()],
            other => panic!("unexpected output {other:?}"),
        }
    }
}

fn family_of(peer: IpAddr) -> AfiSafi {
    match peer {
        IpAddr::V4(_) => AfiSafi::IPV4_UNICAST,
        IpAddr::V6(_) => AfiSafi::IPV6_UNICAST,
    }
}

fn peer_state(s: &str) -> PeerState {
    match s {
        "Idle" => PeerState::Idle,
        "Connect" => PeerState::Connect,
        "Active" => PeerState::Active,
        "OpenSent" => PeerState::OpenSent,
        "OpenConfirm" => PeerState::OpenConfirm,
        "Established" => PeerState::Established,
        other => panic!("state {other}?"),
    }
}

fn prefixes(list: &str) -> Vec<IpNet> {
    list.split(',').map(|p| p.parse().unwrap()).collect()
}

fn announcement(args: &[&str]) -> Update {
    let mut path = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        ..PathAttributes::default()
    };
    let mut next_hop: Option<IpAddr> = None;
    for arg in &args[1..] {
        let (key, value) = arg.split_once('=').expect("key=value");
        match key {
            "nh" => next_hop = Some(value.parse().unwrap()),
            "path" => {
                let asns = value.split(',').map(|a| a.parse().unwrap()).collect();
                path.as_path = Some(AsPath::sequence(asns));
            }
            "lp" => path.local_pref = Some(value.parse().unwrap()),
            "originator" => path.originator_id = Some(value.parse().unwrap()),
            "clusters" => {
                path.cluster_list = value.split(',').map(|a| a.parse().unwrap()).collect()
            }
            other => panic!("announce: unknown {other}"),
        }
    }
    let all = prefixes(args[0]);
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) =
        all.into_iter().partition(|p| matches!(p, IpNet::V4(_)));
    match next_hop.expect("announce: nh=ADDR") {
        IpAddr::V4(nh) if v6.is_empty() => path.next_hop = Some(nh),
        global => {
            path.mp_reach = Some(Box::new(MpReach {
                family: AfiSafi::IPV6_UNICAST,
                next_hop: MpNextHop {
                    global,
                    link_local: None,
                },
                nlri: v6,
                path_ids: Vec::new(),
            }))
        }
    }
    Update {
        attributes: path,
        nlri: v4
            .into_iter()
            .filter_map(|p| match p {
                IpNet::V4(p) => Some(p),
                IpNet::V6(_) => None,
            })
            .collect(),
        ..Update::default()
    }
}

fn withdrawal(list: &str) -> Update {
    let updates = packet::update::pack_withdrawals(&prefixes(list));
    assert_eq!(updates.len(), 1, "one UPDATE per withdraw input");
    updates.into_iter().next().unwrap_or_default()
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The messages of one send, one line per prefix; prefix lines sorted between End-of-RIB
/// markers.
fn render_send(peer: IpAddr, bytes: &[u8]) -> Vec<String> {
    render_send_with(peer, bytes, AddPathFamilies::NONE)
}

/// [`render_send`] for a session that sends path identifiers on `add_path` (shown as
/// `id=N` after the prefix).
fn render_send_with(peer: IpAddr, bytes: &[u8], add_path: AddPathFamilies) -> Vec<String> {
    let ctx = Context {
        four_octet_as: true,
        add_path,
    };
    let id = |p: &IpNet, id: u32| {
        if add_path.contains(family_of(p.addr())) {
            format!(" id={id}")
        } else {
            String::new()
        }
    };
    let mut lines = Vec::new();
    let mut group: Vec<String> = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header: &[u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().unwrap();
        let len = packet::header_length(header).unwrap();
        let message = packet::decode(&rest[..len], &ctx).unwrap();
        rest = &rest[len..];
        let Message::Update(update) = message else {
            panic!("{peer} sent {message:?}");
        };
        if let Some(family) = update.end_of_rib_family() {
            group.sort();
            lines.append(&mut group);
            let name = if family == AfiSafi::IPV4_UNICAST {
                "ipv4"
            } else {
                "ipv6"
            };
            lines.push(format!("send {peer} end-of-rib {name}"));
            continue;
        }
        for (p, n) in update.withdrawn_paths() {
            group.push(format!("send {peer} withdraw {p}{}", id(&p, n)));
        }
        let attrs = attributes(&update.attributes);
        for (p, n) in update.announced_paths() {
            group.push(format!("send {peer} announce {p}{} {attrs}", id(&p, n)));
        }
    }
    group.sort();
    lines.append(&mut group);
    lines
}

fn attributes(a: &PathAttributes) -> String {
    let next_hop = match (&a.mp_reach, a.next_hop) {
        (Some(mp), _) => mp.next_hop.global.to_string(),
        (None, Some(nh)) => nh.to_string(),
        (None, None) => "none".into(),
    };
    let path: Vec<u32> = a
        .as_path
        .iter()
        .flat_map(|p| p.segments.iter().flat_map(|s| s.asns.iter().copied()))
        .collect();
    let mut s = format!("nh={next_hop} path={}", list(&path));
    if let Some(lp) = a.local_pref {
        s.push_str(&format!(" lp={lp}"));
    }
    if let Some(med) = a.med {
        s.push_str(&format!(" med={med}"));
    }
    if let Some(o) = a.originator_id {
        s.push_str(&format!(" originator={o}"));
    }
    if !a.cluster_list.is_empty() {
        s.push_str(&format!(" clusters={}", list(&a.cluster_list)));
    }
    s
}

/// Replays one scenario file; returns what it produced (every input with its outputs) and
/// the mismatches.
fn replay(text: &str) -> (String, Vec<String>) {
    let mut lines = text.lines().enumerate().peekable();
    let mut runner = None;
    let mut transcript = String::new();
    let mut failures = Vec::new();
    while let Some((n, line)) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            transcript.push_str(line);
            transcript.push('\n');
            continue;
        }
        assert!(
            !line.starts_with('>'),
            "line {}: output without input",
            n + 1
        );
        let mut expected = Vec::new();
        while let Some((_, next)) = lines.peek() {
            let Some(out) = next.trim().strip_prefix('>') else {
                break;
            };
            expected.push(out.trim().to_string());
            lines.next();
        }
        let actual = if let Some(words) = line.strip_prefix("speaker") {
            let words: Vec<&str> = words.split_whitespace().collect();
            runner = Some(Runner::new(options(&words)));
            Vec::new()
        } else {
            runner
                .get_or_insert_with(|| Runner::new(options(&[])))
                .input(line)
        };
        transcript.push_str(line);
        transcript.push('\n');
        for a in &actual {
            transcript.push_str(&format!("> {a}\n"));
        }
        if actual != expected {
            failures.push(format!(
                "line {}: {line}\n  expected:\n{}\n  actual:\n{}",
                n + 1,
                indent(&expected),
                indent(&actual)
            ));
        }
    }
    (transcript, failures)
}

fn indent(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("    > {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn recorded_scenarios_replay_exactly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txt") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let print = std::env::var_os("SCENARIO_PRINT").is_some();
    let mut failures = Vec::new();
    for (name, text) in &files {
        let (transcript, failed) = replay(text);
        if print {
            println!("===== {name}\n{transcript}");
        }
        if std::env::var_os("SCENARIO_RECORD").is_some() {
            std::fs::write(dir.join(name), &transcript).unwrap();
            continue;
        }
        failures.extend(failed.into_iter().map(|f| format!("{name}: {f}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(files.len() >= 6, "scenarios missing from {}", dir.display());
}

#[test]
fn a_wrong_expectation_fails() {
    let text = "configure as=64512 id=10.0.0.100 peer=10.0.0.1/64512\n> notify\n";
    let (_, failures) = replay(text);
    assert_eq!(
        failures.len(),
        1,
        "the start output is missing: {failures:?}"
    );
}

/// Update groups: the outputs of one change, by peer.
fn sends(runner: &Runner, outputs: &[Output]) -> HashMap<IpAddr, SharedBytes> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { peer, bytes } => Some((runner.names[peer], bytes.clone())),
            _ => None,
        })
        .collect()
}

/// A reflector with clients .1 to .4 (.4 with an export filter rejecting 10.9.0.0/24), a
/// non-client .5 and an eBGP peer .6, all established.
fn reflector_with_groups() -> Runner {
    let mut r = Runner::new(options(&[]));
    r.input(
        "configure as=64512 id=10.0.0.100 cluster=10.0.0.99 peer=10.0.0.1/64512/client \
         peer=10.0.0.2/64512/client peer=10.0.0.3/64512/client peer=10.0.0.4/64512/client \
         peer=10.0.0.5/64512 peer=10.0.0.6/65006 reject=10.0.0.4:10.9.0.0/24",
    );
    for n in 1..=6 {
        r.input(&format!("up 10.0.0.{n} local=10.0.0.100"));
    }
    r
}

/// `reflector_with_groups`' peers configured again, with `policy` (`reject=`, `community=`
/// arguments) in place of its filter; the outputs, checked to stop and start no session
/// (a policy change is followed in place).
fn reconfigure(r: &mut Runner, policy: &[&str]) -> Vec<Output> {
    let mut args = vec![
        "as=64512",
        "id=10.0.0.100",
        "cluster=10.0.0.99",
        "peer=10.0.0.1/64512/client",
        "peer=10.0.0.2/64512/client",
        "peer=10.0.0.3/64512/client",
        "peer=10.0.0.4/64512/client",
        "peer=10.0.0.5/64512",
        "peer=10.0.0.6/65006",
    ];
    args.extend_from_slice(policy);
    let outputs = r.configure(&args);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::StopPeer { .. } | Output::StartPeer(_))),
        "the sessions stay up"
    );
    outputs
}

#[test]
fn peers_with_one_outbound_policy_are_sent_the_same_bytes() {
    let mut r = reflector_with_groups();
    let from = r.id("10.0.0.1");
    let event = r.event(
        "announce",
        &["10.0.0.1", "10.1.0.0/24,10.9.0.0/24", "nh=10.0.0.1"],
    );
    let outputs = r.state.peer_event(from, event, r.now);
    let sent = sends(&r, &outputs);
    let at = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    // Clients 2 and 3 share a group: one encoding, the same allocation.
    assert!(std::sync::Arc::ptr_eq(&sent[&at(2)], &sent[&at(3)]));
    // The source of the routes is sent nothing (never back to where they came from).
    assert!(!sent.contains_key(&at(1)));
    // Another filter, a non-client, an eBGP peer: each its own group and bytes.
    for other in [4, 5, 6] {
        assert!(
            !std::sync::Arc::ptr_eq(&sent[&at(2)], &sent[&at(other)]),
            "10.0.0.{other} shares client 2's bytes"
        );
    }
    // And what each group got is what its policy says.
    let lines = |n: u8| render_send(at(n), &sent[&at(n)]);
    let reflected = |n: u8, p: &str| {
        format!(
            "send 10.0.0.{n} announce {p} nh=10.0.0.1 path= lp=100 originator=10.0.0.1 \
             clusters=10.0.0.99"
        )
    };
    for n in [2, 3, 5] {
        assert_eq!(
            lines(n),
            [reflected(n, "10.1.0.0/24"), reflected(n, "10.9.0.0/24")]
        );
    }
    assert_eq!(lines(4), [reflected(4, "10.1.0.0/24")]);
    assert_eq!(
        lines(6),
        [
            "send 10.0.0.6 announce 10.1.0.0/24 nh=10.0.0.100 path=64512",
            "send 10.0.0.6 announce 10.9.0.0/24 nh=10.0.0.100 path=64512",
        ]
    );
}

#[test]
fn a_source_of_some_routes_of_a_change_is_sent_the_others_apart_from_its_group() {
    let mut r = reflector_with_groups();
    r.input("announce 10.0.0.2 10.2.0.0/24 nh=10.0.0.2");
    // A route of client 3: client 2, though it is the source of other routes, is not one of
    // this change's, so it shares the clients' bytes.
    let from = r.id("10.0.0.3");
    let event = r.event("announce", &["10.0.0.3", "10.3.0.0/24", "nh=10.0.0.3"]);
    let outputs = r.state.peer_event(from, event, r.now);
    let sent = sends(&r, &outputs);
    let at = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    assert!(!sent.contains_key(&at(3)));
    assert!(std::sync::Arc::ptr_eq(&sent[&at(1)], &sent[&at(2)]));
    // Client 2's own route withdrawn: 2 is alone (and sent nothing), 1 and 3 share.
    let withdraw = r.event("withdraw", &["10.0.0.2", "10.2.0.0/24"]);
    let from = r.id("10.0.0.2");
    let outputs = r.state.peer_event(from, withdraw, r.now);
    let sent = sends(&r, &outputs);
    assert!(
        !sent.contains_key(&at(2)),
        "its own withdrawal is not sent back"
    );
    assert!(std::sync::Arc::ptr_eq(&sent[&at(1)], &sent[&at(3)]));
    assert_eq!(
        render_send(at(1), &sent[&at(1)]),
        ["send 10.0.0.1 withdraw 10.2.0.0/24"]
    );
}

#[test]
fn a_filter_change_on_many_peers_is_computed_and_encoded_once_per_group() {
    let mut r = reflector_with_groups();
    r.input("announce 10.0.0.1 10.1.0.0/24,10.9.0.0/24 nh=10.0.0.1");
    // .4's filter is put on clients 1 to 3 too (1 being the routes' source): no new session.
    let outputs = reconfigure(
        &mut r,
        &[
            "reject=10.0.0.1:10.9.0.0/24",
            "reject=10.0.0.2:10.9.0.0/24",
            "reject=10.0.0.3:10.9.0.0/24",
            "reject=10.0.0.4:10.9.0.0/24",
        ],
    );
    let sent = sends(&r, &outputs);
    let at = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    // Clients 2 and 3 had the same and have the same filter now: one computation, one
    // encoding. They are sent what the filter changes, not the route they keep.
    assert!(std::sync::Arc::ptr_eq(&sent[&at(2)], &sent[&at(3)]));
    assert_eq!(
        render_send(at(2), &sent[&at(2)]),
        ["send 10.0.0.2 withdraw 10.9.0.0/24"]
    );
    // The source had none of its routes and has none now; .4's filter did not change; .5
    // and .6 have no filter.
    for quiet in [1, 4, 5, 6] {
        assert!(
            !sent.contains_key(&at(quiet)),
            "10.0.0.{quiet} is sent something"
        );
    }
    // The filter taken off clients 1 to 3 again: 2 and 3 get back the route it kept from
    // them, and only that.
    let outputs = reconfigure(&mut r, &["reject=10.0.0.4:10.9.0.0/24"]);
    let sent = sends(&r, &outputs);
    assert!(std::sync::Arc::ptr_eq(&sent[&at(2)], &sent[&at(3)]));
    assert_eq!(
        render_send(at(2), &sent[&at(2)]),
        [
            "send 10.0.0.2 announce 10.9.0.0/24 nh=10.0.0.1 path= lp=100 originator=10.0.0.1 \
          clusters=10.0.0.99"
        ]
    );
    for quiet in [1, 4, 5, 6] {
        assert!(
            !sent.contains_key(&at(quiet)),
            "10.0.0.{quiet} is sent something after the filter went"
        );
    }
}

#[test]
fn new_communities_send_each_update_group_one_table() {
    let mut r = reflector_with_groups();
    r.input("announce 10.0.0.1 10.1.0.0/24,10.9.0.0/24 nh=10.0.0.1");
    let outputs = reconfigure(
        &mut r,
        &[
            "reject=10.0.0.4:10.9.0.0/24",
            "community=10.0.0.0/8:65001:7",
        ],
    );
    let sent = sends(&r, &outputs);
    let at = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    // Clients 2 and 3 share a group: their tables are computed and encoded once.
    assert!(std::sync::Arc::ptr_eq(&sent[&at(2)], &sent[&at(3)]));
    let lines = render_send(at(2), &sent[&at(2)]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("send 10.0.0.2 announce 10.1.0.0/24 "));
    assert!(lines[1].starts_with("send 10.0.0.2 announce 10.9.0.0/24 "));
    assert_eq!(lines[2], "send 10.0.0.2 end-of-rib ipv4");
    // Every other peer has a policy or a table of its own, and each is sent it: the source
    // of the routes its End-of-RIB only, .4 without the route its filter keeps back.
    for n in [1, 4, 5, 6] {
        assert!(
            !std::sync::Arc::ptr_eq(&sent[&at(2)], &sent[&at(n)]),
            "10.0.0.{n} shares client 2's bytes"
        );
    }
    assert_eq!(
        render_send(at(1), &sent[&at(1)]),
        ["send 10.0.0.1 end-of-rib ipv4"]
    );
    let four = render_send(at(4), &sent[&at(4)]);
    assert_eq!(four.len(), 2, "{four:?}");
    assert!(four[0].starts_with("send 10.0.0.4 announce 10.1.0.0/24 "));
}

//! The session machine against RFC 5880's rules, two sessions wired back to back on a
//! simulated clock.

use super::*;

fn config(ms: u64, mult: u8) -> BfdConfig {
    BfdConfig {
        min_tx: Duration::from_millis(ms),
        min_rx: Duration::from_millis(ms),
        multiplier: mult,
        authentication: None,
    }
}

/// Two sessions and a clock; packets are delivered at once.
struct Pair {
    a: Session,
    b: Session,
    now: Instant,
    a_changes: Vec<Transition>,
    b_changes: Vec<Transition>,
    /// Packets A sent, with when.
    a_sent: Vec<(Instant, ControlPacket)>,
}

impl Pair {
    fn new(a: BfdConfig, b: BfdConfig) -> Pair {
        let now = Instant::now();
        Pair {
            a: Session::new(a, 0x0a, now),
            b: Session::new(b, 0x0b, now),
            now,
            a_changes: Vec::new(),
            b_changes: Vec::new(),
            a_sent: Vec::new(),
        }
    }

    /// Runs both sessions until `until`, delivering every packet (unless `cut`).
    fn run(&mut self, until: Duration, cut: bool) {
        let end = self.now + until;
        loop {
            let next = self.a.next_deadline().min(self.b.next_deadline());
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            let (pa, ca) = self.a.on_timer(self.now);
            let (pb, cb) = self.b.on_timer(self.now);
            self.a_changes.extend(ca);
            self.b_changes.extend(cb);
            if let Some(p) = pa {
                self.a_sent.push((self.now, p));
                if !cut {
                    self.b_changes.extend(self.b.receive(&p, self.now));
                }
            }
            if let (Some(p), false) = (pb, cut) {
                self.a_changes.extend(self.a.receive(&p, self.now));
            }
        }
    }
}

#[test]
fn two_sessions_come_up_by_the_three_way_handshake() {
    let mut p = Pair::new(config(300, 3), config(300, 3));
    p.run(Duration::from_secs(3), false);
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    // A went Down → Init → Up or Down → Up (it heard B's Init first): either way, Up once.
    assert_eq!(p.a_changes.last().map(|t| t.to), Some(State::Up));
    assert_eq!(p.a_changes.iter().filter(|t| t.to == State::Up).count(), 1);
    assert_eq!(p.a.remote_disc(), 0x0b);
    assert_eq!(p.b.remote_disc(), 0x0a);
    // Once Up, the configured 300 ms rate, jittered to 75–100 % of it.
    let up_at = p
        .a_sent
        .iter()
        .position(|(_, pk)| pk.state == State::Up)
        .unwrap();
    let late: Vec<Duration> = p.a_sent[up_at + 2..]
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .collect();
    assert!(late.len() > 4, "{late:?}");
    for gap in late {
        assert!(
            gap >= Duration::from_millis(225) && gap <= Duration::from_millis(300),
            "{gap:?}"
        );
    }
}

#[test]
fn a_slow_interval_until_up_then_a_poll_sequence() {
    let mut p = Pair::new(config(300, 3), config(300, 3));
    let first = p.a.on_timer(p.now).0.unwrap();
    assert_eq!(first.state, State::Down);
    assert_eq!(
        first.desired_min_tx, SLOW_TX,
        "§6.8.3: at least 1 s while not Up"
    );
    assert_eq!(first.your_disc, 0);
    p.run(Duration::from_secs(3), false);
    let polls: Vec<&ControlPacket> = p
        .a_sent
        .iter()
        .map(|(_, pk)| pk)
        .filter(|pk| pk.poll)
        .collect();
    assert!(
        !polls.is_empty(),
        "the faster interval is announced with Poll"
    );
    assert!(polls
        .iter()
        .all(|pk| pk.desired_min_tx == Duration::from_millis(300)));
    // The Poll was answered by Final, which ended it: the last packets carry neither.
    let last = p.a_sent.last().unwrap().1;
    assert!(!last.poll && !last.final_, "{last:?}");
}

#[test]
fn a_silent_peer_is_declared_down_after_the_detection_time() {
    let mut p = Pair::new(config(300, 3), config(300, 3));
    p.run(Duration::from_secs(3), false);
    assert_eq!(p.a.detection_time(), Duration::from_millis(900));
    let cut = p.now;
    p.run(Duration::from_secs(2), true);
    let down = p.a_changes.last().unwrap();
    assert_eq!((down.from, down.to), (State::Up, State::Down));
    assert_eq!(down.diag, Diagnostic::DetectionTimeExpired);
    assert_eq!(
        p.a.remote_disc(),
        0,
        "§6.8.1: forgotten after a detection time"
    );
    assert!(p.a.next_deadline() > cut);
}

#[test]
fn the_detection_time_follows_the_slower_side() {
    // B can only send every 600 ms: A waits 3 × 600 ms, not 3 × 300 ms.
    let mut p = Pair::new(config(300, 3), config(600, 5));
    p.run(Duration::from_secs(5), false);
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(
        p.a.detection_time(),
        Duration::from_millis(3000),
        "B's multiplier 5 × 600 ms"
    );
    assert_eq!(
        p.b.detection_time(),
        Duration::from_millis(1800),
        "A's multiplier 3 × 600 ms"
    );
}

#[test]
fn a_peer_signalling_down_or_admin_down_takes_the_session_down() {
    for remote in [State::Down, State::AdminDown] {
        let mut p = Pair::new(config(300, 3), config(300, 3));
        p.run(Duration::from_secs(3), false);
        let mut pk = p.b.on_timer(p.now + Duration::from_secs(1)).0.unwrap();
        pk.state = remote;
        let t = p.a.receive(&pk, p.now).unwrap();
        assert_eq!(
            (t.from, t.to, t.diag),
            (State::Up, State::Down, Diagnostic::NeighborDown)
        );
        assert_eq!(
            t.remote, remote,
            "BGP tells a path failure from the peer's AdminDown by it"
        );
    }
    // AdminDown to a session that is Down changes nothing.
    let now = Instant::now();
    let mut s = Session::new(config(300, 3), 1, now);
    let mut pk = s.admin_down_packet();
    pk.my_disc = 9;
    assert_eq!(s.receive(&pk, now), None);
    assert_eq!(s.state(), State::Down);
}

#[test]
fn a_poll_is_answered_at_once_with_final() {
    let now = Instant::now();
    let mut s = Session::new(config(300, 3), 1, now);
    let _ = s.on_timer(now);
    let mut pk = s.admin_down_packet();
    pk.state = State::Down;
    pk.my_disc = 2;
    pk.poll = true;
    let later = now + Duration::from_millis(10);
    s.receive(&pk, later);
    assert_eq!(s.next_deadline(), later, "not at the next interval");
    let answer = s.on_timer(later).0.unwrap();
    assert!(answer.final_ && !answer.poll, "{answer:?}");
}

#[test]
fn nothing_periodic_to_a_peer_requiring_no_packets() {
    let now = Instant::now();
    let mut s = Session::new(config(300, 3), 1, now);
    let mut pk = s.admin_down_packet();
    pk.state = State::Down;
    pk.my_disc = 2;
    pk.required_min_rx = Duration::ZERO;
    s.receive(&pk, now);
    assert_eq!(s.on_timer(now + Duration::from_secs(5)).0, None);
}

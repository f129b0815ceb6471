//! The session state machine alone: events in, actions out (RFC 4271 §8, §6.8), and which
//! session endings are graceful (RFC 4724).

use std::net::Ipv4Addr;
use std::time::Duration;

use calico_bgp::packet::notification::{CeaseSubcode, FsmSubcode, OpenSubcode};
use calico_bgp::packet::open::GracefulRestartFamily;
use calico_bgp::packet::{
    AddPathFamilies, AddPathFamily, AfiSafi, Capability, Context, ErrorCode, Message, Notification,
    Open, Update,
};
use calico_bgp::session::{
    Action, Direction, Event, Fsm, GracefulRestart, Negotiated, SessionConfig, SessionDown, Timer,
    GR_RESTART_STATE,
};
use calico_core::dataplane::PeerState;

const IN: Direction = Direction::Inbound;
const OUT: Direction = Direction::Outbound;

fn config(passive: bool) -> SessionConfig {
    SessionConfig {
        local_as: 64512,
        remote_as: 64513,
        router_id: Ipv4Addr::new(10, 0, 0, 2),
        hold_time: 9,
        keepalive: None,
        passive,
        families: vec![AfiSafi::IPV4_UNICAST],
        add_path: Vec::new(),
        graceful_restart: None,
        connect_retry_min: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(8),
    }
}

fn peer_open(asn: u32, hold: u16, id: [u8; 4]) -> Message {
    Message::Open(Open {
        my_as: u16::try_from(asn).unwrap_or(23456),
        hold_time: hold,
        router_id: Ipv4Addr::from(id),
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(asn),
        ],
    })
}

fn step(fsm: &mut Fsm, event: Event) -> Vec<Action> {
    let mut out = Vec::new();
    fsm.handle(event, &mut out);
    out
}

fn sent(actions: &[Action], dir: Direction) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(d, m) if *d == dir => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn notification_code(actions: &[Action], dir: Direction) -> Option<ErrorCode> {
    sent(actions, dir).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some(n.code),
        _ => None,
    })
}

fn establish(fsm: &mut Fsm, dir: Direction, peer_hold: u16) -> Vec<Action> {
    let mut all = step(fsm, Event::Connected(dir));
    all.extend(step(
        fsm,
        Event::Received(dir, peer_open(64513, peer_hold, [10, 0, 0, 1])),
    ));
    all.extend(step(fsm, Event::Received(dir, Message::Keepalive)));
    all
}

#[test]
fn active_peer_connects_opens_and_establishes_with_the_smaller_hold_time() {
    let mut fsm = Fsm::new(config(false));
    assert_eq!(fsm.state(), PeerState::Idle);
    assert_eq!(step(&mut fsm, Event::Start), vec![Action::Connect]);
    assert_eq!(fsm.state(), PeerState::Connect);
    let a = step(&mut fsm, Event::Connected(OUT));
    assert!(
        matches!(&sent(&a, OUT)[..], [Message::Open(o)] if o.hold_time == 9 && o.my_as == 64512)
    );
    assert_eq!(fsm.state(), PeerState::OpenSent);
    let a = step(
        &mut fsm,
        Event::Received(OUT, peer_open(64513, 30, [10, 0, 0, 1])),
    );
    assert_eq!(sent(&a, OUT), vec![Message::Keepalive]);
    assert!(a.contains(&Action::StartTimer(
        Timer::Hold(OUT),
        Duration::from_secs(9)
    )));
    assert!(a.contains(&Action::StartTimer(
        Timer::Keepalive(OUT),
        Duration::from_secs(3)
    )));
    assert_eq!(fsm.state(), PeerState::OpenConfirm);
    let a = step(&mut fsm, Event::Received(OUT, Message::Keepalive));
    let up = a
        .iter()
        .find_map(|a| match a {
            Action::Up(n) => Some(n.clone()),
            _ => None,
        })
        .expect("Up");
    assert_eq!((up.hold_time, up.keepalive, up.four_octet_as), (9, 3, true));
    assert_eq!(up.families, vec![AfiSafi::IPV4_UNICAST]);
    assert_eq!(fsm.state(), PeerState::Established);
    // Updates are delivered; keepalives are sent when due.
    let a = step(
        &mut fsm,
        Event::Received(OUT, Message::Update(Update::default())),
    );
    assert!(a.contains(&Action::Deliver(Update::default())));
    let a = step(&mut fsm, Event::TimerExpired(Timer::Keepalive(OUT)));
    assert_eq!(sent(&a, OUT), vec![Message::Keepalive]);
}

#[test]
fn hold_time_zero_means_no_timers() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    let a = establish(&mut fsm, OUT, 0);
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::StartTimer(Timer::Keepalive(_), _))));
    assert!(a.contains(&Action::StopTimer(Timer::Hold(OUT))));
    assert_eq!(fsm.established().unwrap().hold_time, 0);
}

#[test]
fn hold_timer_expiry_sends_notification_and_goes_down() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    establish(&mut fsm, OUT, 90);
    let a = step(&mut fsm, Event::TimerExpired(Timer::Hold(OUT)));
    assert_eq!(
        notification_code(&a, OUT),
        Some(ErrorCode::HoldTimerExpired)
    );
    assert!(a.iter().any(|a| matches!(a, Action::Down(_))));
    assert!(a.contains(&Action::Close(OUT)));
    // And it tries again after the shortest back-off.
    assert!(a.contains(&Action::StartTimer(
        Timer::ConnectRetry,
        Duration::from_secs(1)
    )));
    assert_eq!(fsm.state(), PeerState::Active);
}

#[test]
fn wrong_peer_as_is_refused() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    step(&mut fsm, Event::Connected(OUT));
    let a = step(
        &mut fsm,
        Event::Received(OUT, peer_open(65000, 90, [10, 0, 0, 1])),
    );
    assert_eq!(
        notification_code(&a, OUT),
        Some(ErrorCode::OpenMessage(OpenSubcode::BadPeerAs))
    );
    assert!(a.contains(&Action::Close(OUT)));
    assert!(fsm.last_error().unwrap().contains("65000"));
}

#[test]
fn our_own_identifier_is_refused() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    step(&mut fsm, Event::Connected(OUT));
    let a = step(
        &mut fsm,
        Event::Received(OUT, peer_open(64513, 90, [10, 0, 0, 2])),
    );
    assert_eq!(
        notification_code(&a, OUT),
        Some(ErrorCode::OpenMessage(OpenSubcode::BadBgpIdentifier))
    );
}

#[test]
fn connect_retry_backs_off_exponentially_up_to_the_maximum() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    let mut delays = Vec::new();
    for _ in 0..6 {
        let a = step(&mut fsm, Event::ConnectFailed("refused".into()));
        delays.extend(a.iter().filter_map(|a| match a {
            Action::StartTimer(Timer::ConnectRetry, d) => Some(d.as_secs()),
            _ => None,
        }));
        assert_eq!(
            step(&mut fsm, Event::TimerExpired(Timer::ConnectRetry)),
            vec![Action::Connect]
        );
    }
    assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
    // Success resets the back-off.
    establish(&mut fsm, OUT, 90);
    let a = step(&mut fsm, Event::Closed(OUT, "reset".into()));
    assert!(a.contains(&Action::StartTimer(
        Timer::ConnectRetry,
        Duration::from_secs(1)
    )));
}

#[test]
fn passive_peer_never_connects() {
    let mut fsm = Fsm::new(config(true));
    assert!(step(&mut fsm, Event::Start).is_empty());
    assert_eq!(fsm.state(), PeerState::Active);
    establish(&mut fsm, IN, 90);
    assert_eq!(fsm.state(), PeerState::Established);
    let a = step(&mut fsm, Event::Closed(IN, "eof".into()));
    assert!(!a.iter().any(|a| matches!(
        a,
        Action::Connect | Action::StartTimer(Timer::ConnectRetry, _)
    )));
}

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    // We are 10.0.0.2; a peer 10.0.0.1 has the lower id: our outbound connection wins.
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    step(&mut fsm, Event::Connected(OUT));
    step(&mut fsm, Event::Connected(IN));
    let a = step(
        &mut fsm,
        Event::Received(IN, peer_open(64513, 90, [10, 0, 0, 1])),
    );
    assert_eq!(
        notification_code(&a, IN),
        Some(ErrorCode::Cease(
            CeaseSubcode::ConnectionCollisionResolution
        ))
    );
    assert!(a.contains(&Action::Close(IN)));
    establish_rest(&mut fsm, OUT, [10, 0, 0, 1]);
    assert_eq!(fsm.established().unwrap().direction, OUT);

    // A peer 10.0.0.9 has the higher id: its inbound connection wins, our outbound goes.
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    step(&mut fsm, Event::Connected(OUT));
    step(&mut fsm, Event::Connected(IN));
    let a = step(
        &mut fsm,
        Event::Received(OUT, peer_open(64513, 90, [10, 0, 0, 9])),
    );
    assert!(a.contains(&Action::Close(OUT)));
    assert_eq!(
        sent(&a, OUT).len(),
        1,
        "only the Cease on the losing connection"
    );
    establish_rest(&mut fsm, IN, [10, 0, 0, 9]);
    assert_eq!(fsm.established().unwrap().direction, IN);
}

fn establish_rest(fsm: &mut Fsm, dir: Direction, id: [u8; 4]) {
    if fsm.state() == PeerState::OpenSent {
        step(fsm, Event::Received(dir, peer_open(64513, 90, id)));
    }
    let a = step(fsm, Event::Received(dir, Message::Keepalive));
    assert!(a.iter().any(|a| matches!(a, Action::Up(_))), "{a:?}");
}

#[test]
fn a_connection_colliding_with_an_established_one_is_closed() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    establish(&mut fsm, OUT, 90);
    let a = step(&mut fsm, Event::Connected(IN));
    assert_eq!(
        notification_code(&a, IN),
        Some(ErrorCode::Cease(
            CeaseSubcode::ConnectionCollisionResolution
        ))
    );
    assert_eq!(fsm.state(), PeerState::Established);
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    step(&mut fsm, Event::Connected(OUT));
    let a = step(
        &mut fsm,
        Event::Received(OUT, Message::Update(Update::default())),
    );
    assert_eq!(
        notification_code(&a, OUT),
        Some(ErrorCode::FiniteStateMachine(
            FsmSubcode::UnexpectedMessageInOpenSent
        ))
    );
}

/// An UPDATE the I/O task keeps ([`Event::UpdateReceived`]) is handled as the same UPDATE
/// received whole: in every stage, the same actions, with [`Action::DeliverReceived`] in
/// place of [`Action::Deliver`], and the same state after.
#[test]
fn kept_updates_are_handled_as_received_ones() {
    // Connected (OpenSent), OPEN received (OpenConfirm), established with a hold time,
    // established without one.
    let stages: [&dyn Fn(&mut Fsm); 4] = [
        &|f| drop(step(f, Event::Connected(OUT))),
        &|f| {
            step(f, Event::Connected(OUT));
            step(f, Event::Received(OUT, peer_open(64513, 90, [10, 0, 0, 1])));
        },
        &|f| drop(establish(f, OUT, 90)),
        &|f| drop(establish(f, OUT, 0)),
    ];
    for reach in stages {
        let (mut whole, mut kept) = (Fsm::new(config(false)), Fsm::new(config(false)));
        for fsm in [&mut whole, &mut kept] {
            step(fsm, Event::Start);
            reach(fsm);
        }
        let update = Update::default();
        let a = step(
            &mut whole,
            Event::Received(OUT, Message::Update(update.clone())),
        );
        let b = step(&mut kept, Event::UpdateReceived(OUT));
        let b: Vec<Action> = b
            .into_iter()
            .map(|a| match a {
                Action::DeliverReceived => Action::Deliver(update.clone()),
                other => other,
            })
            .collect();
        assert_eq!(a, b);
        assert_eq!(whole.state(), kept.state());
        assert_eq!(whole.last_error(), kept.last_error());
    }
}

#[test]
fn stop_sends_cease_and_goes_idle() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    establish(&mut fsm, OUT, 90);
    let a = step(&mut fsm, Event::Stop(CeaseSubcode::PeerDeconfigured));
    assert_eq!(
        notification_code(&a, OUT),
        Some(ErrorCode::Cease(CeaseSubcode::PeerDeconfigured))
    );
    assert!(a.iter().any(|a| matches!(a, Action::Down(_))));
    assert!(!a.iter().any(|a| matches!(a, Action::StartTimer(..))));
    assert_eq!(fsm.state(), PeerState::Idle);
}

// Graceful restart (RFC 4724): which endings keep the peer's routes, and our capability.

fn gr_config(restarting: bool) -> SessionConfig {
    SessionConfig {
        graceful_restart: Some(GracefulRestart {
            restart_time: 120,
            restarting,
        }),
        ..config(false)
    }
}

/// The peer's OPEN with a graceful restart capability listing `families` (with the F bit
/// when `forwarding`).
fn gr_open(families: &[AfiSafi], forwarding: bool) -> Message {
    gr_open_flags(families, forwarding, 0)
}

/// [`gr_open`] from a peer that has just restarted (the Restart State bit set).
fn restarted_open(families: &[AfiSafi], forwarding: bool) -> Message {
    gr_open_flags(families, forwarding, GR_RESTART_STATE)
}

fn gr_open_flags(families: &[AfiSafi], forwarding: bool, flags: u8) -> Message {
    let Message::Open(mut open) = peer_open(64513, 90, [10, 0, 0, 1]) else {
        unreachable!()
    };
    open.capabilities.push(Capability::GracefulRestart {
        flags,
        time: 30,
        families: families
            .iter()
            .map(|f| GracefulRestartFamily {
                family: *f,
                flags: if forwarding { 0x80 } else { 0 },
            })
            .collect(),
    });
    Message::Open(open)
}

fn establish_with(fsm: &mut Fsm, dir: Direction, open: Message) -> Vec<Action> {
    let mut all = step(fsm, Event::Connected(dir));
    all.extend(step(fsm, Event::Received(dir, open)));
    all.extend(step(fsm, Event::Received(dir, Message::Keepalive)));
    all
}

fn down(actions: &[Action]) -> Option<SessionDown> {
    actions.iter().find_map(|a| match a {
        Action::Down(d) => Some(d.clone()),
        _ => None,
    })
}

fn gr_capability(open: &Open) -> Option<(u8, u16, Vec<GracefulRestartFamily>)> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart {
            flags,
            time,
            families,
        } => Some((*flags, *time, families.clone())),
        _ => None,
    })
}

fn sent_open(actions: &[Action], dir: Direction) -> Open {
    sent(actions, dir)
        .into_iter()
        .find_map(|m| match m {
            Message::Open(o) => Some(o),
            _ => None,
        })
        .expect("an OPEN")
}

#[test]
fn graceful_restart_is_negotiated_with_the_peers_families_and_forwarding_bits() {
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    let a = establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    let up = a
        .iter()
        .find_map(|a| match a {
            Action::Up(n) => Some(n.clone()),
            _ => None,
        })
        .expect("Up");
    let gr = up.graceful_restart.expect("negotiated");
    assert_eq!(gr.restart_time, 30);
    assert!(gr.forwarding_preserved(AfiSafi::IPV4_UNICAST));
    assert!(!gr.forwarding_preserved(AfiSafi::IPV6_UNICAST));

    // Without our own capability the peer's is ignored.
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    assert_eq!(fsm.established().unwrap().graceful_restart, None);
}

#[test]
fn tcp_closed_is_graceful_only_when_the_peer_listed_families() {
    for (families, expect) in [
        (&[AfiSafi::IPV4_UNICAST][..], true),
        // BIRD's default ("graceful restart aware"): the capability with no family.
        (&[][..], false),
    ] {
        let mut fsm = Fsm::new(gr_config(false));
        step(&mut fsm, Event::Start);
        establish_with(&mut fsm, OUT, gr_open(families, false));
        let a = step(&mut fsm, Event::Closed(OUT, "closed by peer".into()));
        assert_eq!(
            down(&a).map(|d| d.graceful),
            Some(expect),
            "families {families:?}: {a:?}"
        );
        assert_eq!(
            notification_code(&a, OUT),
            None,
            "nothing to send on a closed connection"
        );
    }
    // Neither when we do not advertise graceful restart.
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    let a = step(&mut fsm, Event::Closed(OUT, "closed by peer".into()));
    assert_eq!(down(&a).map(|d| d.graceful), Some(false));
}

#[test]
fn notification_received_is_not_graceful() {
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    let a = step(
        &mut fsm,
        Event::Received(
            OUT,
            Message::Notification(calico_bgp::packet::Notification::cease(
                CeaseSubcode::AdministrativeShutdown,
            )),
        ),
    );
    assert_eq!(down(&a).map(|d| d.graceful), Some(false), "{a:?}");
}

#[test]
fn hold_timer_expiry_is_not_graceful() {
    // RFC 4724 without RFC 8538: a silent peer is withdrawn at once, with a NOTIFICATION.
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    let a = step(&mut fsm, Event::TimerExpired(Timer::Hold(OUT)));
    assert_eq!(
        notification_code(&a, OUT),
        Some(ErrorCode::HoldTimerExpired)
    );
    assert_eq!(down(&a).map(|d| d.graceful), Some(false), "{a:?}");
}

#[test]
fn a_malformed_message_is_not_graceful() {
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    let a = step(
        &mut fsm,
        Event::Malformed(OUT, calico_bgp::packet::DecodeError::NotSynchronized),
    );
    assert!(notification_code(&a, OUT).is_some());
    assert_eq!(down(&a).map(|d| d.graceful), Some(false), "{a:?}");
}

#[test]
fn a_gr_peer_reconnecting_in_place_of_its_established_session_restarted() {
    // RFC 4724 §4.2: an OPEN with graceful restart on a new connection while the session is
    // established: the old session is taken as ended (gracefully) and the new one proceeds.
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    // The connection alone decides nothing: it may be a late side of a collision.
    let a = step(&mut fsm, Event::Connected(IN));
    assert_eq!(down(&a), None, "{a:?}");
    assert!(matches!(&sent(&a, IN)[..], [Message::Open(_)]), "{a:?}");
    assert!(fsm.established().is_some());
    // Its OPEN does: it says it restarted.
    let a = step(
        &mut fsm,
        Event::Received(IN, restarted_open(&[AfiSafi::IPV4_UNICAST], true)),
    );
    assert_eq!(down(&a).map(|d| d.graceful), Some(true), "{a:?}");
    assert!(a.contains(&Action::Close(OUT)));
    assert_eq!(notification_code(&a, IN), None);
    assert_eq!(notification_code(&a, OUT), None);
    let a = step(&mut fsm, Event::Received(IN, Message::Keepalive));
    assert!(a.iter().any(|a| matches!(a, Action::Up(_))), "{a:?}");
    assert_eq!(fsm.established().unwrap().direction, IN);
}

#[test]
fn a_stray_connection_from_a_gr_peer_does_not_end_the_established_session() {
    // The peer's own connect attempt of a collision, arriving after our connection won: it
    // is closed (a Cease from the peer, or just TCP) and the session stays up.
    for end in [
        Event::Received(
            IN,
            Message::Notification(Notification::cease(
                CeaseSubcode::ConnectionCollisionResolution,
            )),
        ),
        Event::Closed(IN, "reset".into()),
        Event::TimerExpired(Timer::Hold(IN)),
    ] {
        let mut fsm = Fsm::new(gr_config(false));
        step(&mut fsm, Event::Start);
        establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
        let mut a = step(&mut fsm, Event::Connected(IN));
        a.extend(step(&mut fsm, end));
        assert_eq!(down(&a), None, "{a:?}");
        assert!(!a.contains(&Action::Close(OUT)), "{a:?}");
        assert_eq!(fsm.established().unwrap().direction, OUT);
    }
}

/// The two sides of one collision, each arriving after the other side was established:
/// the session stays up on both peers (it was counted as a flap on both when either OPEN
/// ended it).
#[test]
fn a_late_side_of_a_collision_does_not_end_the_established_session() {
    let families = [AfiSafi::IPV4_UNICAST];
    // Our connection connected while the peer's was in OpenConfirm; the peer's OPEN on it
    // arrives once the peer's is established. The peer restarted (R): still ours is the
    // stray connection.
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    step(&mut fsm, Event::Connected(IN));
    step(
        &mut fsm,
        Event::Received(IN, restarted_open(&families, true)),
    );
    step(&mut fsm, Event::Connected(OUT));
    let a = step(&mut fsm, Event::Received(IN, Message::Keepalive));
    assert!(a.iter().any(|a| matches!(a, Action::Up(_))), "{a:?}");
    let a = step(
        &mut fsm,
        Event::Received(OUT, restarted_open(&families, true)),
    );
    assert_eq!(down(&a), None, "{a:?}");
    assert!(a.contains(&Action::Close(OUT)), "{a:?}");
    assert_eq!(
        notification_code(&a, OUT),
        Some(ErrorCode::Cease(
            CeaseSubcode::ConnectionCollisionResolution
        ))
    );
    assert_eq!(fsm.established().unwrap().direction, IN);

    // The other peer's view: the restarted speaker's session is established, and the
    // connection the (not restarted) peer opened before that brings its OPEN.
    let mut fsm = Fsm::new(gr_config(true));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&families, true));
    step(&mut fsm, Event::Connected(IN));
    let a = step(&mut fsm, Event::Received(IN, gr_open(&families, true)));
    assert_eq!(down(&a), None, "{a:?}");
    assert!(a.contains(&Action::Close(IN)), "{a:?}");
    assert_eq!(fsm.established().unwrap().direction, OUT);
}

#[test]
fn an_open_without_graceful_restart_beside_an_established_session_is_a_collision() {
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    step(&mut fsm, Event::Connected(IN));
    let a = step(
        &mut fsm,
        Event::Received(IN, peer_open(64513, 90, [10, 0, 0, 1])),
    );
    assert_eq!(down(&a), None, "{a:?}");
    assert!(notification_code(&a, IN).is_some(), "{a:?}");
    assert!(a.contains(&Action::Close(IN)));
    assert_eq!(fsm.established().unwrap().direction, OUT);
}

#[test]
fn stop_for_restart_closes_without_notification() {
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true));
    let a = step(&mut fsm, Event::StopForRestart);
    assert!(sent(&a, OUT).is_empty(), "{a:?}");
    assert!(a.contains(&Action::Close(OUT)));
    assert!(!a.iter().any(|a| matches!(a, Action::StartTimer(..))));
    assert_eq!(fsm.state(), PeerState::Idle);
}

#[test]
fn our_capability_sets_restart_and_forwarding_bits_as_it_should() {
    // A fresh speaker: families listed, no bits.
    let mut fsm = Fsm::new(gr_config(false));
    step(&mut fsm, Event::Start);
    let a = step(&mut fsm, Event::Connected(OUT));
    let (flags, time, families) = gr_capability(&sent_open(&a, OUT)).expect("capability");
    assert_eq!((flags, time), (0, 120));
    assert_eq!(
        families,
        vec![GracefulRestartFamily {
            family: AfiSafi::IPV4_UNICAST,
            flags: 0
        }]
    );

    // A restarting speaker: R and F.
    let mut fsm = Fsm::new(gr_config(true));
    step(&mut fsm, Event::Start);
    let a = step(&mut fsm, Event::Connected(OUT));
    let (flags, _, families) = gr_capability(&sent_open(&a, OUT)).unwrap();
    assert_eq!(flags & 0x8, 0x8, "R bit");
    assert_eq!(families[0].flags, 0x80, "F bit");
    // Once established, the restart is over: a later session has F (we kept running) but
    // not R.
    step(
        &mut fsm,
        Event::Received(OUT, gr_open(&[AfiSafi::IPV4_UNICAST], true)),
    );
    step(&mut fsm, Event::Received(OUT, Message::Keepalive));
    step(&mut fsm, Event::Closed(OUT, "reset".into()));
    step(&mut fsm, Event::TimerExpired(Timer::ConnectRetry));
    let a = step(&mut fsm, Event::Connected(OUT));
    let (flags, _, families) = gr_capability(&sent_open(&a, OUT)).unwrap();
    assert_eq!(flags & 0x8, 0, "no R bit after the restart");
    assert_eq!(families[0].flags, 0x80, "F bit");
}

// ADD-PATH (RFC 7911): our capability, and per family and direction what is used.

fn add_path_config(families: &[AfiSafi], receive: bool, send: bool) -> SessionConfig {
    SessionConfig {
        families: families.to_vec(),
        add_path: families
            .iter()
            .map(|f| AddPathFamily {
                family: *f,
                receive,
                send,
            })
            .collect(),
        ..config(false)
    }
}

/// The peer's OPEN offering `families` with ADD-PATH capability `value` (raw bytes).
fn add_path_open(families: &[AfiSafi], value: Vec<u8>) -> Message {
    let Message::Open(mut open) = peer_open(64513, 90, [10, 0, 0, 1]) else {
        unreachable!()
    };
    open.capabilities
        .retain(|c| !matches!(c, Capability::Multiprotocol(_)));
    for f in families {
        open.capabilities.push(Capability::Multiprotocol(*f));
    }
    // Through the codec, as it comes from the wire.
    open.capabilities
        .push(Capability::Unknown { code: 69, value });
    let bytes = Message::Open(open).encode(&Context::default()).unwrap();
    calico_bgp::packet::decode(&bytes, &Context::default()).unwrap()
}

fn negotiated(config: SessionConfig, open: Message) -> Negotiated {
    let mut fsm = Fsm::new(config);
    step(&mut fsm, Event::Start);
    establish_with(&mut fsm, OUT, open)
        .iter()
        .find_map(|a| match a {
            Action::Up(n) => Some(n.clone()),
            _ => None,
        })
        .expect("Up")
}

#[test]
fn our_add_path_capability_lists_each_family_with_its_directions() {
    let both = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];
    let mut fsm = Fsm::new(add_path_config(&both, true, false));
    step(&mut fsm, Event::Start);
    let a = step(&mut fsm, Event::Connected(OUT));
    let open = sent_open(&a, OUT);
    let caps: Vec<_> = open
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::AddPath(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        caps.len(),
        1,
        "one capability for every family (RFC 7911 §4)"
    );
    assert_eq!(
        caps[0]
            .iter()
            .map(|f| (f.family, f.send_receive()))
            .collect::<Vec<_>>(),
        vec![(AfiSafi::IPV4_UNICAST, 1), (AfiSafi::IPV6_UNICAST, 1)]
    );
    // Off: no capability at all.
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    let open = sent_open(&step(&mut fsm, Event::Connected(OUT)), OUT);
    assert!(!open.has(69));
}

#[test]
fn add_path_is_used_per_family_only_in_the_directions_both_sides_offered() {
    let (v4, v6) = (AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST);
    let both = [v4, v6];
    // The peer: IPv4 send+receive (3), IPv6 receive only (1).
    let peer = || add_path_open(&both, vec![0, 1, 1, 3, 0, 2, 1, 1]);
    let n = negotiated(add_path_config(&both, true, true), peer());
    assert_eq!(n.add_path_send, AddPathFamilies::of([v4, v6]));
    assert_eq!(n.add_path_receive, AddPathFamilies::of([v4]));
    assert!(n.receive_context().add_path.contains(v4));
    assert!(!n.receive_context().add_path.contains(v6));
    assert!(n.send_context().add_path.contains(v6));
    // We only receive: nothing is sent with path identifiers.
    let n = negotiated(add_path_config(&both, true, false), peer());
    assert!(n.add_path_send.is_empty());
    assert_eq!(n.add_path_receive, AddPathFamilies::of([v4]));
    // A family the peer does not offer in Multiprotocol is not used, whatever its ADD-PATH.
    let n = negotiated(
        add_path_config(&both, true, true),
        add_path_open(&[v4], vec![0, 1, 1, 3, 0, 2, 1, 3]),
    );
    assert_eq!(n.add_path_send, AddPathFamilies::of([v4]));
    assert_eq!(n.add_path_receive, AddPathFamilies::of([v4]));
    // We did not advertise ADD-PATH: the peer's is ignored.
    let n = negotiated(config(false), add_path_open(&[v4], vec![0, 1, 1, 3]));
    assert!(n.add_path_send.is_empty() && n.add_path_receive.is_empty());
}

#[test]
fn a_malformed_add_path_capability_is_ignored_and_the_session_comes_up() {
    let v4 = AfiSafi::IPV4_UNICAST;
    for value in [
        vec![0, 1, 1],          // not a multiple of 4
        vec![0, 1, 1, 0],       // Send/Receive 0
        vec![0, 1, 1, 4],       // Send/Receive 4
        vec![0, 1, 1, 3, 0, 2], // a truncated second entry
    ] {
        let open = add_path_open(&[v4], value.clone());
        let Message::Open(o) = &open else {
            unreachable!()
        };
        assert!(
            o.capabilities.contains(&Capability::Unknown {
                code: 69,
                value: value.clone()
            }),
            "{value:?} kept as not understood"
        );
        let n = negotiated(add_path_config(&[v4], true, true), open);
        assert!(n.add_path_send.is_empty(), "{value:?}");
        assert!(n.add_path_receive.is_empty(), "{value:?}");
    }
}

#[test]
fn only_a_plain_route_refresh_asks_for_the_routes_again() {
    let mut fsm = Fsm::new(config(false));
    step(&mut fsm, Event::Start);
    establish(&mut fsm, OUT, 90);
    assert_eq!(fsm.state(), PeerState::Established);
    let refresh = |subtype| {
        let r = calico_bgp::packet::RouteRefresh {
            family: AfiSafi::IPV4_UNICAST,
            subtype,
        };
        Event::Received(OUT, Message::RouteRefresh(r))
    };
    let asked = |a: &[Action]| a.iter().any(|a| matches!(a, Action::Refresh(_)));
    assert!(asked(&step(&mut fsm, refresh(0))), "RFC 2918 request");
    for subtype in [1, 2, 3, 255] {
        // BoRR, EoRR (RFC 7313, not negotiated) and unknown subtypes: ignored.
        assert!(
            !asked(&step(&mut fsm, refresh(subtype))),
            "subtype {subtype}"
        );
    }
    assert_eq!(fsm.state(), PeerState::Established);
}

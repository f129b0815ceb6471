//! [`Speaker`]: the native BGP speaker behind [`BgpBackend`].
//!
//! One listener is shared by all peerings (connections are matched to peers by source
//! address); each peering runs its own [`crate::session`] task; one task owns the
//! [`crate::rib`] and sends every peer what changes for it.
//!
//! # Tasks and messages
//!
//! ```text
//!   Speaker (the BgpBackend API)                 changed() waiters
//!      │ Command: Configure, SetExports,              ▲
//!      │ Learned, Status, StopForRestart              │ watch (Output::Notify)
//!      ▼ (mpsc, bounded)                              │
//!   ┌──────────────────────── speaker task (task.rs) ─┴────────────────────────┐
//!   │ owns the listener and the PeerHandles; feeds the pure machine and        │
//!   │ carries out what it returns:                                             │
//!   │   SpeakerState (state.rs)                                                │
//!   │     in:  configure / set_exports / peer_event / stale_timers(now)        │
//!   │     out: StartPeer / StopPeer / Send(UPDATE bytes) / Notify              │
//!   └──▲───────────────────────────┬─────────────────────────────▲─────────────┘
//!      │ Command::Accepted         │ PeerCommand: Accepted,      │ (PeerId, PeerEvent):
//!      │ (same channel)            │ Send, Stop, StopForRestart  │ State, Up, Down,
//!      │                           ▼ (unbounded)                 │ Updates, Refresh, Credit
//!   listener task            peering task (session::io), one per peer, runs an Fsm
//!   (listener.rs)              │ bytes (unbounded)    ▲ decoded messages, end
//!                              ▼                      │ (a window of INBOUND_WINDOW bytes)
//!                         writer task            reader task   (one pair per connection)
//! ```
//!
//! The speaker task is the only owner of the RIB and the peers table, so nothing is
//! locked but the RIB's interner of attribute sets, which the peering tasks share to
//! intern the attributes of the UPDATEs they pass on (`rib::Importer`: that work is off
//! the speaker's thread, the bottleneck of a full table); a peering task never blocks on a socket (its writer drains a queue that takes
//! every message), so two speakers sending each other full tables cannot deadlock. The decisions (who is
//! sent what, which routes stay stale and until when) are all in [`state::SpeakerState`],
//! which the scenario tests (`tests/speaker_scenarios.rs`) drive without sockets.
//!
//! What a peer sends is bounded the other way: each connection's reader passes on at most
//! [`crate::session::INBOUND_WINDOW`] bytes of messages the speaker task has not handled
//! yet (a credit follows each batch's UPDATEs and is dropped once they are applied), then
//! stops reading, so that TCP slows a peer sending a full table down to the speed of the
//! RIB instead of decoded UPDATEs piling up in memory.
//!
//! Peerings over IPv4 carry IPv4 unicast, peerings over IPv6 carry IPv6 unicast. The next
//! hop of our own routes is our address on the session ("next hop self").
//!
//! A peer with a password is protected by TCP MD5 signatures (RFC 2385, [`md5`]): its key
//! is set on the listener (and updated or removed as the configuration changes) and on each
//! connection we open to it.
//!
//! # Graceful restart (RFC 4724)
//!
//! With [`SpeakerOptions::graceful_restart`] set (the default, restart time 120 s as in
//! Calico's BIRD configuration) the speaker advertises the capability for every family it
//! offers and acts on it both ways:
//!
//! * As receiving speaker: when a session with a peer that listed families in its
//!   capability ends without a NOTIFICATION (TCP closed or reset, or the peer connecting
//!   again in place of its established session), the peer's routes of those families stay
//!   in the RIB marked stale — still selected, advertised and in
//!   [`BgpBackend::learned_routes`]. If the peer is not back within the restart time it
//!   advertised, they are removed. When it is back, those of a family it did not keep its
//!   forwarding state for (F bit clear) are removed at once; the others once it sends its
//!   End-of-RIB for the family, or after [`GracefulRestartOptions::stale_routes_time`]
//!   without one. A hold timer expiry is not graceful: we send a NOTIFICATION and the
//!   routes go at once (RFC 8538, which would keep them, is not implemented), so a peer
//!   that vanishes is withdrawn within its hold time. A NOTIFICATION either way, or a
//!   deconfigured peer, withdraws at once too.
//! * As restarting speaker: [`Speaker::stop_for_restart`] closes every session without a
//!   NOTIFICATION, so peers keep our routes; a speaker started afterwards with
//!   [`GracefulRestartOptions::restarting`] sets the Restart State and Forwarding State
//!   bits, sends its routes and then End-of-RIB, whereupon peers drop what it no longer
//!   announces. Set its exports before its first [`BgpBackend::configure`] (or soon
//!   after: a restarting speaker holds its End-of-RIB back until exports are set once).
//!   Our own best-path selection is not deferred until the peers' End-of-RIB (RFC 4724
//!   §4.1 suggests it): routes are selected and handed on as they arrive.
//!
//! # ADD-PATH (RFC 7911)
//!
//! A peering with [`PeerConfig::add_path`](calico_core::dataplane::PeerConfig::add_path)
//! advertises the capability for its family with the directions set. Where we offered to
//! receive and the peer to send, its NLRI carry path identifiers and each of its paths is
//! kept apart in the RIB (so a client behind a reflector keeps every equal-cost path, and
//! installs them all as ECMP). Where we offered to send and the peer to receive, the peer
//! is sent every member of each prefix's multipath set (the paths equal down to the IGP
//! cost step of the decision process, as [`crate::rib::decision::select`] defines them)
//! that the export rules let through, each under a path identifier that stays the same
//! while the path is advertised, and withdrawn by that identifier; its Adj-RIB-Out is kept
//! for that (`add_path.rs`). Other peers are sent the best path alone, as before.
//!
//! # BFD
//!
//! A peering with [`PeerConfig::bfd`](calico_core::dataplane::PeerConfig::bfd) set runs a
//! BFD session ([`crate::bfd`]) to the peer's address, from
//! [`SpeakerOptions::listen_address`] when that is a specific address of the peer's family.
//! When it goes from Up to Down, the BGP session ends at once (Cease, "BFD Down") and its
//! routes are withdrawn, without waiting for the hold time.
//!
//! # Update groups and slow peers
//!
//! A change of the Loc-RIB or of our exports is computed and encoded once per update group
//! (`groups.rs`: peers whose sessions encode alike and whose export rules, filters and next
//! hop handling are equal) and the same bytes ([`SharedBytes`](crate::session::io::SharedBytes))
//! are queued for each member; the sources of the change's paths, and ADD-PATH peers, are
//! handled apart. A session's send queue that holds more than
//! [`SpeakerOptions::send_queue_limit`] bytes not yet written stalls: the peer is sent no
//! UPDATEs while the others go on, the prefixes that change meanwhile are noted, and once
//! the queue has drained the peer is sent the current state of each (`backlog.rs`). A peer
//! that never reads again is not dropped for it; its hold timer decides.
//!
//! End-of-RIB is sent after every table dump (session up, ROUTE-REFRESH), for every
//! negotiated family.
//!
//! ```no_run
//! use std::collections::BTreeSet;
//! use calico_bgp::speaker::Speaker;
//! use calico_core::dataplane::{BgpBackend, BgpSettings, PeerConfig};
//! use calico_core::model::AsNumber;
//!
//! # async fn example() -> Result<(), calico_core::dataplane::BackendError> {
//! let speaker = Speaker::new().expect("inside a tokio runtime");
//! speaker
//!     .configure(&BgpSettings {
//!         local_as: AsNumber(64512),
//!         router_id: "10.0.0.1".parse().unwrap(),
//!         listen_port: 179,
//!         cluster_id: None,
//!         peers: BTreeSet::from([PeerConfig {
//!             address: "10.0.0.2".parse().unwrap(),
//!             remote_as: AsNumber(64512),
//!             password: None,
//!             hold_time: 90,
//!             passive: false,
//!             route_reflector_client: false,
//!             bfd: None,
//!             add_path: Default::default(),
//!             session: Default::default(),
//!         }]),
//!         policy: Default::default(),
//!     })
//!     .await?;
//! speaker.set_exports(&BTreeSet::from(["10.65.1.0/26".parse().unwrap()])).await?;
//! let mut news = speaker.subscribe();
//! loop {
//!     if news.changed().await.is_err() {
//!         break; // the speaker stopped
//!     }
//!     for route in speaker.learned_routes().await? {
//!         println!("{} via {:?}", route.prefix, route.next_hops);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod add_path;
mod backlog;
mod groups;
pub mod gtsm;
pub mod interface;
mod listener;
pub mod md5;
mod options;
mod outbound;
mod peers;
mod refilter;
mod restart;
mod settings;
pub mod socket;
pub mod state;
mod task;

use std::sync::Arc;

use async_trait::async_trait;
use calico_core::dataplane::{
    BackendError, BgpBackend, BgpSettings, ExportedRoutes, LearnedRoute, PeerStatus,
};
use tokio::sync::{mpsc, oneshot, watch};

pub use self::options::{
    GracefulRestartError, GracefulRestartOptions, SpeakerOptions, DEFAULT_SEND_QUEUE_LIMIT,
};
use self::task::{Command, Task};
use crate::bfd::{BfdService, SessionStatus};

/// Why a [`Speaker`] cannot be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpeakerError {
    /// The speaker runs as tokio tasks: it must be created inside a tokio runtime.
    #[error("a BGP speaker must be created inside a tokio runtime")]
    NoRuntime,
    /// The listener handed to [`Speaker::with_listener`] cannot be used.
    #[error("the listener cannot be used: {0}")]
    Listener(#[from] std::io::Error),
    /// The thread the speaker's state machine runs on cannot be started.
    #[error("cannot start the speaker's thread: {0}")]
    Thread(std::io::Error),
}

/// A native BGP-4 speaker. Create it inside a tokio runtime, where its peerings run
/// (elsewhere its constructors return [`SpeakerError::NoRuntime`]); its state machine, the
/// RIB among it, runs on a thread of its own. It starts peering on
/// [`BgpBackend::configure`] and closes every session (Cease, administrative shutdown) when
/// dropped, or without a NOTIFICATION when stopped by [`Speaker::stop_for_restart`].
#[derive(Debug)]
pub struct Speaker {
    commands: mpsc::Sender<Command>,
    news: watch::Receiver<u64>,
    bfd: BfdService,
}

impl Speaker {
    /// A speaker with default options, in the process's network namespace.
    pub fn new() -> Result<Speaker, SpeakerError> {
        Speaker::with_options(SpeakerOptions::default())
    }

    /// A speaker with default options whose sockets (listener and outgoing connections)
    /// `sockets` opens, e.g. in another network namespace.
    pub fn with_sockets(sockets: Arc<dyn socket::SocketOpener>) -> Result<Speaker, SpeakerError> {
        Speaker::with_options(SpeakerOptions {
            sockets,
            ..SpeakerOptions::default()
        })
    }

    /// A speaker with the given options.
    pub fn with_options(options: SpeakerOptions) -> Result<Speaker, SpeakerError> {
        Speaker::start(options, None)
    }

    /// A speaker that accepts peers on an already-bound listener (then
    /// [`BgpSettings::listen_port`] is not used).
    pub fn with_listener(
        listener: std::net::TcpListener,
        options: SpeakerOptions,
    ) -> Result<Speaker, SpeakerError> {
        in_runtime()?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        Speaker::start(options, Some(listener))
    }

    fn start(
        options: SpeakerOptions,
        listener: Option<tokio::net::TcpListener>,
    ) -> Result<Speaker, SpeakerError> {
        in_runtime()?;
        let (news_tx, news) = watch::channel(0);
        let (bfd_tx, bfd_events) = mpsc::unbounded_channel();
        let bfd = BfdService::spawn(options.sockets.clone(), bfd_tx);
        let commands = Task::spawn(options, listener, news_tx, (bfd.clone(), bfd_events))
            .map_err(SpeakerError::Thread)?;
        Ok(Speaker {
            commands,
            news,
            bfd,
        })
    }

    /// The state of the BFD session of every peering that has BFD on ([`crate::bfd`]).
    pub async fn bfd_status(&self) -> Vec<SessionStatus> {
        self.bfd.status().await
    }

    /// Stops for a graceful restart (RFC 4724): every session is closed without a
    /// NOTIFICATION, so peers that negotiated graceful restart keep our routes (stale) for
    /// our restart time, and the listener is closed. Returns once the connections are
    /// closed (or after a bounded wait), so a new speaker, started with
    /// [`GracefulRestartOptions::restarting`], can take over at once.
    pub async fn stop_for_restart(self) {
        let _ = self.ask(Command::StopForRestart).await;
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, BackendError> {
        let (tx, rx) = oneshot::channel();
        let gone = || BackendError::Unavailable("BGP speaker task has stopped".into());
        self.commands.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

#[async_trait]
impl BgpBackend for Speaker {
    async fn configure(&self, settings: &BgpSettings) -> Result<(), BackendError> {
        self.ask(|tx| Command::Configure(settings.clone(), tx))
            .await?
    }

    async fn set_exported_routes(&self, routes: &ExportedRoutes) -> Result<(), BackendError> {
        let routes = routes.iter().map(|(p, i)| (p.trunc(), i.clone())).collect();
        self.ask(|tx| Command::SetExports(routes, tx)).await
    }

    async fn learned_routes(&self) -> Result<Vec<LearnedRoute>, BackendError> {
        let mut routes = self.ask(Command::Learned).await?;
        routes.sort();
        Ok(routes)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        let mut news = self.news.clone();
        news.mark_unchanged();
        news
    }

    async fn peer_status(&self) -> Result<Vec<PeerStatus>, BackendError> {
        self.ask(Command::Status).await
    }
}

/// Fails unless called inside a tokio runtime (where the speaker's tasks can be spawned).
fn in_runtime() -> Result<(), SpeakerError> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| SpeakerError::NoRuntime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_creating_a_speaker_fails_instead_of_panicking() {
        assert!(matches!(Speaker::new(), Err(SpeakerError::NoRuntime)));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let made = Speaker::with_listener(listener, SpeakerOptions::default());
        assert!(matches!(made, Err(SpeakerError::NoRuntime)));
    }

    #[tokio::test]
    async fn inside_a_runtime_creating_a_speaker_works() {
        assert!(Speaker::new().is_ok());
    }

    #[tokio::test]
    async fn a_filter_the_model_would_refuse_is_refused_by_configure() {
        use calico_core::model::{parse_resources, Resource};
        let text = "kind: BgpFilter\nname: f\nexportV4: [{action: Reject}]\n";
        let Resource::BgpFilter(mut f) = parse_resources(text).unwrap().remove(0) else {
            unreachable!("a BgpFilter")
        };
        f.export_v4[0].interface = Some("cali?".into());
        let mut settings = BgpSettings {
            local_as: calico_core::model::AsNumber(64512),
            router_id: "10.0.0.1".parse().unwrap(),
            listen_port: 0,
            cluster_id: None,
            peers: Default::default(),
            policy: Default::default(),
        };
        settings
            .policy
            .filters
            .insert("10.0.0.2".parse().unwrap(), vec![f]);
        let e = Speaker::new()
            .unwrap()
            .configure(&settings)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exportV4[0].interface"), "{e}");
    }
}

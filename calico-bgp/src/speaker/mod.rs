//! [`Speaker`]: the native BGP speaker behind [`BgpBackend`].
//!
//! One listener is shared by all peerings (connections are matched to peers by source
//! address); each peering runs its own [`crate::session`] task; one task owns the
//! [`crate::rib`] and sends every peer what changes for it.
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
//! let speaker = Speaker::new();
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
//!         }]),
//!     })
//!     .await?;
//! speaker.set_exports(&BTreeSet::from(["10.65.1.0/26".parse().unwrap()])).await?;
//! loop {
//!     speaker.changed().await;
//!     for route in speaker.learned_routes().await? {
//!         println!("{} via {:?}", route.prefix, route.next_hops);
//!     }
//! }
//! # }
//! ```

mod core;
pub mod md5;
pub mod socket;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use calico_core::dataplane::{BackendError, BgpBackend, BgpSettings, LearnedRoute, PeerStatus};
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use self::core::{Command, Core};

/// How a [`Speaker`] places its sockets and paces reconnection.
#[derive(Clone, Debug)]
pub struct SpeakerOptions {
    /// Address to listen on (`::`, dual stack, by default). The port comes from
    /// [`BgpSettings::listen_port`]. When it is a specific address, connections to peers
    /// of its family are made from it too (peers identify us by it).
    pub listen_address: IpAddr,
    /// TCP port of the peers (179).
    pub peer_port: u16,
    /// Opens every socket of the speaker (listener and outgoing connections); by default
    /// [`socket::OwnNamespace`], the process's network namespace. Inject one that creates
    /// them in another namespace to run the speaker for that namespace.
    pub sockets: Arc<dyn socket::SocketOpener>,
    /// First delay before reconnecting; doubles per failure.
    pub connect_retry_min: Duration,
    /// Longest delay before reconnecting.
    pub connect_retry_max: Duration,
    /// Graceful restart (RFC 4724); `None`: the capability is not advertised, peers'
    /// routes are withdrawn as soon as their session ends and ours as soon as we stop.
    pub graceful_restart: Option<GracefulRestartOptions>,
}

/// Graceful restart settings of a [`Speaker`] (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartOptions {
    /// How long peers are to keep our routes after our sessions end without a
    /// NOTIFICATION (advertised in whole seconds, at most 4095 s). Default 120 s.
    pub restart_time: Duration,
    /// This speaker starts after a restart of ours with the forwarding state (the routes
    /// in the kernel) preserved: peers keep our stale routes until our End-of-RIB, then
    /// drop those we did not announce again. Default `false`.
    pub restarting: bool,
    /// How long a peer that came back after a restart may take to send its End-of-RIB
    /// before its routes still stale are removed anyway: stale routes never outlive its
    /// restart time plus this. Default 360 s (as BIRD's stale time).
    pub stale_routes_time: Duration,
}

impl Default for GracefulRestartOptions {
    fn default() -> Self {
        GracefulRestartOptions {
            restart_time: Duration::from_secs(120),
            restarting: false,
            stale_routes_time: Duration::from_secs(360),
        }
    }
}

/// Why [`GracefulRestartOptions`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GracefulRestartError {
    /// The restart time does not fit the capability's 12 bits of seconds.
    #[error(
        "graceful_restart.restart_time: {0:?} is longer than the capability can carry (4095 s)"
    )]
    RestartTimeTooLong(Duration),
    /// The restart time has a fraction of a second (the capability carries seconds).
    #[error("graceful_restart.restart_time: {0:?} is not a whole number of seconds")]
    RestartTimeFraction(Duration),
}

impl GracefulRestartOptions {
    /// Largest restart time the capability can carry (12 bits of seconds).
    pub const MAX_RESTART_TIME: Duration = Duration::from_secs(0x0fff);

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), GracefulRestartError> {
        if self.restart_time > Self::MAX_RESTART_TIME {
            return Err(GracefulRestartError::RestartTimeTooLong(self.restart_time));
        }
        if self.restart_time.subsec_nanos() != 0 {
            return Err(GracefulRestartError::RestartTimeFraction(self.restart_time));
        }
        Ok(())
    }
}

impl Default for SpeakerOptions {
    fn default() -> Self {
        SpeakerOptions {
            listen_address: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            peer_port: 179,
            sockets: Arc::new(socket::OwnNamespace),
            connect_retry_min: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(60),
            graceful_restart: Some(GracefulRestartOptions::default()),
        }
    }
}

/// A native BGP-4 speaker. Create it inside a tokio runtime; it starts peering on
/// [`BgpBackend::configure`] and closes every session (Cease, administrative shutdown) when
/// dropped, or without a NOTIFICATION when stopped by [`Speaker::stop_for_restart`].
#[derive(Debug)]
pub struct Speaker {
    commands: mpsc::Sender<Command>,
    changed: Mutex<watch::Receiver<u64>>,
}

impl Default for Speaker {
    fn default() -> Self {
        Speaker::new()
    }
}

impl Speaker {
    /// A speaker with default options, in the process's network namespace.
    pub fn new() -> Speaker {
        Speaker::with_options(SpeakerOptions::default())
    }

    /// A speaker with default options whose sockets (listener and outgoing connections)
    /// `sockets` opens, e.g. in another network namespace.
    pub fn with_sockets(sockets: Arc<dyn socket::SocketOpener>) -> Speaker {
        Speaker::with_options(SpeakerOptions {
            sockets,
            ..SpeakerOptions::default()
        })
    }

    /// A speaker with the given options.
    pub fn with_options(options: SpeakerOptions) -> Speaker {
        Speaker::start(options, None)
    }

    /// A speaker that accepts peers on an already-bound listener (then
    /// [`BgpSettings::listen_port`] is not used).
    pub fn with_listener(
        listener: std::net::TcpListener,
        options: SpeakerOptions,
    ) -> std::io::Result<Speaker> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        Ok(Speaker::start(options, Some(listener)))
    }

    fn start(options: SpeakerOptions, listener: Option<tokio::net::TcpListener>) -> Speaker {
        let (changed_tx, changed_rx) = watch::channel(0);
        let commands = Core::spawn(options, listener, changed_tx);
        Speaker {
            commands,
            changed: Mutex::new(changed_rx),
        }
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

    async fn set_exports(&self, prefixes: &BTreeSet<IpNet>) -> Result<(), BackendError> {
        let prefixes = prefixes.iter().map(IpNet::trunc).collect();
        self.ask(|tx| Command::SetExports(prefixes, tx)).await
    }

    async fn learned_routes(&self) -> Result<Vec<LearnedRoute>, BackendError> {
        let mut routes = self.ask(Command::Learned).await?;
        routes.sort();
        Ok(routes)
    }

    async fn changed(&self) {
        let mut rx = self.changed.lock().await;
        if rx.changed().await.is_err() {
            // The core task ended: nothing will change any more.
            std::future::pending::<()>().await;
        }
    }

    async fn peer_status(&self) -> Result<Vec<PeerStatus>, BackendError> {
        self.ask(Command::Status).await
    }
}

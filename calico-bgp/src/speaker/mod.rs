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
//! ```no_run
//! use std::collections::BTreeSet;
//! use calico_bgp::speaker::Speaker;
//! use calico_core::backend::{BgpBackend, BgpSettings, PeerConfig};
//! use calico_core::model::AsNumber;
//!
//! # async fn example() -> Result<(), calico_core::backend::BackendError> {
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
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use calico_core::backend::{BackendError, BgpBackend, BgpSettings, LearnedRoute, PeerStatus};
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
    /// Network namespace (path such as `/var/run/netns/NAME`) to open every socket in;
    /// `None`: the process's namespace.
    pub netns: Option<PathBuf>,
    /// First delay before reconnecting; doubles per failure.
    pub connect_retry_min: Duration,
    /// Longest delay before reconnecting.
    pub connect_retry_max: Duration,
}

impl Default for SpeakerOptions {
    fn default() -> Self {
        SpeakerOptions {
            listen_address: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            peer_port: 179,
            netns: None,
            connect_retry_min: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(60),
        }
    }
}

/// A native BGP-4 speaker. Create it inside a tokio runtime; it starts peering on
/// [`BgpBackend::configure`] and closes every session (Cease, administrative shutdown) when
/// dropped.
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

    /// A speaker whose sockets (listener and outgoing connections) live in the network
    /// namespace at `path`, e.g. `/var/run/netns/NAME`.
    pub fn in_netns(path: impl Into<PathBuf>) -> Speaker {
        Speaker::with_options(SpeakerOptions {
            netns: Some(path.into()),
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

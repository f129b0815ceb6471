//! The settings a [`Speaker`](super::Speaker) is created with.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// How a [`Speaker`](super::Speaker) places its sockets and paces reconnection.
#[derive(Clone, Debug)]
pub struct SpeakerOptions {
    /// Address to listen on (`::`, dual stack, by default). The port comes from
    /// [`BgpSettings::listen_port`](calico_core::dataplane::BgpSettings::listen_port). When it is
    /// a specific address, connections to peers of its family are made from it too (peers
    /// identify us by it).
    pub listen_address: IpAddr,
    /// TCP port of the peers (179).
    pub peer_port: u16,
    /// Opens every socket of the speaker (listener and outgoing connections); by default
    /// [`OwnNamespace`](super::socket::OwnNamespace), the process's network namespace.
    /// Inject one that creates them in another namespace to run the speaker for that
    /// namespace.
    pub sockets: Arc<dyn super::socket::SocketOpener>,
    /// First delay before reconnecting; doubles per failure.
    pub connect_retry_min: Duration,
    /// Longest delay before reconnecting.
    pub connect_retry_max: Duration,
    /// Graceful restart (RFC 4724); `None`: the capability is not advertised, peers'
    /// routes are withdrawn as soon as their session ends and ours as soon as we stop.
    pub graceful_restart: Option<GracefulRestartOptions>,
    /// Bytes a session's send queue may hold, not yet written to its socket, before the
    /// peer is held back: it is sent no UPDATEs until the queue has drained, then the
    /// current state of what changed meanwhile (so that a peer reading slowly neither
    /// slows the others nor makes the queue grow without bound). Default 4 MiB.
    pub send_queue_limit: usize,
}

/// [`SpeakerOptions::send_queue_limit`] by default.
pub const DEFAULT_SEND_QUEUE_LIMIT: usize = 4 << 20;

/// Graceful restart settings of a [`Speaker`](super::Speaker) (see the
/// [module docs](super)).
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
#[non_exhaustive]
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
            sockets: Arc::new(super::socket::OwnNamespace),
            connect_retry_min: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(60),
            graceful_restart: Some(GracefulRestartOptions::default()),
            send_queue_limit: DEFAULT_SEND_QUEUE_LIMIT,
        }
    }
}

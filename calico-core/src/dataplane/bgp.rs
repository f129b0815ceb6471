//! The BGP contract: the speaker's settings, what it learned, the state of its peerings, and
//! the trait a speaker (native or BIRD) implements.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::BackendError;
use crate::wire::number_or_string;

/// An autonomous system number, 4-byte (RFC 6793). On the wire a number, a decimal string or
/// the "asdot" form `high.low`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsNumber(pub u32);

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for AsNumber {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((hi, lo)) = s.split_once('.') {
            let hi: u16 = hi
                .parse()
                .map_err(|_| format!("AS number {s:?}: {hi:?} is not a number 0-65535"))?;
            let lo: u16 = lo
                .parse()
                .map_err(|_| format!("AS number {s:?}: {lo:?} is not a number 0-65535"))?;
            return Ok(AsNumber(((hi as u32) << 16) | lo as u32));
        }
        s.parse()
            .map(AsNumber)
            .map_err(|_| format!("AS number {s:?} is not a number 0-4294967295"))
    }
}

impl Serialize for AsNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_string(d, AsNumber, |n| {
            format!("AS number {n} is out of range 0-4294967295")
        })
    }
}

/// A BGP peering to establish.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerConfig {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS (equal to ours: iBGP).
    pub remote_as: AsNumber,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// Hold time to offer, seconds.
    pub hold_time: u16,
    /// Only accept connections, never initiate.
    pub passive: bool,
    /// The peer is a route-reflector client of ours.
    pub route_reflector_client: bool,
    /// Bidirectional Forwarding Detection for the peering (RFC 5880/5881/5882); `None`: off.
    pub bfd: Option<BfdConfig>,
    /// ADD-PATH (RFC 7911) to offer the peer; off by default.
    pub add_path: AddPathConfig,
    /// Keepalive, graceful restart time, allowas-in, next hop mode, GTSM, source address.
    pub session: super::SessionOptions,
}

/// ADD-PATH (RFC 7911) for a peering: the capability is advertised, for every family of the
/// session, with what is set here; each direction is used only when the peer offers the
/// other side of it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddPathConfig {
    /// Send the peer every path of each prefix's multipath set (the equal-cost best paths),
    /// each with its own path identifier, instead of the best path alone.
    #[serde(default)]
    pub send: bool,
    /// Accept several paths of a prefix from the peer, told apart by path identifier.
    #[serde(default)]
    pub receive: bool,
}

impl AddPathConfig {
    /// Whether either direction is on (the capability is advertised).
    pub fn is_on(&self) -> bool {
        self.send || self.receive
    }
}

/// The timers of a BFD session (RFC 5880 §6.8.1), in asynchronous mode.
///
/// A peer is declared down after `multiplier` intervals without a packet: with the
/// defaults (300 ms × 3) within 900 ms, against a BGP hold time of seconds to minutes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdConfig {
    /// The interval at which we would like to send (`bfd.DesiredMinTxInterval`).
    #[serde(
        with = "millis",
        rename = "minTxIntervalMs",
        default = "BfdConfig::default_interval"
    )]
    pub min_tx: Duration,
    /// The shortest interval at which we can receive (`bfd.RequiredMinRxInterval`).
    #[serde(
        with = "millis",
        rename = "minRxIntervalMs",
        default = "BfdConfig::default_interval"
    )]
    pub min_rx: Duration,
    /// How many intervals without a packet declare the peer down (`bfd.DetectMult`).
    #[serde(default = "BfdConfig::default_multiplier")]
    pub multiplier: u8,
    /// Authentication of the session's packets (RFC 5880 §6.7); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<BfdAuth>,
}

/// A BFD authentication type (RFC 5880 §4.1, Auth Type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BfdAuthType {
    /// 1: the password itself in every packet (1–16 bytes). Guards against misconfiguration,
    /// not against anyone who can see a packet.
    SimplePassword,
    /// 2: an MD5 digest of packet and key (key 1–16 bytes); the sequence number may repeat.
    #[serde(rename = "KeyedMD5")]
    KeyedMd5,
    /// 3: as `KeyedMD5`, with a sequence number that grows with every packet (no replay).
    #[serde(rename = "MeticulousKeyedMD5")]
    MeticulousKeyedMd5,
    /// 4: a SHA-1 digest of packet and key (key 1–20 bytes); the sequence number may repeat.
    #[serde(rename = "KeyedSHA1")]
    KeyedSha1,
    /// 5: as `KeyedSHA1`, with a sequence number that grows with every packet (no replay).
    #[serde(rename = "MeticulousKeyedSHA1")]
    MeticulousKeyedSha1,
}

impl BfdAuthType {
    /// Every type, in the order of their codes.
    pub const ALL: [BfdAuthType; 5] = [
        BfdAuthType::SimplePassword,
        BfdAuthType::KeyedMd5,
        BfdAuthType::MeticulousKeyedMd5,
        BfdAuthType::KeyedSha1,
        BfdAuthType::MeticulousKeyedSha1,
    ];

    /// The Auth Type on the wire.
    pub fn code(self) -> u8 {
        match self {
            BfdAuthType::SimplePassword => 1,
            BfdAuthType::KeyedMd5 => 2,
            BfdAuthType::MeticulousKeyedMd5 => 3,
            BfdAuthType::KeyedSha1 => 4,
            BfdAuthType::MeticulousKeyedSha1 => 5,
        }
    }

    /// The longest key (password) the type carries: 16 bytes, 20 for SHA-1.
    pub fn max_key_len(self) -> usize {
        match self {
            BfdAuthType::KeyedSha1 | BfdAuthType::MeticulousKeyedSha1 => 20,
            _ => 16,
        }
    }

    /// Whether the sequence number must grow with every packet (the meticulous types).
    pub fn meticulous(self) -> bool {
        matches!(
            self,
            BfdAuthType::MeticulousKeyedMd5 | BfdAuthType::MeticulousKeyedSha1
        )
    }
}

impl fmt::Display for BfdAuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BfdAuthType::SimplePassword => "SimplePassword",
            BfdAuthType::KeyedMd5 => "KeyedMD5",
            BfdAuthType::MeticulousKeyedMd5 => "MeticulousKeyedMD5",
            BfdAuthType::KeyedSha1 => "KeyedSHA1",
            BfdAuthType::MeticulousKeyedSha1 => "MeticulousKeyedSHA1",
        })
    }
}

/// The authentication of a BFD session (RFC 5880 §6.7): one key, known by its id to both
/// ends. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdAuth {
    /// The authentication type.
    #[serde(rename = "type")]
    pub kind: BfdAuthType,
    /// The key's id (Auth Key ID), the same at both ends.
    #[serde(rename = "keyID", default)]
    pub key_id: u8,
    /// The shared key (for `SimplePassword`, the password), as its UTF-8 bytes.
    pub password: String,
}

impl fmt::Debug for BfdAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BfdAuth")
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl BfdAuth {
    /// Checks the key's length for its type; the error is the field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let len = self.password.len();
        let max = self.kind.max_key_len();
        if len == 0 || len > max {
            let why = format!("{len} bytes; {} takes 1-{max}", self.kind);
            return Err(("bfd.authentication.password", why));
        }
        Ok(())
    }
}

impl Default for BfdConfig {
    fn default() -> Self {
        BfdConfig {
            min_tx: BfdConfig::default_interval(),
            min_rx: BfdConfig::default_interval(),
            multiplier: BfdConfig::default_multiplier(),
            authentication: None,
        }
    }
}

impl BfdConfig {
    /// Shortest interval accepted: 10 ms (what a userspace implementation can keep).
    pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
    /// Longest interval accepted: 60 s.
    pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

    fn default_interval() -> Duration {
        Duration::from_millis(300)
    }

    fn default_multiplier() -> u8 {
        3
    }

    /// Checks the timers; the error is the field (as written in a `BgpPeer`) and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (field, d) in [
            ("bfd.minTxIntervalMs", self.min_tx),
            ("bfd.minRxIntervalMs", self.min_rx),
        ] {
            if d < Self::MIN_INTERVAL || d > Self::MAX_INTERVAL {
                let range = (
                    Self::MIN_INTERVAL.as_millis(),
                    Self::MAX_INTERVAL.as_millis(),
                );
                let why = format!("{} ms is outside {}-{} ms", d.as_millis(), range.0, range.1);
                return Err((field, why));
            }
        }
        if self.multiplier == 0 {
            return Err(("bfd.multiplier", "must be 1-255, not 0".into()));
        }
        self.authentication
            .as_ref()
            .map_or(Ok(()), BfdAuth::validate)
    }
}

/// Durations as whole milliseconds on the wire.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Everything a BGP backend needs to run this host's speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpSettings {
    /// Our AS.
    pub local_as: AsNumber,
    /// Our router id (the node's IPv4 address).
    pub router_id: Ipv4Addr,
    /// TCP port to listen on.
    pub listen_port: u16,
    /// Set when this speaker is a route reflector.
    pub cluster_id: Option<Ipv4Addr>,
    /// The peerings.
    pub peers: BTreeSet<PeerConfig>,
    /// Communities and filters for the routes exchanged with the peers.
    pub policy: super::RoutePolicy,
}

/// A best route learned from peers, with every equal-cost next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnedRoute {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Next hops of all equally good paths (more than one means ECMP).
    pub next_hops: BTreeSet<IpAddr>,
}

/// State of one peering (RFC 4271 FSM states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerState {
    /// Not trying.
    Idle,
    /// Connecting.
    Connect,
    /// Waiting for the peer to connect.
    Active,
    /// OPEN sent.
    OpenSent,
    /// OPEN received, waiting for KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
}

/// What an orchestrator can read about one peering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's address.
    pub address: IpAddr,
    /// FSM state.
    pub state: PeerState,
    /// Prefixes accepted from the peer.
    pub prefixes_received: usize,
    /// The session is established and the peer's initial table is complete: it sent
    /// End-of-RIB (RFC 4724) for every family of the session since it came up. A backend
    /// that cannot tell reports `state == Established`. An agent that kept its routes
    /// across a restart waits for this before dropping those no peer announces again.
    pub end_of_rib_received: bool,
    /// The last error seen on the session, for an operator.
    pub last_error: Option<String>,
    /// Counters of the peering, for metrics; `None` where a backend cannot tell.
    pub counters: PeerCounters,
}

/// Counters of one peering since it was configured (what `bird_exporter` gives BIRD users).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// When the current session was established (wall clock); `None` when not established.
    pub established_since: Option<std::time::SystemTime>,
    /// Established sessions that ended.
    pub flaps: Option<u64>,
    /// UPDATE messages received (End-of-RIB included).
    pub updates_received: Option<u64>,
    /// UPDATE messages sent (End-of-RIB included).
    pub updates_sent: Option<u64>,
    /// Prefixes currently advertised to the peer.
    pub prefixes_advertised: Option<usize>,
}

/// This node's own routes to advertise: each prefix with the interface its route leaves by
/// (a workload's interface), or `None` for a blackhole (an IPAM block). `BGPFilter` rules
/// with `interface` match on it.
pub type ExportedRoutes = BTreeMap<IpNet, Option<String>>;

/// Spreads this host's routes and learns the others'.
///
/// Declarative: the agent states the exports it wants; the backend converges on them.
#[async_trait]
pub trait BgpBackend: Send + Sync {
    /// Sets (or changes) the speaker's configuration and peerings.
    async fn configure(&self, settings: &BgpSettings) -> Result<(), BackendError>;
    /// Sets the complete set of locally originated routes to advertise.
    async fn set_exported_routes(&self, routes: &ExportedRoutes) -> Result<(), BackendError>;
    /// Sets the complete set of locally originated prefixes to advertise, none of them
    /// with an interface (as blocks are).
    async fn set_exports(&self, prefixes: &BTreeSet<IpNet>) -> Result<(), BackendError> {
        let routes = prefixes.iter().map(|p| (*p, None)).collect();
        self.set_exported_routes(&routes).await
    }
    /// The current best routes learned from peers.
    async fn learned_routes(&self) -> Result<Vec<LearnedRoute>, BackendError>;
    /// A subscription to news: the receiver's `changed()` resolves once what
    /// [`learned_routes`](Self::learned_routes) or [`peer_status`](Self::peer_status) report
    /// may have changed since that receiver last looked. Any number of callers may hold one;
    /// each sees every change (the value counts changes and means nothing else). When the
    /// backend has stopped for good, `changed()` returns an error: nothing will change any
    /// more.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The state of every peering.
    async fn peer_status(&self) -> Result<Vec<PeerStatus>, BackendError>;
}

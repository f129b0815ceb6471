//! [`MockBgp`]: speakers that exchange routes through a shared in-memory fabric.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use calico_core::dataplane::{
    BackendError, BgpBackend, BgpSettings, ExportedRoutes, LearnedRoute, PeerState, PeerStatus,
};
use ipnet::IpNet;
use tokio::sync::watch;

#[derive(Debug)]
struct Fabric {
    /// Speaker address → its exports.
    exports: BTreeMap<IpAddr, BTreeSet<IpNet>>,
    /// Speakers that are down (their routes are withdrawn).
    down: BTreeSet<IpAddr>,
    version: watch::Sender<u64>,
}

/// The shared medium of a set of [`MockBgp`] speakers: a full mesh where every speaker
/// learns every other speaker's exports with that speaker's address as next hop.
#[derive(Clone, Debug)]
pub struct MockBgpFabric(Arc<Mutex<Fabric>>);

impl Default for MockBgpFabric {
    fn default() -> Self {
        Self::new()
    }
}

impl MockBgpFabric {
    /// An empty fabric.
    pub fn new() -> Self {
        MockBgpFabric(Arc::new(Mutex::new(Fabric {
            exports: BTreeMap::new(),
            down: BTreeSet::new(),
            version: watch::channel(0).0,
        })))
    }

    fn fabric(&self) -> std::sync::MutexGuard<'_, Fabric> {
        self.0.lock().expect("MockBgpFabric lock")
    }

    /// A speaker on the fabric at `address`.
    pub fn speaker(&self, address: IpAddr) -> MockBgp {
        self.fabric().exports.entry(address).or_default();
        MockBgp {
            fabric: self.clone(),
            address,
        }
    }

    /// Takes a speaker down (its routes are withdrawn from the others) or up again.
    pub fn set_down(&self, address: IpAddr, down: bool) {
        let mut f = self.fabric();
        if down {
            f.down.insert(address);
        } else {
            f.down.remove(&address);
        }
        f.version.send_modify(|v| *v += 1);
    }

    /// The best routes a speaker at `address` learns: every prefix exported by another live
    /// speaker, with all of them as next hops (ECMP).
    pub fn learned_by(&self, address: IpAddr) -> Vec<LearnedRoute> {
        let f = self.fabric();
        let mut by_prefix: BTreeMap<IpNet, BTreeSet<IpAddr>> = BTreeMap::new();
        for (speaker, prefixes) in &f.exports {
            if *speaker == address || f.down.contains(speaker) || f.down.contains(&address) {
                continue;
            }
            for p in prefixes {
                by_prefix.entry(*p).or_default().insert(*speaker);
            }
        }
        by_prefix
            .into_iter()
            .map(|(prefix, next_hops)| LearnedRoute { prefix, next_hops })
            .collect()
    }

    fn set_exports(&self, address: IpAddr, prefixes: &BTreeSet<IpNet>) {
        let mut f = self.fabric();
        if f.exports.get(&address) != Some(prefixes) {
            f.exports.insert(address, prefixes.clone());
            f.version.send_modify(|v| *v += 1);
        }
    }
}

/// One host's speaker on a [`MockBgpFabric`], implementing [`BgpBackend`].
#[derive(Debug)]
pub struct MockBgp {
    fabric: MockBgpFabric,
    address: IpAddr,
}

impl MockBgp {
    /// The speaker's address (the next hop others learn).
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Sets the exports synchronously.
    pub fn export(&self, prefixes: &BTreeSet<IpNet>) {
        self.fabric.set_exports(self.address, prefixes);
    }
}

#[async_trait]
impl BgpBackend for MockBgp {
    async fn configure(&self, _settings: &BgpSettings) -> Result<(), BackendError> {
        Ok(())
    }

    async fn set_exported_routes(&self, routes: &ExportedRoutes) -> Result<(), BackendError> {
        self.export(&routes.keys().copied().collect());
        Ok(())
    }

    async fn learned_routes(&self) -> Result<Vec<LearnedRoute>, BackendError> {
        Ok(self.fabric.learned_by(self.address))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.fabric.fabric().version.subscribe()
    }

    async fn peer_status(&self) -> Result<Vec<PeerStatus>, BackendError> {
        let f = self.fabric.fabric();
        Ok(f.exports
            .keys()
            .filter(|a| **a != self.address)
            .map(|a| PeerStatus {
                address: *a,
                state: if f.down.contains(a) {
                    PeerState::Idle
                } else {
                    PeerState::Established
                },
                prefixes_received: if f.down.contains(a) {
                    0
                } else {
                    f.exports[a].len()
                },
                // The fabric hands a peer's whole table over at once.
                end_of_rib_received: !f.down.contains(a),
                last_error: None,
                counters: Default::default(),
            })
            .collect())
    }
}

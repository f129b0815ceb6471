//! IPAM over etcd: Calico's block allocation, in Calico's own keys and values, so calico-rs
//! and Calico hosts can share one pool.
//!
//! * Pools ([`IpPool`]) are cut into blocks (/26 for IPv4, /122 for IPv6 by default).
//! * A host claims a block in three compare-and-swap steps: its affinity is written
//!   `pending` (only if absent), the block is created (only if absent) with the host's
//!   affinity, then the affinity is `confirmed`. A host that loses the race for the block
//!   deletes its pending affinity and tries another block.
//! * Addresses are assigned from the host's own blocks: the block and the handle are
//!   written in one etcd transaction compared against the revisions read, retried on a
//!   conflict with the values the failed transaction returned.
//! * When its blocks are full and no block is left to claim, the host borrows an address
//!   from another host's block (unless `strict_affinity`), as Calico does.
//! * Release frees the address and decrements (or deletes) its handle in one transaction;
//!   release by handle visits the blocks the handle records. Blocks stay affine to their
//!   host once empty, as in Calico.
//!
//! Not done here (Calico does them elsewhere or later): reclaiming another host's empty
//! blocks, releasing a host's affinities, reserved addresses (`IPReservation`), pool node
//! selectors, and the release cooldown (allocations a newer Calico marked `releasedAt` are
//! freed at once, as with its default cooldown of 0 s).
//!
//! ```text
//! /calico/ipam/v2/host/node-1/ipv4/block/10.1.0.0-26  {"state":"confirmed","deleted":false}
//! /calico/ipam/v2/assignment/ipv4/block/10.1.0.0-26   {"cidr":"10.1.0.0/26","affinity":"host:node-1",…}
//! /calico/ipam/v2/handle/k8s-pod-network.4f2a          {"block":{"10.1.0.0/26":1},"deleted":false}
//! ```

mod affinity;
mod allocator;
mod block;
mod claim;
mod error;
mod handle;
mod keys;
mod pools;
mod release;
mod store;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use calico_core::model::{BlockAffinity, IpPool};
use ipnet::IpNet;

pub use affinity::{
    block_affinity, decoder as affinity_decoder, AffinityEntry, AffinityState, AffinityValue,
};
pub use block::{AllocationAttribute, AllocationBlock};
pub use error::IpamError;
pub use handle::Handle;
pub use keys::{
    affinity_key, block_key, block_prefix, handle_key, host_affinity_prefix, parse_affinity_key,
    parse_block_key, HANDLE_PREFIX, HOST_AFFINITY_PREFIX, IPAM_PREFIX,
};
pub use pools::{Family, Pool};

use store::Kv;

/// How IPAM behaves (Calico's `IPAMConfig`, plus the pools and etcd limits).
#[derive(Clone, Debug)]
pub struct IpamConfig {
    /// The pools to assign from.
    pub pools: Vec<IpPool>,
    /// Never borrow an address from another host's block (Calico's `strictAffinity`).
    pub strict_affinity: bool,
    /// The most blocks a host claims (Calico's `maxBlocksPerHost`; Calico's default 20).
    pub max_blocks_per_host: usize,
    /// How many times a write losing a compare-and-swap is tried again (Calico's 100).
    pub retries: usize,
    /// How long one etcd call may take.
    pub request_timeout: Duration,
}

impl Default for IpamConfig {
    fn default() -> IpamConfig {
        IpamConfig {
            pools: Vec::new(),
            strict_affinity: false,
            max_blocks_per_host: 20,
            retries: 100,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// One address to assign.
#[derive(Clone, Debug)]
pub struct AssignRequest {
    /// The handle the address is held under (Calico's `<network>.<container id>`).
    pub handle: String,
    /// Attributes stored with the allocation (`node` is added, the host's name, if absent).
    pub attrs: BTreeMap<String, String>,
    /// The address family.
    pub family: Family,
    /// Only these pools (by CIDR); empty: every enabled pool of the family.
    pub pools: Vec<IpNet>,
}

impl AssignRequest {
    /// A request for one address of `family` under `handle`, from any pool.
    pub fn new(handle: impl Into<String>, family: Family) -> AssignRequest {
        AssignRequest {
            handle: handle.into(),
            attrs: BTreeMap::new(),
            family,
            pools: Vec::new(),
        }
    }
}

/// An assigned address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The address.
    pub addr: IpAddr,
    /// The block it came from.
    pub block: IpNet,
    /// Whether the block belongs to another host (or to none).
    pub borrowed: bool,
}

/// A block of this host's, as last read or written, with its revision.
#[derive(Clone, Debug)]
struct Cached {
    block: AllocationBlock,
    revision: i64,
}

/// One host's IPAM client. Several may run at once, in one process or many, on one host or
/// many: every write is a compare-and-swap.
pub struct Ipam {
    kv: Kv,
    host: String,
    pools: Vec<Pool>,
    config: IpamConfig,
    /// This host's blocks as last seen (a cache: every write is compared against etcd).
    mine: Mutex<BTreeMap<IpNet, Cached>>,
}

impl Ipam {
    /// An IPAM client for `host`, checking the host name and the pools.
    pub fn new(
        client: &etcd_client::Client,
        host: &str,
        config: IpamConfig,
    ) -> Result<Ipam, IpamError> {
        keys::check_host(host)?;
        let pools = config
            .pools
            .iter()
            .map(Pool::from_model)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ipam {
            kv: Kv::new(client.kv_client(), config.request_timeout),
            host: host.to_string(),
            pools,
            config,
            mine: Mutex::new(BTreeMap::new()),
        })
    }

    /// The host this client assigns for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The blocks `host` owns (confirmed affinities), both families, in address order.
    pub async fn blocks_of(&self, host: &str) -> Result<Vec<IpNet>, IpamError> {
        Ok(self
            .block_affinities(Some(host))
            .await?
            .into_iter()
            .map(|a| a.cidr)
            .collect())
    }

    /// Every confirmed affinity of `host` (or of every host) as a [`BlockAffinity`]; a bad
    /// stored affinity is an error naming its key.
    pub async fn block_affinities(
        &self,
        host: Option<&str>,
    ) -> Result<Vec<BlockAffinity>, IpamError> {
        read_block_affinities(&self.kv, host).await
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, BTreeMap<IpNet, Cached>> {
        self.mine.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, cidr: IpNet, block: &AllocationBlock, revision: i64) {
        let mut cache = self.cache();
        if block.host() == Some(self.host.as_str()) && !block.deleted {
            cache.insert(
                cidr,
                Cached {
                    block: block.clone(),
                    revision,
                },
            );
        } else {
            cache.remove(&cidr);
        }
    }
}

/// Every confirmed block affinity in etcd, of `host` or of every host, as [`BlockAffinity`]
/// resources (what an agent aggregates its routes by), each etcd call bounded by
/// `timeout`; a bad stored affinity is an error naming its key. See [`block_affinity`] for
/// one key and value (e.g. from a watch on [`HOST_AFFINITY_PREFIX`]).
pub async fn list_block_affinities(
    client: &etcd_client::Client,
    host: Option<&str>,
    timeout: Duration,
) -> Result<Vec<BlockAffinity>, IpamError> {
    read_block_affinities(&Kv::new(client.kv_client(), timeout), host).await
}

async fn read_block_affinities(
    kv: &Kv,
    host: Option<&str>,
) -> Result<Vec<BlockAffinity>, IpamError> {
    let prefix = match host {
        Some(h) => {
            keys::check_host(h)?;
            format!("{HOST_AFFINITY_PREFIX}{h}/")
        }
        None => HOST_AFFINITY_PREFIX.to_string(),
    };
    let mut out = Vec::new();
    for (key, stored) in kv.list(&prefix, false).await? {
        out.extend(block_affinity(&key, &stored.value)?);
    }
    out.sort_by(|a, b| (a.cidr, &a.node).cmp(&(b.cidr, &b.node)));
    Ok(out)
}

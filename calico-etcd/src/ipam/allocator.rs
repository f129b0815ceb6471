//! Assignment: from the host's own blocks first, then from a newly claimed block, then
//! (without strict affinity) borrowed from another host's block. Each assignment writes
//! the block and the handle in one compare-and-swap transaction.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::block::AllocationBlock;
use super::error::IpamError;
use super::handle::Handle;
use super::keys::{self, block_key, handle_key};
use super::pools::Pool;
use super::store::{Cas, Op, Stored, Write};
use super::{AssignRequest, Assignment, Cached, Ipam};

/// A block as read from etcd, with its revision.
pub(super) struct Read {
    pub block: AllocationBlock,
    pub revision: i64,
}

/// Whether an assignment may only come from the host's own block.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Affine {
    Mine,
    Any,
}

impl Ipam {
    /// Assigns one address under `req.handle`.
    pub async fn assign(&self, req: &AssignRequest) -> Result<Assignment, IpamError> {
        keys::check_handle(&req.handle)?;
        let pools = self.eligible_pools(req)?;
        let mut attrs = req.attrs.clone();
        attrs
            .entry("node".to_string())
            .or_insert_with(|| self.host.clone());
        let mut claims = 0;
        loop {
            if let Some(a) = self.assign_cached(&pools, &req.handle, &attrs).await? {
                return Ok(a);
            }
            let owned = self.refresh_mine(&pools).await?;
            if let Some(a) = self.assign_cached(&pools, &req.handle, &attrs).await? {
                return Ok(a);
            }
            if owned >= self.config.max_blocks_per_host {
                return Err(IpamError::BlockLimit {
                    host: self.host.clone(),
                    limit: self.config.max_blocks_per_host,
                });
            }
            if claims >= self.config.retries || !self.claim_block(&pools).await? {
                break;
            }
            // Claimed: the next round assigns from it (or, if this host's other clients
            // filled it meanwhile, claims again).
            claims += 1;
        }
        if !self.config.strict_affinity {
            if let Some(a) = self.borrow(&pools, &req.handle, &attrs).await? {
                return Ok(a);
            }
        }
        Err(IpamError::PoolExhausted {
            family: req.family,
            pools: pools.iter().map(|p| p.cidr).collect(),
            host: self.host.clone(),
            strict: self.config.strict_affinity,
        })
    }

    /// The enabled pools of the request's family (and among its pools, if it names any).
    fn eligible_pools(&self, req: &AssignRequest) -> Result<Vec<Pool>, IpamError> {
        let pools: Vec<Pool> = self
            .pools
            .iter()
            .filter(|p| !p.disabled && p.family() == req.family)
            .filter(|p| req.pools.is_empty() || req.pools.contains(&p.cidr))
            .cloned()
            .collect();
        if pools.is_empty() {
            return Err(IpamError::NoPool {
                family: req.family,
                requested: req.pools.clone(),
                host: self.host.clone(),
            });
        }
        Ok(pools)
    }

    /// Tries the host's blocks (as last seen) that have free addresses.
    async fn assign_cached(
        &self,
        pools: &[Pool],
        handle: &str,
        attrs: &BTreeMap<String, String>,
    ) -> Result<Option<Assignment>, IpamError> {
        let candidates: Vec<(IpNet, Cached)> = self
            .cache()
            .iter()
            .filter(|(cidr, c)| in_pools(pools, **cidr) && c.block.free() > 0)
            .map(|(cidr, c)| (*cidr, c.clone()))
            .collect();
        for (cidr, cached) in candidates {
            let start = Read {
                block: cached.block,
                revision: cached.revision,
            };
            if let Some(addr) = self
                .assign_in_block(cidr, Some(start), handle, attrs, Affine::Mine)
                .await?
            {
                return Ok(Some(Assignment {
                    addr,
                    block: cidr,
                    borrowed: false,
                }));
            }
        }
        Ok(None)
    }

    /// Assigns from one block, writing the block and the handle together; `None` if the
    /// block is full, gone, or (with [`Affine::Mine`]) no longer this host's.
    async fn assign_in_block(
        &self,
        cidr: IpNet,
        start: Option<Read>,
        handle: &str,
        attrs: &BTreeMap<String, String>,
        affine: Affine,
    ) -> Result<Option<IpAddr>, IpamError> {
        let key = block_key(cidr);
        let hkey = handle_key(handle);
        let mut current = match start {
            Some(r) => Some(r),
            None => self.read_block(cidr).await?,
        };
        // A new handle is the common case: assume it absent until etcd says otherwise.
        let mut held = (Handle::default(), 0);
        for _ in 0..self.config.retries {
            let Some(Read { block, revision }) = current.take() else {
                self.cache().remove(&cidr);
                return Ok(None);
            };
            if block.deleted || (affine == Affine::Mine && block.host() != Some(&self.host)) {
                self.remember(cidr, &block, revision);
                return Ok(None);
            }
            let mut next = block.clone();
            next.collect_released();
            let Some(addr) = next.assign(handle, attrs) else {
                self.remember(cidr, &block, revision);
                return Ok(None);
            };
            next.sequence_number += 1;
            let mut h = held.0.clone();
            h.add(cidr, 1);
            let writes = [
                Write {
                    key: key.clone(),
                    expect: revision,
                    op: Op::Put(next.to_json()),
                },
                Write {
                    key: hkey.clone(),
                    expect: held.1,
                    op: Op::Put(h.to_json()),
                },
            ];
            match self.kv.cas(&writes).await? {
                Cas::Done(rev) => {
                    self.remember(cidr, &next, rev);
                    return Ok(Some(addr));
                }
                Cas::Lost(now) => {
                    current = parse_block(&key, now.first().cloned().flatten())?;
                    held = match now.get(1).cloned().flatten() {
                        Some(s) => (Handle::parse(&hkey, &s.value)?, s.revision),
                        None => (Handle::default(), 0),
                    };
                }
            }
        }
        Err(IpamError::Conflict {
            key,
            attempts: self.config.retries,
        })
    }

    /// Reads a block (`None` if absent).
    pub(super) async fn read_block(&self, cidr: IpNet) -> Result<Option<Read>, IpamError> {
        let key = block_key(cidr);
        let stored = self.kv.get(&key).await?;
        parse_block(&key, stored)
    }

    /// Borrows an address from any block of the pools with room, starting at a point
    /// derived from the host's name. A block whose stored value is bad is skipped; if
    /// nothing could be borrowed, the first such error is returned.
    async fn borrow(
        &self,
        pools: &[Pool],
        handle: &str,
        attrs: &BTreeMap<String, String>,
    ) -> Result<Option<Assignment>, IpamError> {
        let family = pools[0].family();
        let listed = self.kv.list(&keys::block_prefix(family), false).await?;
        let mut bad = None;
        let mut blocks = Vec::new();
        for (key, stored) in listed {
            let Some(cidr) = keys::parse_block_key(&key).filter(|c| in_pools(pools, *c)) else {
                continue;
            };
            match AllocationBlock::parse(&key, &stored.value) {
                Ok(b) if b.free() > 0 && !b.deleted => blocks.push((cidr, b, stored.revision)),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%e, "IPAM: not borrowing from a bad block");
                    bad.get_or_insert(e);
                }
            }
        }
        if !blocks.is_empty() {
            let start = super::pools::host_seed(&self.host) as usize % blocks.len();
            blocks.rotate_left(start);
        }
        for (cidr, block, revision) in blocks {
            let owner = block.host().map(str::to_string);
            let start = Read { block, revision };
            if let Some(addr) = self
                .assign_in_block(cidr, Some(start), handle, attrs, Affine::Any)
                .await?
            {
                let borrowed = owner.as_deref() != Some(&self.host);
                return Ok(Some(Assignment {
                    addr,
                    block: cidr,
                    borrowed,
                }));
            }
        }
        bad.map_or(Ok(None), Err)
    }
}

/// Whether a block lies in one of the pools.
pub(super) fn in_pools(pools: &[Pool], cidr: IpNet) -> bool {
    pools
        .iter()
        .any(|p| p.cidr.contains(&cidr) && p.block_len == cidr.prefix_len())
}

/// A stored block, read.
pub(super) fn parse_block(key: &str, stored: Option<Stored>) -> Result<Option<Read>, IpamError> {
    stored
        .map(|s| {
            AllocationBlock::parse(key, &s.value).map(|block| Read {
                block,
                revision: s.revision,
            })
        })
        .transpose()
}

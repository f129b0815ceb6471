//! Claiming blocks, Calico's two-phase protocol: the host's affinity is written `pending`
//! (only if absent), the block is created (only if absent) with the host's affinity, then
//! the affinity is `confirmed`. A host that finds the block created by another host
//! deletes its pending affinity and looks elsewhere. Also: re-reading the host's
//! affinities, finishing claims a crashed client left pending, dropping stale ones.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::affinity::{AffinityEntry, AffinityState, AffinityValue};
use super::allocator::{in_pools, parse_block, Read};
use super::block::AllocationBlock;
use super::error::IpamError;
use super::keys::{self, affinity_key, block_key};
use super::pools::Pool;
use super::store::{Cas, Op, Write};
use super::Ipam;

impl Ipam {
    /// Re-reads the host's affinities in the pools' family: caches the blocks it owns,
    /// finishes pending claims, deletes affinities to blocks another host owns, forgets
    /// blocks no longer affine. Returns how many blocks of the pools the host owns.
    pub(super) async fn refresh_mine(&self, pools: &[Pool]) -> Result<usize, IpamError> {
        let prefix = keys::host_affinity_prefix(&self.host, pools[0].family());
        let mut owned = BTreeSet::new();
        for (key, stored) in self.kv.list(&prefix, false).await? {
            let entry = AffinityEntry::parse(&key, &stored.value)?;
            if !in_pools(pools, entry.block) || entry.value.deleted {
                continue;
            }
            let cidr = entry.block;
            let cached = self.cache().contains_key(&cidr);
            let mine = match entry.value.state {
                AffinityState::PendingDeletion => false,
                AffinityState::Confirmed if cached => true,
                AffinityState::Confirmed => self.load_affine(cidr, stored.revision).await?,
                AffinityState::Pending => self.claim(cidr, Some(stored.revision)).await?,
            };
            if mine {
                owned.insert(cidr);
            }
        }
        self.cache()
            .retain(|cidr, _| !in_pools(pools, *cidr) || owned.contains(cidr));
        Ok(owned.len())
    }

    /// Loads the block of a confirmed affinity: cached if the block is the host's, the
    /// claim finished if the block is missing, the affinity deleted if another host owns
    /// the block. Whether the host owns it.
    async fn load_affine(&self, cidr: IpNet, affinity_rev: i64) -> Result<bool, IpamError> {
        match self.read_block(cidr).await? {
            None => self.claim(cidr, Some(affinity_rev)).await,
            Some(Read { block, revision }) if block.host() == Some(self.host.as_str()) => {
                self.remember(cidr, &block, revision);
                Ok(!block.deleted)
            }
            Some(_) => {
                self.drop_affinity(cidr, affinity_rev).await?;
                Ok(false)
            }
        }
    }

    /// Claims an unclaimed block of the pools, walking each pool from the host's starting
    /// point; whether one was claimed.
    pub(super) async fn claim_block(&self, pools: &[Pool]) -> Result<bool, IpamError> {
        let prefix = keys::block_prefix(pools[0].family());
        let existing: BTreeSet<IpNet> = self
            .kv
            .list(&prefix, true)
            .await?
            .iter()
            .filter_map(|(key, _)| keys::parse_block_key(key))
            .collect();
        for pool in pools {
            for cidr in pool.blocks_from(&self.host) {
                if !existing.contains(&cidr) && self.claim(cidr, None).await? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Claims `cidr` for the host (`affinity_rev`: the revision of an affinity already
    /// written, else one is created `pending`); whether the host now owns it.
    async fn claim(&self, cidr: IpNet, affinity_rev: Option<i64>) -> Result<bool, IpamError> {
        let akey = affinity_key(&self.host, cidr);
        let arev = match affinity_rev {
            Some(rev) => rev,
            None => {
                let pending = AffinityValue::new(AffinityState::Pending).to_json();
                match self.kv.cas(&[put(&akey, 0, pending)]).await? {
                    Cas::Done(rev) => rev,
                    // Another client of this host is claiming it: let it.
                    Cas::Lost(_) => return Ok(false),
                }
            }
        };
        let bkey = block_key(cidr);
        let fresh = AllocationBlock::new(cidr, &self.host);
        let (block, brev) = match self.kv.cas(&[put(&bkey, 0, fresh.to_json())]).await? {
            Cas::Done(rev) => (fresh, rev),
            Cas::Lost(now) => match parse_block(&bkey, now.into_iter().next().flatten())? {
                Some(r) if r.block.host() == Some(self.host.as_str()) && !r.block.deleted => {
                    (r.block, r.revision)
                }
                _ => {
                    self.drop_affinity(cidr, arev).await?;
                    return Ok(false);
                }
            },
        };
        if !self.confirm(&akey, arev).await? {
            return Ok(false);
        }
        self.remember(cidr, &block, brev);
        Ok(true)
    }

    /// Marks the affinity confirmed; false if it vanished meanwhile.
    async fn confirm(&self, akey: &str, mut arev: i64) -> Result<bool, IpamError> {
        for _ in 0..self.config.retries {
            let confirmed = AffinityValue::new(AffinityState::Confirmed).to_json();
            match self.kv.cas(&[put(akey, arev, confirmed)]).await? {
                Cas::Done(_) => return Ok(true),
                Cas::Lost(now) => match now.into_iter().next().flatten() {
                    None => return Ok(false),
                    Some(s) => {
                        let v = AffinityValue::parse(akey, &s.value)?;
                        if v.owns() {
                            return Ok(true);
                        }
                        arev = s.revision;
                    }
                },
            }
        }
        Err(IpamError::Conflict {
            key: akey.to_string(),
            attempts: self.config.retries,
        })
    }

    /// Deletes the host's affinity to `cidr` if it is still at `revision`.
    async fn drop_affinity(&self, cidr: IpNet, revision: i64) -> Result<(), IpamError> {
        let write = Write {
            key: affinity_key(&self.host, cidr),
            expect: revision,
            op: Op::Delete,
        };
        self.kv.cas(&[write]).await?;
        self.cache().remove(&cidr);
        Ok(())
    }
}

fn put(key: &str, expect: i64, value: String) -> Write {
    Write {
        key: key.to_string(),
        expect,
        op: Op::Put(value),
    }
}

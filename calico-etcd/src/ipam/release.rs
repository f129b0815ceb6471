//! Release: an address (its block and its handle written in one compare-and-swap
//! transaction), or every address of a handle, block by block as the handle records them.

use std::net::IpAddr;

use ipnet::IpNet;

use super::allocator::{parse_block, Read};
use super::error::IpamError;
use super::handle::Handle;
use super::keys::{self, block_key, handle_key};
use super::pools::Family;
use super::store::{Cas, Op, Stored, Write};
use super::Ipam;

impl Ipam {
    /// Releases `addr`: true if it was assigned (it is now free and its handle counts one
    /// less, deleted at zero), false if it was not assigned.
    pub async fn release(&self, addr: IpAddr) -> Result<bool, IpamError> {
        let Some(cidr) = self.block_containing(addr).await? else {
            return Ok(false);
        };
        let key = block_key(cidr);
        let mut current = match self.cached(cidr) {
            Some(r) => Some(r),
            None => self.read_block(cidr).await?,
        };
        let mut held: Option<(String, Option<Stored>)> = None;
        for _ in 0..self.config.retries {
            let Some(Read { block, revision }) = current.take() else {
                return Ok(false);
            };
            let mut next = block.clone();
            next.collect_released();
            let Some(handle) = next.release(addr) else {
                self.remember(cidr, &block, revision);
                return Ok(false);
            };
            next.sequence_number += 1;
            let mut writes = vec![Write {
                key: key.clone(),
                expect: revision,
                op: Op::Put(next.to_json()),
            }];
            if let Some(h) = &handle {
                let hkey = handle_key(h);
                let stored = match held.take() {
                    Some((k, s)) if k == hkey => s,
                    _ => self.kv.get(&hkey).await?,
                };
                writes.push(handle_write(&hkey, stored.clone(), cidr, 1)?);
                held = Some((hkey, stored));
            }
            match self.kv.cas(&writes).await? {
                Cas::Done(rev) => {
                    self.remember(cidr, &next, rev);
                    return Ok(true);
                }
                Cas::Lost(now) => {
                    let mut now = now.into_iter();
                    current = parse_block(&key, now.next().flatten())?;
                    if let Some((k, _)) = held.take() {
                        held = Some((k, now.next().flatten()));
                    }
                }
            }
        }
        Err(IpamError::Conflict {
            key,
            attempts: self.config.retries,
        })
    }

    /// Releases every address held under `handle` and deletes the handle; the addresses
    /// released (none if the handle does not exist).
    pub async fn release_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        keys::check_handle(handle)?;
        let hkey = handle_key(handle);
        let mut released = Vec::new();
        let mut stored = self.kv.get(&hkey).await?;
        let mut attempts = 0;
        while let Some(s) = stored.take() {
            let h = Handle::parse(&hkey, &s.value)?;
            let Some(cidr) = h.blocks().next() else {
                // Nothing left: the handle goes.
                let del = Write {
                    key: hkey.clone(),
                    expect: s.revision,
                    op: Op::Delete,
                };
                if let Cas::Lost(now) = self.kv.cas(&[del]).await? {
                    stored = now.into_iter().next().flatten();
                }
                continue;
            };
            attempts += 1;
            if attempts > self.config.retries + h.block.len() {
                return Err(IpamError::Conflict {
                    key: hkey,
                    attempts: self.config.retries,
                });
            }
            let (addrs, now) = self.release_handle_in(cidr, handle, &h, s).await?;
            released.extend(addrs);
            stored = now;
        }
        Ok(released)
    }

    /// One step of a release by handle: frees the handle's addresses in `cidr` and drops
    /// the block from the handle (deleting it if it was the last), in one transaction.
    /// Returns what was released and the handle as it now stands.
    async fn release_handle_in(
        &self,
        cidr: IpNet,
        handle: &str,
        h: &Handle,
        hstored: Stored,
    ) -> Result<(Vec<IpAddr>, Option<Stored>), IpamError> {
        let key = block_key(cidr);
        let hkey = handle_key(handle);
        let current = match self.cached(cidr) {
            Some(r) => Some(r),
            None => self.read_block(cidr).await?,
        };
        let mut rest = h.clone();
        rest.block.remove(&cidr.to_string());
        let hwrite = Write {
            key: hkey.clone(),
            expect: hstored.revision,
            op: if rest.is_empty() {
                Op::Delete
            } else {
                Op::Put(rest.to_json())
            },
        };
        let mut writes = Vec::new();
        let mut addrs = Vec::new();
        let mut next = None;
        if let Some(Read { block, revision }) = current {
            let mut b = block;
            b.collect_released();
            addrs = b.release_handle(handle);
            b.sequence_number += 1;
            writes.push(Write {
                key: key.clone(),
                expect: revision,
                op: Op::Put(b.to_json()),
            });
            next = Some(b);
        }
        writes.push(hwrite);
        match self.kv.cas(&writes).await? {
            Cas::Done(rev) => {
                if let Some(b) = next {
                    self.remember(cidr, &b, rev);
                }
                let now = (!rest.is_empty()).then(|| Stored {
                    value: rest.to_json().into_bytes(),
                    revision: rev,
                });
                Ok((addrs, now))
            }
            Cas::Lost(now) => {
                // Re-read from scratch: the block (if it moved) is re-read next round.
                self.cache().remove(&cidr);
                Ok((Vec::new(), now.last().cloned().flatten()))
            }
        }
    }

    /// The block holding `addr`: from the pools' block size if that block exists, else
    /// by looking through the family's blocks (a pool may have gone or changed).
    async fn block_containing(&self, addr: IpAddr) -> Result<Option<IpNet>, IpamError> {
        let by_pool = self.pools.iter().find_map(|p| p.block_of(addr));
        if let Some(cidr) = by_pool {
            if self.cache().contains_key(&cidr) || self.kv.get(&block_key(cidr)).await?.is_some() {
                return Ok(Some(cidr));
            }
        }
        let prefix = keys::block_prefix(Family::of_addr(addr));
        Ok(self
            .kv
            .list(&prefix, true)
            .await?
            .iter()
            .filter_map(|(k, _)| keys::parse_block_key(k))
            .find(|b| b.contains(&addr)))
    }

    fn cached(&self, cidr: IpNet) -> Option<Read> {
        self.cache().get(&cidr).map(|c| Read {
            block: c.block.clone(),
            revision: c.revision,
        })
    }
}

/// The handle write of a release of `n` addresses in `block`: decremented, deleted at
/// zero, or only compared if the handle is absent (the address is freed all the same).
fn handle_write(
    hkey: &str,
    stored: Option<Stored>,
    block: IpNet,
    n: u64,
) -> Result<Write, IpamError> {
    let Some(s) = stored else {
        return Ok(Write {
            key: hkey.to_string(),
            expect: 0,
            op: Op::Check,
        });
    };
    let mut h = Handle::parse(hkey, &s.value)?;
    h.remove(block, n);
    Ok(Write {
        key: hkey.to_string(),
        expect: s.revision,
        op: if h.is_empty() {
            Op::Delete
        } else {
            Op::Put(h.to_json())
        },
    })
}

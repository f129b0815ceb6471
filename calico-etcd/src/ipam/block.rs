//! One allocation block, as Calico stores it under
//! `/calico/ipam/v2/assignment/ipv4/block/<a.b.c.d-NN>` (libcalico-go's `AllocationBlock`):
//!
//! * `allocations[i]`: `null` if address `i` of the block is free, else the index of its
//!   entry in `attributes` (handle id and `secondary` attributes such as the node);
//! * `unallocated`: the free ordinals, a FIFO queue: assignment takes the head, release
//!   appends, so the address free the longest is reused first;
//! * `sequenceNumber`, bumped on every write, and `sequenceNumberForAllocation`, the
//!   block's number when each ordinal was assigned.
//!
//! Fields this crate does not use (a newer Calico's `alternateOwnerAttrs`, …) are kept and
//! written back unchanged. An allocation whose attributes carry `releasedAt` (a newer
//! Calico's cooldown) counts as released and is freed on the next write, as Calico does
//! with its default cooldown of 0 s.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::IpamError;
use super::keys::parse_block_key;

/// Claim times are written as RFC 3339 UTC, as Calico writes them.
pub use calico_core::datastore::status::rfc3339;

/// An allocation block (see the module documentation for the fields' meaning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationBlock {
    /// The block's range.
    pub cidr: IpNet,
    /// `host:<name>` for a block affine to a host, `null` for none.
    pub affinity: Option<String>,
    /// When the affinity was claimed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_claim_time: Option<String>,
    /// Per ordinal: `None` if free, else an index into `attributes`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allocations: Vec<Option<usize>>,
    /// The free ordinals, oldest free first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub unallocated: Vec<usize>,
    /// The attributes allocations point at.
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: Vec<AllocationAttribute>,
    /// Bumped on every write.
    #[serde(rename = "sequenceNumber", default)]
    pub sequence_number: u64,
    /// Ordinal (as a string) → `sequenceNumber` when it was assigned.
    #[serde(
        rename = "sequenceNumberForAllocation",
        default,
        deserialize_with = "null_as_default"
    )]
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
    /// Kubernetes-datastore soft deletion marker; a deleted block is treated as absent.
    #[serde(default)]
    pub deleted: bool,
    /// Fields this crate does not interpret, written back as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// What one or more allocations of a block are for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AllocationAttribute {
    /// The handle the allocation was made under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    /// Free-form attributes (Calico's `node`, `pod`, `namespace`, …).
    #[serde(
        rename = "secondary",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub secondary: BTreeMap<String, String>,
    /// Fields this crate does not interpret (`alternateOwnerAttrs`, `releasedAt`).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl AllocationAttribute {
    fn released(&self) -> bool {
        self.extra.get("releasedAt").is_some_and(|v| !v.is_null())
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Number of addresses in a block (blocks are at most 4,096 addresses: /20 or /116).
pub fn block_size(cidr: IpNet) -> usize {
    let host_bits = cidr.max_prefix_len() - cidr.prefix_len();
    1usize
        .checked_shl(u32::from(host_bits))
        .unwrap_or(usize::MAX)
}

impl AllocationBlock {
    /// A new, empty block affine to `host`, its sequence number started from the clock (as
    /// Calico does, so a re-created block never repeats a number).
    pub fn new(cidr: IpNet, host: &str) -> AllocationBlock {
        let size = block_size(cidr);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        AllocationBlock {
            cidr,
            affinity: Some(format!("host:{host}")),
            affinity_claim_time: Some(rfc3339(now.as_secs())),
            allocations: vec![None; size],
            unallocated: (0..size).collect(),
            attributes: Vec::new(),
            sequence_number: now.as_nanos() as u64,
            sequence_number_for_allocation: BTreeMap::new(),
            deleted: false,
            extra: BTreeMap::new(),
        }
    }

    /// Reads the block stored under `key`, checking that it is consistent (see [`check`]).
    ///
    /// [`check`]: AllocationBlock::check
    pub fn parse(key: &str, value: &[u8]) -> Result<AllocationBlock, IpamError> {
        let block: AllocationBlock =
            serde_json::from_slice(value).map_err(|e| IpamError::BadValue {
                key: key.to_string(),
                reason: format!("not an AllocationBlock: {e}"),
            })?;
        block.check(key)?;
        Ok(block)
    }

    /// Checks the block against its key and itself: `cidr` is the key's, `allocations` has
    /// one entry per address, each pointing at an existing attribute, and `unallocated`
    /// holds distinct free ordinals of the block.
    pub fn check(&self, key: &str) -> Result<(), IpamError> {
        let bad = |reason: String| {
            Err(IpamError::BadValue {
                key: key.to_string(),
                reason,
            })
        };
        if parse_block_key(key) != Some(self.cidr) {
            return bad(format!("field cidr: {} is not the key's block", self.cidr));
        }
        let size = block_size(self.cidr);
        if size > 4096 || self.allocations.len() != size {
            return bad(format!(
                "field allocations: {} entries for a block of {size} addresses",
                self.allocations.len()
            ));
        }
        if let Some((i, a)) = self
            .allocations
            .iter()
            .enumerate()
            .find(|(_, a)| a.is_some_and(|a| a >= self.attributes.len()))
        {
            return bad(format!(
                "field allocations[{i}]: attribute {} of {}",
                a.unwrap_or_default(),
                self.attributes.len()
            ));
        }
        let mut seen = vec![false; size];
        for &o in &self.unallocated {
            if o >= size || seen[o] || self.allocations[o].is_some() {
                return bad(format!(
                    "field unallocated: ordinal {o} is out of range, repeated or allocated"
                ));
            }
            seen[o] = true;
        }
        Ok(())
    }

    /// The block as Calico stores it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a block serializes")
    }

    /// The host the block is affine to, if any.
    pub fn host(&self) -> Option<&str> {
        self.affinity.as_deref()?.strip_prefix("host:")
    }

    /// Free addresses.
    pub fn free(&self) -> usize {
        self.unallocated.len()
    }

    /// Whether no address of the block is allocated.
    pub fn is_empty(&self) -> bool {
        self.allocations.iter().all(Option::is_none)
    }

    /// The address at `ordinal`.
    pub fn addr(&self, ordinal: usize) -> IpAddr {
        match self.cidr {
            IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + ordinal as u32).into()),
            IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + ordinal as u128).into()),
        }
    }

    /// The ordinal of `addr`, if the block holds it.
    pub fn ordinal(&self, addr: IpAddr) -> Option<usize> {
        if !self.cidr.contains(&addr) {
            return None;
        }
        let off = match (self.cidr, addr) {
            (IpNet::V4(n), IpAddr::V4(a)) => u128::from(u32::from(a) - u32::from(n.network())),
            (IpNet::V6(n), IpAddr::V6(a)) => u128::from(a) - u128::from(n.network()),
            _ => return None,
        };
        usize::try_from(off).ok()
    }

    /// Every allocated address with its handle.
    pub fn allocated(&self) -> impl Iterator<Item = (IpAddr, Option<&str>)> + '_ {
        self.allocations
            .iter()
            .enumerate()
            .filter_map(|(o, a)| a.map(|i| (self.addr(o), self.attributes[i].handle_id.as_deref())))
    }

    /// Assigns the free address that has been free the longest to `handle` with `attrs`;
    /// `None` if the block is full.
    pub fn assign(&mut self, handle: &str, attrs: &BTreeMap<String, String>) -> Option<IpAddr> {
        if self.unallocated.is_empty() {
            return None;
        }
        let ordinal = self.unallocated.remove(0);
        let attr = AllocationAttribute {
            handle_id: Some(handle.to_string()),
            secondary: attrs.clone(),
            extra: BTreeMap::new(),
        };
        let index = match self.attributes.iter().position(|a| *a == attr) {
            Some(i) => i,
            None => {
                self.attributes.push(attr);
                self.attributes.len() - 1
            }
        };
        self.allocations[ordinal] = Some(index);
        self.sequence_number_for_allocation
            .insert(ordinal.to_string(), self.sequence_number);
        Some(self.addr(ordinal))
    }

    /// Releases `addr`: `None` if it was not allocated, else `Some(its handle)`.
    pub fn release(&mut self, addr: IpAddr) -> Option<Option<String>> {
        let ordinal = self.ordinal(addr)?;
        let index = self.allocations[ordinal]?;
        let attr = &self.attributes[index];
        if attr.released() {
            return None;
        }
        let handle = attr.handle_id.clone();
        self.free_ordinals(&[ordinal]);
        Some(handle)
    }

    /// Releases every address allocated under `handle`, returning them.
    pub fn release_handle(&mut self, handle: &str) -> Vec<IpAddr> {
        let ordinals: Vec<usize> = (0..self.allocations.len())
            .filter(|&o| {
                self.allocations[o].is_some_and(|i| {
                    let a = &self.attributes[i];
                    !a.released() && a.handle_id.as_deref() == Some(handle)
                })
            })
            .collect();
        self.free_ordinals(&ordinals);
        ordinals.into_iter().map(|o| self.addr(o)).collect()
    }

    /// Frees allocations a newer Calico marked released (`releasedAt`), as its default
    /// cooldown of 0 s does on its next write; whether anything changed.
    pub fn collect_released(&mut self) -> bool {
        let ordinals: Vec<usize> = (0..self.allocations.len())
            .filter(|&o| self.allocations[o].is_some_and(|i| self.attributes[i].released()))
            .collect();
        self.free_ordinals(&ordinals);
        !ordinals.is_empty()
    }

    fn free_ordinals(&mut self, ordinals: &[usize]) {
        if ordinals.is_empty() {
            return;
        }
        for &o in ordinals {
            self.allocations[o] = None;
            self.unallocated.push(o);
            self.sequence_number_for_allocation.remove(&o.to_string());
        }
        self.drop_unused_attributes();
    }

    /// Removes attributes no allocation points at, renumbering the rest.
    fn drop_unused_attributes(&mut self) {
        let mut used = vec![false; self.attributes.len()];
        for i in self.allocations.iter().flatten() {
            used[*i] = true;
        }
        let mut new_index = vec![0; self.attributes.len()];
        let mut kept = Vec::new();
        for (i, attr) in std::mem::take(&mut self.attributes).into_iter().enumerate() {
            if used[i] {
                new_index[i] = kept.len();
                kept.push(attr);
            }
        }
        self.attributes = kept;
        for a in self.allocations.iter_mut().flatten() {
            *a = new_index[*a];
        }
    }
}

#[cfg(test)]
mod tests;

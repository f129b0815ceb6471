//! The per-interface counters the policy programs keep ([`crate::layout::counters`]):
//! their rows, written when an interface gets its programs, and what they say, summed
//! over the CPUs.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::entries::MapEntries;
use crate::error::SysError;
use crate::layout::counters::{self, key};
use crate::sys;

/// What a program did with the packets of one interface in one direction, since the
/// interface got its programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// IP packets judged.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets the policy accepted.
    pub accepted: u64,
    /// Packets the policy dropped.
    pub dropped: u64,
    /// IP packets dropped as too short or malformed, before any rule.
    pub malformed: u64,
    /// Non-IP frames, left alone (not in `packets`).
    pub not_ip: u64,
}

impl Counts {
    /// The sum of the per-CPU rows of a lookup (`cpus` rows of
    /// [`counters::VALUE_SIZE`] bytes each; a shorter buffer sums what it holds).
    pub fn sum(per_cpu: &[u8]) -> Counts {
        let field = |row: &[u8], at: i16| {
            let at = at as usize;
            u64::from_ne_bytes(row[at..at + 8].try_into().expect("an 8-byte field"))
        };
        per_cpu
            .chunks_exact(counters::VALUE_SIZE as usize)
            .fold(Counts::default(), |c, row| Counts {
                packets: c.packets.wrapping_add(field(row, counters::PACKETS)),
                bytes: c.bytes.wrapping_add(field(row, counters::BYTES)),
                accepted: c.accepted.wrapping_add(field(row, counters::ACCEPTED)),
                dropped: c.dropped.wrapping_add(field(row, counters::DROPPED)),
                malformed: c.malformed.wrapping_add(field(row, counters::MALFORMED)),
                not_ip: c.not_ip.wrapping_add(field(row, counters::NOT_IP)),
            })
    }
}

/// Both directions of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Packets the interface received (its tc ingress program).
    pub ingress: Counts,
    /// Packets sent out of it (its tc egress program).
    pub egress: Counts,
}

/// The counter map of one dataplane; cheap to clone (the map is shared).
#[derive(Clone, Debug)]
pub struct CounterMap {
    map: Arc<OwnedFd>,
    /// The possible CPUs: a per-CPU value is one row each.
    cpus: usize,
}

/// Interfaces counted, at most (two rows each).
pub const INTERFACES: u32 = 65_536;

impl CounterMap {
    /// Creates the map (rows allocated as interfaces are added, not in advance: a
    /// preallocated per-CPU hash would pin rows × CPUs of kernel memory).
    pub fn create() -> Result<CounterMap, SysError> {
        Ok(CounterMap {
            map: Arc::new(sys::map_create(
                sys::MapType::PercpuHash,
                "cali_counters",
                counters::KEY_SIZE,
                counters::VALUE_SIZE,
                2 * INTERFACES,
                sys::F_NO_PREALLOC,
            )?),
            cpus: sys::possible_cpus()?,
        })
    }

    /// The map, for the programs' map references.
    pub fn fd(&self) -> &OwnedFd {
        &self.map
    }

    fn zero(&self) -> Vec<u8> {
        vec![0; counters::VALUE_SIZE as usize * self.cpus]
    }

    /// Writes zeroed rows for interface `ifindex`, both directions, until the returned
    /// entries are dropped (a failure deletes the row written).
    pub fn add(&self, ifindex: u32) -> Result<MapEntries, SysError> {
        let zero = self.zero();
        let mut rows = MapEntries::new(self.map.clone());
        for direction in [counters::INGRESS, counters::EGRESS] {
            rows.write(&key(ifindex, direction), &zero)?;
        }
        Ok(rows)
    }

    /// What interface `ifindex`'s rows say; `None` when it has none.
    pub fn read(&self, ifindex: u32) -> Result<Option<InterfaceCounters>, SysError> {
        let mut value = self.zero();
        let mut one = |direction| -> Result<Option<Counts>, SysError> {
            let found = sys::map_lookup(&self.map, &key(ifindex, direction), &mut value)?;
            Ok(found.then(|| Counts::sum(&value)))
        };
        let (Some(ingress), Some(egress)) = (one(counters::INGRESS)?, one(counters::EGRESS)?)
        else {
            return Ok(None);
        };
        Ok(Some(InterfaceCounters { ingress, egress }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_rows_are_summed_field_by_field() {
        let row = |base: u64| -> Vec<u8> {
            (0..6u64)
                .flat_map(|i| (base + i).to_ne_bytes())
                .collect::<Vec<u8>>()
        };
        let mut value = row(10);
        value.extend(row(100));
        let c = Counts::sum(&value);
        assert_eq!(
            c,
            Counts {
                packets: 110,
                bytes: 112,
                accepted: 114,
                dropped: 116,
                malformed: 118,
                not_ip: 120,
            }
        );
        assert_eq!(Counts::sum(&value[..47]), Counts::default());
    }
}

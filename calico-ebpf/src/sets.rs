//! The maps a policy program reads, and the set members in them.
//!
//! IP sets live in two LPM tries (IPv4, IPv6) keyed by (set id, address), so addresses and
//! CIDRs of every set share one map per family and a member change is one map write,
//! never a program reload. Named-port sets (address, protocol, port) live in one hash
//! keyed by (set id, address, protocol, port). Set ids are handed out by [`SetIds`].

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use calico_core::dataplane::ir::{Set, SetElement, SetKey};

use crate::counters::CounterMap;
use crate::entries::MapEntries;
use crate::error::{Error, GenerateError, SysError};
use crate::insn::MapRef;
use crate::layout::{self, lpm_key, port_key};
use crate::sys::{self, MapType};

/// Stable ids for set names: a set keeps its id while it exists, so programs that look it
/// up stay valid across member changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetIds {
    /// Shared with the previews of an apply ([`SetIds::shared`]); copied when it changes
    /// while one is out.
    ids: Arc<BTreeMap<String, u32>>,
    next: u32,
}

impl SetIds {
    /// The id of `name`, handing out a new one the first time.
    pub fn assign(&mut self, name: &str) -> Result<u32, GenerateError> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        let id = self.next;
        self.next = self.next.checked_add(1).ok_or(GenerateError::TooManySets)?;
        Arc::make_mut(&mut self.ids).insert(name.to_string(), id);
        Ok(id)
    }

    /// Forgets `name` (its id is not reused).
    pub fn release(&mut self, name: &str) {
        if self.ids.contains_key(name) {
            Arc::make_mut(&mut self.ids).remove(name);
        }
    }

    /// Every assigned id, by set name.
    pub fn ids(&self) -> &BTreeMap<String, u32> {
        &self.ids
    }

    /// Every assigned id, by set name, as a shared copy (no copy of the names).
    pub fn shared(&self) -> Arc<BTreeMap<String, u32>> {
        self.ids.clone()
    }
}

/// The maps of one dataplane: the per-CPU packet state, the set members, the flow table,
/// the interfaces with an egress program and the per-interface counters.
#[derive(Debug)]
pub struct Maps {
    state: OwnedFd,
    v4: OwnedFd,
    v6: OwnedFd,
    ports: OwnedFd,
    flows: OwnedFd,
    egress: Arc<OwnedFd>,
    counters: CounterMap,
}

/// Entries of the flow table ([`crate::generate::Conntrack::Table`]).
pub const FLOWS: u32 = 65_536;

/// The flow table's name in the kernel (what a new backend looks for to adopt it,
/// [`crate::adopt`]).
pub const FLOWS_NAME: &str = "cali_flows";

/// Interfaces with an egress program, at most.
pub const EGRESS_INTERFACES: u32 = 65_536;

/// The value of every set map entry (presence is what counts).
const PRESENT: [u8; 1] = [1];

impl Maps {
    /// Creates the maps, each set map holding up to `capacity` elements.
    pub fn create(capacity: u32) -> Result<Maps, SysError> {
        Maps::create_with(capacity, None)
    }

    /// [`Maps::create`], with `flows` (a previous backend's, [`crate::adopt`]) as the flow
    /// table when given.
    pub fn create_with(capacity: u32, flows: Option<OwnedFd>) -> Result<Maps, SysError> {
        let flows = match flows {
            Some(f) => f,
            None => sys::map_create(
                MapType::LruHash,
                FLOWS_NAME,
                layout::flow::KEY_SIZE,
                layout::flow::VALUE_SIZE,
                FLOWS,
                0,
            )?,
        };
        Ok(Maps {
            state: sys::map_create(
                MapType::PercpuArray,
                "cali_state",
                4,
                layout::state::SIZE,
                1,
                0,
            )?,
            v4: sys::map_create(
                MapType::LpmTrie,
                "cali_sets_v4",
                layout::V4_KEY_SIZE,
                1,
                capacity,
                sys::F_NO_PREALLOC,
            )?,
            v6: sys::map_create(
                MapType::LpmTrie,
                "cali_sets_v6",
                layout::V6_KEY_SIZE,
                1,
                capacity,
                sys::F_NO_PREALLOC,
            )?,
            // Not preallocated: a hash is by default, and the capacity is a bound, not a
            // size (a million entries would pin tens of MB of kernel memory).
            ports: sys::map_create(
                MapType::Hash,
                "cali_named_port",
                layout::PORT_KEY_SIZE,
                1,
                capacity,
                sys::F_NO_PREALLOC,
            )?,
            flows,
            egress: Arc::new(sys::map_create(
                MapType::Hash,
                "cali_egress_if",
                4,
                1,
                EGRESS_INTERFACES,
                sys::F_NO_PREALLOC,
            )?),
            counters: CounterMap::create()?,
        })
    }

    /// The per-interface counters.
    pub fn counters(&self) -> &CounterMap {
        &self.counters
    }

    /// Marks interface `ifindex` as having an egress program ([`MapRef::Egress`]), until
    /// the mark is dropped.
    pub fn mark_egress(&self, ifindex: u32) -> Result<MapEntries, SysError> {
        let mut mark = MapEntries::new(self.egress.clone());
        mark.write(&ifindex.to_ne_bytes(), &PRESENT)?;
        Ok(mark)
    }

    /// The map behind a program's map reference; `None` for [`MapRef::Params`] and
    /// [`MapRef::Pieces`], which each loaded program has of its own.
    pub fn fd(&self, map: MapRef) -> Option<&OwnedFd> {
        match map {
            MapRef::State => Some(&self.state),
            MapRef::SetsV4 => Some(&self.v4),
            MapRef::SetsV6 => Some(&self.v6),
            MapRef::NamedPorts => Some(&self.ports),
            MapRef::Flows => Some(&self.flows),
            MapRef::Egress => Some(&self.egress),
            MapRef::Counters => Some(self.counters.fd()),
            MapRef::Params | MapRef::Pieces => None,
        }
    }

    /// The map and key of `element` of set `name` (id `id`, key type `key`).
    fn locate(
        &self,
        name: &str,
        id: u32,
        key: SetKey,
        element: &SetElement,
    ) -> Result<(&OwnedFd, Vec<u8>), GenerateError> {
        if !element.fits(key) {
            return Err(GenerateError::BadSetElement {
                set: name.into(),
                element: format!("{element:?}"),
            });
        }
        let family = |v4: bool| if v4 { &self.v4 } else { &self.v6 };
        Ok(match *element {
            SetElement::Addr(a) => {
                let len = if a.is_ipv4() { 32 } else { 128 };
                (family(a.is_ipv4()), lpm_key(id, a, len))
            }
            SetElement::Net(n) => {
                let n = n.trunc();
                (
                    family(key.is_ipv4()),
                    lpm_key(id, n.network(), n.prefix_len()),
                )
            }
            SetElement::AddrProtoPort(a, proto, port) => {
                (&self.ports, port_key(id, a, proto, port).to_vec())
            }
        })
    }

    /// Adds `element` to set `name` (id `id`, key type `key`).
    pub fn add(&self, name: &str, id: u32, key: SetKey, element: &SetElement) -> Result<(), Error> {
        let (map, k) = self.locate(name, id, key, element)?;
        Ok(sys::map_update(map, &k, &PRESENT)?)
    }

    /// Removes `element` from set `name`; an absent element is not an error.
    pub fn remove(
        &self,
        name: &str,
        id: u32,
        key: SetKey,
        element: &SetElement,
    ) -> Result<(), Error> {
        let (map, k) = self.locate(name, id, key, element)?;
        Ok(sys::map_delete(map, &k)?)
    }

    /// Writes every element of `set`.
    pub fn add_set(&self, name: &str, id: u32, set: &Set) -> Result<(), Error> {
        for e in &set.elements {
            self.add(name, id, set.key, e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SetIds;

    #[test]
    fn a_shared_copy_keeps_the_ids_it_was_taken_with() {
        let mut ids = SetIds::default();
        let a = ids.assign("a").unwrap();
        let before = ids.shared();
        let b = ids.assign("b").unwrap();
        ids.release("a");
        assert_ne!(a, b);
        assert_eq!(before.get("a"), Some(&a));
        assert!(
            !before.contains_key("b"),
            "a later assignment shows in an earlier copy"
        );
        assert_eq!(ids.ids().get("b"), Some(&b));
        assert!(!ids.ids().contains_key("a"));
        assert_eq!(
            ids.assign("a").unwrap(),
            b + 1,
            "a released id is not reused"
        );
    }
}

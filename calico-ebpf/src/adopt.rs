//! Carrying a previous backend's flow table over to a new one.
//!
//! A backend's programs outlive it (their tc filters stay), and a new backend takes them
//! over. With a new, empty flow table, every connection open at the take-over would be
//! judged as new at its next packet: a reply the policy admits only as part of an
//! established flow (into a workload whose policy admits nothing in, say) would be
//! dropped, and the connection broken by an agent restart. So the new backend finds the
//! flow table the previous backend's programs use, through the kernel's ids (program →
//! its maps), and uses it: the connections recorded there go on, judged as before.
//!
//! A map is taken only when it is the flow table of this layout: its name, type, key and
//! value sizes and capacity (a table of another layout, an older agent's, is left alone
//! and a new one made).

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;

use crate::error::SysError;
use crate::layout::flow;
use crate::sets::{FLOWS, FLOWS_NAME};
use crate::sys::{self, MapInfo, MapType};

/// Where a backend's flow table came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowTable {
    /// Made new: there was no previous backend.
    New,
    /// The previous backend's, with the connections it recorded.
    Adopted,
    /// Made new although a previous backend's programs were found: why theirs was not
    /// taken (another layout, or the kernel refused to tell).
    NotAdopted(String),
}

/// Whether `info` describes a flow table this backend's programs can use.
fn is_flow_table(info: &MapInfo) -> bool {
    info.name == FLOWS_NAME
        && info.kind == MapType::LruHash as u32
        && info.key_size == flow::KEY_SIZE
        && info.value_size == flow::VALUE_SIZE
        && info.max_entries == FLOWS
}

/// Whether `e` says the object is gone (unloaded since it was listed).
fn gone(e: &SysError) -> bool {
    matches!(e, SysError::Bpf { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
}

/// The maps the program with kernel id `id` uses, each with what the kernel says of it;
/// `None` when the program is gone (unloaded since it was listed). A map gone meanwhile is
/// left out.
pub(crate) fn program_maps(id: u32) -> Result<Option<Vec<(OwnedFd, sys::MapInfo)>>, SysError> {
    let prog = match sys::prog_fd_by_id(id) {
        Ok(p) => p,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for map_id in sys::prog_map_ids(&prog)? {
        let map = match sys::map_fd_by_id(map_id) {
            Ok(m) => m,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let info = sys::map_info(&map)?;
        out.push((map, info));
    }
    Ok(Some(out))
}

/// The flow table the programs with kernel ids `programs` use; `None` when none of them
/// uses one of this layout (or they are all gone).
pub fn flow_table(programs: &BTreeSet<u32>) -> Result<Option<OwnedFd>, SysError> {
    for &id in programs {
        let Some(maps) = program_maps(id)? else {
            continue;
        };
        if let Some((map, _)) = maps.into_iter().find(|(_, info)| is_flow_table(info)) {
            return Ok(Some(map));
        }
    }
    Ok(None)
}

/// The flow table a previous backend's programs (kernel ids `programs`) use, if one of
/// this layout is found, and what became of the search.
pub fn take_over(programs: &BTreeSet<u32>) -> (Option<OwnedFd>, FlowTable) {
    if programs.is_empty() {
        return (None, FlowTable::New);
    }
    match flow_table(programs) {
        Ok(Some(fd)) => (Some(fd), FlowTable::Adopted),
        Ok(None) => (
            None,
            FlowTable::NotAdopted(format!(
                "none of the {} programs found uses a flow table of this layout",
                programs.len()
            )),
        ),
        Err(e) => (None, FlowTable::NotAdopted(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> MapInfo {
        MapInfo {
            kind: MapType::LruHash as u32,
            key_size: flow::KEY_SIZE,
            value_size: flow::VALUE_SIZE,
            max_entries: FLOWS,
            name: FLOWS_NAME.into(),
        }
    }

    #[test]
    fn only_a_table_of_this_layout_is_taken() {
        assert!(is_flow_table(&ours()));
        let other = [
            MapInfo {
                name: "cali_sets_v4".into(),
                ..ours()
            },
            MapInfo {
                kind: MapType::Hash as u32,
                ..ours()
            },
            MapInfo {
                key_size: flow::KEY_SIZE + 4,
                ..ours()
            },
            MapInfo {
                value_size: 8,
                ..ours()
            },
            MapInfo {
                max_entries: FLOWS / 2,
                ..ours()
            },
        ];
        for info in other {
            assert!(!is_flow_table(&info), "{info:?}");
        }
    }
}

//! Reading the agent's table back from the kernel into the IR, so that resync compares
//! what the kernel really holds with what it should hold.
//!
//! [`read`] runs one dump per object kind; [`messages`] parses each dumped message,
//! [`sets`] turns sets and maps into the IR, [`intervals`] rebuilds ranges from interval
//! keys.

mod intervals;
mod messages;
mod sets;

use std::collections::BTreeMap;

use calico_core::dataplane::ir::{Rule, Ruleset, Statement};

use super::ownership::{self, ForeignTable, TableState};
use crate::nft::expr::VerdictCode;
use crate::nft::netlink::WireError;
use crate::nft::proto::*;
use crate::nft::socket::{NfSocket, NlError};

/// The log prefix of the stand-in rule reported for a rule this backend did not write (added
/// or edited by hand). It never occurs in a compiled ruleset, so the chain holding it always
/// differs from the desired one and resync rewrites it.
pub const FOREIGN_RULE: &str = "calico-rs: foreign rule";

/// Why the table could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Netlink failed.
    #[error(transparent)]
    Netlink(#[from] NlError),
    /// The table holds an object calico-rs never creates and cannot represent.
    #[error("{0}")]
    Foreign(String),
    /// The table is not the agent's: it lacks the mark.
    #[error(transparent)]
    NotOurs(#[from] ForeignTable),
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> Self {
        ReadError::Netlink(NlError::Wire(e))
    }
}

/// A set or map as dumped, before it becomes IR.
#[derive(Debug, Default)]
struct RawSet {
    flags: u32,
    key_len: u32,
    data_type: Option<u32>,
    elements: Vec<RawElement>,
}

/// One element of a set or map as dumped.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RawElement {
    key: Vec<u8>,
    /// The key is one past the top of an interval (`NFT_SET_ELEM_INTERVAL_END`).
    interval_end: bool,
    /// A map element's verdict (`None` also for one calico-rs never writes).
    verdict: Option<VerdictCode>,
}

/// Reads table `table` (family `inet`) back, with what the kernel holds under its name. An
/// absent table reads as an empty ruleset; a table without the agent's mark
/// ([`ownership`]) is not read but refused with [`ReadError::NotOurs`].
pub fn read(sock: &mut NfSocket, table: &str) -> Result<(TableState, Ruleset), ReadError> {
    let mut ruleset = Ruleset::default();
    match ownership::table_state(sock, table)? {
        TableState::Absent => return Ok((TableState::Absent, ruleset)),
        TableState::Foreign => {
            return Err(ReadError::NotOurs(ForeignTable {
                table: table.to_string(),
            }))
        }
        TableState::Ours => {}
    }
    sock.dump(
        NFT_MSG_GETCHAIN,
        |w| w.string(NFTA_CHAIN_TABLE, table),
        |m| {
            ruleset.chains.extend(messages::chain(m, table)?);
            Ok(())
        },
    )?;
    let raw = read_sets(sock, table)?;
    sets::add_sets(&mut ruleset, table, &raw)?;
    for (chain, rule) in read_rules(sock, table, &raw)? {
        if let Some(c) = ruleset.chains.get_mut(&chain) {
            c.rules.push(rule);
        }
    }
    Ok((TableState::Ours, ruleset))
}

/// Every set and map of the table (anonymous ones too), with its elements.
fn read_sets(sock: &mut NfSocket, table: &str) -> Result<BTreeMap<String, RawSet>, NlError> {
    let mut raw = BTreeMap::new();
    sock.dump(
        NFT_MSG_GETSET,
        |w| w.string(NFTA_SET_TABLE, table),
        |m| {
            raw.extend(messages::set(m, table)?);
            Ok(())
        },
    )?;
    for (name, set) in raw.iter_mut() {
        sock.dump(
            NFT_MSG_GETSETELEM,
            |w| {
                w.string(NFTA_SET_ELEM_LIST_TABLE, table);
                w.string(NFTA_SET_ELEM_LIST_SET, name);
            },
            |m| Ok(messages::elements(m, &mut set.elements)?),
        )?;
    }
    Ok(raw)
}

/// The rules of the table as `(chain, rule)`, in chain order.
fn read_rules(
    sock: &mut NfSocket,
    table: &str,
    raw: &BTreeMap<String, RawSet>,
) -> Result<Vec<(String, Rule)>, NlError> {
    let anon = |set_name: &str| -> Option<Vec<(u16, u16)>> {
        let set = raw.get(set_name)?;
        if set.key_len != 2 || set.flags & NFT_SET_INTERVAL == 0 {
            return None;
        }
        intervals::port_ranges(&set.elements)
    };
    let mut rules = Vec::new();
    sock.dump(
        NFT_MSG_GETRULE,
        |w| w.string(NFTA_RULE_TABLE, table),
        |m| {
            rules.extend(messages::rule(m, table, &anon)?);
            Ok(())
        },
    )?;
    Ok(rules)
}

fn foreign_rule() -> Rule {
    Rule {
        matches: Vec::new(),
        statements: vec![Statement::Log(FOREIGN_RULE.into())],
        verdict: None,
    }
}

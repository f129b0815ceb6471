//! Which `inet` table is the agent's: the tables [`super::LinuxAcl`] creates carry a mark
//! (the table comment [`TABLE_MARK`], stored as nft stores comments so that `nft list table`
//! shows it), and a table of the agent's name without the mark is never touched.
//!
//! A table of that name written by calico-rs before the mark existed has no mark either: it
//! is refused like any foreign table, and the operator deletes it once
//! (`nft delete table inet NAME`); the agent then recreates it, marked.

use crate::nft::netlink::{parse_string, Msg, WireError};
use crate::nft::proto::*;
use crate::nft::socket::{NfSocket, NlError};

/// The comment of every table the agent owns.
pub const TABLE_MARK: &str = "managed by calico-rs; do not edit";

/// What the kernel holds under the agent's table name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableState {
    /// No such table: the agent may create it.
    Absent,
    /// A table with the agent's mark.
    Ours,
    /// A table without the mark: someone else's (or one from before the mark).
    Foreign,
}

/// A table of the agent's name that the agent does not own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "table inet {table} exists but is not managed by calico-rs (it lacks the comment \
     {TABLE_MARK:?}), so calico-rs leaves it untouched: rename or delete that table \
     (`nft delete table inet {table}`, e.g. if an older calico-rs created it), or give \
     the agent another table name (--nft-table)"
)]
pub struct ForeignTable {
    /// The table's name.
    pub table: String,
}

/// The table userdata carrying [`TABLE_MARK`]: one `NFTNL_UDATA_TABLE_COMMENT` TLV holding
/// the NUL-terminated comment, exactly as nft writes a table comment.
pub fn table_userdata() -> Vec<u8> {
    let mut v = Vec::with_capacity(TABLE_MARK.len() + 3);
    v.push(NFTNL_UDATA_TABLE_COMMENT);
    v.push((TABLE_MARK.len() + 1) as u8);
    v.extend_from_slice(TABLE_MARK.as_bytes());
    v.push(0);
    v
}

/// Whether table userdata carries [`TABLE_MARK`] as its comment. Never panics, whatever the
/// bytes.
pub fn is_marked(udata: &[u8]) -> bool {
    let mut rest = udata;
    while let [ty, len, tail @ ..] = rest {
        let Some((value, next)) = tail.split_at_checked(usize::from(*len)) else {
            return false;
        };
        if *ty == NFTNL_UDATA_TABLE_COMMENT {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return text == TABLE_MARK.as_bytes();
        }
        rest = next;
    }
    false
}

/// What a dumped `NEWTABLE` message says about `table`: `None` for another table.
pub fn table_state_of(m: &Msg, table: &str) -> Result<Option<TableState>, WireError> {
    let mut named = false;
    let mut marked = false;
    for a in m.nft_attrs()? {
        match a? {
            (NFTA_TABLE_NAME, d) => named = parse_string(d)? == table,
            (NFTA_TABLE_USERDATA, d) => marked = is_marked(d),
            _ => {}
        }
    }
    Ok(match (named, marked) {
        (false, _) => None,
        (true, true) => Some(TableState::Ours),
        (true, false) => Some(TableState::Foreign),
    })
}

/// Asks the kernel what is under `table` (family `inet`): one table dump.
pub fn table_state(sock: &mut NfSocket, table: &str) -> Result<TableState, NlError> {
    let mut state = TableState::Absent;
    sock.dump(
        NFT_MSG_GETTABLE,
        |_| {},
        |m| {
            if let Some(s) = table_state_of(m, table)? {
                state = s;
            }
            Ok(())
        },
    )?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_the_tlv_nft_writes_for_a_table_comment() {
        // `nft --debug=mnl` for `table inet t { comment "managed by calico-rs; do not edit" }`.
        let mut want = vec![0x00, 0x22];
        want.extend_from_slice(b"managed by calico-rs; do not edit\0");
        assert_eq!(table_userdata(), want);
        assert!(is_marked(&want));
    }

    #[test]
    fn other_comments_and_garbage_are_not_the_mark() {
        assert!(!is_marked(b""));
        assert!(!is_marked(b"\x00\x06hello\0"));
        assert!(!is_marked(b"\x00\x40managed by calico-rs; do not edit\0"));
        let mut other_first = vec![7, 2, 1, 2];
        other_first.extend_from_slice(&table_userdata());
        assert!(is_marked(&other_first));
        for cut in 0..table_userdata().len() {
            let _ = is_marked(&table_userdata()[..cut]);
        }
    }
}

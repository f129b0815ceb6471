//! Which nf_tables notifications are drift of the agent's table: any change to table
//! `inet <name>` or to anything in it, made by someone else than the backend's own socket.
//!
//! Every nf_tables notification carries in `nlmsg_pid` the port id of the socket whose
//! transaction caused it, so the backend's own batches are recognised and ignored (else each
//! repair would trigger the next). Notifications are read with the panic-free walkers of
//! the `nft` layer; a malformed one is ignored (debug log).

use crate::events::DriftListener;
use crate::nft::netlink::{parse_string, Msg, Msgs, WireError};
use crate::nft::proto::{NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFPROTO_INET};
use crate::nft::socket::NfSocket;

/// The nfnetlink multicast group of nf_tables notifications (`NFNLGRP_NFTABLES`).
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFT_MSG_NEWGEN`, `NFT_MSG_GETGEN`, `NFT_MSG_TRACE`: not about one table.
const NOT_ABOUT_A_TABLE: [u16; 3] = [15, 16, 17];
/// The attribute naming the table, in every message about a table or something in one
/// (`NFTA_TABLE_NAME`, `NFTA_CHAIN_TABLE`, `NFTA_RULE_TABLE`, `NFTA_SET_TABLE`,
/// `NFTA_SET_ELEM_LIST_TABLE`, `NFTA_OBJ_TABLE`, `NFTA_FLOWTABLE_TABLE` are all 1).
const TABLE_ATTR: u16 = 1;

/// A listener for changes to table `inet <table>` not made through `own` (opened in the
/// calling thread's network namespace, like `own`).
pub(crate) fn listener(own: &NfSocket, table: &str) -> DriftListener {
    let portid = match own.portid() {
        Ok(portid) => portid,
        Err(e) => {
            return DriftListener::unavailable(
                "nf_tables",
                format!("cannot read the port id of the transaction socket: {e}"),
            )
        }
    };
    let table = table.to_string();
    DriftListener::open(
        "nf_tables",
        NETLINK_NETFILTER as isize,
        &[NFNLGRP_NFTABLES],
        Box::new(move |datagram| concerns_table(datagram, portid, &table)),
    )
}

/// Whether a datagram of notifications reports a change to table `inet <table>` made by a
/// socket other than `own_portid`.
pub(crate) fn concerns_table(datagram: &[u8], own_portid: u32, table: &str) -> bool {
    for msg in Msgs::new(datagram) {
        let msg = match msg {
            Ok(msg) => msg,
            Err(e) => {
                tracing::debug!(error = %e, "malformed nf_tables notification ignored");
                return false;
            }
        };
        if msg.pid == own_portid
            || msg.ty >> 8 != NFNL_SUBSYS_NFTABLES
            || NOT_ABOUT_A_TABLE.contains(&(msg.ty & 0xff))
            || msg.payload.first() != Some(&NFPROTO_INET)
        {
            continue;
        }
        match table_of(&msg) {
            Ok(Some(name)) if name == table => return true,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "malformed nf_tables notification ignored"),
        }
    }
    false
}

/// The table a notification is about, if it names one.
fn table_of(msg: &Msg) -> Result<Option<String>, WireError> {
    for attr in msg.nft_attrs()? {
        let (ty, data) = attr?;
        if ty == TABLE_ATTR {
            return parse_string(data).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::netlink::MsgWriter;
    use crate::nft::proto::*;

    /// One notification `msg` about `table`, sent on behalf of port `pid`.
    fn notification(msg: u16, table: &str, pid: u32) -> Vec<u8> {
        let mut w = MsgWriter::new(1);
        w.begin_nft(msg, 0);
        w.string(TABLE_ATTR, table);
        w.end();
        let mut bytes = w.finish().expect("encodes").to_vec();
        bytes[12..16].copy_from_slice(&pid.to_ne_bytes());
        bytes
    }

    #[test]
    fn someone_elses_change_to_our_table_is_drift() {
        assert!(concerns_table(
            &notification(NFT_MSG_DELTABLE, "calico", 999),
            42,
            "calico"
        ));
        assert!(concerns_table(
            &notification(NFT_MSG_DELRULE, "calico", 0),
            42,
            "calico"
        ));
    }

    #[test]
    fn our_own_changes_and_other_tables_are_not() {
        assert!(!concerns_table(
            &notification(NFT_MSG_NEWRULE, "calico", 42),
            42,
            "calico"
        ));
        assert!(!concerns_table(
            &notification(NFT_MSG_DELTABLE, "filter", 999),
            42,
            "calico"
        ));
        assert!(!concerns_table(
            &notification(15, "calico", 999),
            42,
            "calico"
        ));
    }

    #[test]
    fn a_later_message_of_the_datagram_counts_too() {
        let mut datagram = notification(NFT_MSG_NEWRULE, "filter", 999);
        datagram.extend(notification(NFT_MSG_NEWSET, "calico", 7));
        assert!(concerns_table(&datagram, 42, "calico"));
    }

    #[test]
    fn malformed_notifications_are_ignored_without_panic() {
        let good = notification(NFT_MSG_DELTABLE, "calico", 999);
        for cut in 0..good.len() {
            let _ = concerns_table(&good[..cut], 42, "calico");
        }
        let mut bad_len = good.clone();
        bad_len[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(!concerns_table(&bad_len, 42, "calico"));
        assert!(!concerns_table(&[0xff; 3], 42, "calico"));
    }
}

//! A compiler [`ChangeSet`] written as one nf_tables transaction on the agent's table.

use std::net::IpAddr;

use calico_core::dataplane::ir::{
    BaseChain, ChainPolicy, ChainType, Hook, Rule, SetElement, SetKey, Statement, Verdict,
};
use calico_core::dataplane::{Change, ChangeSet};
use ipnet::IpNet;

use super::rule_codec::{self, AnonPortSet, RenderError, ANON_SET_NAME};
use super::{ownership, rule_udata, set_udata};
use crate::nft::expr::{encode_verdict, VerdictCode};
use crate::nft::netlink::MsgWriter;
use crate::nft::proto::*;

/// Elements per `NEWSETELEM`/`DELSETELEM` message: an attribute nest holds at most 64 KiB.
const ELEMENTS_PER_MESSAGE: usize = 400;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// Which change a message of the transaction came from, to name it in an error.
#[derive(Debug, Default)]
pub struct Origins {
    /// `(first sequence number, change index)`, ascending.
    starts: Vec<(u32, usize)>,
}

impl Origins {
    /// The index of the change whose messages include `seq`.
    pub fn change_of(&self, seq: u32) -> Option<usize> {
        let i = self.starts.partition_point(|(s, _)| *s <= seq);
        let (_, change) = self.starts.get(i.checked_sub(1)?)?;
        Some(*change)
    }
}

/// How the transaction meets the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableAccess {
    /// The table is known to be the agent's (it carries the mark): created again, marked,
    /// if it disappeared meanwhile.
    Ours,
    /// The table was absent: create it, marked, and fail if a table of that name appeared
    /// meanwhile (`NLM_F_EXCL`) rather than adopt it.
    Create,
}

/// Writes `changes` into the transaction `w` (which holds the batch-begin message): first
/// the table (created, with the agent's mark, if missing), then every change in order.
pub fn write(
    w: &mut MsgWriter,
    table: &str,
    access: TableAccess,
    changes: &ChangeSet,
) -> Result<Origins, RenderError> {
    let excl = match access {
        TableAccess::Ours => 0,
        TableAccess::Create => NLM_F_EXCL,
    };
    w.begin_nft(NFT_MSG_NEWTABLE, NLM_F_CREATE | excl);
    w.string(NFTA_TABLE_NAME, table);
    w.bytes(NFTA_TABLE_USERDATA, &ownership::table_userdata());
    w.end();
    let mut origins = Origins::default();
    let mut next_id = 1u32;
    for (index, change) in changes.changes.iter().enumerate() {
        origins.starts.push((w.next_seq(), index));
        write_change(w, table, change, &mut next_id)
            .map_err(|e| RenderError(format!("change #{index}: {}", e.0)))?;
    }
    Ok(origins)
}

fn write_change(
    w: &mut MsgWriter,
    table: &str,
    change: &Change,
    next_id: &mut u32,
) -> Result<(), RenderError> {
    match change {
        Change::AddSet { name, key } => {
            let (key_type, key_len) = key_format(*key);
            let flags = if key.is_interval() {
                NFT_SET_INTERVAL
            } else {
                0
            };
            let format = SetFormat {
                flags,
                key_type,
                key_len,
                data_type: None,
                udata: &set_udata::named_set(*key),
            };
            new_set(w, table, name, &format, next_id);
        }
        Change::AddMap { name } => {
            let format = SetFormat {
                flags: NFT_SET_MAP,
                key_type: TYPE_IFNAME,
                key_len: 16,
                data_type: Some(NFT_DATA_VERDICT),
                udata: &set_udata::iface_map(),
            };
            new_set(w, table, name, &format, next_id);
        }
        Change::AddElements { set, elements } => {
            set_elements(w, table, set, elements, NFT_MSG_NEWSETELEM)
        }
        Change::DelElements { set, elements } => {
            set_elements(w, table, set, elements, NFT_MSG_DELSETELEM)
        }
        Change::AddMapElements { map, elements } => add_map_elements(w, table, map, elements)?,
        Change::DelMapElements { map, keys } => del_map_elements(w, table, map, keys)?,
        Change::AddChain { name, base } => {
            w.begin_nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
            w.string(NFTA_CHAIN_TABLE, table);
            w.string(NFTA_CHAIN_NAME, name);
            if let Some(base) = base {
                write_base(w, base);
            }
            w.end();
        }
        Change::SetRules { chain, rules } => set_rules(w, table, chain, rules, next_id)?,
        Change::DelChain { name } => {
            w.begin_nft(NFT_MSG_DELCHAIN, 0);
            w.string(NFTA_CHAIN_TABLE, table);
            w.string(NFTA_CHAIN_NAME, name);
            w.end();
        }
        Change::DelMap { name } | Change::DelSet { name } => {
            w.begin_nft(NFT_MSG_DELSET, 0);
            w.string(NFTA_SET_TABLE, table);
            w.string(NFTA_SET_NAME, name);
            w.end();
        }
    }
    Ok(())
}

/// Adds (`NFT_MSG_NEWSETELEM`) or deletes (`NFT_MSG_DELSETELEM`) elements of a set.
fn set_elements(w: &mut MsgWriter, table: &str, set: &str, elements: &[SetElement], msg: u16) {
    let mut keys = Vec::with_capacity(elements.len() * 2);
    for e in elements {
        element_keys(e, &mut keys);
    }
    for chunk in keys.chunks(ELEMENTS_PER_MESSAGE) {
        elements_msg(
            w,
            table,
            set,
            None,
            msg,
            chunk.iter().map(|(k, end)| (k.as_slice(), *end, None)),
        );
    }
}

fn add_map_elements(
    w: &mut MsgWriter,
    table: &str,
    map: &str,
    elements: &[(String, Verdict)],
) -> Result<(), RenderError> {
    let mut items = Vec::with_capacity(elements.len());
    for (iface, verdict) in elements {
        items.push((ifname_key(iface)?, verdict_code(verdict)?));
    }
    for chunk in items.chunks(ELEMENTS_PER_MESSAGE) {
        elements_msg(
            w,
            table,
            map,
            None,
            NFT_MSG_NEWSETELEM,
            chunk.iter().map(|(k, v)| (k.as_slice(), false, Some(v))),
        );
    }
    Ok(())
}

fn del_map_elements(
    w: &mut MsgWriter,
    table: &str,
    map: &str,
    keys: &[String],
) -> Result<(), RenderError> {
    let mut items = Vec::with_capacity(keys.len());
    for iface in keys {
        items.push(ifname_key(iface)?);
    }
    for chunk in items.chunks(ELEMENTS_PER_MESSAGE) {
        elements_msg(
            w,
            table,
            map,
            None,
            NFT_MSG_DELSETELEM,
            chunk.iter().map(|k| (k.as_slice(), false, None)),
        );
    }
    Ok(())
}

/// Flushes a chain, then appends its rules: inside the transaction, so no packet sees the
/// gap.
fn set_rules(
    w: &mut MsgWriter,
    table: &str,
    chain: &str,
    rules: &[Rule],
    next_id: &mut u32,
) -> Result<(), RenderError> {
    w.begin_nft(NFT_MSG_DELRULE, 0);
    w.string(NFTA_RULE_TABLE, table);
    w.string(NFTA_RULE_CHAIN, chain);
    w.end();
    for rule in rules {
        let mut anon = Vec::new();
        let exprs = rule_codec::render(rule, next_id, &mut anon)?;
        for set in &anon {
            write_anon_port_set(w, table, set);
        }
        w.begin_nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        w.string(NFTA_RULE_TABLE, table);
        w.string(NFTA_RULE_CHAIN, chain);
        w.nest(NFTA_RULE_EXPRESSIONS);
        for e in &exprs {
            e.encode(w);
        }
        w.end_nest();
        if let Some(Statement::FlowRef(r)) = rule.statements.last() {
            w.bytes(NFTA_RULE_USERDATA, &rule_udata::comment(r));
        }
        w.end();
    }
    Ok(())
}

/// The nftables key type id and the key length in bytes of a set.
pub fn key_format(key: SetKey) -> (u32, u32) {
    let concat = |addr| ((addr << TYPE_BITS | TYPE_INET_PROTOCOL) << TYPE_BITS) | TYPE_INET_SERVICE;
    match key {
        SetKey::Ipv4Addr | SetKey::Ipv4Net => (TYPE_IPADDR, 4),
        SetKey::Ipv6Addr | SetKey::Ipv6Net => (TYPE_IP6ADDR, 16),
        SetKey::Ipv4AddrProtoPort => (concat(TYPE_IPADDR), 12),
        SetKey::Ipv6AddrProtoPort => (concat(TYPE_IP6ADDR), 24),
    }
}

/// What a named set or map is, as `NEWSET` says it.
struct SetFormat<'a> {
    flags: u32,
    key_type: u32,
    key_len: u32,
    /// A map's data type (its data length is then 0: verdicts have none).
    data_type: Option<u32>,
    /// What nft needs to print the elements ([`set_udata`]).
    udata: &'a [u8],
}

fn new_set(w: &mut MsgWriter, table: &str, name: &str, f: &SetFormat, next_id: &mut u32) {
    w.begin_nft(NFT_MSG_NEWSET, NLM_F_CREATE);
    w.string(NFTA_SET_TABLE, table);
    w.string(NFTA_SET_NAME, name);
    w.be32(NFTA_SET_FLAGS, f.flags);
    w.be32(NFTA_SET_KEY_TYPE, f.key_type);
    w.be32(NFTA_SET_KEY_LEN, f.key_len);
    if let Some(d) = f.data_type {
        w.be32(NFTA_SET_DATA_TYPE, d);
        w.be32(NFTA_SET_DATA_LEN, 0);
    }
    w.be32(NFTA_SET_ID, *next_id);
    w.bytes(NFTA_SET_USERDATA, f.udata);
    *next_id += 1;
    w.end();
}

fn write_anon_port_set(w: &mut MsgWriter, table: &str, set: &AnonPortSet) {
    w.begin_nft(NFT_MSG_NEWSET, NLM_F_CREATE);
    w.string(NFTA_SET_TABLE, table);
    w.string(NFTA_SET_NAME, ANON_SET_NAME);
    w.be32(
        NFTA_SET_FLAGS,
        NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL,
    );
    w.be32(NFTA_SET_KEY_TYPE, TYPE_INET_SERVICE);
    w.be32(NFTA_SET_KEY_LEN, 2);
    w.be32(NFTA_SET_ID, set.id);
    w.bytes(NFTA_SET_USERDATA, &set_udata::port_set());
    w.end();
    let mut keys = Vec::new();
    for (lo, hi) in &set.ranges {
        keys.push((lo.to_be_bytes().to_vec(), false));
        if let Some(end) = hi.checked_add(1) {
            keys.push((end.to_be_bytes().to_vec(), true));
        }
    }
    elements_msg(
        w,
        table,
        ANON_SET_NAME,
        Some(set.id),
        NFT_MSG_NEWSETELEM,
        keys.iter().map(|(k, e)| (k.as_slice(), *e, None)),
    );
}

fn elements_msg<'a>(
    w: &mut MsgWriter,
    table: &str,
    set: &str,
    set_id: Option<u32>,
    msg: u16,
    items: impl Iterator<Item = (&'a [u8], bool, Option<&'a VerdictCode>)>,
) {
    w.begin_nft(
        msg,
        if msg == NFT_MSG_NEWSETELEM {
            NLM_F_CREATE
        } else {
            0
        },
    );
    w.string(NFTA_SET_ELEM_LIST_TABLE, table);
    w.string(NFTA_SET_ELEM_LIST_SET, set);
    if let Some(id) = set_id {
        w.be32(NFTA_SET_ELEM_LIST_SET_ID, id);
    }
    w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    for (key, end, data) in items {
        w.nest(NFTA_LIST_ELEM);
        w.nest(NFTA_SET_ELEM_KEY);
        w.bytes(NFTA_DATA_VALUE, key);
        w.end_nest();
        if end {
            w.be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        }
        if let Some(v) = data {
            w.nest(NFTA_SET_ELEM_DATA);
            encode_verdict(w, v);
            w.end_nest();
        }
        w.end_nest();
    }
    w.end_nest();
    w.end();
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The kernel keys of one IR element: one for an address, a start and (unless the range
/// runs to the top of the address space) an interval-end key for a CIDR.
pub fn element_keys(e: &SetElement, out: &mut Vec<(Vec<u8>, bool)>) {
    match e {
        SetElement::Addr(a) => out.push((octets(*a), false)),
        SetElement::AddrProtoPort(a, proto, port) => {
            let mut k = octets(*a);
            k.extend_from_slice(&[*proto, 0, 0, 0]);
            k.extend_from_slice(&port.to_be_bytes());
            k.extend_from_slice(&[0, 0]);
            out.push((k, false));
        }
        SetElement::Net(net) => {
            out.push((octets(net.network()), false));
            let end = match net {
                IpNet::V4(n) => u32::from(n.broadcast())
                    .checked_add(1)
                    .map(|e| e.to_be_bytes().to_vec()),
                IpNet::V6(n) => u128::from(n.broadcast())
                    .checked_add(1)
                    .map(|e| e.to_be_bytes().to_vec()),
            };
            if let Some(end) = end {
                out.push((end, true));
            }
        }
    }
}

fn ifname_key(iface: &str) -> Result<Vec<u8>, RenderError> {
    if iface.is_empty() || iface.len() > MAX_IFNAME || iface.contains('\0') {
        return Err(RenderError(format!(
            "interface name {iface:?} is not a Linux interface name (1 to {MAX_IFNAME} bytes)"
        )));
    }
    let mut k = iface.as_bytes().to_vec();
    k.resize(16, 0);
    Ok(k)
}

fn verdict_code(v: &Verdict) -> Result<VerdictCode, RenderError> {
    Ok(match v {
        Verdict::Accept => VerdictCode::Accept,
        Verdict::Drop => VerdictCode::Drop,
        Verdict::Return => VerdictCode::Return,
        Verdict::Jump(c) => VerdictCode::Jump(c.clone()),
        Verdict::Goto(c) => VerdictCode::Goto(c.clone()),
        Verdict::Dispatch { .. } => {
            return Err(RenderError(
                "a map element cannot dispatch to another map".into(),
            ))
        }
    })
}

/// The kernel's hook number for an IR hook.
pub fn hook_number(hook: Hook) -> u32 {
    match hook {
        Hook::Prerouting => NF_INET_PRE_ROUTING,
        Hook::Forward => NF_INET_FORWARD,
        Hook::Input => NF_INET_LOCAL_IN,
        Hook::Output => NF_INET_LOCAL_OUT,
        Hook::Postrouting => NF_INET_POST_ROUTING,
    }
}

/// The kernel's name of a chain type.
pub fn chain_type_name(kind: ChainType) -> &'static str {
    match kind {
        ChainType::Filter => "filter",
        ChainType::Nat => "nat",
    }
}

fn write_base(w: &mut MsgWriter, base: &BaseChain) {
    w.nest(NFTA_CHAIN_HOOK);
    w.be32(NFTA_HOOK_HOOKNUM, hook_number(base.hook));
    w.be32(NFTA_HOOK_PRIORITY, base.priority as u32);
    w.end_nest();
    w.be32(
        NFTA_CHAIN_POLICY,
        match base.policy {
            ChainPolicy::Accept => NF_ACCEPT as u32,
            ChainPolicy::Drop => NF_DROP as u32,
        },
    );
    w.string(NFTA_CHAIN_TYPE, chain_type_name(base.kind));
}

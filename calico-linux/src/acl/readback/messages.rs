//! One dumped nf_tables message → what it says about the agent's table: one function per
//! message type. Each is pure (bytes in, values or a [`WireError`] out), so it is tested
//! without a kernel.

use calico_core::dataplane::ir::{BaseChain, Chain, ChainPolicy, ChainType, Hook, Rule, Statement};

use super::{RawElement, RawSet};
use crate::acl::rule_codec::{self, AnonResolver};
use crate::acl::rule_udata;
use crate::nft::expr::{decode_value, decode_verdict_data, Expr};
use crate::nft::netlink::{parse_be32, parse_string, Attrs, Msg, WireError};
use crate::nft::proto::*;

/// A `NEWCHAIN` message: the chain's name and its (empty) IR, if it is in `table`.
pub(super) fn chain(m: &Msg, table: &str) -> Result<Option<(String, Chain)>, WireError> {
    let mut name = None;
    let mut in_table = false;
    let mut hook = None;
    let mut priority = 0i32;
    let mut policy = None;
    let mut kind = None;
    for a in m.nft_attrs()? {
        match a? {
            (NFTA_CHAIN_TABLE, d) => in_table = parse_string(d)? == table,
            (NFTA_CHAIN_TYPE, d) => kind = Some(parse_string(d)?),
            (NFTA_CHAIN_NAME, d) => name = Some(parse_string(d)?),
            (NFTA_CHAIN_POLICY, d) => policy = Some(parse_be32(d)?),
            (NFTA_CHAIN_HOOK, d) => {
                for h in Attrs::new(d) {
                    match h? {
                        (NFTA_HOOK_HOOKNUM, d) => hook = Some(parse_be32(d)?),
                        (NFTA_HOOK_PRIORITY, d) => priority = parse_be32(d)? as i32,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(name), true) = (name, in_table) else {
        return Ok(None);
    };
    let base = hook.map(|h| base_chain(h, priority, policy, kind.as_deref()));
    let rules = Vec::new();
    Ok(Some((name, Chain { base, rules })))
}

fn base_chain(hook: u32, priority: i32, policy: Option<u32>, kind: Option<&str>) -> BaseChain {
    let known = |h| match h {
        NF_INET_PRE_ROUTING => Some(Hook::Prerouting),
        NF_INET_FORWARD => Some(Hook::Forward),
        NF_INET_LOCAL_IN => Some(Hook::Input),
        NF_INET_LOCAL_OUT => Some(Hook::Output),
        NF_INET_POST_ROUTING => Some(Hook::Postrouting),
        _ => None,
    };
    let kind = match kind {
        Some("filter") => Some(ChainType::Filter),
        Some("nat") => Some(ChainType::Nat),
        _ => None,
    };
    // A chain on a hook or of a type calico-rs never uses: reported with an impossible
    // priority so that it differs from anything desired.
    let ours = known(hook).zip(kind);
    BaseChain {
        hook: known(hook).unwrap_or(Hook::Forward),
        priority: if ours.is_some() { priority } else { i32::MIN },
        kind: kind.unwrap_or(ChainType::Filter),
        policy: if policy == Some(NF_DROP as u32) {
            ChainPolicy::Drop
        } else {
            ChainPolicy::Accept
        },
    }
}

/// A `NEWSET` message: the set's name and format (no elements yet), if it is in `table`.
pub(super) fn set(m: &Msg, table: &str) -> Result<Option<(String, RawSet)>, WireError> {
    let mut name = None;
    let mut in_table = false;
    let mut set = RawSet::default();
    for a in m.nft_attrs()? {
        match a? {
            (NFTA_SET_TABLE, d) => in_table = parse_string(d)? == table,
            (NFTA_SET_NAME, d) => name = Some(parse_string(d)?),
            (NFTA_SET_FLAGS, d) => set.flags = parse_be32(d)?,
            (NFTA_SET_KEY_LEN, d) => set.key_len = parse_be32(d)?,
            (NFTA_SET_DATA_TYPE, d) => set.data_type = Some(parse_be32(d)?),
            _ => {}
        }
    }
    Ok(match (name, in_table) {
        (Some(name), true) => Some((name, set)),
        _ => None,
    })
}

/// A `NEWSETELEM` message: its elements, appended to `out`.
pub(super) fn elements(m: &Msg, out: &mut Vec<RawElement>) -> Result<(), WireError> {
    for a in m.nft_attrs()? {
        let (ty, d) = a?;
        if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for e in Attrs::new(d) {
            let (_, e) = e?;
            out.extend(element(e)?);
        }
    }
    Ok(())
}

/// One `NFTA_LIST_ELEM` of a set; `None` without a key.
fn element(e: &[u8]) -> Result<Option<RawElement>, WireError> {
    let mut key = None;
    let mut interval_end = false;
    let mut verdict = None;
    for f in Attrs::new(e) {
        match f? {
            (NFTA_SET_ELEM_KEY, d) => key = Some(decode_value(d)?),
            (NFTA_SET_ELEM_FLAGS, d) => {
                interval_end = parse_be32(d)? & NFT_SET_ELEM_INTERVAL_END != 0
            }
            (NFTA_SET_ELEM_DATA, d) => verdict = decode_verdict_data(d)?,
            _ => {}
        }
    }
    Ok(key.map(|key| RawElement {
        key,
        interval_end,
        verdict,
    }))
}

/// A `NEWRULE` message: its chain and IR rule, if it is in `table`. A rule that is not
/// exactly what this backend writes reads as [`super::foreign_rule`].
pub(super) fn rule(
    m: &Msg,
    table: &str,
    anon: &AnonResolver,
) -> Result<Option<(String, Rule)>, WireError> {
    let mut chain = None;
    let mut in_table = false;
    let mut exprs = Vec::new();
    let mut foreign = false;
    let mut comment = None;
    for a in m.nft_attrs()? {
        match a? {
            (NFTA_RULE_TABLE, d) => in_table = parse_string(d)? == table,
            (NFTA_RULE_CHAIN, d) => chain = Some(parse_string(d)?),
            (NFTA_RULE_EXPRESSIONS, d) => {
                for e in Attrs::new(d) {
                    let (_, e) = e?;
                    match Expr::decode(e)? {
                        Some(e) => exprs.push(e),
                        None => foreign = true,
                    }
                }
            }
            (NFTA_RULE_USERDATA, d) => match rule_udata::parse_comment(d) {
                Some(c) => comment = Some(c),
                None => foreign = true,
            },
            _ => {}
        }
    }
    let (Some(chain), true) = (chain, in_table) else {
        return Ok(None);
    };
    let rule = if foreign {
        None
    } else {
        rule_codec::parse(&exprs, anon).map(|mut r| {
            r.statements.extend(comment.map(Statement::FlowRef));
            r
        })
    };
    Ok(Some((chain, rule.unwrap_or_else(super::foreign_rule))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::expr::VerdictCode;
    use crate::nft::netlink::{MsgWriter, Msgs};

    /// One message of type `msg` whose attributes `attrs` writes, as received bytes.
    fn message(msg: u16, attrs: impl FnOnce(&mut MsgWriter)) -> Vec<u8> {
        let mut w = MsgWriter::new(1);
        w.begin_nft(msg, 0);
        attrs(&mut w);
        w.end();
        w.finish().unwrap().to_vec()
    }

    fn parsed<T>(bytes: &[u8], f: impl FnOnce(&Msg) -> T) -> T {
        f(&Msgs::new(bytes).next().unwrap().unwrap())
    }

    #[test]
    fn a_base_chain_reads_back() {
        let bytes = message(NFT_MSG_NEWCHAIN, |w| {
            w.string(NFTA_CHAIN_TABLE, "calico");
            w.string(NFTA_CHAIN_NAME, "fwd");
            w.nest(NFTA_CHAIN_HOOK);
            w.be32(NFTA_HOOK_HOOKNUM, NF_INET_FORWARD);
            w.be32(NFTA_HOOK_PRIORITY, -5i32 as u32);
            w.end_nest();
            w.be32(NFTA_CHAIN_POLICY, NF_DROP as u32);
            w.string(NFTA_CHAIN_TYPE, "filter");
        });
        let (name, read) = parsed(&bytes, |m| chain(m, "calico")).unwrap().unwrap();
        assert_eq!(name, "fwd");
        let base = read.base.unwrap();
        assert_eq!(
            (base.hook, base.priority, base.policy, base.kind),
            (Hook::Forward, -5, ChainPolicy::Drop, ChainType::Filter)
        );
        assert_eq!(parsed(&bytes, |m| chain(m, "other")), Ok(None));
    }

    fn base_chain_message(hook: u32, priority: i32, kind: &str) -> Vec<u8> {
        message(NFT_MSG_NEWCHAIN, |w| {
            w.string(NFTA_CHAIN_TABLE, "calico");
            w.string(NFTA_CHAIN_NAME, "c");
            w.nest(NFTA_CHAIN_HOOK);
            w.be32(NFTA_HOOK_HOOKNUM, hook);
            w.be32(NFTA_HOOK_PRIORITY, priority as u32);
            w.end_nest();
            w.be32(NFTA_CHAIN_POLICY, NF_ACCEPT as u32);
            w.string(NFTA_CHAIN_TYPE, kind);
        })
    }

    #[test]
    fn a_nat_base_chain_reads_back_and_a_foreign_type_differs() {
        let bytes = base_chain_message(NF_INET_POST_ROUTING, 100, "nat");
        let (_, read) = parsed(&bytes, |m| chain(m, "calico")).unwrap().unwrap();
        let base = read.base.unwrap();
        assert_eq!(
            (base.hook, base.priority, base.kind),
            (Hook::Postrouting, 100, ChainType::Nat)
        );
        let route = base_chain_message(NF_INET_LOCAL_OUT, 0, "route");
        let (_, read) = parsed(&route, |m| chain(m, "calico")).unwrap().unwrap();
        assert_eq!(read.base.unwrap().priority, i32::MIN);
    }

    #[test]
    fn a_truncated_element_is_an_error() {
        let bytes = message(NFT_MSG_NEWSETELEM, |w| {
            w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            // An element claiming 40 bytes of a 4-byte payload.
            w.bytes(NFTA_LIST_ELEM, &[40, 0, 1, 0]);
            w.end_nest();
        });
        let mut out = Vec::new();
        assert_eq!(
            parsed(&bytes, |m| elements(m, &mut out)),
            Err(WireError("attribute length out of bounds"))
        );
    }

    #[test]
    fn map_elements_read_back_with_their_verdicts() {
        let bytes = message(NFT_MSG_NEWSETELEM, |w| {
            w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            w.nest(NFTA_LIST_ELEM);
            w.nest(NFTA_SET_ELEM_KEY);
            w.bytes(NFTA_DATA_VALUE, b"cali0\0\0\0\0\0\0\0\0\0\0\0");
            w.end_nest();
            w.nest(NFTA_SET_ELEM_DATA);
            crate::nft::expr::encode_verdict(w, &VerdictCode::Jump("c".into()));
            w.end_nest();
            w.end_nest();
            w.end_nest();
        });
        let mut out = Vec::new();
        parsed(&bytes, |m| elements(m, &mut out)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].verdict, Some(VerdictCode::Jump("c".into())));
        assert!(!out[0].interval_end);
    }

    #[test]
    fn a_rule_with_an_expression_calico_never_writes_is_foreign() {
        let bytes = message(NFT_MSG_NEWRULE, |w| {
            w.string(NFTA_RULE_TABLE, "calico");
            w.string(NFTA_RULE_CHAIN, "c");
            w.nest(NFTA_RULE_EXPRESSIONS);
            w.nest(NFTA_LIST_ELEM);
            w.string(NFTA_EXPR_NAME, "counter");
            w.end_nest();
            w.end_nest();
        });
        let got = parsed(&bytes, |m| rule(m, "calico", &|_| None));
        assert_eq!(
            got,
            Ok(Some(("c".to_string(), super::super::foreign_rule())))
        );
    }

    /// A rule's comment reads back as its flow-log reference; user data that is no
    /// comment this backend writes makes the rule foreign.
    #[test]
    fn a_rule_comment_is_its_flow_ref_and_other_user_data_is_foreign() {
        let with = |udata: &[u8]| {
            message(NFT_MSG_NEWRULE, |w| {
                w.string(NFTA_RULE_TABLE, "calico");
                w.string(NFTA_RULE_CHAIN, "c");
                w.nest(NFTA_RULE_EXPRESSIONS);
                w.end_nest();
                w.bytes(NFTA_RULE_USERDATA, udata);
            })
        };
        let got = parsed(&with(b"\x00\x08A pol 1\x00"), |m| {
            rule(m, "calico", &|_| None)
        });
        let want = Rule {
            statements: vec![Statement::FlowRef("A pol 1".into())],
            ..Rule::default()
        };
        assert_eq!(got, Ok(Some(("c".to_string(), want))));
        let got = parsed(&with(b"\x01\x02x\x00"), |m| rule(m, "calico", &|_| None));
        assert_eq!(
            got,
            Ok(Some(("c".to_string(), super::super::foreign_rule())))
        );
    }
}

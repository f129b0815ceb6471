use super::*;
use crate::nft::netlink::{Attrs, WireError};

fn round_trip(e: &Expr) -> Expr {
    let mut w = MsgWriter::new(1);
    e.encode(&mut w);
    let (ty, payload) = Attrs::new(w.finish().unwrap()).next().unwrap().unwrap();
    assert_eq!(ty, NFTA_LIST_ELEM);
    Expr::decode(payload).unwrap().unwrap()
}

#[test]
fn every_expression_decodes_to_itself() {
    let all = [
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg: 1,
        },
        Expr::MetaSet {
            key: NFT_META_MARK,
            sreg: 1,
        },
        Expr::Payload {
            base: 1,
            offset: 12,
            len: 4,
            dreg: 8,
        },
        Expr::Cmp {
            sreg: 1,
            op: CmpOp::Neq,
            data: vec![6],
        },
        Expr::Range {
            sreg: 1,
            op: CmpOp::Eq,
            from: vec![0, 80],
            to: vec![0, 90],
        },
        Expr::Lookup {
            set: "s".into(),
            set_id: None,
            sreg: 1,
            dreg: Some(0),
            invert: false,
        },
        Expr::Lookup {
            set: "s".into(),
            set_id: None,
            sreg: 8,
            dreg: None,
            invert: true,
        },
        Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: vec![6, 0, 0, 0],
            xor: vec![0; 4],
        },
        Expr::Ct {
            key: NFT_CT_STATE,
            dreg: 1,
        },
        Expr::Verdict(VerdictCode::Accept),
        Expr::Verdict(VerdictCode::Drop),
        Expr::Verdict(VerdictCode::Return),
        Expr::Verdict(VerdictCode::Jump("c".into())),
        Expr::Verdict(VerdictCode::Goto("c".into())),
        Expr::Log {
            prefix: "calico: ".into(),
            group: None,
        },
        Expr::Log {
            prefix: "A pol-in-x 3".into(),
            group: Some(0x1234),
        },
        Expr::Limit {
            rate: 10,
            unit: 1,
            burst: 10,
        },
        Expr::Notrack,
        Expr::Immediate {
            dreg: NFT_REG_1,
            data: vec![10, 0, 0, 1],
        },
        Expr::Nat {
            nat_type: NFT_NAT_DNAT,
            family: u32::from(NFPROTO_IPV4),
            addr_min: NFT_REG_1,
            addr_max: None,
            flags: None,
        },
        Expr::Nat {
            nat_type: NFT_NAT_SNAT,
            family: u32::from(NFPROTO_IPV6),
            addr_min: NFT_REG_1,
            addr_max: Some(NFT_REG_1),
            flags: Some(NF_NAT_RANGE_MAP_IPS),
        },
    ];
    for e in &all {
        assert_eq!(&round_trip(e), e);
    }
}

#[test]
fn malformed_expressions_are_typed_errors() {
    let elem = |f: &dyn Fn(&mut MsgWriter)| {
        let mut w = MsgWriter::new(1);
        f(&mut w);
        w.finish().unwrap().to_vec()
    };
    let no_name = elem(&|w| w.bytes(NFTA_EXPR_DATA, &[]));
    assert_eq!(
        Expr::decode(&no_name),
        Err(WireError("expression without a name"))
    );
    let truncated = elem(&|w| {
        w.string(NFTA_EXPR_NAME, "cmp");
        w.bytes(NFTA_EXPR_DATA, &[8, 0, 1, 0, 0]);
    });
    assert_eq!(
        Expr::decode(&truncated),
        Err(WireError("attribute length out of bounds"))
    );
    let short_register = elem(&|w| {
        w.string(NFTA_EXPR_NAME, "meta");
        w.nest(NFTA_EXPR_DATA);
        w.bytes(NFTA_META_DREG, &[0, 1]);
        w.end_nest();
    });
    assert_eq!(
        Expr::decode(&short_register),
        Err(WireError("u32 attribute of wrong length"))
    );
    let unknown = elem(&|w| w.string(NFTA_EXPR_NAME, "counter"));
    assert_eq!(Expr::decode(&unknown), Ok(None));
}

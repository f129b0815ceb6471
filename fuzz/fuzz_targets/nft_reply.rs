//! Arbitrary bytes as an nf_tables netlink reply: framing, attributes, expressions and the
//! rule parser must give values or errors, never a panic.
#![no_main]

use calico_linux::acl::rule_codec;
use calico_linux::nft::expr::Expr;
use calico_linux::nft::netlink::{Attrs, Msgs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for msg in Msgs::new(data).flatten() {
        let _ = msg.error();
        let Ok(attrs) = msg.nft_attrs() else { continue };
        for (_, payload) in attrs.flatten() {
            let mut exprs = Vec::new();
            for (_, elem) in Attrs::new(payload).flatten() {
                if let Ok(Some(e)) = Expr::decode(elem) {
                    exprs.push(e);
                }
            }
            let _ = rule_codec::parse(&exprs, &|_| Some(vec![(1, 2)]));
        }
    }
});

//! Entry points for the cargo-fuzz targets (feature `fuzzing`): they reach the crate's
//! internal nf_tables decoder, which has no public API of its own.

use crate::acl::{ownership, rule_codec};
use crate::nft::expr::Expr;
use crate::nft::netlink::{Attrs, Msgs};

/// Arbitrary bytes as an nf_tables netlink reply: framing, attributes, expressions and the
/// rule parser must give values or errors, never a panic.
pub fn nft_reply(data: &[u8]) {
    for msg in Msgs::new(data).flatten() {
        let _ = msg.error();
        let _ = ownership::table_state_of(&msg, "calico");
        let Ok(attrs) = msg.nft_attrs() else { continue };
        for (_, payload) in attrs.flatten() {
            let _ = ownership::is_marked(payload);
            let mut exprs = Vec::new();
            for (_, elem) in Attrs::new(payload).flatten() {
                if let Ok(Some(e)) = Expr::decode(elem) {
                    exprs.push(e);
                }
            }
            let _ = rule_codec::parse(&exprs, &|_| Some(vec![(1, 2)]));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn garbage_and_truncated_replies_do_not_panic() {
        let mut bytes = [0xff; 64];
        bytes[..4].copy_from_slice(&64u32.to_ne_bytes());
        for cut in 0..bytes.len() {
            super::nft_reply(&bytes[..cut]);
        }
    }
}

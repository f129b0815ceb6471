//! A rule's user data: its comment, as nft writes and prints it (`comment "..."`: one
//! libnftnl udata TLV, type `NFTNL_UDATA_RULE_COMMENT`, the text and its NUL). The backend
//! keeps a rule's flow-log reference there ([`Statement::FlowRef`]): it costs the kernel no
//! expression to program or to run, and `nft list ruleset` shows it.

#[cfg(doc)]
use calico_core::dataplane::ir::Statement;

use crate::nft::proto::NFTNL_UDATA_RULE_COMMENT;

/// The user data of a rule commented `text`: its first 254 bytes (the IR's checks keep
/// flow-log references to 127 bytes without NUL, so nothing is cut).
pub fn comment(text: &str) -> Vec<u8> {
    let text = &text.as_bytes()[..text.len().min(usize::from(u8::MAX) - 1)];
    let mut out = Vec::with_capacity(text.len() + 3);
    out.extend([NFTNL_UDATA_RULE_COMMENT, (text.len() + 1) as u8]);
    out.extend(text);
    out.push(0);
    out
}

/// The comment in a rule's user data (from the kernel: untrusted). `None` when the user
/// data is anything but one comment TLV holding UTF-8 text and its NUL: not a rule this
/// backend wrote.
pub fn parse_comment(udata: &[u8]) -> Option<String> {
    let [ty, len, value @ ..] = udata else {
        return None;
    };
    if *ty != NFTNL_UDATA_RULE_COMMENT || usize::from(*len) != value.len() {
        return None;
    }
    let (&0, text) = value.split_last()? else {
        return None;
    };
    if text.contains(&0) {
        return None;
    }
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // What nft 1.0.6 sends for `add rule inet t c accept comment "A pol 1"` (`nft
    // --debug=mnl`): type 0, length 8, the text and its NUL.
    #[test]
    fn the_comment_is_what_nft_writes_and_reads_back() {
        let udata = comment("A pol 1");
        assert_eq!(udata, b"\x00\x08A pol 1\x00");
        assert_eq!(parse_comment(&udata).as_deref(), Some("A pol 1"));
    }

    #[test]
    fn other_user_data_is_no_comment() {
        for bad in [
            &b""[..],
            b"\x00",
            b"\x01\x02a\x00",
            b"\x00\x03a\x00",
            b"\x00\x02ab",
            b"\x00\x03a\x00\x00",
            b"\x00\x02\xff\x00",
            b"\x00\x02a\x00\x00\x02b\x00",
        ] {
            assert_eq!(parse_comment(bad), None, "{bad:?}");
        }
    }
}

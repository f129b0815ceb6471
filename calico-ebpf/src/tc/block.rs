//! Shared tc blocks: a clsact qdisc bound to a block of filters shared with other
//! interfaces' clsact qdiscs (`tc qdisc add dev X ingress_block N egress_block M clsact`),
//! and the filters of such a block (`tc filter add block N ...`).
//!
//! Why: binding a qdisc's own (private) block registers it in a host-wide list the kernel
//! walks at every bind (`flow_indr_dev_setup_offload` in `net/core/flow_offload.c`, one
//! entry per block), so that adding the n-th interface's qdisc costs O(n); a shared
//! block is registered once, at its first bind. The filters of a shared block run for
//! every interface bound to it, and the kernel refuses to change them through one of
//! the interfaces (`tc filter add dev X ingress` on such a qdisc is `EOPNOTSUPP`).

use super::*;

/// `TCA_INGRESS_BLOCK`: the shared block a clsact qdisc's ingress hook is bound to.
const TCA_INGRESS_BLOCK: u16 = 13;
/// `TCA_EGRESS_BLOCK`: the same for its egress hook.
const TCA_EGRESS_BLOCK: u16 = 14;
/// `TCM_IFINDEX_MAGIC_BLOCK`: a filter request's `tcm_ifindex` naming a shared block (its
/// index then in `tcm_parent`).
const TCM_IFINDEX_MAGIC_BLOCK: u32 = 0xffff_ffff;

/// The indexes of the two shared blocks the backend binds its interfaces' clsact qdiscs
/// to (`tc qdisc add dev X ingress_block <ingress> egress_block <egress> clsact`). Any
/// nonzero `u32`s, different from each other and from the blocks other programs on the
/// host use; see [`Blocks::DEFAULT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Blocks {
    /// The block of the ingress hooks.
    pub ingress: u32,
    /// The block of the egress hooks.
    pub egress: u32,
}

impl Blocks {
    /// `0xca1e0001` (ingress) and `0xca1e0002` (egress): high enough not to meet the small
    /// indexes people pick by hand with `tc`.
    pub const DEFAULT: Blocks = Blocks {
        ingress: 0xca1e_0001,
        egress: 0xca1e_0002,
    };

    /// The block of `direction`.
    pub fn of(self, direction: Direction) -> u32 {
        match direction {
            Direction::Ingress => self.ingress,
            Direction::Egress => self.egress,
        }
    }

    /// Why these blocks cannot be used, if they cannot: 0 is "no shared block" to the
    /// kernel, and one block cannot serve both hooks.
    pub fn check(self) -> Result<(), String> {
        if self.ingress == 0 || self.egress == 0 {
            return Err(format!(
                "tc block indexes must be nonzero (ingress {}, egress {})",
                self.ingress, self.egress
            ));
        }
        if self.ingress == self.egress {
            return Err(format!(
                "the ingress and egress tc blocks must differ (both {})",
                self.ingress
            ));
        }
        Ok(())
    }
}

impl Default for Blocks {
    fn default() -> Blocks {
        Blocks::DEFAULT
    }
}

/// A clsact qdisc as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clsact {
    /// The interface's index.
    pub ifindex: u32,
    /// The shared block its ingress hook is bound to (0: its own).
    pub ingress_block: u32,
    /// The shared block its egress hook is bound to (0: its own).
    pub egress_block: u32,
}

impl Clsact {
    /// Whether a hook of it is bound to a shared block (any).
    pub fn shared(&self) -> bool {
        self.ingress_block != 0 || self.egress_block != 0
    }

    /// Whether both its hooks are bound to `blocks`.
    pub fn bound_to(&self, blocks: Blocks) -> bool {
        self.ingress_block == blocks.ingress && self.egress_block == blocks.egress
    }
}

/// `RTM_NEWQDISC clsact` on `ifindex` with its hooks bound to `blocks`, failing with
/// `EEXIST` when it has a clsact qdisc.
pub fn encode_add_clsact_blocks(seq: u32, ifindex: u32, blocks: Blocks) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    Msg::new(RTM_NEWQDISC, flags, seq)
        .tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0)
        .attr(TCA_KIND, &cstr("clsact"))
        .attr(TCA_INGRESS_BLOCK, &blocks.ingress.to_ne_bytes())
        .attr(TCA_EGRESS_BLOCK, &blocks.egress.to_ne_bytes())
        .finish()
}

/// `RTM_GETQDISC` of the qdisc at the clsact's place on `ifindex` (no dump: the answer is
/// its message, if it is not a built-in one, then the acknowledgement; or an error when
/// the interface has none). `NLM_F_ECHO` is needed: kernel 6.18 sends the message only
/// to a request asking for an echo (or when someone listens to tc notifications).
pub fn encode_get_clsact(seq: u32, ifindex: u32) -> Vec<u8> {
    Msg::new(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO, seq)
        .tcmsg(ifindex, 0, TC_H_CLSACT, 0)
        .finish()
}

/// `RTM_NEWTFILTER bpf` in direct-action mode at ([`PRIORITY`], [`HANDLE`]) of shared
/// block `block`, running `program_fd` named `name`.
pub fn encode_set_block_filter(
    seq: u32,
    block: u32,
    (program_fd, name): (i32, &str),
    existing: Existing,
) -> Vec<u8> {
    let at = (TCM_IFINDEX_MAGIC_BLOCK, block, PRIORITY);
    encode_bpf_filter(seq, at, (program_fd, name), existing)
}

/// `RTM_GETTFILTER` dump of the filters of shared block `block`.
pub fn encode_dump_block_filters(seq: u32, block: u32) -> Vec<u8> {
    Msg::new(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .tcmsg(TCM_IFINDEX_MAGIC_BLOCK, 0, block, 0)
        .finish()
}

/// A qdisc message's clsact qdisc with its blocks; `None` when it is malformed or not a
/// clsact qdisc.
pub fn parse_clsact(payload: &[u8]) -> Option<Clsact> {
    let ifindex = u32_at(payload, 4)?;
    let mut c = Clsact {
        ifindex,
        ingress_block: 0,
        egress_block: 0,
    };
    let mut clsact = false;
    for (kind, value) in parse_attrs(payload.get(TCMSG..)?)? {
        match kind {
            TCA_KIND => clsact = string(value) == "clsact",
            TCA_INGRESS_BLOCK => c.ingress_block = u32_at(value, 0)?,
            TCA_EGRESS_BLOCK => c.egress_block = u32_at(value, 0)?,
            _ => {}
        }
    }
    clsact.then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_clsact_carries_both_blocks() {
        let m = encode_add_clsact_blocks(3, 42, Blocks::DEFAULT);
        let messages = parse_messages(&m).unwrap();
        let payload = messages[0].payload;
        let c = parse_clsact(payload).unwrap();
        assert_eq!(
            c,
            Clsact {
                ifindex: 42,
                ingress_block: Blocks::DEFAULT.ingress,
                egress_block: Blocks::DEFAULT.egress,
            }
        );
        assert!(c.bound_to(Blocks::DEFAULT));
        // A clsact without blocks is bound to none; another qdisc is not a clsact.
        let plain = encode_add_clsact(3, 42);
        let plain = parse_clsact(parse_messages(&plain).unwrap()[0].payload).unwrap();
        assert!(!plain.bound_to(Blocks::DEFAULT));
        assert_eq!((plain.ingress_block, plain.egress_block), (0, 0));
    }

    #[test]
    fn a_block_filter_names_the_block_not_an_interface() {
        let m = encode_set_block_filter(5, 77, (9, "calico-rs:x"), Existing::Fail);
        let payload = parse_messages(&m).unwrap()[0].payload;
        assert_eq!(u32_at(payload, 4), Some(TCM_IFINDEX_MAGIC_BLOCK));
        assert_eq!(u32_at(payload, 8), Some(HANDLE));
        assert_eq!(u32_at(payload, 12), Some(77));
        let f = parse_filter(payload).unwrap();
        assert!(f.is_ours(), "{f:?}");
        let d = encode_dump_block_filters(6, 77);
        let payload = parse_messages(&d).unwrap()[0].payload;
        assert_eq!(u32_at(payload, 12), Some(77));
    }

    #[test]
    fn blocks_must_be_nonzero_and_differ() {
        assert!(Blocks::DEFAULT.check().is_ok());
        let zero = Blocks {
            ingress: 0,
            ..Blocks::DEFAULT
        };
        assert!(zero.check().unwrap_err().contains("nonzero"));
        let same = Blocks {
            ingress: 5,
            egress: 5,
        };
        assert!(same.check().unwrap_err().contains("differ"));
    }

    #[test]
    fn truncated_clsact_messages_are_refused() {
        let m = encode_add_clsact_blocks(3, 42, Blocks::DEFAULT);
        let payload = parse_messages(&m).unwrap()[0].payload;
        for n in 0..payload.len() {
            let _ = parse_clsact(&payload[..n]);
        }
        assert_eq!(parse_clsact(&payload[..10]), None);
    }
}

//! ACLs on nftables: the compiler's IR programmed into one agent-owned `inet` table.

pub mod rule_codec;

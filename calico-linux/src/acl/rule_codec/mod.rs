//! One IR [`Rule`] ↔ the nf_tables expressions that implement it.
//!
//! Every IR match has one fixed expression pattern, so a rule read back from the kernel
//! parses to exactly the IR it was rendered from; anything else (a rule added by hand, a
//! rule edited in place) does not parse and is reported as foreign, so resync replaces it.
//!
//! | IR                         | expressions (register)                                   |
//! |----------------------------|----------------------------------------------------------|
//! | `Ipv4(v)`                  | `meta nfproto` → 1, `cmp eq 2/10`                        |
//! | `L4Proto`                  | `meta l4proto` → 1, `cmp eq/neq`                         |
//! | `AddrEq`                   | `payload ip(6) saddr/daddr` → 1, `cmp eq/neq` address     |
//! | `AddrInSet`                | `payload ip(6) saddr/daddr` → 1, `lookup [inv]`          |
//! | `AddrProtoPortInSet`       | addr → 8, `meta l4proto` → 9/12, `th port` → 10/13, `lookup` |
//! | `Port` positive            | `th port` → 1, `cmp eq` / `range eq` / anonymous interval set |
//! | `Port` negated             | `th port` → 1, one `cmp neq` / `range neq` per range      |
//! | `Icmp`                     | `meta l4proto` → 2, `cmp eq 1/58`, `th` type(+code) → 2, `cmp` |
//! | `Ct`                       | `ct state` → 1, `bitwise`, `cmp neq 0`                   |
//! | `CtUnconfirmed`            | `ct status` → 1, `bitwise` confirmed, `cmp eq 0`         |
//! | `MarkSet`                  | `meta mark` → 1, `bitwise`, `cmp neq 0`                  |
//! | `Log` / `SetMark` / `ClearMark` | `log prefix` / `meta mark` → 1, `bitwise`, `meta mark set` |
//! | `NfLog`                    | [`limit` rate/second, burst = rate], `log prefix group`   |
//! | `Dnat` / `Snat`            | `immediate` address → 1, `nat dnat/snat ip(6) addr_min 1` |
//! | `Dispatch`                 | `meta iifname/oifname` → 1, `lookup` map → verdict       |

mod parse;
mod render;

use calico_core::dataplane::ir::Side;

pub use parse::parse;
pub use render::render;

/// An IR rule that this backend cannot express.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule cannot be rendered: {0}")]
pub struct RenderError(pub String);

/// A positive port match over several ranges needs an anonymous interval set created in the
/// same transaction, just before its rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnonPortSet {
    /// The set's id within the transaction.
    pub id: u32,
    /// Port ranges, both ends included.
    pub ranges: Vec<(u16, u16)>,
}

/// The name an anonymous set is created with (the kernel fills the number in).
pub const ANON_SET_NAME: &str = "__set%d";

/// The register an ICMP match works in (so that it does not clobber register 1).
const REG_ICMP: u32 = 2;

/// Gives the port ranges of an anonymous set read back from the kernel, by its name.
pub type AnonResolver<'a> = dyn Fn(&str) -> Option<Vec<(u16, u16)>> + 'a;

/// Offset and length in the network header of the IPv4 or IPv6 address on `side`.
fn nh_addr(side: Side, v4: bool) -> (u32, u32) {
    match (v4, side) {
        (true, Side::Src) => (12, 4),
        (true, Side::Dst) => (16, 4),
        (false, Side::Src) => (8, 16),
        (false, Side::Dst) => (24, 16),
    }
}

/// Offset in the transport header of the port on `side`.
fn th_port(side: Side) -> u32 {
    match side {
        Side::Src => 0,
        Side::Dst => 2,
    }
}

/// A u32 as the kernel compares it in a register (host byte order).
fn ne32(v: u32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

#[cfg(test)]
mod tests;

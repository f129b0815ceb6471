//! Pools cut into blocks: which block an address falls in, and the order in which a host
//! looks for an unclaimed block (from a starting point derived from its name, as Calico
//! does, so two hosts starting together do not race for the same blocks).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_core::model::IpPool;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::error::IpamError;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// 4 or 6, as in Calico's keys (`ipv4`).
    pub fn number(self) -> u8 {
        match self {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }

    /// The family of a network.
    pub fn of_net(net: IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    /// The family of an address.
    pub fn of_addr(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// A pool checked and ready to be cut into blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// The pool's range.
    pub cidr: IpNet,
    /// The prefix length of its blocks.
    pub block_len: u8,
    /// A disabled pool hands out no new addresses (its addresses can still be released).
    pub disabled: bool,
}

impl Pool {
    /// Checks a pool: block size in Calico's range (20–32 for IPv4, default 26; 116–128 for
    /// IPv6, default 122), the range a network address no longer than a block.
    pub fn from_model(p: &IpPool) -> Result<Pool, IpamError> {
        let family = Family::of_net(p.cidr);
        let (default, min) = match family {
            Family::V4 => (26, 20),
            Family::V6 => (122, 116),
        };
        let block_len = p.block_size.unwrap_or(default);
        let bad = |reason: String| IpamError::InvalidPool {
            pool: p.name.clone(),
            cidr: p.cidr,
            reason,
        };
        if block_len < min || block_len > family.bits() {
            return Err(bad(format!(
                "blockSize {block_len} outside {min}..={}",
                family.bits()
            )));
        }
        if p.cidr.trunc() != p.cidr {
            return Err(bad("cidr is not a network address".into()));
        }
        if p.cidr.prefix_len() > block_len {
            return Err(bad(format!(
                "cidr is smaller than one block (blockSize {block_len})"
            )));
        }
        Ok(Pool {
            name: p.name.clone(),
            cidr: p.cidr,
            block_len,
            disabled: p.disabled,
        })
    }

    /// The pool's family.
    pub fn family(&self) -> Family {
        Family::of_net(self.cidr)
    }

    /// How many blocks the pool holds (saturating at `u128::MAX` for a whole IPv6 space).
    pub fn block_count(&self) -> u128 {
        let shift = u32::from(self.block_len - self.cidr.prefix_len());
        1u128.checked_shl(shift).unwrap_or(u128::MAX)
    }

    /// The `i`-th block of the pool (`i < block_count()`).
    pub fn nth_block(&self, i: u128) -> IpNet {
        let step = u32::from(self.family().bits() - self.block_len);
        match self.cidr {
            IpNet::V4(n) => {
                let base = u32::from(n.network());
                let addr = base.wrapping_add((i as u32).wrapping_shl(step));
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr), self.block_len).expect("len ≤ 32"))
            }
            IpNet::V6(n) => {
                let base = u128::from(n.network());
                let offset = i.checked_shl(step).unwrap_or(0);
                let addr = base.wrapping_add(offset);
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), self.block_len).expect("len ≤ 128"))
            }
        }
    }

    /// The block `addr` falls in, if the pool holds it.
    pub fn block_of(&self, addr: IpAddr) -> Option<IpNet> {
        if !self.cidr.contains(&addr) {
            return None;
        }
        IpNet::new(addr, self.block_len).ok().map(|n| n.trunc())
    }

    /// Every block of the pool once, starting at a point derived from `host` and wrapping
    /// around: where the host looks for an unclaimed block.
    pub fn blocks_from(&self, host: &str) -> impl Iterator<Item = IpNet> + '_ {
        let count = self.block_count();
        let start = host_seed(host) as u128 % count;
        let mut taken: u128 = 0;
        std::iter::from_fn(move || {
            if taken == count {
                return None;
            }
            let i = (start + taken) % count;
            taken += 1;
            Some(self.nth_block(i))
        })
    }
}

/// A stable, well-spread number from a host name (64-bit FNV-1a, then a final mix).
pub fn host_seed(host: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str, block: Option<u8>) -> IpPool {
        IpPool {
            name: "p".into(),
            cidr: cidr.parse().unwrap(),
            block_size: block,
            disabled: false,
        }
    }

    #[test]
    fn pools_are_cut_into_blocks_of_calicos_default_sizes() {
        let p = Pool::from_model(&pool("10.1.0.0/16", None)).unwrap();
        assert_eq!(p.block_len, 26);
        assert_eq!(p.block_count(), 1024);
        assert_eq!(p.nth_block(0), "10.1.0.0/26".parse::<IpNet>().unwrap());
        assert_eq!(p.nth_block(5), "10.1.1.64/26".parse::<IpNet>().unwrap());
        assert_eq!(
            p.block_of("10.1.1.77".parse().unwrap()),
            Some("10.1.1.64/26".parse().unwrap())
        );
        assert_eq!(p.block_of("10.2.0.1".parse().unwrap()), None);
        let v6 = Pool::from_model(&pool("fd00::/64", None)).unwrap();
        assert_eq!(v6.block_len, 122);
        assert_eq!(v6.block_count(), 1 << 58);
        assert_eq!(v6.nth_block(1), "fd00::40/122".parse::<IpNet>().unwrap());
    }

    #[test]
    fn bad_pools_are_refused_naming_the_field() {
        for (cidr, block, field) in [
            ("10.0.0.0/16", Some(19), "blockSize"),
            ("10.0.0.0/16", Some(33), "blockSize"),
            ("10.0.0.1/16", None, "network address"),
            ("10.0.0.0/28", Some(26), "smaller than one block"),
            ("fd00::/64", Some(115), "blockSize"),
        ] {
            let e = Pool::from_model(&pool(cidr, block))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{cidr} {block:?}: {e}");
        }
    }

    #[test]
    fn a_host_walks_every_block_once_from_its_own_start() {
        let p = Pool::from_model(&pool("10.0.0.0/22", None)).unwrap();
        let walk: Vec<IpNet> = p.blocks_from("node-a").collect();
        assert_eq!(walk.len(), 16);
        let mut sorted = walk.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 16, "a block came twice");
        let starts: std::collections::BTreeSet<IpNet> = (0..8)
            .map(|i| p.blocks_from(&format!("node-{i}")).next().unwrap())
            .collect();
        assert!(starts.len() > 1, "every host starts on the same block");
        let one = Pool::from_model(&pool("10.0.0.0/26", None)).unwrap();
        assert_eq!(one.blocks_from("x").count(), 1);
    }
}

//! The Loc-RIB's prefix tables: one [`PrefixMap`] per family. Prefixes are kept with
//! their host bits cleared (they mean nothing, RFC 4271 §4.3; the decoder clears them
//! already).

use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::dest::{remove_peer, set_in, Dest, SetResult};
use super::prefix_map::PrefixMap;
use super::{Change, PeerId, PeerTable, RouteAttrs};

/// Every prefix's [`Dest`], by family.
#[derive(Debug, Default)]
pub(super) struct Tables {
    v4: PrefixMap<Ipv4Net>,
    v6: PrefixMap<Ipv6Net>,
}

impl Tables {
    /// Number of prefixes with at least one path.
    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The paths to `prefix`.
    pub(super) fn get(&self, prefix: &IpNet) -> Option<&Dest> {
        match prefix {
            IpNet::V4(p) => self.v4.get(p.trunc()),
            IpNet::V6(p) => self.v6.get(p.trunc()),
        }
    }

    /// Sets (or with `None` removes) the path `key` (peer, path identifier) to `prefix`;
    /// see [`set_in`].
    pub(super) fn set(
        &mut self,
        prefix: &IpNet,
        key: (PeerId, u32),
        attrs: Option<Arc<RouteAttrs>>,
        peers: &PeerTable,
        local_as: u32,
    ) -> SetResult {
        match prefix {
            IpNet::V4(p) => set_in(&mut self.v4, p.trunc(), key, attrs, peers, local_as),
            IpNet::V6(p) => set_in(&mut self.v6, p.trunc(), key, attrs, peers, local_as),
        }
    }

    /// Removes every path of peer `id`, noting the prefixes whose entry changed.
    pub(super) fn remove_peer(
        &mut self,
        id: PeerId,
        peers: &PeerTable,
        local_as: u32,
        changes: &mut Vec<Change>,
    ) {
        remove_peer(&mut self.v4, id, peers, local_as, IpNet::V4, changes);
        remove_peer(&mut self.v6, id, peers, local_as, IpNet::V6, changes);
    }

    /// Every prefix with its paths, IPv4 first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (IpNet, &Dest)> + '_ {
        let v4 = self.v4.iter().map(|(p, d)| (IpNet::V4(p), d));
        let v6 = self.v6.iter().map(|(p, d)| (IpNet::V6(p), d));
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Model;
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::super::attrs::RouteAttrs;
    use super::*;
    use crate::packet::PathAttributes;

    fn attrs(n: u32) -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs {
            path: PathAttributes {
                med: Some(n),
                ..PathAttributes::default()
            },
            next_hop: Ipv4Addr::new(10, 0, 0, 1).into(),
            link_local: None,
        })
    }

    /// A prefix from a small space, so that operations meet: IPv4 or IPv6, any length
    /// (host routes included), host bits sometimes set.
    fn prefix() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (0u32..8, 0u8..=32).prop_map(|(a, l)| {
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a << 28 | a), l))
            }),
            (0u128..8, prop_oneof![Just(128u8), Just(127u8), 0u8..=128]).prop_map(|(a, l)| {
                IpNet::V6(ipnet::Ipv6Net::new_assert((a << 125 | a).into(), l))
            }),
        ]
    }

    proptest! {
        #[test]
        fn tables_behave_as_a_map_of_truncated_prefixes(
            ops in prop::collection::vec((prefix(), prop::option::of(0u32..3)), 1..200)
        ) {
            let peers = PeerTable::default();
            let mut tables = Tables::default();
            let mut model: Model<IpNet, u32> = Model::new();
            for (p, a) in ops {
                tables.set(&p, (PeerId(1), 0), a.map(attrs), &peers, 65000);
                match a {
                    Some(a) => model.insert(p.trunc(), a),
                    None => model.remove(&p.trunc()),
                };
                prop_assert_eq!(tables.len(), model.len());
                let med = |d: &Dest| d.paths()[0].attrs.path.med.unwrap();
                prop_assert_eq!(tables.get(&p).map(med), model.get(&p.trunc()).copied());
            }
            let got: Model<IpNet, u32> = tables
                .iter()
                .map(|(p, d)| (p, d.paths()[0].attrs.path.med.unwrap()))
                .collect();
            prop_assert_eq!(&got, &model);
            let mut changes = Vec::new();
            tables.remove_peer(PeerId(1), &peers, 65000, &mut changes);
            prop_assert_eq!(tables.len(), 0);
            let gone: std::collections::HashSet<IpNet> = changes.iter().map(|c| c.prefix).collect();
            prop_assert_eq!(gone, model.keys().copied().collect());
        }
    }
}

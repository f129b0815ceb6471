//! [`SetElements`]: the elements of the selector and named-port sets, from what their
//! members contribute.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::cidr_cover::CidrCover;
use super::journal::Journal;
use super::rules::SetSpec;
use crate::dataplane::ir::SetElement;
use crate::model::NamedPort;

/// What one member (an endpoint or a network set) contributes to the sets it is in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Contribution {
    /// To selector sets: an endpoint's addresses as single-address networks, a network
    /// set's networks.
    pub(super) nets: Vec<IpNet>,
    /// To named-port sets: an endpoint's addresses (none for a network set).
    pub(super) addresses: Vec<IpAddr>,
    /// To named-port sets: an endpoint's named ports.
    pub(super) ports: Vec<NamedPort>,
}

/// Per set: the contributed networks (selector sets) or elements with their contributor
/// counts (named-port sets).
#[derive(Clone, Debug, Default)]
pub(super) struct SetElements {
    covers: BTreeMap<String, CidrCover>,
    counts: BTreeMap<String, BTreeMap<SetElement, usize>>,
}

impl SetElements {
    /// The set `set` is gone: forgets its elements.
    pub(super) fn forget(&mut self, set: &str) {
        self.covers.remove(set);
        self.counts.remove(set);
    }

    /// Adds (`add`) or withdraws one member's contribution `c` to the set `set`, recording
    /// the elements that enter or leave it in `journal`.
    pub(super) fn contribute(
        &mut self,
        set_refs: &BTreeMap<String, (SetSpec, usize)>,
        journal: &mut Journal,
        set: &str,
        c: &Contribution,
        add: bool,
    ) {
        let Some((spec, _)) = set_refs.get(set) else {
            return;
        };
        match spec {
            SetSpec::Selector { v4, .. } => self.contribute_nets(journal, set, *v4, c, add),
            SetSpec::NamedPort { port, v4, .. } => {
                let elements = c
                    .addresses
                    .iter()
                    .filter(|a| a.is_ipv4() == *v4)
                    .flat_map(|a| {
                        c.ports
                            .iter()
                            .filter(|p| &p.name == port)
                            .map(move |p| SetElement::AddrProtoPort(*a, p.protocol.0, p.port))
                    });
                self.count(journal, set, elements, add);
            }
            SetSpec::Nets { .. } => {}
        }
    }

    fn contribute_nets(
        &mut self,
        journal: &mut Journal,
        set: &str,
        v4: bool,
        c: &Contribution,
        add: bool,
    ) {
        let mut nets = c.nets.iter().filter(|n| matches!(n, IpNet::V4(_)) == v4);
        let Some(first) = nets.next() else {
            return;
        };
        if !self.covers.contains_key(set) {
            self.covers.insert(set.to_string(), CidrCover::default());
        }
        let Some(cover) = self.covers.get_mut(set) else {
            return;
        };
        let mut change = |n: IpNet, present: bool| {
            journal.set_element(set, SetElement::Net(n), present);
        };
        for n in std::iter::once(first).chain(nets) {
            if add {
                cover.add(*n, &mut change);
            } else {
                cover.remove(*n, &mut change);
            }
        }
        if cover.is_empty() {
            self.covers.remove(set);
        }
    }

    /// An element enters the set with its first contributor and leaves with its last.
    fn count(
        &mut self,
        journal: &mut Journal,
        set: &str,
        elements: impl Iterator<Item = SetElement>,
        add: bool,
    ) {
        let mut elements = elements.peekable();
        if elements.peek().is_none() {
            return;
        }
        if !self.counts.contains_key(set) {
            self.counts.insert(set.to_string(), BTreeMap::new());
        }
        let Some(counts) = self.counts.get_mut(set) else {
            return;
        };
        for e in elements {
            let n = counts.entry(e).or_insert(0);
            let was = *n;
            *n = if add { was + 1 } else { was.saturating_sub(1) };
            let now = *n;
            if now == 0 {
                counts.remove(&e);
            }
            if (was == 0) != (now == 0) {
                journal.set_element(set, e, now > 0);
            }
        }
    }
}

//! [`SelectorIndex`]: selectors × labelled items, maintained incrementally.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::Labels;
use crate::selector::Selector;

/// A selector started or stopped matching an item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MembershipChange<S, E> {
    /// The selector's id.
    pub selector: S,
    /// The item's id.
    pub item: E,
    /// `true`: now matches; `false`: no longer matches.
    pub matches: bool,
}

/// Where a selector is filed, from its label restrictions: the most selective one.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Filing {
    /// Under each `(key, value)` it requires one of.
    Values(String, BTreeSet<String>),
    /// Under a key it requires.
    Key(String),
    /// Nowhere: tested against every item.
    Unrestricted,
}

fn filing(selector: &Selector) -> Filing {
    let restrictions = selector.label_restrictions();
    let by_values = restrictions
        .iter()
        .filter_map(|(k, r)| r.must_have_one_of.as_ref().map(|vs| (k, vs)))
        .min_by_key(|(_, vs)| vs.len());
    if let Some((k, vs)) = by_values {
        return Filing::Values(k.clone(), vs.clone());
    }
    match restrictions.iter().find(|(_, r)| r.must_be_present) {
        Some((k, _)) => Filing::Key(k.clone()),
        None => Filing::Unrestricted,
    }
}

/// Selectors (ids `S`) × labelled items (ids `E`), with the current matches.
///
/// ```
/// use calico_core::calc::SelectorIndex;
/// use calico_core::model::Labels;
/// use calico_core::selector::Selector;
///
/// let mut index: SelectorIndex<&str, u32> = SelectorIndex::new();
/// index.add_selector("web", Selector::parse("app == 'web'").unwrap());
/// let labels: Labels = [("app".to_string(), "web".to_string())].into();
/// let changes = index.upsert_item(7, labels);
/// assert_eq!(changes.len(), 1);
/// assert!(index.members(&"web").unwrap().contains(&7));
/// ```
#[derive(Clone, Debug)]
pub struct SelectorIndex<S, E> {
    selectors: BTreeMap<S, (Selector, Filing)>,
    /// Selectors by the (key, value) they are filed under: key → value → ids.
    by_value: HashMap<String, HashMap<String, BTreeSet<S>>>,
    by_key: HashMap<String, BTreeSet<S>>,
    unrestricted: BTreeSet<S>,
    items: BTreeMap<E, Labels>,
    /// Items by label: key → value → ids.
    items_by_value: HashMap<String, HashMap<String, BTreeSet<E>>>,
    items_by_key: HashMap<String, BTreeSet<E>>,
    members: BTreeMap<S, BTreeSet<E>>,
    member_of: BTreeMap<E, BTreeSet<S>>,
}

impl<S: Ord + Clone, E: Ord + Clone> Default for SelectorIndex<S, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Ord + Clone, E: Ord + Clone> SelectorIndex<S, E> {
    /// An empty index.
    pub fn new() -> Self {
        SelectorIndex {
            selectors: BTreeMap::new(),
            by_value: HashMap::new(),
            by_key: HashMap::new(),
            unrestricted: BTreeSet::new(),
            items: BTreeMap::new(),
            items_by_value: HashMap::new(),
            items_by_key: HashMap::new(),
            members: BTreeMap::new(),
            member_of: BTreeMap::new(),
        }
    }

    /// The items a selector matches (`None` for an unknown selector).
    pub fn members(&self, selector: &S) -> Option<&BTreeSet<E>> {
        self.members.get(selector)
    }

    /// The selectors an item matches.
    pub fn matching(&self, item: &E) -> impl Iterator<Item = &S> {
        self.member_of.get(item).into_iter().flatten()
    }

    /// The labels an item was last given.
    pub fn labels(&self, item: &E) -> Option<&Labels> {
        self.items.get(item)
    }

    /// Whether the selector id is known.
    pub fn contains_selector(&self, selector: &S) -> bool {
        self.selectors.contains_key(selector)
    }

    /// Adds (or replaces) a selector; returns the resulting membership changes.
    pub fn add_selector(&mut self, id: S, selector: Selector) -> Vec<MembershipChange<S, E>> {
        let mut changes = self.remove_selector(&id);
        let filing = filing(&selector);
        let candidates: Vec<E> = match &filing {
            Filing::Values(k, vs) => {
                let filed = self.by_value.entry(k.clone()).or_default();
                for v in vs {
                    filed.entry(v.clone()).or_default().insert(id.clone());
                }
                let mut c = BTreeSet::new();
                if let Some(values) = self.items_by_value.get(k) {
                    for v in vs {
                        if let Some(items) = values.get(v) {
                            c.extend(items.iter().cloned());
                        }
                    }
                }
                c.into_iter().collect()
            }
            Filing::Key(k) => {
                self.by_key.entry(k.clone()).or_default().insert(id.clone());
                self.items_by_key
                    .get(k)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default()
            }
            Filing::Unrestricted => {
                self.unrestricted.insert(id.clone());
                self.items.keys().cloned().collect()
            }
        };
        let mut members = BTreeSet::new();
        for item in candidates {
            if selector.matches(&self.items[&item]) {
                self.member_of
                    .entry(item.clone())
                    .or_default()
                    .insert(id.clone());
                members.insert(item);
            }
        }
        // A replaced selector: report only the net change.
        let mut net: BTreeMap<E, bool> = BTreeMap::new();
        for c in changes.drain(..) {
            net.insert(c.item, false);
        }
        for item in &members {
            if net.remove(item).is_none() {
                net.insert(item.clone(), true);
            }
        }
        self.selectors.insert(id.clone(), (selector, filing));
        self.members.insert(id.clone(), members);
        net.into_iter()
            .map(|(item, matches)| MembershipChange {
                selector: id.clone(),
                item,
                matches,
            })
            .collect()
    }

    /// Removes a selector; returns the items it stops matching.
    pub fn remove_selector(&mut self, id: &S) -> Vec<MembershipChange<S, E>> {
        let Some((_, filing)) = self.selectors.remove(id) else {
            return Vec::new();
        };
        match filing {
            Filing::Values(k, vs) => {
                if let Some(values) = self.by_value.get_mut(&k) {
                    for v in vs {
                        if let Some(s) = values.get_mut(&v) {
                            s.remove(id);
                            if s.is_empty() {
                                values.remove(&v);
                            }
                        }
                    }
                    if values.is_empty() {
                        self.by_value.remove(&k);
                    }
                }
            }
            Filing::Key(k) => {
                if let Some(s) = self.by_key.get_mut(&k) {
                    s.remove(id);
                    if s.is_empty() {
                        self.by_key.remove(&k);
                    }
                }
            }
            Filing::Unrestricted => {
                self.unrestricted.remove(id);
            }
        }
        let members = self.members.remove(id).unwrap_or_default();
        members
            .into_iter()
            .map(|item| {
                if let Some(of) = self.member_of.get_mut(&item) {
                    of.remove(id);
                    if of.is_empty() {
                        self.member_of.remove(&item);
                    }
                }
                MembershipChange {
                    selector: id.clone(),
                    item,
                    matches: false,
                }
            })
            .collect()
    }

    /// Adds or relabels an item; returns the membership changes. Only selectors filed under
    /// its old or new labels (or unrestricted ones) are tested.
    pub fn upsert_item(&mut self, id: E, labels: Labels) -> Vec<MembershipChange<S, E>> {
        self.upsert(id, labels, true)
    }

    /// As [`SelectorIndex::upsert_item`], for a caller that reads memberships with
    /// [`SelectorIndex::matching`] and needs no list of changes.
    pub fn set_item(&mut self, id: E, labels: Labels) {
        self.upsert(id, labels, false);
    }

    fn upsert(&mut self, id: E, labels: Labels, report: bool) -> Vec<MembershipChange<S, E>> {
        if self.items.get(&id) == Some(&labels) {
            return Vec::new();
        }
        self.unfile_item(&id);
        for (k, v) in &labels {
            match self.items_by_value.get_mut(k.as_str()) {
                Some(values) => match values.get_mut(v.as_str()) {
                    Some(items) => {
                        items.insert(id.clone());
                    }
                    None => {
                        values.insert(v.clone(), BTreeSet::from([id.clone()]));
                    }
                },
                None => {
                    let values = HashMap::from([(v.clone(), BTreeSet::from([id.clone()]))]);
                    self.items_by_value.insert(k.clone(), values);
                }
            }
            match self.items_by_key.get_mut(k.as_str()) {
                Some(items) => {
                    items.insert(id.clone());
                }
                None => {
                    self.items_by_key
                        .insert(k.clone(), BTreeSet::from([id.clone()]));
                }
            }
        }
        let old: BTreeSet<S> = self.member_of.remove(&id).unwrap_or_default();
        let mut new = BTreeSet::new();
        {
            let selectors = &self.selectors;
            let mut test = |s: &S| {
                if !new.contains(s) && selectors[s].0.matches(&labels) {
                    new.insert(s.clone());
                }
            };
            self.unrestricted.iter().for_each(&mut test);
            for (k, v) in &labels {
                let filed = self
                    .by_value
                    .get(k.as_str())
                    .and_then(|vs| vs.get(v.as_str()));
                filed.into_iter().flatten().for_each(&mut test);
                self.by_key
                    .get(k.as_str())
                    .into_iter()
                    .flatten()
                    .for_each(&mut test);
            }
        }
        self.items.insert(id.clone(), labels);
        let changes = self.apply_membership(&id, &old, &new, report);
        if !new.is_empty() {
            self.member_of.insert(id, new);
        }
        changes
    }

    /// Removes an item; returns the selectors it stops matching.
    pub fn remove_item(&mut self, id: &E) -> Vec<MembershipChange<S, E>> {
        if !self.items.contains_key(id) {
            return Vec::new();
        }
        self.unfile_item(id);
        self.items.remove(id);
        let old = self.member_of.remove(id).unwrap_or_default();
        self.apply_membership(id, &old, &BTreeSet::new(), true)
    }

    fn unfile_item(&mut self, id: &E) {
        let Some(labels) = self.items.get(id) else {
            return;
        };
        for (k, v) in labels {
            if let Some(values) = self.items_by_value.get_mut(k.as_str()) {
                if let Some(s) = values.get_mut(v.as_str()) {
                    s.remove(id);
                    if s.is_empty() {
                        values.remove(v.as_str());
                    }
                }
                if values.is_empty() {
                    self.items_by_value.remove(k.as_str());
                }
            }
            if let Some(s) = self.items_by_key.get_mut(k) {
                s.remove(id);
                if s.is_empty() {
                    self.items_by_key.remove(k);
                }
            }
        }
    }

    /// Files `id` under the selectors it entered and takes it from those it left; lists the
    /// changes when `report`.
    fn apply_membership(
        &mut self,
        id: &E,
        old: &BTreeSet<S>,
        new: &BTreeSet<S>,
        report: bool,
    ) -> Vec<MembershipChange<S, E>> {
        let mut changes = Vec::new();
        for s in old.difference(new) {
            if let Some(m) = self.members.get_mut(s) {
                m.remove(id);
            }
            if report {
                changes.push(MembershipChange {
                    selector: s.clone(),
                    item: id.clone(),
                    matches: false,
                });
            }
        }
        for s in new.difference(old) {
            match self.members.get_mut(s) {
                Some(m) => {
                    m.insert(id.clone());
                }
                None => {
                    self.members.insert(s.clone(), BTreeSet::from([id.clone()]));
                }
            }
            if report {
                changes.push(MembershipChange {
                    selector: s.clone(),
                    item: id.clone(),
                    matches: true,
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn relabelling_reports_only_entered_and_left_selectors() {
        let mut ix: SelectorIndex<&str, u32> = SelectorIndex::new();
        ix.add_selector("web", sel("app == 'web'"));
        ix.add_selector("db", sel("app == 'db'"));
        ix.add_selector("any", sel("has(app)"));
        ix.add_selector("not-web", sel("app != 'web'"));
        let c = ix.upsert_item(1, labels(&[("app", "web")]));
        assert_eq!(
            c.iter()
                .map(|c| (c.selector, c.matches))
                .collect::<Vec<_>>(),
            vec![("any", true), ("web", true)]
        );
        let c = ix.upsert_item(1, labels(&[("app", "db")]));
        assert_eq!(
            c.iter()
                .map(|c| (c.selector, c.matches))
                .collect::<Vec<_>>(),
            vec![("web", false), ("db", true), ("not-web", true)]
        );
        assert!(ix.upsert_item(1, labels(&[("app", "db")])).is_empty());
        let c = ix.remove_item(&1);
        assert_eq!(c.len(), 3);
        assert!(ix.members(&"any").unwrap().is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Item(u8, Labels),
        DropItem(u8),
        Sel(u8, Selector),
        DropSel(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop_oneof![Just("x"), Just("y"), Just("z")].prop_map(String::from);
        let key = prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from);
        let labels = prop::collection::btree_map(key, value, 0..3);
        let selectors = prop_oneof![
            Just("a == 'x'"),
            Just("a in {'x', 'y'} && b == 'z'"),
            Just("has(b)"),
            Just("a != 'x'"),
            Just("all()"),
            Just("c == 'x' || b == 'y'"),
            Just("a == 'x' && a == 'y'"),
            Just("!has(c) && b in {'x'}"),
        ]
        .prop_map(|s| Selector::parse(s).unwrap());
        prop_oneof![
            (0u8..6, labels).prop_map(|(i, l)| Op::Item(i, l)),
            (0u8..6).prop_map(Op::DropItem),
            (0u8..4, selectors).prop_map(|(i, s)| Op::Sel(i, s)),
            (0u8..4).prop_map(Op::DropSel),
        ]
    }

    proptest! {
        /// After any sequence of updates, the index agrees with testing every selector
        /// against every item, and the reported changes replay to the same memberships.
        #[test]
        fn incremental_index_equals_brute_force(ops in prop::collection::vec(op(), 1..40)) {
            let mut ix: SelectorIndex<u8, u8> = SelectorIndex::new();
            let mut items: BTreeMap<u8, Labels> = BTreeMap::new();
            let mut sels: BTreeMap<u8, Selector> = BTreeMap::new();
            let mut replay: BTreeSet<(u8, u8)> = BTreeSet::new();
            for op in ops {
                let changes = match op {
                    Op::Item(i, l) => { items.insert(i, l.clone()); ix.upsert_item(i, l) }
                    Op::DropItem(i) => { items.remove(&i); ix.remove_item(&i) }
                    Op::Sel(i, s) => { sels.insert(i, s.clone()); ix.add_selector(i, s) }
                    Op::DropSel(i) => { sels.remove(&i); ix.remove_selector(&i) }
                };
                for c in changes {
                    if c.matches {
                        prop_assert!(replay.insert((c.selector, c.item)));
                    } else {
                        prop_assert!(replay.remove(&(c.selector, c.item)));
                    }
                }
                for (s, sel) in &sels {
                    let want: BTreeSet<u8> =
                        items.iter().filter(|(_, l)| sel.matches(*l)).map(|(i, _)| *i).collect();
                    prop_assert_eq!(ix.members(s).cloned().unwrap_or_default(), want.clone());
                    let replayed: BTreeSet<u8> =
                        replay.iter().filter(|(rs, _)| rs == s).map(|(_, i)| *i).collect();
                    prop_assert_eq!(replayed, want);
                }
            }
        }
    }
}

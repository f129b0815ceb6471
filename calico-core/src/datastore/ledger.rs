//! The bookkeeping every source shares: which resource each datastore key puts in force,
//! and which keys are refused and why.

use std::collections::{BTreeMap, HashMap};

use super::{Changes, Refusal, Revision, Snapshot};
use crate::model::{Resource, ResourceKey, Update};

/// One resource per datastore key, refused one by one.
///
/// A key's value is refused when it could not be decoded, fails validation, or defines a
/// resource another key already defines (the first key keeps it; the second is taken up by
/// itself once the first goes). A refused key's last good value stays in force: a bad write
/// never removes what was programmed.
#[derive(Debug, Default)]
pub struct Ledger {
    in_force: BTreeMap<String, Resource>,
    owner: HashMap<ResourceKey, String>,
    refused: BTreeMap<String, String>,
    /// Valid values refused only because another key defines the same resource.
    parked: BTreeMap<String, Resource>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Takes a key's new value (or why it could not be decoded) into `changes`.
    pub fn put(&mut self, key: &str, decoded: Result<Resource, String>, changes: &mut Changes) {
        let resource =
            match decoded.and_then(|r| r.validate().map(|()| r).map_err(|e| e.to_string())) {
                Ok(r) => r,
                Err(reason) => return self.refuse(key, reason, changes),
            };
        self.parked.remove(key);
        let rk = resource.key();
        if let Some(other) = self.owner.get(&rk).filter(|o| o.as_str() != key) {
            let reason = format!(
                "{:?} {} is already defined by {other}; this entry is ignored until that one goes",
                resource.kind(),
                describe(&rk)
            );
            self.parked.insert(key.to_string(), resource);
            return self.refuse(key, reason, changes);
        }
        if self.refused.remove(key).is_some() {
            changes.cleared.push(key.to_string());
        }
        if let Some(old) = self.in_force.get(key) {
            if *old == resource {
                return;
            }
            let old_rk = old.key();
            if old_rk != rk {
                self.owner.remove(&old_rk);
                changes.updates.push(Update::Remove(old_rk.clone()));
                self.unpark(&old_rk, changes);
            }
        }
        self.owner.insert(rk, key.to_string());
        self.in_force.insert(key.to_string(), resource.clone());
        changes.updates.push(Update::Upsert(resource));
    }

    /// Takes a key's deletion into `changes`.
    pub fn delete(&mut self, key: &str, changes: &mut Changes) {
        self.parked.remove(key);
        if self.refused.remove(key).is_some() {
            changes.cleared.push(key.to_string());
        }
        if let Some(old) = self.in_force.remove(key) {
            let rk = old.key();
            self.owner.remove(&rk);
            changes.updates.push(Update::Remove(rk.clone()));
            self.unpark(&rk, changes);
        }
    }

    /// Replaces the whole content with a fresh listing read at `revision`. A key refused now
    /// whose previous value was good keeps that value in force.
    pub fn reset<I>(&mut self, revision: Revision, entries: I) -> Snapshot
    where
        I: IntoIterator<Item = (String, Result<Resource, String>)>,
    {
        let old = std::mem::take(self);
        let mut scratch = Changes::default();
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, decoded) in entries {
            let kept = old.in_force.get(&key).filter(|_| decoded.is_err()).cloned();
            if let Some(good) = kept {
                self.put(&key, Ok(good), &mut scratch);
            }
            self.put(&key, decoded, &mut scratch);
        }
        self.snapshot(revision)
    }

    /// The content as a snapshot at `revision`.
    pub fn snapshot(&self, revision: Revision) -> Snapshot {
        Snapshot {
            revision,
            resources: self.in_force.values().cloned().collect(),
            refused: self
                .refused
                .iter()
                .map(|(key, reason)| Refusal {
                    key: key.clone(),
                    reason: reason.clone(),
                })
                .collect(),
        }
    }

    /// Keys refused now, with why.
    pub fn refused(&self) -> &BTreeMap<String, String> {
        &self.refused
    }

    /// How many keys put a resource in force.
    pub fn len(&self) -> usize {
        self.in_force.len()
    }

    /// Whether no key puts a resource in force.
    pub fn is_empty(&self) -> bool {
        self.in_force.is_empty()
    }

    fn refuse(&mut self, key: &str, reason: String, changes: &mut Changes) {
        if self.refused.get(key) != Some(&reason) {
            changes.refused.push(Refusal {
                key: key.to_string(),
                reason: reason.clone(),
            });
        }
        self.refused.insert(key.to_string(), reason);
    }

    /// A resource's key was freed: the first parked value defining it is taken up.
    fn unpark(&mut self, rk: &ResourceKey, changes: &mut Changes) {
        let waiting = self
            .parked
            .iter()
            .find(|(_, r)| r.key() == *rk)
            .map(|(k, r)| (k.clone(), r.clone()));
        if let Some((key, resource)) = waiting {
            self.put(&key, Ok(resource), changes);
        }
    }
}

pub(crate) fn describe(rk: &ResourceKey) -> String {
    match rk {
        ResourceKey::WorkloadEndpoint(id) => id.to_string(),
        ResourceKey::Policy {
            namespace: Some(ns),
            name,
        } => format!("{ns}/{name}"),
        ResourceKey::Policy { name, .. } => name.clone(),
        ResourceKey::NetworkSet {
            namespace: Some(ns),
            name,
        } => format!("{ns}/{name}"),
        ResourceKey::NetworkSet { name, .. } => name.clone(),
        ResourceKey::HostEndpoint(n)
        | ResourceKey::Profile(n)
        | ResourceKey::IpPool(n)
        | ResourceKey::BgpConfiguration(n)
        | ResourceKey::BgpPeer(n)
        | ResourceKey::BgpFilter(n)
        | ResourceKey::Node(n)
        | ResourceKey::Tier(n) => n.clone(),
        ResourceKey::BlockAffinity(net) => net.to_string(),
    }
}

#[cfg(test)]
mod tests;

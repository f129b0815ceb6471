//! Invariants every compiled [`Ruleset`] keeps, checked by tests and the fuzzer; a backend
//! may rely on them.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::ir::{Match, Ruleset, SetElement, Verdict};

/// Longest object name (nftables' historical limit, without the NUL).
pub const MAX_NAME_LEN: usize = 31;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvariantError {
    /// A verdict or map element refers to a chain that does not exist.
    #[error("{from} refers to missing chain {to}")]
    MissingChain {
        /// Where the reference is.
        from: String,
        /// The missing chain.
        to: String,
    },
    /// A rule refers to a set or map that does not exist.
    #[error("chain {chain} refers to missing {what} {name}")]
    MissingObject {
        /// The chain.
        chain: String,
        /// "set" or "map".
        what: &'static str,
        /// The missing name.
        name: String,
    },
    /// A rule compares an address of another family than the one it matches (or matches
    /// none).
    #[error("chain {chain}: address {addr} compared in a rule of another or no family")]
    WrongFamily {
        /// The chain.
        chain: String,
        /// The address.
        addr: std::net::IpAddr,
    },
    /// A rule uses a set of the wrong key type.
    #[error("chain {chain}: set {set} has the wrong key type for its use")]
    WrongKey {
        /// The chain.
        chain: String,
        /// The set.
        set: String,
    },
    /// A set holds an element that does not fit its key, or overlapping intervals.
    #[error("set {set}: {reason}")]
    BadElement {
        /// The set.
        set: String,
        /// What is wrong.
        reason: String,
    },
    /// A name is too long.
    #[error("name {0:?} is longer than {MAX_NAME_LEN} characters")]
    NameTooLong(String),
    /// Chains jump to each other in a loop (nftables refuses it).
    #[error("chain {0} can reach itself through jumps")]
    Loop(String),
}

/// Checks every invariant.
pub fn check(r: &Ruleset) -> Result<(), InvariantError> {
    for name in r.sets.keys().chain(r.maps.keys()).chain(r.chains.keys()) {
        if name.len() > MAX_NAME_LEN {
            return Err(InvariantError::NameTooLong(name.clone()));
        }
    }
    for (name, set) in &r.sets {
        for e in &set.elements {
            if !e.fits(set.key) {
                return Err(InvariantError::BadElement {
                    set: name.clone(),
                    reason: format!("{e:?} does not fit {:?}", set.key),
                });
            }
        }
        let nets: Vec<IpNet> = set
            .elements
            .iter()
            .filter_map(|e| match e {
                SetElement::Net(n) => Some(*n),
                _ => None,
            })
            .collect();
        for (i, a) in nets.iter().enumerate() {
            if let Some(b) = nets[i + 1..]
                .iter()
                .find(|b| a.contains(*b) || b.contains(a))
            {
                return Err(InvariantError::BadElement {
                    set: name.clone(),
                    reason: format!("{a} and {b} overlap"),
                });
            }
        }
    }
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let target = |from: &str, v: &Verdict| -> Result<Vec<String>, InvariantError> {
        match v {
            Verdict::Jump(c) | Verdict::Goto(c) => {
                if r.chains.contains_key(c) {
                    Ok(vec![c.clone()])
                } else {
                    Err(InvariantError::MissingChain {
                        from: from.to_string(),
                        to: c.clone(),
                    })
                }
            }
            Verdict::Dispatch { map, .. } => match r.maps.get(map) {
                Some(m) => Ok(m
                    .elements
                    .values()
                    .filter_map(|v| match v {
                        Verdict::Jump(c) | Verdict::Goto(c) => Some(c.clone()),
                        _ => None,
                    })
                    .collect()),
                None => Err(InvariantError::MissingObject {
                    chain: from.to_string(),
                    what: "map",
                    name: map.clone(),
                }),
            },
            _ => Ok(vec![]),
        }
    };
    for (mname, map) in &r.maps {
        for v in map.elements.values() {
            target(&format!("map {mname}"), v)?;
        }
    }
    for (cname, chain) in &r.chains {
        for rule in &chain.rules {
            let family = rule.matches.iter().find_map(|m| match m {
                Match::Ipv4(v4) => Some(*v4),
                _ => None,
            });
            for m in &rule.matches {
                if let Match::AddrEq { addr, .. } = m {
                    if family != Some(addr.is_ipv4()) {
                        return Err(InvariantError::WrongFamily {
                            chain: cname.clone(),
                            addr: *addr,
                        });
                    }
                    continue;
                }
                let (set, concat) = match m {
                    Match::AddrInSet { set, .. } => (set, false),
                    Match::AddrProtoPortInSet { set, .. } => (set, true),
                    _ => continue,
                };
                let Some(s) = r.sets.get(set) else {
                    return Err(InvariantError::MissingObject {
                        chain: cname.clone(),
                        what: "set",
                        name: set.clone(),
                    });
                };
                if s.key.is_concat() != concat
                    || family.is_some_and(|v4| v4 != s.key.is_ipv4())
                    || family.is_none()
                {
                    return Err(InvariantError::WrongKey {
                        chain: cname.clone(),
                        set: set.clone(),
                    });
                }
            }
            if let Some(v) = &rule.verdict {
                for t in target(cname, v)? {
                    let t = r.chains.get_key_value(&t).map(|(k, _)| k.as_str());
                    if let Some(t) = t {
                        edges.entry(cname.as_str()).or_default().insert(t);
                    }
                }
            }
        }
    }
    // Loops: depth-first search with colours.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
    ) -> Result<(), InvariantError> {
        match state.get(n) {
            Some(1) => return Err(InvariantError::Loop(n.to_string())),
            Some(2) => return Ok(()),
            _ => {}
        }
        state.insert(n, 1);
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, state)?;
        }
        state.insert(n, 2);
        Ok(())
    }
    for c in r.chains.keys() {
        visit(c, &edges, &mut state)?;
    }
    Ok(())
}

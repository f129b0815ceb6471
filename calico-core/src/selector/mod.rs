//! The Calico selector language: parse, print, evaluate.
//!
//! A selector is a boolean expression over an endpoint's labels:
//!
//! | expression | true when |
//! | --- | --- |
//! | `k == "v"` | label `k` is present with value `v` |
//! | `k != "v"` | label `k` is absent or has another value |
//! | `k in {"a", "b"}` | `k` is present with one of the values |
//! | `k not in {"a", "b"}` | `k` is absent or has none of the values |
//! | `has(k)` | `k` is present |
//! | `k contains "s"`, `k starts with "s"`, `k ends with "s"` | `k` is present and its value does so |
//! | `all()` | always |
//! | `global()` | the labels are those of a non-namespaced resource (no `projectcalico.org/namespace` label) |
//! | `!e`, `e && f`, `e \|\| f`, `(e)` | negation, conjunction (binds tighter), disjunction, grouping |
//!
//! Strings are quoted with `"` or `'` (no escapes). Label keys are 1–512 characters of
//! `[A-Za-z0-9_./-]`. The empty selector means `all()`.
//!
//! ```
//! use calico_core::model::Labels;
//! use calico_core::selector::Selector;
//!
//! let s = Selector::parse("app == 'web' && tier not in {'db'}").unwrap();
//! let mut labels = Labels::new();
//! labels.insert("app".into(), "web".into());
//! assert!(s.matches(&labels));
//! assert_eq!(s.to_string(), r#"app == "web" && tier not in {"db"}"#);
//!
//! let err = Selector::parse("app == ").unwrap_err();
//! assert_eq!(err.position, 7);
//! ```

mod ast;
mod error;
mod parser;
mod restrictions;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

pub use error::SelectorError;
pub use restrictions::LabelRestriction;

use ast::Expr;

/// Longest label key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// Deepest nesting of parentheses and negations accepted.
pub const MAX_DEPTH: usize = 128;

/// The implicit label carrying a namespaced endpoint's namespace.
const NAMESPACE_LABEL: &str = crate::labels::LABEL_NAMESPACE;

/// Something labels can be looked up in.
pub trait LabelSource {
    /// The value of label `key`, if present.
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelSource for crate::labels::Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> LabelSource for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// Two label sources seen as one: a label of `first` hides the same key in `second` (an
/// endpoint's own labels over those it inherits from its profiles).
#[derive(Clone, Copy, Debug)]
pub struct LayeredLabels<'a, A: ?Sized, B: ?Sized> {
    /// The labels that win.
    pub first: &'a A,
    /// The labels used where `first` has none.
    pub second: &'a B,
}

impl<A: LabelSource + ?Sized, B: LabelSource + ?Sized> LabelSource for LayeredLabels<'_, A, B> {
    fn label(&self, key: &str) -> Option<&str> {
        self.first.label(key).or_else(|| self.second.label(key))
    }
}

/// A parsed selector. Its `Display` is the canonical text, which parses back to an equal
/// selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    expr: Expr,
}

impl Selector {
    /// `all()`: matches everything.
    pub fn all() -> Self {
        Selector { expr: Expr::All }
    }

    /// Parses a selector. The empty (or all-whitespace) string is `all()`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        parser::parse(text).map(|expr| Selector { expr })
    }

    /// Whether labels match.
    pub fn matches<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        self.expr.matches(labels)
    }

    /// Whether this is `all()`.
    pub fn is_all(&self) -> bool {
        self.expr == Expr::All
    }

    /// `self && other`, simplified when either side is `all()`.
    pub fn and(&self, other: &Selector) -> Selector {
        if self.is_all() {
            return other.clone();
        }
        if other.is_all() {
            return self.clone();
        }
        let mut terms = Vec::new();
        for e in [&self.expr, &other.expr] {
            match e {
                Expr::And(ts) => terms.extend(ts.iter().cloned()),
                e => terms.push(e.clone()),
            }
        }
        Selector {
            expr: Expr::And(terms),
        }
    }

    /// `key == "value"`.
    pub fn label_equals(key: &str, value: &str) -> Selector {
        Selector {
            expr: Expr::Eq(key.into(), value.into()),
        }
    }

    /// `key in { values }`.
    pub fn label_in<S: AsRef<str>>(key: &str, values: &[S]) -> Selector {
        let values = values.iter().map(|v| v.as_ref().to_string()).collect();
        Selector {
            expr: Expr::In(key.into(), values),
        }
    }

    /// `has(key)`.
    pub fn has(key: &str) -> Selector {
        Selector {
            expr: Expr::Has(key.into()),
        }
    }

    /// The same selector with every label key `k` replaced by `prefix` + `k`. Calico uses
    /// this to evaluate a `namespaceSelector` against the `pcns.`-prefixed namespace labels
    /// endpoints inherit from their namespace profile.
    pub fn with_key_prefix(&self, prefix: &str) -> Selector {
        Selector {
            expr: self.expr.map_keys(&|k| format!("{prefix}{k}")),
        }
    }

    /// What the selector requires of individual labels, from its top-level conjunction; see
    /// [`LabelRestriction`]. Sound: a labelling that violates a restriction never matches.
    pub fn label_restrictions(&self) -> std::collections::BTreeMap<String, LabelRestriction> {
        restrictions::of(&self.expr)
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector::all()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.expr, f)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Selector::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;

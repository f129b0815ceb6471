//! The selector syntax tree: evaluation and canonical printing.

use std::collections::BTreeSet;
use std::fmt;

use super::{LabelSource, NAMESPACE_LABEL};

/// A selector expression. `And` and `Or` are n-ary (at least two terms) so that printing and
/// re-parsing give the same tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Expr {
    All,
    Global,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    pub(super) fn matches<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Expr::All => true,
            Expr::Global => labels.label(NAMESPACE_LABEL).is_none(),
            Expr::Has(k) => labels.label(k).is_some(),
            Expr::Eq(k, v) => labels.label(k) == Some(v.as_str()),
            Expr::Ne(k, v) => labels.label(k) != Some(v.as_str()),
            Expr::In(k, vs) => labels.label(k).is_some_and(|v| vs.contains(v)),
            Expr::NotIn(k, vs) => !labels.label(k).is_some_and(|v| vs.contains(v)),
            Expr::Contains(k, s) => labels.label(k).is_some_and(|v| v.contains(s.as_str())),
            Expr::StartsWith(k, s) => labels.label(k).is_some_and(|v| v.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => labels.label(k).is_some_and(|v| v.ends_with(s.as_str())),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(es) => es.iter().all(|e| e.matches(labels)),
            Expr::Or(es) => es.iter().any(|e| e.matches(labels)),
        }
    }

    pub(super) fn map_keys(&self, f: &dyn Fn(&str) -> String) -> Expr {
        match self {
            Expr::All => Expr::All,
            Expr::Global => Expr::Global,
            Expr::Has(k) => Expr::Has(f(k)),
            Expr::Eq(k, v) => Expr::Eq(f(k), v.clone()),
            Expr::Ne(k, v) => Expr::Ne(f(k), v.clone()),
            Expr::In(k, v) => Expr::In(f(k), v.clone()),
            Expr::NotIn(k, v) => Expr::NotIn(f(k), v.clone()),
            Expr::Contains(k, v) => Expr::Contains(f(k), v.clone()),
            Expr::StartsWith(k, v) => Expr::StartsWith(f(k), v.clone()),
            Expr::EndsWith(k, v) => Expr::EndsWith(f(k), v.clone()),
            Expr::Not(e) => Expr::Not(Box::new(e.map_keys(f))),
            Expr::And(es) => Expr::And(es.iter().map(|e| e.map_keys(f)).collect()),
            Expr::Or(es) => Expr::Or(es.iter().map(|e| e.map_keys(f)).collect()),
        }
    }
}

/// Writes a string literal: double quotes unless the value contains one.
fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if s.contains('"') {
        write!(f, "'{s}'")
    } else {
        write!(f, "\"{s}\"")
    }
}

fn set(f: &mut fmt::Formatter<'_>, vs: &BTreeSet<String>) -> fmt::Result {
    f.write_str("{")?;
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        quoted(f, v)?;
    }
    f.write_str("}")
}

/// Writes `e`, in parentheses when it is a conjunction or disjunction (the only forms whose
/// operands could otherwise re-associate).
fn operand(f: &mut fmt::Formatter<'_>, e: &Expr) -> fmt::Result {
    match e {
        Expr::And(_) | Expr::Or(_) => write!(f, "({e})"),
        e => write!(f, "{e}"),
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Global => f.write_str("global()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => {
                write!(f, "{k} == ")?;
                quoted(f, v)
            }
            Expr::Ne(k, v) => {
                write!(f, "{k} != ")?;
                quoted(f, v)
            }
            Expr::In(k, vs) => {
                write!(f, "{k} in ")?;
                set(f, vs)
            }
            Expr::NotIn(k, vs) => {
                write!(f, "{k} not in ")?;
                set(f, vs)
            }
            Expr::Contains(k, v) => {
                write!(f, "{k} contains ")?;
                quoted(f, v)
            }
            Expr::StartsWith(k, v) => {
                write!(f, "{k} starts with ")?;
                quoted(f, v)
            }
            Expr::EndsWith(k, v) => {
                write!(f, "{k} ends with ")?;
                quoted(f, v)
            }
            Expr::Not(e) => {
                f.write_str("!")?;
                operand(f, e)
            }
            Expr::And(es) => {
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" && ")?;
                    }
                    operand(f, e)?;
                }
                Ok(())
            }
            Expr::Or(es) => {
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    match e {
                        Expr::Or(_) => write!(f, "({e})")?,
                        e => write!(f, "{e}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

//! What a selector requires of individual labels: the basis of the incremental index, which
//! looks at only the selectors a label change can affect.

use std::collections::{BTreeMap, BTreeSet};

use super::ast::Expr;

/// What a selector requires of one label key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelRestriction {
    /// The label must be present for the selector to match.
    pub must_be_present: bool,
    /// When set, the label's value must be one of these (an empty set: the selector can never
    /// match).
    pub must_have_one_of: Option<BTreeSet<String>>,
}

impl LabelRestriction {
    fn merge(&mut self, values: Option<BTreeSet<String>>) {
        self.must_be_present = true;
        if let Some(values) = values {
            self.must_have_one_of = Some(match self.must_have_one_of.take() {
                Some(existing) => existing.intersection(&values).cloned().collect(),
                None => values,
            });
        }
    }
}

/// Restrictions implied by the top-level conjunction of `expr`.
pub(super) fn of(expr: &Expr) -> BTreeMap<String, LabelRestriction> {
    let mut out = BTreeMap::new();
    let terms: &[Expr] = match expr {
        Expr::And(ts) => ts,
        e => std::slice::from_ref(e),
    };
    for term in terms {
        let (key, values) = match term {
            Expr::Has(k) => (k, None),
            Expr::Eq(k, v) => (k, Some(BTreeSet::from([v.clone()]))),
            Expr::In(k, vs) => (k, Some(vs.clone())),
            Expr::Contains(k, _) | Expr::StartsWith(k, _) | Expr::EndsWith(k, _) => (k, None),
            Expr::And(_) => {
                for (k, r) in of(term) {
                    out.entry(k)
                        .or_insert_with(LabelRestriction::default)
                        .merge(r.must_have_one_of);
                }
                continue;
            }
            _ => continue,
        };
        out.entry(key.clone())
            .or_insert_with(LabelRestriction::default)
            .merge(values);
    }
    out
}

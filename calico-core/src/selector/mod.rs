//! The Calico selector language.
//!
//! PLACEHOLDER: being implemented (parser, printer, evaluator).

use std::fmt;

/// Something labels can be looked up in.
pub trait LabelSource {
    /// The value of label `key`, if present.
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelSource for crate::model::Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A parsed selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    text: String,
}

impl Selector {
    /// `all()`: matches everything.
    pub fn all() -> Self {
        Selector {
            text: "all()".into(),
        }
    }
    /// Parses a selector.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(Selector { text: s.into() })
    }
    /// Whether the labels match.
    pub fn matches<L: LabelSource + ?Sized>(&self, _labels: &L) -> bool {
        todo!("selector evaluation")
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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

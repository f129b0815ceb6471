//! Wire-format helpers shared by the resources: at the bottom of the crate, below the model
//! and the dataplane contract that use them.

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A value written either as a number or as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    String(String),
}

/// Deserializes a value that Calico accepts either as a number or as a string (a protocol,
/// a port, an AS number): a number is narrowed to `N` and wrapped by `from_number`
/// (`out_of_range` says why when it does not fit), a string is parsed with `T`'s
/// [`FromStr`].
pub(crate) fn number_or_string<'de, D, T, N>(
    d: D,
    from_number: impl FnOnce(N) -> T,
    out_of_range: impl FnOnce(u64) -> String,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
    N: TryFrom<u64>,
{
    match NumberOrString::deserialize(d)? {
        NumberOrString::Number(n) => N::try_from(n)
            .map(from_number)
            .map_err(|_| serde::de::Error::custom(out_of_range(n))),
        NumberOrString::String(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

//! Kubernetes `metav1.Duration` values (Go's duration syntax: `90s`, `2m`, `1h30m`, `1.5s`,
//! `500ms`), as Calico's BGP resources carry their timers, read as whole seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::integrations::TranslateError;

/// A Go duration string, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct GoDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text)
            .map(GoDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses Go's duration syntax (a sign is refused: no BGP timer is negative).
fn parse(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("{text:?} is not a duration ({why}; e.g. \"90s\", \"2m\")");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(bad("empty"));
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad("a number without a unit"))?;
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| bad("a number is expected before each unit"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad("units are h, m, s, ms, us and ns")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad("out of range"))
}

/// A duration field as whole seconds (rounded to the nearest, as Calico does), or an error
/// naming `field` when it does not fit 0-65535 s.
pub(super) fn seconds(
    obj: &str,
    field: &str,
    value: Option<GoDuration>,
) -> Result<Option<u16>, TranslateError> {
    value
        .map(|GoDuration(d)| {
            let s = d.as_secs_f64().round();
            if s > f64::from(u16::MAX) {
                Err(TranslateError::new(
                    obj,
                    field,
                    format!("{} s is longer than 65535 s", s),
                ))
            } else {
                Ok(s as u16)
            }
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let secs = |t| parse(t).unwrap().as_secs_f64();
        assert_eq!(secs("90s"), 90.0);
        assert_eq!(secs("2m"), 120.0);
        assert_eq!(secs("1h0m30s"), 3630.0);
        assert_eq!(secs("1.5s"), 1.5);
        assert_eq!(secs("500ms"), 0.5);
        assert_eq!(secs("0"), 0.0);
        for bad in ["", "10", "5x", "-5s", "s", "1..2s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seconds_round_and_name_the_field() {
        let d = |t| Some(GoDuration(parse(t).unwrap()));
        assert_eq!(seconds("o", "f", d("1.6s")).unwrap(), Some(2));
        assert_eq!(seconds("o", "f", None).unwrap(), None);
        let e = seconds("o", "spec.maxRestartTime", d("20h")).unwrap_err();
        assert!(e.to_string().contains("spec.maxRestartTime"), "{e}");
    }
}

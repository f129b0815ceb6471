use std::collections::BTreeSet;

use proptest::prelude::*;

use super::ast::Expr;
use super::*;
use crate::model::Labels;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A selector, the labels it is matched against, and whether it matches.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

fn m(sel: &str, pairs: &[(&str, &str)]) -> bool {
    Selector::parse(sel)
        .unwrap_or_else(|e| panic!("{e}"))
        .matches(&labels(pairs))
}

#[test]
fn operators_follow_calico_semantics_including_absent_labels() {
    let cases: &[Case] = &[
        ("a == 'x'", &[("a", "x")], true),
        ("a == 'x'", &[("a", "y")], false),
        ("a == 'x'", &[], false),
        ("a != 'x'", &[("a", "y")], true),
        ("a != 'x'", &[("a", "x")], false),
        ("a != 'x'", &[], true),
        ("a in {'x', 'y'}", &[("a", "y")], true),
        ("a in {'x', 'y'}", &[("a", "z")], false),
        ("a in {'x'}", &[], false),
        ("a in {}", &[("a", "x")], false),
        ("a not in {'x', 'y'}", &[("a", "z")], true),
        ("a not in {'x', 'y'}", &[("a", "x")], false),
        ("a not in {'x'}", &[], true),
        ("has(a)", &[("a", "")], true),
        ("has(a)", &[("b", "x")], false),
        ("!has(a)", &[], true),
        ("!has(a)", &[("a", "x")], false),
        ("a contains 'ell'", &[("a", "hello")], true),
        ("a contains 'ell'", &[("a", "help")], false),
        ("a contains ''", &[], false),
        ("a starts with 'he'", &[("a", "hello")], true),
        ("a starts with 'lo'", &[("a", "hello")], false),
        ("a ends with 'lo'", &[("a", "hello")], true),
        ("a ends with 'he'", &[("a", "hello")], false),
        ("a ends with 'x'", &[], false),
        ("all()", &[], true),
        ("", &[("a", "x")], true),
        ("   ", &[], true),
        ("global()", &[], true),
        ("global()", &[("projectcalico.org/namespace", "ns")], false),
        ("!(a == 'x')", &[("a", "x")], false),
        ("!a == 'x'", &[("a", "y")], true),
        ("a == 'x' && b == 'y'", &[("a", "x"), ("b", "y")], true),
        ("a == 'x' && b == 'y'", &[("a", "x")], false),
        ("a == 'x' || b == 'y'", &[("b", "y")], true),
        ("a == 'x' || b == 'y'", &[], false),
        // && binds tighter than ||.
        ("a == 'x' || b == 'y' && c == 'z'", &[("a", "x")], true),
        ("(a == 'x' || b == 'y') && c == 'z'", &[("a", "x")], false),
        ("a == \"it's\"", &[("a", "it's")], true),
        ("a == '\"q\"'", &[("a", "\"q\"")], true),
        (
            "k8s.io/app-name_1 == 'v'",
            &[("k8s.io/app-name_1", "v")],
            true,
        ),
        ("has == 'x'", &[("has", "x")], true),
        ("!!has(a)", &[("a", "x")], true),
    ];
    for (sel, ls, want) in cases {
        assert_eq!(m(sel, ls), *want, "{sel} on {ls:?}");
    }
}

/// Calico's tokenizer (libcalico-go `selector/tokenizer`) reads `starts`, `ends` and `not`
/// after a label, skips optional spaces/tabs, then expects `with`/`with`/`in`: so
/// `startswith`, `endswith` and `notin` are the same operators as the spaced forms.
#[test]
fn two_word_operators_take_optional_whitespace_as_in_calico() {
    let same = [
        ("a startswith 'he'", "a starts with 'he'"),
        ("a startswith'he'", "a starts with 'he'"),
        ("a starts\twith 'he'", "a starts with 'he'"),
        ("a endswith \"lo\"", "a ends with 'lo'"),
        ("a ends  with 'lo'", "a ends with 'lo'"),
        ("a notin {'x', 'y'}", "a not in {'x', 'y'}"),
        ("a notin{}", "a not in {}"),
        ("a not  in {'x'}", "a not in {'x'}"),
    ];
    for (text, canonical) in same {
        let got = Selector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(got, Selector::parse(canonical).unwrap(), "{text:?}");
    }
    assert!(m("a startswith 'he'", &[("a", "hello")]));
    assert!(!m("a endswith 'he'", &[("a", "hello")]));
    assert!(m("a notin {'x'}", &[("a", "y")]));
    // Only those spellings: the words still need their second half.
    for bad in [
        "a starts 'x'",
        "a startwith 'x'",
        "a notinn {'x'}",
        "a ends wth 'x'",
    ] {
        assert!(Selector::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn syntax_errors_say_where_and_what_was_expected() {
    let cases: &[(&str, usize, &str)] = &[
        ("a == ", 5, "a quoted string"),
        ("a ==", 4, "a quoted string"),
        ("a = 'x'", 2, "a label key, string"),
        ("(a == 'x'", 9, "')'"),
        ("a == 'x' b", 9, "'&&', '||' or end of input"),
        ("a in {'x' 'y'}", 10, "',' or '}'"),
        ("a == 'x", 7, "closing '"),
        ("has(", 4, "a label key"),
        ("a not 'x'", 6, "\"in\""),
        ("a starts 'x'", 9, "\"with\""),
        ("&& a", 0, "a label key, '!'"),
        ("a ~ 'x'", 2, "a label key, string"),
    ];
    for (sel, pos, expected) in cases {
        let e = Selector::parse(sel).expect_err(sel);
        assert_eq!(e.position, *pos, "{sel}: {e}");
        assert!(e.expected.starts_with(expected), "{sel}: {e}");
        assert!(e.to_string().contains(&format!("at byte {pos}")));
    }
}

#[test]
fn limits_are_enforced_without_overflowing_the_stack() {
    let long_key = "k".repeat(MAX_KEY_LEN + 1);
    let e = Selector::parse(&format!("{long_key} == 'x'")).unwrap_err();
    assert!(e.expected.contains("at most 512"), "{e}");
    assert!(Selector::parse(&format!("{} == 'x'", "k".repeat(MAX_KEY_LEN))).is_ok());

    let deep = format!("{}a == 'x'{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(Selector::parse(&deep)
        .unwrap_err()
        .expected
        .contains("levels of nesting"));
    let bangs = format!("{}has(a)", "!".repeat(100_000));
    assert!(Selector::parse(&bangs).is_err());
    let ok = format!("{}a == 'x'{}", "(".repeat(50), ")".repeat(50));
    assert!(Selector::parse(&ok).is_ok());
}

#[test]
fn printing_is_canonical() {
    let cases = [
        ("a=='x'", r#"a == "x""#),
        ("a in {'y','x','x'}", r#"a in {"x", "y"}"#),
        ("!has( a )", "!has(a)"),
        ("(a == 'x')", r#"a == "x""#),
        (
            "a == 'x' && (b == 'y' || c == 'z')",
            r#"a == "x" && (b == "y" || c == "z")"#,
        ),
        (
            "a == 'x' || b == 'y' && c == 'z'",
            r#"a == "x" || b == "y" && c == "z""#,
        ),
        (
            "a == 'x' && (b == 'y' && c == 'z')",
            r#"a == "x" && (b == "y" && c == "z")"#,
        ),
        ("!(a == 'x' || b == 'y')", r#"!(a == "x" || b == "y")"#),
        (r#"a == '"'"#, r#"a == '"'"#),
        ("", "all()"),
    ];
    for (input, printed) in cases {
        let s = Selector::parse(input).unwrap();
        assert_eq!(s.to_string(), printed);
        assert_eq!(Selector::parse(printed).unwrap(), s);
    }
}

#[test]
fn combinators() {
    let a = Selector::parse("a == 'x'").unwrap();
    let b = Selector::parse("b == 'y' && c == 'z'").unwrap();
    assert_eq!(a.and(&b).to_string(), r#"a == "x" && b == "y" && c == "z""#);
    assert_eq!(a.and(&Selector::all()), a);
    assert_eq!(Selector::all().and(&a), a);
    assert!(Selector::all().is_all());
    let ns = Selector::parse("team == 'a' && has(env)").unwrap();
    assert_eq!(
        ns.with_key_prefix("pcns.").to_string(),
        r#"pcns.team == "a" && has(pcns.env)"#
    );
    assert_eq!(
        Selector::label_equals("k", "v"),
        Selector::parse("k == 'v'").unwrap()
    );
}

#[test]
fn serde_uses_the_text_form() {
    let s: Selector = serde_json::from_str(r#""app == 'web'""#).unwrap();
    assert_eq!(serde_json::to_string(&s).unwrap(), r#""app == \"web\"""#);
    let e = serde_json::from_str::<Selector>(r#""app =""#).unwrap_err();
    assert!(e.to_string().contains("at byte 4"), "{e}");
}

#[test]
fn layered_labels_prefer_the_first_source() {
    let own = labels(&[("a", "own")]);
    let inherited = labels(&[("a", "profile"), ("b", "profile")]);
    let both = LayeredLabels {
        first: &own,
        second: &inherited,
    };
    assert!(Selector::parse("a == 'own' && b == 'profile'")
        .unwrap()
        .matches(&both));
}

#[test]
fn restrictions_from_the_top_level_conjunction() {
    let s = Selector::parse("a == 'x' && b in {'1','2'} && has(c) && b in {'2','3'} && d != 'q'")
        .unwrap();
    let r = s.label_restrictions();
    assert_eq!(r.len(), 3);
    assert_eq!(
        r["a"].must_have_one_of,
        Some(BTreeSet::from(["x".to_string()]))
    );
    assert_eq!(
        r["b"].must_have_one_of,
        Some(BTreeSet::from(["2".to_string()]))
    );
    assert!(r["c"].must_be_present && r["c"].must_have_one_of.is_none());
    assert!(Selector::parse("a == 'x' || b == 'y'")
        .unwrap()
        .label_restrictions()
        .is_empty());
}

// ---- property tests ----

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("app.k8s.io/name".to_string()),
        "[A-Za-z0-9_./-]{1,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x".to_string()),
        Just("y".to_string()),
        Just("".to_string()),
        "[a-z\" ]{0,6}",
        "[a-z' ]{0,6}",
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(Expr::All),
        Just(Expr::Global),
        key().prop_map(Expr::Has),
        (key(), value()).prop_map(|(k, v)| Expr::Eq(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::Ne(k, v)),
        (key(), prop::collection::btree_set(value(), 0..4)).prop_map(|(k, v)| Expr::In(k, v)),
        (key(), prop::collection::btree_set(value(), 0..4)).prop_map(|(k, v)| Expr::NotIn(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::Contains(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::StartsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::EndsWith(k, v)),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

fn label_map() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(
        prop_oneof![Just("a".to_string()), Just("b".to_string()), key()],
        value(),
        0..4,
    )
}

/// An evaluation written independently of `Expr::matches`, over the same tree:
/// folds instead of short-circuits, lookups by `contains_key` instead of `LabelSource`.
fn reference(e: &Expr, l: &Labels) -> bool {
    let get = |k: &String| l.get(k).map(String::as_str);
    match e {
        Expr::All => true,
        Expr::Global => !l.contains_key(crate::model::LABEL_NAMESPACE),
        Expr::Has(k) => l.contains_key(k),
        Expr::Eq(k, v) => get(k) == Some(v),
        Expr::Ne(k, v) => get(k) != Some(v),
        Expr::In(k, vs) => get(k).map(|x| vs.iter().any(|v| v == x)).unwrap_or(false),
        Expr::NotIn(k, vs) => get(k).map(|x| vs.iter().all(|v| v != x)).unwrap_or(true),
        Expr::Contains(k, s) => get(k).map(|x| x.contains(s.as_str())).unwrap_or(false),
        Expr::StartsWith(k, s) => get(k).map(|x| x.starts_with(s.as_str())).unwrap_or(false),
        Expr::EndsWith(k, s) => get(k).map(|x| x.ends_with(s.as_str())).unwrap_or(false),
        Expr::Not(e) => !reference(e, l),
        Expr::And(es) => es.iter().fold(true, |acc, e| acc & reference(e, l)),
        Expr::Or(es) => es.iter().fold(false, |acc, e| acc | reference(e, l)),
    }
}

/// Values containing both quote characters cannot be written in the language.
fn printable(e: &Expr) -> bool {
    let ok = |v: &String| !(v.contains('"') && v.contains('\''));
    match e {
        Expr::Eq(_, v) | Expr::Ne(_, v) | Expr::Contains(_, v) => ok(v),
        Expr::StartsWith(_, v) | Expr::EndsWith(_, v) => ok(v),
        Expr::In(_, vs) | Expr::NotIn(_, vs) => vs.iter().all(ok),
        Expr::Not(e) => printable(e),
        Expr::And(es) | Expr::Or(es) => es.iter().all(printable),
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn print_then_parse_gives_the_same_selector(e in expr().prop_filter("printable", printable)) {
        let s = Selector { expr: e };
        let text = s.to_string();
        let back = Selector::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &s, "text: {}", text);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn matching_agrees_with_the_reference(e in expr(), l in label_map()) {
        prop_assert_eq!(e.matches(&l), reference(&e, &l));
    }

    #[test]
    fn restrictions_are_sound(e in expr(), l in label_map()) {
        let s = Selector { expr: e };
        if s.matches(&l) {
            for (k, r) in s.label_restrictions() {
                let v = l.get(&k);
                prop_assert!(!r.must_be_present || v.is_some(), "{} requires {}", s, k);
                if let (Some(vs), Some(v)) = (&r.must_have_one_of, v) {
                    prop_assert!(vs.contains(v), "{} requires {} in {:?}", s, k, vs);
                }
            }
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "[ -~]{0,64}") {
        if let Ok(s) = Selector::parse(&text) {
            prop_assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
        }
    }
}

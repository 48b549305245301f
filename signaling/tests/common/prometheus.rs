//! A strict reader of the Prometheus text exposition format 0.0.4 for the tests,
//! written apart from the server's writer (src/metrics/exposition.rs) so that it checks
//! the format, not the writer against itself.

use std::collections::{BTreeMap, HashMap};

type Labels = Vec<(String, String)>;

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses a Prometheus text exposition (format 0.0.4) strictly, independently of the
/// server's writer: every line is a HELP, a TYPE (once per family, before its samples,
/// families contiguous) or a sample whose name belongs to the current family; label
/// values are quoted with escapes; histograms end with a `+Inf` bucket equal to `_count`.
pub fn parse_prometheus(text: &str) -> Vec<PromSample> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut samples = Vec::new();
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut current: Option<(String, String)> = None;
    assert!(text.ends_with('\n'), "the exposition ends with a line feed");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(name_ok(name), "bad name in {line:?}");
            if kw == "TYPE" {
                let ty = parts.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                    "{line:?}"
                );
                assert!(
                    typed.insert(name.to_owned(), ty.to_owned()).is_none(),
                    "TYPE twice: {line:?}"
                );
                current = Some((name.to_owned(), ty.to_owned()));
            }
            continue;
        }
        assert!(
            !line.is_empty() && !line.starts_with('#'),
            "stray line {line:?}"
        );
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value in {line:?}"),
        };
        assert!(name_ok(name), "bad metric name in {line:?}");
        let mut labels = Vec::new();
        let mut rest = rest;
        if let Some(mut r) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = r.strip_prefix('}') {
                    r = after;
                    break;
                }
                let (k, after) = r
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("label in {line:?}"));
                assert!(name_ok(k), "bad label name in {line:?}");
                let mut v = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => v.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => v.push(c),
                            other => panic!("bad escape {other:?} in {line:?}"),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => v.push(c),
                        None => panic!("unterminated label value in {line:?}"),
                    }
                };
                labels.push((k.to_owned(), v));
                r = &after[end + 1..];
                r = r.strip_prefix(',').unwrap_or(r);
            }
            rest = r;
        }
        let value = rest.trim().split(' ').next().unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (family, ty) = current
            .clone()
            .unwrap_or_else(|| panic!("sample before TYPE: {line:?}"));
        let belongs = name == family
            || (ty == "histogram"
                && [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count"),
                ]
                .contains(&name.to_owned()));
        assert!(belongs, "{line:?} is not in family {family} ({ty})");
        if ty == "counter" {
            assert!(value >= 0.0, "negative counter {line:?}");
        }
        samples.push(PromSample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    // Histograms: cumulative buckets, +Inf == count.
    for (family, ty) in &typed {
        if ty != "histogram" {
            continue;
        }
        let mut by_series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let le = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .expect("le label")
                .1
                .clone();
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let key: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            by_series.entry(key).or_default().push((le, s.value));
        }
        for (key, buckets) in by_series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family} {key:?}: {buckets:?}"
            );
            let inf = buckets.last().unwrap();
            assert!(inf.0.is_infinite(), "{family}: last bucket is +Inf");
            let count = samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && s.labels == key)
                .expect("_count")
                .value;
            assert_eq!(inf.1, count, "{family} {key:?}: +Inf bucket == _count");
            assert!(samples
                .iter()
                .any(|s| s.name == format!("{family}_sum") && s.labels == key));
        }
    }
    samples
}

/// The value of the sample `name` with exactly these labels.
pub fn sample(samples: &[PromSample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.value)
}

/// The sum of every sample named `name`.
pub fn sum(samples: &[PromSample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

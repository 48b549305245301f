//! The Prometheus text exposition format, version 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), written by hand.
//!
//! Why not a crate: every value here is read from the daemon at scrape time, so there is
//! nothing to register or update in between; `prometheus-client` writes OpenMetrics text
//! (with `# EOF`, served as application/openmetrics-text) and has no way to emit a
//! histogram whose cumulative buckets are already counted elsewhere. The format is small:
//! families grouped with one `# HELP` and one `# TYPE` line each, escaped label values,
//! histograms as `_bucket{le=...}` (cumulative, ending with `+Inf`), `_sum` and `_count`.

use std::fmt::Write;

/// The content type of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One histogram observation set: cumulative `(upper bound, count)` buckets in increasing
/// order (without `+Inf`, added from `count`), the sum and the count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Debug, Clone)]
enum Value {
    Int(u64),
    Float(f64),
    Histogram(HistogramValue),
}

#[derive(Debug)]
struct Sample {
    labels: Vec<(&'static str, String)>,
    value: Value,
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<Sample>,
}

/// Metric families collected for one scrape, in the order first added.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    fn family(&mut self, name: &'static str, help: &'static str, kind: Kind) -> &mut Family {
        // Names are our own constants; a bad one is a programming error caught by tests.
        debug_assert!(valid_name(name), "metric name {name:?}");
        let idx = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name,
                    help,
                    kind,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        let f = &mut self.families[idx];
        debug_assert_eq!(f.kind, kind, "{name} added with two types");
        f
    }

    fn push(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&'static str, &str)],
        value: Value,
    ) {
        debug_assert!(labels.iter().all(|(l, _)| valid_name(l) && *l != "le"));
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.family(name, help, kind)
            .samples
            .push(Sample { labels, value });
    }

    /// A counter sample (`name` should end in `_total`).
    pub fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: u64,
    ) {
        self.push(name, help, Kind::Counter, labels, Value::Int(v));
    }

    /// A gauge sample.
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: u64,
    ) {
        self.push(name, help, Kind::Gauge, labels, Value::Int(v));
    }

    /// A gauge sample with a fractional value.
    pub fn gauge_f64(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        self.push(name, help, Kind::Gauge, labels, Value::Float(v));
    }

    /// A histogram sample set.
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        h: HistogramValue,
    ) {
        self.push(name, help, Kind::Histogram, labels, Value::Histogram(h));
    }

    /// The text of every family that has samples.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        for f in self.families.iter().filter(|f| !f.samples.is_empty()) {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for s in &f.samples {
                match &s.value {
                    Value::Int(v) => line(&mut out, f.name, "", &s.labels, None, &v.to_string()),
                    Value::Float(v) => line(&mut out, f.name, "", &s.labels, None, &float(*v)),
                    Value::Histogram(h) => histogram_lines(&mut out, f.name, &s.labels, h),
                }
            }
        }
        out
    }
}

fn histogram_lines(
    out: &mut String,
    name: &str,
    labels: &[(&'static str, String)],
    h: &HistogramValue,
) {
    // Buckets must be cumulative and never exceed the count (a scraper rejects a
    // decreasing histogram): clamp whatever a daemon might report.
    let mut last = 0;
    for (le, count) in &h.buckets {
        last = (*count).clamp(last, h.count);
        line(
            out,
            name,
            "_bucket",
            labels,
            Some(&float(*le)),
            &last.to_string(),
        );
    }
    line(
        out,
        name,
        "_bucket",
        labels,
        Some("+Inf"),
        &h.count.to_string(),
    );
    line(out, name, "_sum", labels, None, &float(h.sum));
    line(out, name, "_count", labels, None, &h.count.to_string());
}

fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&'static str, String)],
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let all = labels
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(le.map(|le| ("le", le)));
        for (k, v) in all {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Go's ParseFloat spellings for the special values; Rust's shortest round-trip form
/// otherwise (never an exponent-less integer ambiguity: both parse the same).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_with_one_header_each() {
        let mut e = Exposition::new();
        e.counter("x_total", "X things.", &[("worker", "0")], 5);
        e.gauge("y", "Y now.", &[], 2);
        e.counter("x_total", "X things.", &[("worker", "1")], 7);
        e.gauge("empty_never_added", "Nothing.", &[], 0);
        e.families.last_mut().unwrap().samples.clear();
        assert_eq!(
            e.render(),
            "# HELP x_total X things.\n# TYPE x_total counter\n\
             x_total{worker=\"0\"} 5\nx_total{worker=\"1\"} 7\n\
             # HELP y Y now.\n# TYPE y gauge\ny 2\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::new();
        e.gauge("g", "a \\ b\nc", &[("room", "a\"b\\c\nd")], 1);
        assert_eq!(
            e.render(),
            "# HELP g a \\\\ b\\nc\n# TYPE g gauge\ng{room=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn histograms_have_cumulative_buckets_inf_sum_and_count() {
        let mut e = Exposition::new();
        e.histogram(
            "lat_seconds",
            "Latency.",
            &[("worker", "0")],
            HistogramValue {
                // A decreasing bucket (impossible, but not our input) is clamped.
                buckets: vec![(0.000005, 3), (0.00001, 2), (0.25, 9), (1.0, 12)],
                sum: 0.5,
                count: 10,
            },
        );
        assert_eq!(
            e.render(),
            "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{worker=\"0\",le=\"0.000005\"} 3\n\
             lat_seconds_bucket{worker=\"0\",le=\"0.00001\"} 3\n\
             lat_seconds_bucket{worker=\"0\",le=\"0.25\"} 9\n\
             lat_seconds_bucket{worker=\"0\",le=\"1\"} 10\n\
             lat_seconds_bucket{worker=\"0\",le=\"+Inf\"} 10\n\
             lat_seconds_sum{worker=\"0\"} 0.5\n\
             lat_seconds_count{worker=\"0\"} 10\n"
        );
    }

    #[test]
    fn special_floats() {
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(1.5), "1.5");
        assert!(valid_name("sfu_worker_up") && !valid_name("9x") && !valid_name("a-b"));
    }
}

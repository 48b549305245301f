//! The report: a Markdown table of every result file (with our figures as ratios to the
//! floor, to Janus and to mediasoup), an SVG plot of latency percentiles and delivered rate against
//! subscribers, and the completeness check the CI smoke run relies on.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

/// Fields every result must have (non-null), beyond the per-target exceptions below.
const REQUIRED: &[&str] = &[
    "scenario",
    "target",
    "workers",
    "publishers",
    "subscribers",
    "offered_in_pps",
    "delivered_in_pps",
    "offered_out_pps",
    "delivered_out_pps",
    "mbps_out",
    "loss",
    "duplicates",
    "latency_e2e_us",
    "target_cpu_pct",
    "target_rss_mb",
    "generator",
];
const PERCENTILES: &[&str] = &["p50", "p90", "p99", "p999", "max"];

/// Reads every `*.json` in `dir`, sorted by file name.
pub(crate) fn load(dir: &Path) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for p in names {
        let s = std::fs::read_to_string(&p).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))?;
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((stem, v));
    }
    Ok(out)
}

/// Problems that make a result incomplete (empty when complete).
pub(crate) fn check(r: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    if let Some(e) = r.get("error") {
        bad.push(format!("error: {e}"));
        return bad;
    }
    for f in REQUIRED {
        if r.get(*f).is_none_or(Value::is_null) {
            bad.push(format!("missing {f}"));
        }
    }
    for p in PERCENTILES {
        if r["latency_e2e_us"].get(*p).is_none_or(Value::is_null) {
            bad.push(format!("missing latency_e2e_us.{p}"));
        }
        // Janus and mediasoup have no in-daemon histogram; ours and the floor's must be there.
        let has_histogram = r["target"] == "sfu" || r["target"] == "floor";
        if has_histogram && r["latency_in_daemon_us"].get(*p).is_none_or(Value::is_null) {
            bad.push(format!("missing latency_in_daemon_us.{p}"));
        }
    }
    if r["latency_e2e_us"]["samples"].as_u64() == Some(0) {
        bad.push("no latency samples".into());
    }
    if r["delivered_out_pps"].as_f64() == Some(0.0) {
        bad.push("nothing delivered".into());
    }
    bad
}

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

fn int(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{}", x.round() as i64),
        None => "-".into(),
    }
}

/// Forwarded packets per second per CPU-second of the target process (user + system, which
/// includes the softirq work the kernel does inside its send calls: delivering through veth).
/// Not the core's busy time: other work on a shared machine lands there too.
fn pps_per_core(r: &Value) -> Option<f64> {
    let busy = r["target_cpu_pct"].as_f64()?;
    let pps = r["delivered_out_pps"].as_f64()?;
    (busy > 0.5).then(|| pps / (busy / 100.0))
}

/// The Markdown table, one row per result, with ratio columns on our rows.
pub(crate) fn table(results: &[(String, Value)]) -> String {
    let mut by: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for (_, r) in results {
        by.insert(
            (
                r["scenario"].as_str().unwrap_or("?").to_owned(),
                r["target"].as_str().unwrap_or("?").to_owned(),
            ),
            r,
        );
    }
    let mut s = String::from(
        "| scenario | target | pubs | subs | in pps offered / delivered | out pps offered / delivered | Mbit/s out | loss | dup | e2e p50 / p90 / p99 / p99.9 / max (us) | in-daemon p50 / p90 / p99 / p99.9 / max (us) | target CPU % (core softirq %, busy %) | RSS MB | out pps per target CPU-second | vs floor | vs Janus | vs mediasoup | gen CPU % (kept rate) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let pct = |r: &Value, k: &str| {
        let l = &r[k];
        if l.is_null() {
            return "-".to_owned();
        }
        PERCENTILES
            .iter()
            .map(|p| int(&l[*p]))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for ((scenario, target), r) in &by {
        if r.get("error").is_some() {
            s += &format!("| {scenario} | {target} | error: {} |\n", r["error"]);
            continue;
        }
        let capacity = scenario.starts_with("capacity");
        let ratio = |other: &str| -> String {
            if target != "sfu" {
                return String::new();
            }
            let Some(o) = by.get(&(scenario.clone(), other.to_owned())) else {
                return "-".into();
            };
            if capacity {
                let q = |k: &str| {
                    let a = r[k].as_f64().unwrap_or(0.0);
                    let b = o[k].as_f64().unwrap_or(0.0);
                    if b > 0.0 {
                        format!("{:.2}x", a / b)
                    } else {
                        "-".into()
                    }
                };
                return format!(
                    "{} subs ({} strict)",
                    q("capacity_subscribers_relaxed"),
                    q("capacity_subscribers")
                );
            }
            match (pps_per_core(r), pps_per_core(o)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                _ => "-".into(),
            }
        };
        let subs = if capacity {
            format!(
                "**{}** ({} strict)",
                int(&r["capacity_subscribers_relaxed"]),
                int(&r["capacity_subscribers"])
            )
        } else {
            int(&r["subscribers"])
        };
        let core = match r["target_core_busy_pct"].as_f64() {
            Some(c) => format!(
                "{} ({}, {c:.0})",
                f(&r["target_cpu_pct"], 0),
                f(&r["target_core_softirq_pct"], 0)
            ),
            None => f(&r["target_cpu_pct"], 0),
        };
        s += &format!(
            "| {scenario} | {target} | {} | {subs} | {} / {} | {} / {} | {} | {:.3}% | {} | {} | {} | {core} | {} | {} | {} | {} | {} | {} ({}) |\n",
            int(&r["publishers"]),
            int(&r["offered_in_pps"]),
            int(&r["delivered_in_pps"]),
            int(&r["offered_out_pps"]),
            int(&r["delivered_out_pps"]),
            f(&r["mbps_out"], 1),
            r["loss"].as_f64().unwrap_or(f64::NAN) * 100.0,
            int(&r["duplicates"]),
            pct(r, "latency_e2e_us"),
            pct(r, "latency_in_daemon_us"),
            f(&r["target_rss_mb"], 1),
            pps_per_core(r).map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into()),
            ratio("floor"),
            ratio("janus"),
            ratio("mediasoup"),
            f(&r["generator"]["cpu_pct"], 0),
            f(&r["generator"]["kept_rate"], 3),
        );
    }
    s
}

/// CPU time of the target per forwarded packet, in microseconds.
fn cpu_us_per_packet(r: &Value) -> Option<f64> {
    pps_per_core(r).map(|x| 1e6 / x)
}

/// Simulcast against its baseline, one row per size measured with both: CPU per
/// forwarded packet of `simulcast-1-N` (simulcast consumers of one three-layer producer)
/// and of `layers-1-N` (simple consumers of three single-layer producers: the same
/// packets in and out), their ratio, in-daemon latency and loss; then the capacity of
/// the simulcast publisher beside that of the single-layer one. Empty without them.
pub(crate) fn simulcast_table(results: &[(String, Value)]) -> String {
    let find = |scenario: &str| {
        results
            .iter()
            .map(|(_, r)| r)
            .find(|r| r["scenario"] == scenario && r["target"] == "sfu" && r.get("error").is_none())
    };
    let mut sizes: Vec<u64> = results
        .iter()
        .filter_map(|(_, r)| {
            let s = r["scenario"].as_str()?.strip_prefix("simulcast-1-")?;
            s.parse().ok()
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let lat = |r: &Value| {
        let l = &r["latency_in_daemon_us"];
        format!("{} / {}", int(&l["p50"]), int(&l["p99"]))
    };
    let mut s = String::new();
    for n in sizes {
        let (Some(sim), Some(base)) = (
            find(&format!("simulcast-1-{n}")),
            find(&format!("layers-1-{n}")),
        ) else {
            continue;
        };
        if s.is_empty() {
            s += "| subscribers | out pps (simulcast / baseline) | target CPU % | CPU us per forwarded packet | simulcast / baseline | in-daemon p50 / p99 (us), simulcast | in-daemon p50 / p99 (us), baseline | loss |\n\
                  |---:|---:|---:|---:|---:|---:|---:|---:|\n";
        }
        let us = |r: &Value| cpu_us_per_packet(r).map_or("-".into(), |x| format!("{x:.3}"));
        let ratio = match (cpu_us_per_packet(sim), cpu_us_per_packet(base)) {
            (Some(a), Some(b)) if b > 0.0 => format!("**{:.2}x**", a / b),
            _ => "-".into(),
        };
        s += &format!(
            "| {n} | {} / {} | {} / {} | {} / {} | {ratio} | {} | {} | {:.3}% / {:.3}% |\n",
            int(&sim["delivered_out_pps"]),
            int(&base["delivered_out_pps"]),
            f(&sim["target_cpu_pct"], 0),
            f(&base["target_cpu_pct"], 0),
            us(sim),
            us(base),
            lat(sim),
            lat(base),
            sim["loss"].as_f64().unwrap_or(f64::NAN) * 100.0,
            base["loss"].as_f64().unwrap_or(f64::NAN) * 100.0,
        );
    }
    if let Some(c) = find("capacity-simulcast") {
        if !s.is_empty() {
            s += "\n";
        }
        s += "| capacity (one publisher) | subscribers (5 ms criterion) | out pps at capacity | target CPU % | CPU us per forwarded packet |\n|---|---:|---:|---:|---:|\n";
        for (name, r) in [
            ("simulcast, 3 layers", Some(c)),
            (
                "baseline: 3 single-layer producers",
                find("capacity-layers"),
            ),
            ("single layer, 1 Mbit/s", find("capacity")),
        ] {
            let Some(r) = r else { continue };
            s += &format!(
                "| {name} | **{}** ({}) | {} | {} | {} |\n",
                int(&r["capacity_subscribers_relaxed"]),
                int(&r["capacity_subscribers"]),
                int(&r["delivered_out_pps"]),
                f(&r["target_cpu_pct"], 0),
                cpu_us_per_packet(r).map_or("-".into(), |x| format!("{x:.3}")),
            );
        }
    }
    s
}

/// One plotted point: (subscribers, e2e p50, e2e p99, delivered out pps, target CPU %).
type Point = (f64, f64, f64, f64, f64);

/// Points per target, from the fan-out scenarios and every capacity trial.
fn series(results: &[(String, Value)]) -> BTreeMap<String, Vec<Point>> {
    let mut out: BTreeMap<String, BTreeMap<u64, Point>> = BTreeMap::new();
    let mut add = |target: &str, r: &Value| {
        let (Some(n), Some(p50), Some(p99), Some(pps)) = (
            r["subscribers"].as_u64(),
            r["latency_e2e_us"]["p50"].as_f64(),
            r["latency_e2e_us"]["p99"].as_f64(),
            r["delivered_out_pps"].as_f64(),
        ) else {
            return;
        };
        let cpu = r["target_cpu_pct"].as_f64().unwrap_or(0.0);
        if n == 0 || p50 <= 0.0 {
            return;
        }
        out.entry(target.to_owned())
            .or_default()
            .insert(n, (n as f64, p50, p99.max(p50), pps.max(1.0), cpu));
    };
    for (_, r) in results {
        let target = r["target"].as_str().unwrap_or("?");
        let scenario = r["scenario"].as_str().unwrap_or("");
        if scenario.starts_with("fanout-") {
            add(target, r);
        }
        // The fan-out of one single-layer publisher only (not capacity-simulcast).
        if let Some(trials) = r["search"].as_array().filter(|_| scenario == "capacity") {
            for t in trials {
                add(target, t);
            }
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.into_values().collect()))
        .collect()
}

fn color(target: &str) -> RGBColor {
    match target {
        "sfu" => RGBColor(31, 119, 180),
        "floor" => RGBColor(44, 160, 44),
        "mediasoup" => RGBColor(148, 103, 189),
        _ => RGBColor(214, 39, 40),
    }
}

/// Writes the SVG: end-to-end latency p50/p99, delivered packets/s and the target's CPU
/// against subscribers of one publisher (fan-out scenarios and capacity trials).
pub(crate) fn plot(results: &[(String, Value)], path: &Path) -> Result<(), String> {
    let data = series(results);
    let pts = data.values().flatten();
    let max_n = pts.clone().map(|p| p.0).fold(10.0, f64::max) * 1.5;
    let max_lat = pts.clone().map(|p| p.2).fold(100.0, f64::max) * 2.0;
    let max_pps = pts.map(|p| p.3).fold(1000.0, f64::max) * 2.0;
    let root = SVGBackend::new(path, (1800, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, rest) = root.split_horizontally(620);
    let (right, third) = rest.split_horizontally(590);
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();

    let mut c = ChartBuilder::on(&left)
        .caption("End-to-end latency (us): p50 o, p99 ^", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..max_n).log_scale(), (10f64..max_lat).log_scale())
        .map_err(e)?;
    c.configure_mesh()
        .x_desc("subscribers of one 1 Mbit/s publisher")
        .y_desc("microseconds")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(e)?;
    for (target, p) in &data {
        let col = color(target);
        c.draw_series(LineSeries::new(
            p.iter().map(|x| (x.0, x.1)),
            col.stroke_width(2),
        ))
        .map_err(e)?
        .label(format!("{target} p50"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        c.draw_series(p.iter().map(|x| Circle::new((x.0, x.1), 4, col.filled())))
            .map_err(e)?;
        c.draw_series(LineSeries::new(
            p.iter().map(|x| (x.0, x.2)),
            col.stroke_width(1),
        ))
        .map_err(e)?
        .label(format!("{target} p99"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(1)));
        c.draw_series(
            p.iter()
                .map(|x| TriangleMarker::new((x.0, x.2), 5, col.filled())),
        )
        .map_err(e)?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;

    let mut c = ChartBuilder::on(&right)
        .caption("Delivered packets/s out", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..max_n).log_scale(), (100f64..max_pps).log_scale())
        .map_err(e)?;
    c.configure_mesh()
        .x_desc("subscribers of one 1 Mbit/s publisher")
        .y_desc("SRTP packets/s")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(e)?;
    for (target, p) in &data {
        let col = color(target);
        c.draw_series(LineSeries::new(
            p.iter().map(|x| (x.0, x.3)),
            col.stroke_width(2),
        ))
        .map_err(e)?
        .label(target.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        c.draw_series(p.iter().map(|x| Circle::new((x.0, x.3), 4, col.filled())))
            .map_err(e)?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    let mut c = ChartBuilder::on(&third)
        .caption("Target CPU % (its one core)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((1f64..max_n).log_scale(), 0f64..105f64)
        .map_err(e)?;
    c.configure_mesh()
        .x_desc("subscribers of one 1 Mbit/s publisher")
        .y_desc("% of one core (user + system)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(e)?;
    for (target, p) in &data {
        let col = color(target);
        c.draw_series(LineSeries::new(
            p.iter().map(|x| (x.0, x.4)),
            col.stroke_width(2),
        ))
        .map_err(e)?
        .label(target.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        c.draw_series(p.iter().map(|x| Circle::new((x.0, x.4), 4, col.filled())))
            .map_err(e)?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Replaces the text between `<!-- bench:table:start -->` and `<!-- bench:table:end -->`.
pub(crate) fn splice(doc: &Path, content: &str) -> Result<(), String> {
    const START: &str = "<!-- bench:table:start -->";
    const END: &str = "<!-- bench:table:end -->";
    let s = std::fs::read_to_string(doc).map_err(|e| format!("{}: {e}", doc.display()))?;
    let (Some(a), Some(b)) = (s.find(START), s.find(END)) else {
        return Err(format!("{} has no {START} / {END} markers", doc.display()));
    };
    let out = format!("{}{START}\n{content}\n{}", &s[..a], &s[b..]);
    std::fs::write(doc, out).map_err(|e| e.to_string())
}

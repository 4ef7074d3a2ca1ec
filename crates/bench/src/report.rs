//! Percentiles, the figures table, the JSON file and the hand-written SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

/// The nearest-rank percentile `p` (0..=1) of `values`, which need not be sorted; NaN if empty.
pub(crate) fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )] // a rank within a Vec's length
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One reported figure, beside its same-run baseline and its acceptance bar (issue 7).
#[derive(Clone, Debug)]
pub(crate) struct Figure {
    pub(crate) scenario: &'static str,
    pub(crate) name: String,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    /// The baseline's name and value, same unit, measured in the same run.
    pub(crate) baseline: Option<(String, f64)>,
    /// The acceptance bar in words, and whether the figure meets it.
    pub(crate) bar: Option<(String, bool)>,
}

impl Figure {
    pub(crate) fn new(scenario: &'static str, name: &str, value: f64, unit: &'static str) -> Self {
        Self {
            scenario,
            name: name.to_owned(),
            value,
            unit,
            baseline: None,
            bar: None,
        }
    }

    pub(crate) fn baseline(mut self, name: &str, value: f64) -> Self {
        self.baseline = Some((name.to_owned(), value));
        self
    }

    pub(crate) fn bar(mut self, text: &str, pass: bool) -> Self {
        self.bar = Some((text.to_owned(), pass));
        self
    }

    fn ratio(&self) -> Option<f64> {
        self.baseline.as_ref().map(|(_, b)| self.value / b)
    }

    fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "name": self.name,
            "value": finite(self.value),
            "unit": self.unit,
            "baseline_name": self.baseline.as_ref().map(|(n, _)| n),
            "baseline": self.baseline.as_ref().map(|(_, b)| finite(*b)),
            "ratio": self.ratio().map(finite),
            "bar": self.bar.as_ref().map(|(t, _)| t),
            "pass": self.bar.as_ref().map(|(_, p)| p),
        })
    }
}

/// NaN and infinities are not JSON numbers: they become null.
fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// A number in a unit, compactly.
pub(crate) fn show(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    let digits = if value.abs() >= 100.0 || value.fract() == 0.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else {
        2
    };
    if unit.is_empty() {
        format!("{value:.digits$}")
    } else {
        format!("{value:.digits$} {unit}")
    }
}

/// The figures as a terminal table.
pub(crate) fn table(figures: &[Figure]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<4} {:<34} {:>13} {:>13} {:>8}  {:<8} bar",
        "", "figure", "value", "baseline", "ratio", "verdict"
    );
    for f in figures {
        let baseline = f
            .baseline
            .as_ref()
            .map_or_else(|| "-".to_owned(), |(_, b)| show(*b, f.unit));
        let ratio = f
            .ratio()
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        let (bar, verdict) = f.bar.as_ref().map_or(("", ""), |(text, pass)| {
            (text.as_str(), if *pass { "pass" } else { "FAIL" })
        });
        let _ = writeln!(
            out,
            "{:<4} {:<34} {:>13} {:>13} {:>8}  {:<8} {bar}",
            f.scenario,
            f.name,
            show(f.value, f.unit),
            baseline,
            ratio,
            verdict
        );
    }
    out
}

/// Writes the JSON report: the figures, and each scenario's raw details.
pub(crate) fn write_json(path: &Path, figures: &[Figure], details: &[(&str, Value)]) -> Result<()> {
    let details: serde_json::Map<String, Value> = details
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    let report = json!({
        "figures": figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
        "scenarios": details,
    });
    std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    Ok(())
}

/// One row of the latency chart.
pub(crate) struct LatencyRow {
    pub(crate) label: String,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

/// A horizontal bar chart of p50 and p99 per scenario on a log scale (the scenarios span three
/// orders of magnitude), with the 10 ms bar of S1 marked. Plain SVG, no dependency.
pub(crate) fn latency_svg(rows: &[LatencyRow], caption: &str) -> String {
    const LEFT: f64 = 190.0;
    const WIDTH: f64 = 560.0;
    const ROW: f64 = 44.0;
    const TOP: f64 = 50.0;
    let max = rows
        .iter()
        .flat_map(|r| [r.p50_ms, r.p99_ms])
        .filter(|v| v.is_finite())
        .fold(10.0_f64, f64::max);
    let (lo, hi) = (-1.0_f64, max.log10().ceil().max(2.0)); // 0.1 ms .. a power of ten
    let x = |ms: f64| LEFT + WIDTH * ((ms.max(0.1).log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
    #[allow(clippy::cast_precision_loss)] // a handful of rows
    let height = TOP + ROW * rows.len() as f64 + 60.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="sans-serif" font-size="12">"#,
        w = LEFT + WIDTH + 90.0
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">Latency to the last target (ms, log scale): p50 and p99</text><text x="10" y="38" fill="#555">{}</text>"##,
        escape(caption)
    );
    let bottom = height - 45.0;
    // Grid lines at powers of ten.
    #[allow(clippy::cast_possible_truncation)] // small exponents
    for exp in (lo as i32)..=(hi as i32) {
        let ms = 10f64.powi(exp);
        let gx = x(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            bottom + 15.0,
            show(ms, "")
        );
    }
    let bx = x(10.0);
    let _ = writeln!(
        svg,
        r##"<line x1="{bx:.1}" y1="{TOP}" x2="{bx:.1}" y2="{bottom}" stroke="#c00" stroke-dasharray="4 3"/><text x="{bx:.1}" y="{:.1}" text-anchor="middle" fill="#c00">S1 bar: 10 ms</text>"##,
        TOP - 4.0
    );
    for (i, row) in rows.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let y = TOP + ROW * i as f64 + 6.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 18.0,
            escape(&row.label)
        );
        for (j, (value, colour, name)) in [
            (row.p50_ms, "#8fb8de", "p50"),
            (row.p99_ms, "#1f5f99", "p99"),
        ]
        .into_iter()
        .enumerate()
        {
            #[allow(clippy::cast_precision_loss)]
            let by = y + 15.0 * j as f64;
            let end = x(value);
            let _ = writeln!(
                svg,
                r#"<rect x="{LEFT}" y="{by:.1}" width="{:.1}" height="13" fill="{colour}"/><text x="{:.1}" y="{:.1}" fill="{colour}">{name} {}</text>"#,
                (end - LEFT).max(1.0),
                end + 4.0,
                by + 11.0,
                show(value, "ms")
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<text x="10" y="{:.1}" fill="#555">From just before the load generator sends an alert to its request headers reaching the last target (SPEC §9).</text>"##,
        height - 12.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&values, 0.5) - 50.0).abs() < f64::EPSILON);
        assert!((percentile(&values, 0.99) - 99.0).abs() < f64::EPSILON);
        assert!((percentile(&[3.0], 0.99) - 3.0).abs() < f64::EPSILON);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_chart_is_one_svg_with_a_bar_pair_per_row() {
        let svg = latency_svg(
            &[LatencyRow {
                label: "S1 <0 ms>".to_owned(),
                p50_ms: 1.5,
                p99_ms: 4.0,
            }],
            "caption",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains("S1 &lt;0 ms&gt;"));
    }
}

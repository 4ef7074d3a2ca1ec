//! `cargo xtask bench`: the benchmarks, each figure beside a baseline measured in the same run.
//!
//! `fanout_overhead` times the engine publishing to 1, 10, 50 and 200 no-op targets, and, as its
//! baseline, a bare `join_all` over the same boxed `Publisher::publish` calls collected into a Vec
//! (SPEC §9). The table goes to the terminal and the figures to `target/bench/fanout_overhead.json`.

use std::fs;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::util::{cargo, run as run_cmd, target_dir};

const TARGET_COUNTS: [u32; 4] = [1, 10, 50, 200];
/// SPEC §9 and the acceptance list: at 50 targets, the engine stays within 3× `join_all`.
const RATIO_BAR_AT_50: f64 = 3.0;

pub(crate) fn run() -> Result<()> {
    run_cmd(cargo().args(["bench", "-p", "fanout", "--bench", "fanout_overhead"]))?;
    report_fanout_overhead()
}

fn mean_ns(group: &str, id: &str, targets: u32) -> Result<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(id)
        .join(targets.to_string())
        .join("new/estimates.json");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let estimates: Value = serde_json::from_str(&text)?;
    estimates["mean"]["point_estimate"]
        .as_f64()
        .context("estimates.json has no mean")
}

fn report_fanout_overhead() -> Result<()> {
    println!();
    println!(
        "fanout_overhead (mean per publish; baseline = join_all over the same boxed publish calls)"
    );
    println!(
        "{:>8} {:>14} {:>14} {:>8} {:>14}",
        "targets", "join_all", "engine", "ratio", "engine/target"
    );
    let mut rows = Vec::new();
    let mut ratio_at_50 = None;
    for targets in TARGET_COUNTS {
        let baseline = mean_ns("fanout_overhead", "join_all", targets)?;
        let engine = mean_ns("fanout_overhead", "engine", targets)?;
        let ratio = engine / baseline;
        let per_target = engine / f64::from(targets);
        if targets == 50 {
            ratio_at_50 = Some(ratio);
        }
        println!(
            "{targets:>8} {:>11.0} ns {:>11.0} ns {ratio:>7.2}x {per_target:>11.0} ns",
            baseline, engine
        );
        rows.push(json!({
            "targets": targets, "join_all_ns": baseline, "engine_ns": engine,
            "ratio": ratio, "engine_ns_per_target": per_target,
        }));
    }
    let verdict = ratio_at_50.map(|r| {
        if r <= RATIO_BAR_AT_50 {
            "within"
        } else {
            "OVER"
        }
    });
    println!(
        "at 50 targets: {:.2}x join_all ({} the {RATIO_BAR_AT_50}x bar)",
        ratio_at_50.unwrap_or(f64::NAN),
        verdict.unwrap_or("?")
    );
    let dir = target_dir().join("bench");
    fs::create_dir_all(&dir)?;
    let out = dir.join("fanout_overhead.json");
    fs::write(
        &out,
        serde_json::to_string_pretty(&json!({"fanout_overhead": rows}))?,
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

//! The soak's report: the table it prints and `report.json` in its directory.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::RSS_BOUND_MIB;
use super::check::{Observed, Verdict};
use super::load::{FloodReport, Ledger};
use super::mocks::{Behaviour, Mock};
use super::plan::Plan;

pub(super) fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 120 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

#[allow(clippy::too_many_arguments)] // One report of everything the run gathered.
pub(super) fn report(
    plan: &Plan,
    seed: u64,
    ledger: &Ledger,
    observed: &Observed,
    verdict: &Verdict,
    flood: Option<&FloodReport>,
    faults: &[Mock],
    elapsed: Duration,
) {
    println!();
    println!(
        "cargo xtask soak: seed {seed}, {} of load, {:.0} s in all",
        humanize(plan.load),
        elapsed.as_secs_f64()
    );
    let row = |name: &str, value: String| println!("  {name:<34} {value}");
    row(
        "kills (kill -9, final one included)",
        observed.kills.to_string(),
    );
    row(
        "alerts sent",
        ledger.alerts_sent.load(Ordering::Relaxed).to_string(),
    );
    row(
        "  of which re-sends",
        ledger.resends.load(Ordering::Relaxed).to_string(),
    );
    row(
        "alerts accepted (2xx, fresh)",
        observed.accepted.len().to_string(),
    );
    row(
        "alerts refused (non-2xx, fresh)",
        observed.refused.len().to_string(),
    );
    row("lost (must be 0)", verdict.lost.len().to_string());
    row(
        "lost at faulty targets (must be 0)",
        verdict.lost_at_faults.len().to_string(),
    );
    row(
        "duplicates at healthy",
        format!("{} (bound {})", verdict.duplicates, verdict.duplicate_bound),
    );
    row("deliveries to healthy", observed.healthy.len().to_string());
    row(
        "  of alerts whose answer was lost",
        verdict.unacknowledged_deliveries.to_string(),
    );
    row(
        "  of alerts refused with a 503",
        format!(
            "{} (in flight before the failed commit; first: {:?})",
            verdict.refused_delivered.len(),
            &verdict.refused_delivered[..verdict.refused_delivered.len().min(3)]
        ),
    );
    row(
        "dead letters",
        format!("{:?}", verdict.dead_letters_by_target),
    );
    row(
        "peak RSS (VmHWM)",
        format!(
            "{} MiB (bound {RSS_BOUND_MIB} MiB)",
            observed.peak_rss_kib / 1024
        ),
    );
    row(
        "drained (delivered or dead-lettered)",
        observed.drained.to_string(),
    );
    for mock in faults {
        let r = &mock.recorded;
        row(
            &format!("{} target", mock.behaviour.name()),
            format!(
                "{} requests on {} connections ({} refused)",
                r.requests.load(Ordering::Relaxed),
                r.connections.load(Ordering::Relaxed),
                r.refused_connections.load(Ordering::Relaxed)
            ),
        );
        if mock.behaviour == Behaviour::Big {
            row(
                "  most of one 100 MB body written",
                format!(
                    "{} KiB ({} bodies in full)",
                    r.big_max_written.load(Ordering::Relaxed) / 1024,
                    r.big_complete.load(Ordering::Relaxed)
                ),
            );
        }
    }
    if let Some(f) = flood {
        row(
            "h2c flood",
            format!(
                "{} idle connections held ({} failed to open), {} closed by the server{}",
                f.opened,
                f.failed,
                f.closed_by_server,
                f.first_close_after
                    .map_or(String::new(), |d| format!(", the first after {d:.1?}"))
            ),
        );
    }
    let mut answers: HashMap<&str, Vec<String>> = HashMap::new();
    for (phase, status, n) in ledger.answer_table() {
        let status = if status == 0 {
            "none".to_owned()
        } else {
            status.to_string()
        };
        answers
            .entry(phase.name())
            .or_default()
            .push(format!("{status}: {n}"));
    }
    let mut phases: Vec<_> = answers.into_iter().collect();
    phases.sort();
    for (phase, counts) in phases {
        row(&format!("answers ({phase})"), counts.join(", "));
    }
}

pub(super) fn write_json(
    dir: &Path,
    seed: u64,
    ledger: &Ledger,
    observed: &Observed,
    verdict: &Verdict,
) -> Result<()> {
    let json = json!({
        "seed": seed,
        "kills": observed.kills,
        "alerts_sent": ledger.alerts_sent.load(Ordering::Relaxed),
        "alerts_accepted": observed.accepted.len(),
        "lost": verdict.lost.len(),
        "lost_at_faults": verdict.lost_at_faults.len(),
        "duplicates": verdict.duplicates,
        "duplicate_bound": verdict.duplicate_bound,
        "refused_but_delivered": verdict.refused_delivered.len(),
        "peak_rss_kib": observed.peak_rss_kib,
        "drained": observed.drained,
        "dead_letters": verdict.dead_letters_by_target,
        "violations": verdict.violations,
    });
    fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    Ok(())
}

//! The test step under `cargo llvm-cov`, and the per-crate line coverage floors.
//!
//! `cargo xtask test` builds the workspace once, instrumented, in `llvm-cov-target/` under the
//! target directory, and runs every unit, integration and end-to-end test there. The end-to-end
//! suite runs that same instrumented `alertpub` binary (through `ALERTPUB_BIN`), so what the
//! server does in those tests counts too; a server stopped with `kill -9` writes no profile, so
//! only its graceful runs count. Doctests need nightly under llvm-cov, so they run in a plain
//! `cargo test --doc`. The step then reports line coverage per crate from that one run and fails
//! when a crate is below its floor in `xtask/coverage-floor.toml`.
//!
//! Test code is not counted: integration tests (`tests/` folders), the e2e harness, the
//! test-support, timeline and bench crates, and xtask itself. `#[cfg(test)]` modules inside a
//! source file do count, as llvm-cov sees them as part of that file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{cargo, root, run as run_cmd, succeeds, target_dir};

/// Where the floors live, relative to the workspace root.
const FLOOR_FILE: &str = "xtask/coverage-floor.toml";

/// Source files that are not product code, relative to the workspace root: test code, test
/// harnesses and tooling.
const IGNORED: &str = r"((crates/[^/]+/)?(tests|benches|examples)/|crates/(test-support|timeline|bench)/|xtask/|fuzz/)";

/// The `--ignore-filename-regex` for a workspace at `root`: llvm-cov matches absolute paths, so
/// the patterns are anchored at the root (a root that itself has a `tests/` folder in its path
/// must not hide everything).
fn ignore_filename_regex(root: &Path) -> String {
    let mut escaped = String::new();
    for c in root.display().to_string().chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("^{escaped}/{IGNORED}")
}

/// How many of the least-covered files the report lists.
const LEAST_COVERED: usize = 10;

#[derive(clap::Args)]
pub(crate) struct CoverageArgs {
    /// Raise each crate's floor in xtask/coverage-floor.toml to its measured coverage, rounded
    /// down (a floor is never lowered).
    #[arg(long)]
    raise_floor: bool,
}

/// `cargo xtask test`: the instrumented tests, the doctests, then the floors.
pub(crate) fn test() -> Result<()> {
    ensure_llvm_cov()?;
    // The profiles of earlier runs would count again, and so would the test executables of
    // earlier builds, which llvm-cov finds in the target directory with their stale mapping:
    // the workspace's own artifacts go (its dependencies stay built).
    run_cmd(cargo().args(["llvm-cov", "clean", "--workspace"]))?;
    let summary = target_dir().join("llvm-cov").join("summary.json");
    let _ = fs::remove_file(&summary);
    fs::create_dir_all(target_dir().join("llvm-cov"))?;
    // `--no-clean` keeps the dependencies' instrumented build between runs, so a warm run rebuilds only what
    // changed (the profiles are cleared above instead). The report is written by the same
    // command, as the per-file summary the floors are judged on.
    let tests = run_cmd(
        cargo()
            .args([
                "llvm-cov",
                "test",
                "--workspace",
                "--all-features",
                "--no-clean",
                // A server that a test kills after its SIGTERM grace can be cut off while it
                // writes its profile, and llvm-profdata then refuses that one file; by default
                // (`any`) the whole report would go, with every test passed. `all` fails only
                // when no profile merges, and the skipped file is named in a warning. Failing
                // tests still fail the step.
                "--failure-mode",
                "all",
            ])
            .args(report_args())
            .arg("--output-path")
            .arg(&summary)
            .env("ALERTPUB_BIN", instrumented_binary()),
    );
    let doctests = run_cmd(cargo().args(["test", "--doc", "--workspace", "--all-features"]));
    // Coverage of a run whose tests failed is not worth judging.
    tests?;
    doctests?;
    let json = fs::read(&summary)
        .with_context(|| format!("cargo llvm-cov wrote no report at {}", summary.display()))?;
    check(&json, false)
}

/// `cargo xtask coverage`: the report and the floors, from the last `cargo xtask test`.
pub(crate) fn run(args: &CoverageArgs) -> Result<()> {
    ensure_llvm_cov()?;
    let output = cargo()
        .args(["llvm-cov", "report"])
        .args(report_args())
        .output()
        .context("could not run cargo llvm-cov report")?;
    if !output.status.success() {
        bail!(
            "cargo llvm-cov report failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    check(&output.stdout, args.raise_floor)
}

/// The report every run judges: the per-file JSON summary, without test code and tooling.
fn report_args() -> Vec<String> {
    vec![
        "--json".to_owned(),
        "--summary-only".to_owned(),
        "--ignore-filename-regex".to_owned(),
        ignore_filename_regex(&root()),
    ]
}

/// The `alertpub` binary that `cargo llvm-cov test` builds, in its own target directory.
fn instrumented_binary() -> PathBuf {
    let dir = std::env::var_os("CARGO_LLVM_COV_TARGET_DIR")
        .map_or_else(|| target_dir().join("llvm-cov-target"), PathBuf::from);
    dir.join("debug").join("alertpub")
}

fn ensure_llvm_cov() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .current_dir(root())
        .output()
        .context("could not run rustup, which installs the llvm-tools-preview component")?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.starts_with("llvm-tools"))
    {
        println!("coverage: installing the llvm-tools-preview component");
        run_cmd(
            Command::new("rustup")
                .args(["component", "add", "llvm-tools-preview"])
                .current_dir(root()),
        )?;
    }
    if !succeeds(cargo().args(["llvm-cov", "--version"])) {
        println!("coverage: cargo-llvm-cov is missing; installing it (about 2 minutes)");
        run_cmd(Command::new("cargo").args(["install", "cargo-llvm-cov", "--locked"]))?;
    }
    Ok(())
}

/// Reports a run's coverage (an `llvm-cov export -summary-only` document) and checks it
/// against the floors, or raises them.
fn check(json: &[u8], raise_floor: bool) -> Result<()> {
    let export: Value =
        serde_json::from_slice(json).context("the coverage report is not llvm-cov's JSON")?;
    let files = files(&export, &root())?;
    let crates = per_crate(&files);
    let floor_path = root().join(FLOOR_FILE);
    let floor_text = fs::read_to_string(&floor_path)
        .with_context(|| format!("could not read {}", floor_path.display()))?;
    let floors = parse_floors(&floor_text)?;
    print!("{}", table(&crates, &floors));
    print!("{}", least_covered(&files, LEAST_COVERED));
    if raise_floor {
        let raised = raise(&floors, &crates);
        fs::write(&floor_path, render_floors(&floor_text, &raised))
            .with_context(|| format!("could not write {}", floor_path.display()))?;
        println!("coverage: floors written to {FLOOR_FILE}");
        return Ok(());
    }
    let failures = judge(&crates, &floors);
    if failures.is_empty() {
        Ok(())
    } else {
        bail!(
            "line coverage below its floor:\n  {}",
            failures.join("\n  ")
        )
    }
}

/// One source file's line coverage.
#[derive(Debug, Clone, PartialEq)]
struct FileCoverage {
    /// The path relative to the workspace root.
    path: String,
    /// The crate (its folder under `crates/`).
    krate: String,
    lines: u64,
    covered: u64,
}

/// Lines covered and coverable in one crate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Lines {
    lines: u64,
    covered: u64,
}

impl Lines {
    fn percent(self) -> f64 {
        if self.lines == 0 {
            100.0
        } else {
            self.covered as f64 * 100.0 / self.lines as f64
        }
    }
}

/// The files of an `llvm-cov export -summary-only` document that belong to a crate.
fn files(export: &Value, root: &Path) -> Result<Vec<FileCoverage>> {
    let root = format!("{}/", root.display());
    let files = export["data"][0]["files"]
        .as_array()
        .context("the coverage export has no data[0].files")?;
    let mut out = Vec::new();
    for file in files {
        let name = file["filename"]
            .as_str()
            .context("a coverage file has no filename")?;
        let path = name.strip_prefix(&root).unwrap_or(name);
        let Some(krate) = path
            .strip_prefix("crates/")
            .and_then(|rest| rest.split_once('/'))
            .map(|(krate, _)| krate)
        else {
            continue;
        };
        let lines = &file["summary"]["lines"];
        out.push(FileCoverage {
            path: path.to_owned(),
            krate: krate.to_owned(),
            lines: lines["count"]
                .as_u64()
                .context("a file has no line count")?,
            covered: lines["covered"]
                .as_u64()
                .context("a file has no covered count")?,
        });
    }
    Ok(out)
}

fn per_crate(files: &[FileCoverage]) -> BTreeMap<String, Lines> {
    let mut crates: BTreeMap<String, Lines> = BTreeMap::new();
    for file in files {
        let entry = crates.entry(file.krate.clone()).or_default();
        entry.lines += file.lines;
        entry.covered += file.covered;
    }
    crates
}

/// The floors file: `crate = percent` lines under `[lines]`, with `#` comments.
fn parse_floors(text: &str) -> Result<BTreeMap<String, u32>> {
    let mut floors = BTreeMap::new();
    let mut in_lines = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            in_lines = line == "[lines]";
            if !in_lines {
                bail!("{FLOOR_FILE}:{}: unknown section {line}", n + 1);
            }
            continue;
        }
        if !in_lines {
            bail!(
                "{FLOOR_FILE}:{}: a floor outside the [lines] section",
                n + 1
            );
        }
        let (name, value) = line
            .split_once('=')
            .with_context(|| format!("{FLOOR_FILE}:{}: expected `crate = percent`", n + 1))?;
        let name = name.trim().trim_matches('"');
        let value: u32 = value.trim().parse().with_context(|| {
            format!(
                "{FLOOR_FILE}:{}: the floor of {name} is not a whole percent",
                n + 1
            )
        })?;
        if value > 100 {
            bail!("{FLOOR_FILE}:{}: the floor of {name} is over 100", n + 1);
        }
        if floors.insert(name.to_owned(), value).is_some() {
            bail!("{FLOOR_FILE}:{}: {name} has two floors", n + 1);
        }
    }
    Ok(floors)
}

/// Every crate below its floor, without a floor, or with a floor but no coverage.
fn judge(crates: &BTreeMap<String, Lines>, floors: &BTreeMap<String, u32>) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, lines) in crates {
        let percent = lines.percent();
        match floors.get(name) {
            Some(&floor) if percent < f64::from(floor) => {
                failures.push(format!("{name}: {percent:.2}% < floor {floor}%"));
            }
            Some(_) => {}
            None => failures.push(format!(
                "{name}: no floor; add `{name} = {}` to {FLOOR_FILE}",
                percent.floor()
            )),
        }
    }
    for name in floors.keys() {
        if !crates.contains_key(name) {
            failures.push(format!(
                "{name}: has a floor but no coverage was measured (renamed or removed?)"
            ));
        }
    }
    failures
}

/// The floors raised to each crate's measured coverage, rounded down; never lowered.
fn raise(
    floors: &BTreeMap<String, u32>,
    crates: &BTreeMap<String, Lines>,
) -> BTreeMap<String, u32> {
    let mut raised = floors.clone();
    for (name, lines) in crates {
        // Rounded down, so the same run passes its own floor.
        let measured = lines.percent().floor() as u32;
        let floor = raised.entry(name.clone()).or_insert(measured);
        *floor = (*floor).max(measured);
    }
    raised
}

/// The floors file with new values: its leading comments kept, one line per crate.
fn render_floors(old: &str, floors: &BTreeMap<String, u32>) -> String {
    let mut text: String = old
        .lines()
        .take_while(|line| line.trim_start().starts_with('#') || line.trim().is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    text.push_str("[lines]\n");
    for (name, floor) in floors {
        let _ = writeln!(text, "{name} = {floor}");
    }
    text
}

fn table(crates: &BTreeMap<String, Lines>, floors: &BTreeMap<String, u32>) -> String {
    let mut out = String::from("coverage: line coverage per crate\n");
    let _ = writeln!(
        out,
        "  {:<26} {:>7} {:>7} {:>8} {:>6}",
        "crate", "lines", "covered", "percent", "floor"
    );
    let mut total = Lines::default();
    for (name, lines) in crates {
        total.lines += lines.lines;
        total.covered += lines.covered;
        let percent = lines.percent();
        let (floor, verdict) = match floors.get(name) {
            Some(&floor) if percent < f64::from(floor) => (format!("{floor}%"), "  BELOW"),
            Some(&floor) => (format!("{floor}%"), ""),
            None => ("-".to_owned(), "  NO FLOOR"),
        };
        let _ = writeln!(
            out,
            "  {name:<26} {:>7} {:>7} {percent:>7.2}% {floor:>6}{verdict}",
            lines.lines, lines.covered
        );
    }
    let _ = writeln!(
        out,
        "  {:<26} {:>7} {:>7} {:>7.2}%",
        "total",
        total.lines,
        total.covered,
        total.percent()
    );
    out
}

fn least_covered(files: &[FileCoverage], count: usize) -> String {
    let mut sorted: Vec<&FileCoverage> = files.iter().filter(|f| f.lines > 0).collect();
    sorted.sort_by(|a, b| {
        let pa = Lines {
            lines: a.lines,
            covered: a.covered,
        }
        .percent();
        let pb = Lines {
            lines: b.lines,
            covered: b.covered,
        }
        .percent();
        pa.total_cmp(&pb)
            .then((b.lines - b.covered).cmp(&(a.lines - a.covered)))
    });
    let mut out = format!("coverage: the {count} least-covered files\n");
    for file in sorted.into_iter().take(count) {
        let lines = Lines {
            lines: file.lines,
            covered: file.covered,
        };
        let _ = writeln!(
            out,
            "  {:>6.2}% {:>5} of {:>5} lines missed  {}",
            lines.percent(),
            file.lines - file.covered,
            file.lines,
            file.path
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(files: &[(&str, u64, u64)]) -> Value {
        let files: Vec<Value> = files
            .iter()
            .map(|(name, count, covered)| {
                serde_json::json!({
                    "filename": name,
                    "summary": {"lines": {"count": count, "covered": covered, "percent": 0.0}}
                })
            })
            .collect();
        serde_json::json!({"data": [{"files": files}], "type": "llvm.coverage.json.export"})
    }

    fn measured() -> BTreeMap<String, Lines> {
        let export = export(&[
            ("/ci/tests/w.1/crates/queue/src/lib.rs", 100, 90),
            ("/ci/tests/w.1/crates/queue/src/store.rs", 100, 70),
            ("/ci/tests/w.1/crates/health/src/lib.rs", 10, 10),
            // Outside crates/: not counted.
            ("/ci/tests/w.1/src/main.rs", 10, 0),
        ]);
        per_crate(&files(&export, Path::new("/ci/tests/w.1")).unwrap())
    }

    #[test]
    fn files_are_summed_per_crate() {
        let crates = measured();
        assert_eq!(
            crates.get("queue"),
            Some(&Lines {
                lines: 200,
                covered: 160
            })
        );
        assert_eq!(crates.get("health").map(|l| l.percent()), Some(100.0));
        assert_eq!(crates.len(), 2);
    }

    #[test]
    fn a_crate_below_its_floor_fails() {
        let floors = parse_floors("# floors\n[lines]\nqueue = 81\nhealth = 100\n").unwrap();
        let failures = judge(&measured(), &floors);
        assert_eq!(failures, ["queue: 80.00% < floor 81%"]);
        let floors = parse_floors("[lines]\nqueue = 80\nhealth = 100\n").unwrap();
        assert!(judge(&measured(), &floors).is_empty());
    }

    #[test]
    fn a_crate_without_a_floor_and_a_floor_without_a_crate_fail() {
        let floors = parse_floors("[lines]\nqueue = 80\ngone = 50\n").unwrap();
        let failures = judge(&measured(), &floors);
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].starts_with("health: no floor; add `health = 100`"));
        assert!(failures[1].starts_with("gone: has a floor but no coverage"));
    }

    #[test]
    fn bad_floor_files_are_refused() {
        for bad in [
            "queue = 80\n",
            "[lines]\nqueue = 80.5\n",
            "[lines]\nqueue = 101\n",
            "[lines]\nqueue\n",
            "[lines]\nqueue = 1\nqueue = 2\n",
            "[branches]\nqueue = 1\n",
        ] {
            assert!(parse_floors(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn raising_rounds_down_and_never_lowers() {
        let floors = parse_floors("[lines]\nqueue = 85\n").unwrap();
        let crates = BTreeMap::from([
            (
                "queue".to_owned(),
                Lines {
                    lines: 3,
                    covered: 2,
                },
            ),
            (
                "health".to_owned(),
                Lines {
                    lines: 3,
                    covered: 2,
                },
            ),
        ]);
        let raised = raise(&floors, &crates);
        assert_eq!(raised["queue"], 85);
        assert_eq!(raised["health"], 66);
        let text = render_floors("# kept\n\n[lines]\nqueue = 85\n", &raised);
        assert_eq!(text, "# kept\n\n[lines]\nhealth = 66\nqueue = 85\n");
        assert_eq!(parse_floors(&text).unwrap(), raised);
    }

    #[test]
    fn the_least_covered_files_come_first() {
        let export = export(&[
            ("/ci/tests/w.1/crates/a/src/full.rs", 10, 10),
            ("/ci/tests/w.1/crates/a/src/half.rs", 10, 5),
            ("/ci/tests/w.1/crates/a/src/none.rs", 4, 0),
            ("/ci/tests/w.1/crates/a/src/empty.rs", 0, 0),
        ]);
        let text = least_covered(&files(&export, Path::new("/ci/tests/w.1")).unwrap(), 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].ends_with("crates/a/src/none.rs"), "{text}");
        assert!(lines[2].ends_with("crates/a/src/half.rs"), "{text}");
    }

    #[test]
    fn test_code_and_tooling_are_ignored() {
        let re = regex::Regex::new(&ignore_filename_regex(Path::new("/ci/tests/w.1"))).unwrap();
        for ignored in [
            "/ci/tests/w.1/crates/queue/tests/store.rs",
            "/ci/tests/w.1/tests/src/lib.rs",
            "/ci/tests/w.1/tests/e2e/main.rs",
            "/ci/tests/w.1/crates/test-support/src/lib.rs",
            "/ci/tests/w.1/crates/timeline/src/model.rs",
            "/ci/tests/w.1/crates/bench/src/main.rs",
            "/ci/tests/w.1/crates/fanout/benches/engine.rs",
            "/ci/tests/w.1/xtask/src/main.rs",
        ] {
            assert!(re.is_match(ignored), "{ignored} is counted");
        }
        for kept in [
            "/ci/tests/w.1/crates/queue/src/store.rs",
            "/ci/tests/w.1/crates/alertpub-server/src/ingest/tests_of_limits.rs",
            "/ci/tests/w.1/crates/benchmarks-are-not-bench/src/lib.rs",
        ] {
            assert!(!re.is_match(kept), "{kept} is ignored");
        }
    }
}

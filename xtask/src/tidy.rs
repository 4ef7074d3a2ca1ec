//! Repository checks that run as ordinary tests (`cargo test -p xtask`): the workspace's
//! structural invariants from docs/ARCHITECTURE.md.

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::path::Path;
    use std::process::Command;

    use serde_json::Value;

    use crate::util::root;

    fn metadata() -> Value {
        let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root())
            .output()
            .expect("cargo metadata runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
    }

    fn workspace_names(meta: &Value) -> BTreeSet<String> {
        meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The workspace crates that `package` depends on, for the given dependency kind (null = normal).
    fn workspace_deps(meta: &Value, package: &str, kind: Option<&str>) -> BTreeSet<String> {
        let members = workspace_names(meta);
        let pkg = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == package)
            .unwrap();
        pkg["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].as_str() == kind)
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .filter(|name| members.contains(name))
            .collect()
    }

    #[test]
    fn fanout_depends_on_alert_core_only() {
        let meta = metadata();
        assert_eq!(
            workspace_deps(&meta, "fanout", None),
            BTreeSet::from(["alert-core".to_owned()])
        );
    }

    #[test]
    fn alert_core_depends_on_no_workspace_crate() {
        let meta = metadata();
        assert!(workspace_deps(&meta, "alert-core", None).is_empty());
    }

    #[test]
    fn every_crate_folder_is_named_after_its_package_and_opts_into_workspace_lints() {
        for entry in fs::read_dir(root().join("crates")).unwrap() {
            let dir = entry.unwrap().path();
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                manifest.contains(&format!("name = \"{folder}\"")),
                "{folder}: package name differs"
            );
            assert!(
                manifest.contains("[lints]\nworkspace = true"),
                "{folder}: no `[lints] workspace = true`"
            );
        }
    }

    #[test]
    fn every_crate_root_opens_with_a_doc_comment() {
        let mut roots = Vec::new();
        for entry in fs::read_dir(root().join("crates")).unwrap() {
            let src = entry.unwrap().path().join("src");
            roots.extend(
                ["lib.rs", "main.rs"]
                    .iter()
                    .map(|f| src.join(f))
                    .filter(|p| p.exists()),
            );
        }
        roots.push(root().join("tests/src/lib.rs"));
        roots.push(root().join("xtask/src/main.rs"));
        for path in roots {
            let text = fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("//!"),
                "{} does not open with //!",
                path.display()
            );
        }
    }

    #[test]
    fn no_ignored_tests_and_no_stubs() {
        fn walk(dir: &Path, found: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    for (n, line) in fs::read_to_string(&path).unwrap().lines().enumerate() {
                        let line = line.trim_start();
                        if line.starts_with("//") {
                            continue;
                        }
                        // `cfg_attr(miri, ignore = "…")` is allowed for tests that do I/O.
                        let ignored = line.starts_with("#[ignore");
                        let stub = line.contains(concat!("todo", "!("))
                            || line.contains(concat!("unimplemented", "!("));
                        if ignored || stub {
                            found.push(format!("{}:{}: {line}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        for dir in ["crates", "tests", "xtask"] {
            walk(&root().join(dir), &mut found);
        }
        assert!(
            found.is_empty(),
            "ignored tests or stubs:\n{}",
            found.join("\n")
        );
    }

    /// A job's status is fixed when the job is made (docs/ARCHITECTURE.md): publishers and
    /// formatters publish the status they are given and never derive it from the alert's
    /// `endsAt` and a clock. Neither reads a clock at all: the attempt's instant comes in the
    /// request, from the caller's one clock.
    #[test]
    fn publishers_and_formatters_never_derive_the_status_from_the_clock() {
        // Built from pieces, so this test's own source does not match them.
        let deriving = [
            concat!(".status", "_at("),
            concat!(".is_firing", "_at("),
            concat!("::for", "_alert("),
            concat!("alert.status", "()"),
        ];
        let clock = concat!("Utc::", "now()");
        let mut found = Vec::new();
        for entry in fs::read_dir(root().join("crates")).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            if !(name == "formatters" || name.starts_with("publishers-")) {
                continue;
            }
            let mut files = Vec::new();
            rust_files(&dir.join("src"), &mut files);
            for path in files {
                for (n, line) in fs::read_to_string(&path).unwrap().lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    let derives = deriving.iter().any(|p| code.contains(p));
                    if derives || code.contains(clock) {
                        found.push(format!("{}:{}: {code}", path.display(), n + 1));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "publishers and formatters publish the status and the instant they are given; these \
             lines derive the status or read the clock:\n{}",
            found.join("\n")
        );
    }

    fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
}

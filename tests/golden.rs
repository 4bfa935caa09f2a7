//! Golden tests: the spec is the input, the file beside it the expected output.
//!
//! - `examples/NAME.hoyer` → `tests/examples/NAME.model`   (`hoyerc compile --emit model`)
//! - `tests/valid/NAME.hoyer` → `tests/valid/NAME.model`   (the same, for language features)
//! - `tests/errors/NAME.hoyer` → `tests/errors/NAME.stderr` (`hoyerc check`, rendered diagnostics)
//!
//! Re-bless after an intended change with `HOYER_BLESS=1 cargo test --test golden`, then
//! read the diff before committing it.

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn blessing() -> bool {
    std::env::var_os("HOYER_BLESS").is_some_and(|v| v != "0")
}

/// Runs hoyerc in `dir` on a file named relative to `dir`, so that paths in the output are
/// stable.
fn hoyerc(dir: &Path, args: &[&str]) -> (i32, String, String) {
    common::hoyerc_in(dir, args)
}

fn specs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hoyer"))
        .collect();
    v.sort();
    v
}

/// Compares `actual` with the golden file (or writes it when blessing); returns a failure.
fn compare(golden: &Path, actual: &str) -> Option<String> {
    if blessing() {
        std::fs::write(golden, actual).expect("write golden file");
        return None;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_default();
    if expected == actual {
        return None;
    }
    let diff = similar::TextDiff::from_lines(expected.as_str(), actual);
    Some(format!(
        "{} differs (HOYER_BLESS=1 re-blesses):\n{}",
        golden.display(),
        diff.unified_diff().context_radius(3).header("expected", "actual")
    ))
}

fn check_all(failures: Vec<String>) {
    assert!(failures.is_empty(), "{} golden file(s) differ:\n\n{}", failures.len(), failures.join("\n"));
}

/// Valid specs: exit 0, no warnings, and the model summary matches.
fn summaries(input_dir: &Path, golden_dir: &Path) {
    let mut failures = Vec::new();
    for spec in specs(input_dir) {
        let name = spec.file_name().unwrap().to_str().unwrap();
        let (code, stdout, stderr) = hoyerc(input_dir, &["compile", name, "--emit", "model"]);
        if code != 0 || !stderr.is_empty() {
            failures.push(format!("{name}: expected a clean compile, got exit {code}:\n{stderr}"));
            continue;
        }
        let golden = golden_dir.join(spec.with_extension("model").file_name().unwrap());
        failures.extend(compare(&golden, &stdout));
    }
    check_all(failures);
}

#[test]
fn example_summaries() {
    summaries(&root().join("examples"), &root().join("tests/examples"));
}

#[test]
fn valid_spec_summaries() {
    let dir = root().join("tests/valid");
    summaries(&dir, &dir);
}

#[test]
fn error_diagnostics() {
    let dir = root().join("tests/errors");
    let mut failures = Vec::new();
    let cases = specs(&dir);
    assert!(cases.len() >= 30, "only {} error cases", cases.len());
    for spec in cases {
        let name = spec.file_name().unwrap().to_str().unwrap();
        let (code, stdout, stderr) = hoyerc(&dir, &["check", name]);
        let has_error =
            stderr.lines().any(|l| l.len() == 5 && l.starts_with('E') && l[1..].bytes().all(|b| b.is_ascii_digit()));
        if code != 1 || !stdout.is_empty() || !has_error {
            failures.push(format!("{name}: expected exit 1 and a coded error, got exit {code}:\n{stdout}{stderr}"));
            continue;
        }
        // The file's name says which code it is about: e0401_....hoyer must report E0401.
        let wanted = name.split('_').next().unwrap_or("").to_uppercase();
        if !stderr.lines().any(|l| l == wanted) {
            failures.push(format!("{name}: does not report {wanted}:\n{stderr}"));
        }
        failures.extend(compare(&spec.with_extension("stderr"), &stderr));
    }
    check_all(failures);
}

/// Every code is exercised by at least one golden error case (E0007, a file that cannot be
/// read, and E0515, a bad `--set`, come from the command line: tests/cli.rs covers them; the
/// E07xx codes come from running: tests/data.rs and tests/train.rs; E09xx are hoyerc's own
/// mistakes, which no valid spec should produce: compiler unit tests render them).
#[test]
fn every_code_has_a_golden_case() {
    let dir = root().join("tests/errors");
    let mut covered = String::new();
    for f in specs(&dir) {
        covered += &std::fs::read_to_string(f.with_extension("stderr")).unwrap_or_default();
    }
    let missing: Vec<&str> = hoyer_front::codes::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| {
            !["E0007", "E0515"].contains(c)
                && !c.starts_with("E07")
                && !c.starts_with("E09")
                && !covered.lines().any(|l| l == *c)
        })
        .collect();
    assert!(missing.is_empty(), "codes without a golden error case: {missing:?}");
}

/// Every stage of the examples, from one input: forward (`.ir`), whole training step
/// (`.grad`), its kernel IR (`.kernels`), and for the quickstart and the DeepHoyer recipes the
/// code: Cranelift IR (`.clif`) and CUDA C (`.cuda`).
#[test]
fn example_ir() {
    let examples = root().join("examples");
    let mut failures = Vec::new();
    let names = [
        "quickstart",
        "lenet300_dense",
        "lenet300_hs",
        "lenet300_gradual",
        "lenet5_dense",
        "lenet5_hs",
        "lenet5_group_hs",
    ];
    for name in names {
        let emits: &[&str] = match name {
            "quickstart" | "lenet5_hs" | "lenet5_group_hs" => &["ir", "grad", "kernels", "clif", "cuda"],
            "lenet300_hs" => &["ir", "grad", "kernels", "cuda"],
            _ => &["ir", "grad", "kernels"],
        };
        for emit in emits.iter().copied() {
            let file = format!("{name}.hoyer");
            let (code, stdout, stderr) = hoyerc(&examples, &["compile", &file, "--emit", emit]);
            if code != 0 {
                failures.push(format!("{file} --emit {emit}: exit {code}\n{stderr}"));
                continue;
            }
            failures.extend(compare(&root().join("tests/examples").join(format!("{name}.{emit}")), &stdout));
        }
    }
    check_all(failures);
}

//! `run.json`: what a run was, so that its results can be traced and a resume can be checked
//! against it. The spec's text and every `--set`, the data read (folder, each file's size and
//! CRC-32), the weights it started from, the seed, the back end and its threads, hoyerc's
//! version, when it started, each resume, when it ended and how.

use crate::error::RunError;
use crate::files::write_atomically;
use hoyer_front::codes::Code;
use serde_json::{json, Value};
use std::path::Path;

pub const RUN_JSON: &str = "run.json";

/// The current time in UTC, as `2026-11-25T12:34:56Z`.
pub fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// A CRC-32 as run.json writes it: eight hex digits.
fn crc32(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// Each regular file of `dir` whose name starts with one of `names`: name, size, CRC-32.
pub fn files(dir: &Path, names: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if !names.iter().any(|n| name.starts_with(n)) || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if let Ok(bytes) = crate::files::read_regular(&e.path(), 1 << 36) {
            out.push(json!({ "name": name, "bytes": bytes.len(), "crc32": crc32(&bytes) }));
        }
    }
    out
}

/// The weights a run started from (`--init` or `init from`): path, size and CRC-32, so that
/// a result can be traced to them.
pub fn init_file(path: &Path) -> Value {
    let bytes = crate::files::read_regular(path, 1 << 36).unwrap_or_default();
    json!({ "path": path.display().to_string(), "bytes": bytes.len(), "crc32": crc32(&bytes) })
}

/// The record of a run that is starting.
pub fn record(spec_path: &Path, spec_text: &str, overrides: &[String], seed: u64, backend: &str, data: Value) -> Value {
    json!({
        "hoyerc": env!("CARGO_PKG_VERSION"),
        "spec": {
            "path": spec_path.display().to_string(),
            "crc32": crc32(spec_text.as_bytes()),
            "text": spec_text,
        },
        "overrides": overrides,
        "seed": seed,
        "backend": backend,
        "data": data,
        "started": now(),
        "resumes": [],
    })
}

pub fn write(dir: &Path, record: &Value) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(record).unwrap_or_default();
    write_atomically(&dir.join(RUN_JSON), (text + "\n").as_bytes())
}

/// The run record in `dir`: `None` where there is none, an error where one is there but
/// cannot be read or is not a record (it is never taken for missing: a resume would then
/// drop what it says).
pub fn read(dir: &Path) -> Result<Option<Value>, String> {
    let path = dir.join(RUN_JSON);
    if std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(None);
    }
    // A run record is small; anything else is not one.
    let bytes = crate::files::read_regular(&path, 64 << 20)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() && v["spec"].is_object() => Ok(Some(v)),
        Ok(_) => Err(format!("{} is not a run record", path.display())),
        Err(e) => Err(format!("{} is not a run record: {e}", path.display())),
    }
}

/// The `--set` values the run in a record ran with last: its last resume's that gave any,
/// else its start's.
pub fn last_overrides(record: &Value) -> Vec<String> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    record["resumes"]
        .as_array()
        .and_then(|r| r.iter().rev().map(|r| strings(&r["overrides"])).find(|o| !o.is_empty()))
        .unwrap_or_else(|| strings(&record["overrides"]))
}

/// What a resume of the run in `dir` takes from its record unless told otherwise: its
/// `--set` values (`last_overrides`) and its data folder, where that still exists; `None`
/// where there is no readable record (the resume then says so itself).
pub fn recorded_options(dir: &Path) -> Option<(Vec<String>, Option<std::path::PathBuf>)> {
    let record = read(dir).ok()??;
    let folder = record["data"]["folder"].as_str().map(std::path::PathBuf::from).filter(|f| f.is_dir());
    Some((last_overrides(&record), folder))
}

fn different(what: String, help: &str) -> RunError {
    RunError::new(Code::NotThisRun, what).help(help.to_string())
}

/// Checks that `current` (a run about to resume) is the run `stored` recorded: the same spec
/// (its comments and layout may have changed), the same data, and the same `--set`
/// overrides unless this resume gives its own.
pub fn check_resume(stored: &Value, current: &Value, dir: &Path) -> Result<(), RunError> {
    let (old, new) = (stored["spec"]["text"].as_str().unwrap_or(""), current["spec"]["text"].as_str().unwrap_or(""));
    if let Some(line) = changed_line(old, new) {
        let show =
            |text: &str| text.lines().nth(line - 1).map_or("(no line)".to_string(), |l| format!("{:?}", l.trim()));
        return Err(different(
            format!("{} holds a run of another spec: line {line} was {}, is now {}", dir.display(), show(old), show(new)),
            "resume with the spec the run started from; to change a number on the way, leave the file as it was and pass --set PATH=VALUE",
        ));
    }
    let overrides = current["overrides"].as_array().cloned().unwrap_or_default();
    if overrides.is_empty() && stored["overrides"] != current["overrides"] {
        let flags: Vec<String> = stored["overrides"]
            .as_array()
            .map(|sets| sets.iter().map(|s| format!("--set {}", s.as_str().unwrap_or("?"))).collect())
            .unwrap_or_default();
        return Err(different(
            format!("{} was started with {}; this resume gives no --set", dir.display(), flags.join(" ")),
            "pass the same --set options again (or new ones, to change those numbers from here on)",
        ));
    }
    if stored["data"] != current["data"] {
        return Err(different(
            format!(
                "{} was trained on other data: it read {}, this run reads {}",
                dir.display(),
                describe_data(&stored["data"]),
                describe_data(&current["data"])
            ),
            "resume with the data the run started with (--data DIR)",
        ));
    }
    Ok(())
}

/// Where spec `new` differs from spec `old` other than in comments and layout: the first
/// line (from 1) that differs; `None` where they are the same spec.
pub fn changed_line(old: &str, new: &str) -> Option<usize> {
    let same_tokens =
        || hoyer_front::syntax::parse::tokens(old).is_some_and(|t| Some(t) == hoyer_front::syntax::parse::tokens(new));
    if old == new || same_tokens() {
        return None;
    }
    let line =
        old.lines().zip(new.lines()).position(|(a, b)| a != b).unwrap_or(old.lines().count().min(new.lines().count()));
    Some(line + 1)
}

fn describe_data(d: &Value) -> String {
    match d["folder"].as_str() {
        Some(folder) => {
            let files: Vec<String> = d["files"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .map(|f| {
                            format!(
                                "{} ({} bytes, crc32 {})",
                                f["name"].as_str().unwrap_or("?"),
                                f["bytes"],
                                f["crc32"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("{folder}: {}", files.join(", "))
        }
        None => d.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    }

    #[test]
    fn a_resume_must_be_of_the_same_run() {
        let data = json!({ "source": "synthetic" });
        let a = record(Path::new("a.hoyer"), "x\ny\n", &[], 1, "cpu", data.clone());
        assert!(check_resume(&a, &a, Path::new("d")).is_ok());
        let b = record(Path::new("a.hoyer"), "x\nz\n", &[], 1, "cpu", data.clone());
        let e = check_resume(&a, &b, Path::new("d")).unwrap_err();
        assert!(e.message.contains("line 2") && e.message.contains("\"z\""), "{}", e.message);
        let with_set = record(Path::new("a.hoyer"), "x\ny\n", &["p.lr=1".into()], 1, "cpu", data.clone());
        assert!(check_resume(&with_set, &a, Path::new("d")).is_err(), "a resume must repeat the run's --set");
        assert!(check_resume(&a, &with_set, Path::new("d")).is_ok(), "an explicit --set says what changed");
        let other = record(Path::new("a.hoyer"), "x\ny\n", &[], 1, "cpu", json!({ "folder": "m", "files": [] }));
        assert!(check_resume(&a, &other, Path::new("d")).is_err());
        let e = check_resume(&with_set, &a, Path::new("d")).unwrap_err();
        assert!(e.message.contains("started with --set p.lr=1;"), "the flags to pass again: {}", e.message);
    }

    #[test]
    fn a_resume_ignores_comments_and_layout_but_not_numbers() {
        let spec = "model m(x: f32[4]) {\n    return dense(x, 2)   // logits\n}\n";
        let recorded = record(Path::new("a.hoyer"), spec, &[], 1, "cpu", json!({}));
        let edited = "// a new first line\nmodel m(x: f32[4]) {\n  return dense(x, 2)   // scores\n}\n";
        let resumed = record(Path::new("a.hoyer"), edited, &[], 1, "cpu", json!({}));
        assert!(check_resume(&recorded, &resumed, Path::new("d")).is_ok());
        let changed = record(Path::new("a.hoyer"), &spec.replace("2)", "3)"), &[], 1, "cpu", json!({}));
        let e = check_resume(&recorded, &changed, Path::new("d")).unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        // A string's text is a token of its own: the same words inside it still differ.
        assert_ne!(
            hoyer_front::syntax::parse::tokens("data d = idx(\"a b\")"),
            hoyer_front::syntax::parse::tokens("data d = idx(\"a  b\")")
        );
    }
}

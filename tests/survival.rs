//! Nothing lost, nothing believed: runs that survive their log pipe and their interruptions,
//! sweeps that keep each point apart and refuse stale ones, and files (checkpoints, weights,
//! run records, safetensors headers) checked before they are used. Each test is one finding
//! of a hostile trial, and failed before its fix.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The quickstart spec in a folder of its own, with `edit` applied to its text.
fn quickstart(name: &str, edit: impl Fn(String) -> String) -> common::Scratch {
    let text = std::fs::read_to_string(root().join("examples/quickstart.hoyer")).unwrap();
    common::Scratch::file(&format!("{name}.hoyer"), edit(text))
}

/// A safetensors file rewritten tensor by tensor (`change` gives a new shape and values, or
/// `None` to keep the tensor), its metadata kept.
fn rewrite(path: &Path, change: impl Fn(&str, &[usize], Vec<f32>) -> Option<(Vec<usize>, Vec<f32>)>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in st.tensors() {
        let values: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let (shape, values) = change(&name, t.shape(), values.clone()).unwrap_or((t.shape().to_vec(), values));
        tensors.push((name, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, meta.metadata().clone()).unwrap()).unwrap();
}

/// `hoyerc run ... 2>&1 | head -1`: the pipe closes after the first line, and the run goes
/// on to its end, with its checkpoint, its model and run.json's outcome; its messages are
/// in the folder's log.txt.
#[test]
fn a_closed_stderr_leaves_a_finished_run() {
    let out = common::Scratch::fresh("closed-stderr");
    let spec = root().join("examples/quickstart.hoyer");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoyerc"))
        .args(["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut first = [0u8; 1];
    stderr.read_exact(&mut first).unwrap();
    drop(stderr); // as `head -1` exits
    let status = child.wait().unwrap();
    assert!(status.success(), "the run stopped with {status}");
    assert_eq!(json(&out.join("run.json"))["outcome"], "finished");
    assert!(out.join("model.safetensors").is_file() && out.join("checkpoint.safetensors").is_file());
    let log = std::fs::read_to_string(out.join("log.txt")).unwrap();
    assert!(log.contains("finetune epoch   3/3") && log.contains("hoyerc: training `mlp`"), "{log}");

    // The same through a shell pipe, as a user types it.
    let out = common::Scratch::fresh("closed-stderr-shell");
    let line =
        format!("'{}' run '{}' --out '{}' 2>&1 | head -1", env!("CARGO_BIN_EXE_hoyerc"), spec.display(), out.display());
    let status = Command::new("sh").args(["-c", &line]).stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
    assert_eq!(json(&out.join("run.json"))["outcome"], "finished");
}

/// A run stopped by a signal before or after its shrink and resumed ends with the report.json
/// of a run never stopped: every phase's report and the shrink's record.
#[test]
fn a_resumed_report_equals_the_uninterrupted_one() {
    let spec = root().join("tests/valid/shrink.hoyer");
    // Long phases, so that a signal lands inside one.
    let sets = ["--set", "sparsify.epochs=60", "--set", "finetune.epochs=60"];
    // `run --out DIR` or `run --resume DIR`, with the long phases.
    let command = |flag: &str, dir: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hoyerc"));
        c.args(["run", spec.to_str().unwrap()]).args(sets).arg(flag).arg(dir).stderr(Stdio::null());
        c
    };
    let start = |dir: &Path| command("--out", dir).spawn().unwrap();
    let resume = |dir: &Path| command("--resume", dir).status().unwrap();
    let whole = common::Scratch::fresh("report-whole");
    assert!(start(&whole).wait().unwrap().success());
    let want = json(&whole.join("report.json"));
    assert_eq!(want["shrink"][0]["step"], "prune.1", "{want}");
    let epochs = |dir: &Path, phase: &str| {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"phase\":\"{phase}\"")))
            .count()
    };
    let signals = ["INT", "TERM", "HUP"];
    for (signal, phase) in signals.iter().map(|s| (*s, "sparsify")).chain(signals.iter().map(|s| (*s, "finetune"))) {
        let dir = common::Scratch::fresh(&format!("report-{signal}-{phase}"));
        let mut child = start(&dir);
        let t = std::time::Instant::now();
        while epochs(&dir, phase) < 2 {
            assert!(t.elapsed().as_secs() < 120, "no {phase} epoch came");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        let stopped = child.wait().unwrap();
        assert!(!stopped.success(), "{signal} in {phase}: the run ended before the signal");
        if phase == "finetune" {
            let r = json(&dir.join("report.json"));
            assert_eq!(r["shrink"], want["shrink"], "{signal}: an interrupted run keeps its shrink's record");
        }
        assert!(resume(&dir).success(), "{signal} in {phase}: the resume failed");
        let got = json(&dir.join("report.json"));
        assert_eq!(got, want, "{signal} in {phase}: the resumed report differs");
    }
}

/// A sweep's points are kept apart: values that differ only in characters a folder name
/// cannot hold get folders of their own, each trained.
#[test]
fn sweep_points_never_share_a_folder() {
    let spec = quickstart("sweep-names", |t| t.replace("epochs 8", "epochs 2"));
    let out = common::Scratch::fresh("sweep-names-out");
    let (code, stdout, err) = common::hoyerc_in(
        root(),
        &["sweep", spec.to_str().unwrap(), "--grid", "finetune.epochs=2/1,2*1", "--out", out.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stdout}{err}");
    let folders: Vec<String> = std::fs::read_dir(&*out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("run.json").is_file() && !e.file_name().to_string_lossy().starts_with("shared"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders.len(), 2, "{folders:?}");
    for f in &folders {
        assert_eq!(json(&out.join(f).join("run.json"))["outcome"], "finished", "{f}");
    }
    let sets: Vec<String> = folders
        .iter()
        .map(|f| {
            let r = json(&out.join(f).join("run.json"));
            let last = r["resumes"].as_array().and_then(|a| a.last().cloned()).unwrap_or(serde_json::Value::Null);
            last["overrides"].to_string()
        })
        .collect();
    assert_ne!(sets[0], sets[1], "both folders ran the same point: {sets:?}");
}

/// Rerunning a sweep after its spec or its `--init` changed refuses (E0711) instead of
/// keeping stale rows; `--rerun-changed` trains those points again.
#[test]
fn a_changed_spec_is_not_a_finished_sweep() {
    let spec = quickstart("sweep-stale", |t| t.replace("epochs 8", "epochs 1").replace("epochs 3", "epochs 1"));
    let out = common::Scratch::fresh("sweep-stale-out");
    let sweep = |extra: &[&str]| {
        let mut args = vec!["sweep", spec.to_str().unwrap(), "--grid", "seed=1,2", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        common::hoyerc_in(root(), &args)
    };
    let (code, stdout, err) = sweep(&[]);
    assert_eq!(code, 0, "{stdout}{err}");
    // Unchanged: kept.
    let (code, stdout, _) = sweep(&[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("finished before, kept"), "{stdout}");
    // Edited: refused, then retrained on request.
    let text = std::fs::read_to_string(&*spec).unwrap().replace("lr = 5e-4", "lr = 2e-4");
    std::fs::write(&*spec, text).unwrap();
    let (code, _, err) = sweep(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0711") && err.contains("seed=1: it was trained from another spec"), "{err}");
    let (code, stdout, err) = sweep(&["--rerun-changed"]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("trained again"), "{stdout}");
    let record = json(&out.join("seed=1").join("run.json"));
    assert!(record["spec"]["text"].as_str().unwrap().contains("lr = 2e-4"));
    // Other initial weights: refused too.
    let init = out.join("seed=1").join("model.safetensors");
    let (code, _, err) = sweep(&["--init", init.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0711") && err.contains("this sweep gives --init"), "{err}");
}

/// Two sweeps into one folder: the second is refused at once (E0710), the first finishes
/// with every point right.
#[test]
fn one_sweep_per_folder() {
    let spec = quickstart("sweep-twice", |t| t.replace("epochs 8", "epochs 30"));
    let out = common::Scratch::fresh("sweep-twice-out");
    let args = ["sweep", spec.to_str().unwrap(), "--grid", "seed=1,2", "--out", out.to_str().unwrap()];
    let first = Command::new(env!("CARGO_BIN_EXE_hoyerc"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !out.join("seed=1").join("metrics.jsonl").is_file() {
        assert!(t.elapsed().as_secs() < 60, "the first sweep did not start");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (code, _, err) = common::hoyerc_in(root(), &args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0710") && err.contains("in use"), "{err}");
    let status = first.wait_with_output().unwrap().status;
    assert!(status.success(), "the first sweep: {status}");
    for p in ["seed=1", "seed=2"] {
        assert_eq!(json(&out.join(p).join("run.json"))["outcome"], "finished", "{p}");
        let log = std::fs::read(out.join(format!("{p}.log"))).unwrap();
        assert!(!log.contains(&0), "{p}.log holds NUL bytes");
    }
}

/// A checkpoint is checked against the spec and its shrink before a resume uses it: a layer
/// wider than the spec's, logits cut to fewer classes, or widths the recorded shrink did not
/// leave are refused (E0705), never trained on.
#[test]
fn checkpoints_are_checked_against_the_spec() {
    let spec = root().join("tests/valid/shrink.hoyer");
    let stopped = common::Scratch::fresh("checked-checkpoint");
    // 260 steps: inside the phase after the shrink.
    let (code, _, err) = common::hoyerc_in(
        root(),
        &["run", spec.to_str().unwrap(), "--max-steps", "260", "--out", stopped.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let copy = |name: &str| -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hoyer-survival-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["checkpoint.safetensors", "run.json", "report.json", "metrics.jsonl"] {
            std::fs::copy(stopped.join(f), dir.join(f)).unwrap();
        }
        dir
    };
    let resume =
        |dir: &Path| common::hoyerc_in(root(), &["run", spec.to_str().unwrap(), "--resume", dir.to_str().unwrap()]);
    // fc3 (the logits) cut to 3 of 4 classes.
    let cut = copy("cut-logits");
    rewrite(&cut.join("checkpoint.safetensors"), |name, shape, v| {
        name.ends_with("fc3.weight")
            .then(|| (vec![3, shape[1]], v[..3 * shape[1]].to_vec()))
            .or_else(|| name.ends_with("fc3.bias").then(|| (vec![3], v[..3].to_vec())))
    });
    let (code, _, err) = resume(&cut);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0705") && err.contains("`fc3`"), "{err}");
    // fc1 wider than the spec's 64 (its readers widened with it).
    let wide = copy("wide");
    rewrite(&wide.join("checkpoint.safetensors"), |name, shape, mut v| {
        if name.ends_with("fc1.weight") {
            v.resize(80 * shape[1], 0.0);
            Some((vec![80, shape[1]], v))
        } else if name.ends_with("fc1.bias") {
            v.resize(80, 0.0);
            Some((vec![80], v))
        } else {
            None
        }
    });
    let (code, _, err) = resume(&wide);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0705") && err.contains("a shrink only narrows"), "{err}");
    // Narrower than the shrink left it: not what report.json recorded.
    let narrow = copy("narrow");
    let h2 = json(&stopped.join("report.json"))["shrink"][0]["architecture"].as_str().unwrap().to_string();
    rewrite(&narrow.join("checkpoint.safetensors"), |name, shape, v| {
        let rows = shape[0] - 1;
        if name.contains("fc2.weight") {
            Some((vec![rows, shape[1]], v[..rows * shape[1]].to_vec()))
        } else if name.contains("fc2.bias") {
            Some((vec![rows], v[..rows].to_vec()))
        } else if name.contains("fc3.weight") {
            let cols = shape[1] - 1;
            Some((
                vec![shape[0], cols],
                (0..shape[0]).flat_map(|r| v[r * shape[1]..r * shape[1] + cols].to_vec()).collect(),
            ))
        } else {
            None
        }
    });
    let (code, _, err) = resume(&narrow);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0705") && err.contains(&format!("left {h2}")), "{err}");
    for d in [cut, wide, narrow] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A model with batch norm, trained briefly; its folder.
fn batchnorm_run(name: &str) -> (common::Scratch, common::Scratch) {
    let spec = common::Scratch::file(
        &format!("{name}.hoyer"),
        "data toy = synthetic(classes = 3, train = 300, test = 60)
model net(x: f32[1, 4, 4]) {
    c1 = conv2d(x, 4, kernel = 3)
    bn1 = batchnorm(c1) |> relu
    return dense(flatten(bn1), 3)
}
train net on toy { batch 30  phase fit { epochs 2  optimizer sgd(lr = 0.1) } }
",
    );
    let out = common::Scratch::fresh(&format!("{name}-out"));
    let (code, _, err) = common::hoyerc_in(root(), &["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    (spec, out)
}

/// Batch-norm statistics are checked where they come in: a negative running variance (from
/// `--init` or a checkpoint) is refused (E0705) instead of evaluating to NaN at chance.
#[test]
fn batch_norm_statistics_are_checked() {
    let (spec, out) = batchnorm_run("bn-stats");
    let negative = |name: &str, _: &[usize], mut v: Vec<f32>| {
        name.ends_with("bn1.running_var").then(|| {
            v[1] = -0.5;
            (vec![v.len()], v)
        })
    };
    let init = out.join("model.safetensors");
    rewrite(&init, negative);
    let again = common::Scratch::fresh("bn-stats-again");
    let (code, _, err) = common::hoyerc_in(
        root(),
        &["run", spec.to_str().unwrap(), "--init", init.to_str().unwrap(), "--out", again.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0705") && err.contains("bn1.running_var") && err.contains("never negative"), "{err}");
    rewrite(&out.join("checkpoint.safetensors"), negative);
    let (code, _, err) = common::hoyerc_in(root(), &["run", spec.to_str().unwrap(), "--resume", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0705") && err.contains("never negative"), "{err}");
}

/// Batch norm whose last batch of an epoch would be one sample on a 1×1 map: refused before
/// training (E0211), as PyTorch refuses it, not trained at chance.
#[test]
fn batch_norm_on_a_last_batch_of_one_is_refused() {
    let spec = common::Scratch::file(
        "bn-last-one.hoyer",
        "data toy = synthetic(classes = 3, train = 301, test = 60)
model net(x: f32[1, 3, 3]) {
    c1 = conv2d(x, 4, kernel = 3)
    bn1 = batchnorm(c1) |> relu
    return dense(flatten(bn1), 3)
}
train net on toy { batch 100  phase fit { epochs 1  optimizer sgd(lr = 0.1) } }
",
    );
    let out = common::Scratch::fresh("bn-last-one-out");
    let (code, _, err) = common::hoyerc_in(root(), &["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0211") && err.contains("301 training samples"), "{err}");
}

/// A run.json that is there but cannot be read is a refusal (E0705), not a missing record:
/// the resume would drop the run's `--set` values and rewrite it.
#[test]
fn a_corrupt_run_record_is_refused() {
    let spec = quickstart("corrupt-record", |t| t);
    let out = common::Scratch::fresh("corrupt-record-out");
    let (code, _, err) = common::hoyerc_in(
        root(),
        &[
            "run",
            spec.to_str().unwrap(),
            "--set",
            "sparsify.epochs=2",
            "--max-steps",
            "50",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    std::fs::write(out.join("run.json"), "{\"spec\": {\"text\": \"trunc").unwrap();
    let (code, _, err) = common::hoyerc_in(root(), &["run", spec.to_str().unwrap(), "--resume", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0705") && err.contains("run.json is not a run record"), "{err}");
    assert!(
        std::fs::read_to_string(out.join("run.json")).unwrap().starts_with("{\"spec\": {\"text\": \"trunc"),
        "rewritten"
    );
}

/// A safetensors header with `shapes`, no metadata, and data of the size they need.
fn safetensors_file(shapes: &[(&str, Vec<u64>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in shapes {
        let bytes = 4 * shape.iter().product::<u64>();
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let text = serde_json::Value::Object(header).to_string();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text.as_bytes());
    out.resize(out.len() + offset as usize, 0);
    out
}

/// `hoyerc report` of empty tensors answers at once ([1, 1, 0] panicked, [2^40, 0] walked
/// 2^40 empty rows); a header that does not describe its file is refused before any data is
/// read, and so is a pseudo-file.
#[test]
fn report_reads_headers_first_and_empty_tensors_quickly() {
    let dir = common::Scratch::dir("report-empty");
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors_file(&[("a.weight", vec![1, 1, 0]), ("b.weight", vec![1 << 40, 0]), ("c.weight", vec![2, 3])]),
    )
    .unwrap();
    let t = std::time::Instant::now();
    let (code, out, err) = common::hoyerc_in(root(), &["report", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed().as_secs_f64() < 5.0, "took {:?}", t.elapsed());
    assert!(out.contains("a.weight") && out.contains("b.weight"), "{out}");
    // A header length past the file's end, and one whose tensors end before it.
    for (what, bytes) in [
        ("huge header", {
            let mut b = (1u64 << 40).to_le_bytes().to_vec();
            b.extend(b"{}");
            b
        }),
        ("short data", {
            let mut b = safetensors_file(&[("c.weight", vec![1000, 1000])]);
            b.truncate(b.len() - 10);
            b
        }),
    ] {
        std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
        let (code, _, err) = common::hoyerc_in(root(), &["report", dir.to_str().unwrap()]);
        assert_eq!(code, 2, "{what}: {err}");
        assert!(err.contains("E0705") && err.contains("is not a safetensors file"), "{what}: {err}");
    }
    let (code, _, err) = common::hoyerc_in(
        root(),
        &["run", "examples/quickstart.hoyer", "--init", "/proc/self/pagemap", "--out", dir.join("x").to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0705"), "{err}");
}

/// `bench` and `run` are refused with E0713 where they would not fit: in the memory there is,
/// and under an address-space limit (`ulimit -v`), never an abort.
#[test]
fn memory_limits_hold_for_bench_and_under_ulimit() {
    let spec = quickstart("memory", |t| t.replace("batch 50", "batch 100000000"));
    let (code, _, err) =
        common::hoyerc_in(root(), &["bench", spec.to_str().unwrap(), "--steps", "1", "--backend", "cpu"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0713"), "{err}");
    // 2 GiB of address space; a run of 40 million samples needs about 5 GiB.
    let out = common::Scratch::fresh("memory-ulimit");
    let big = quickstart("memory-big", |t| t.replace("train = 2000", "train = 40000000"));
    // And a bench of 60 batches of a million samples, about 8 GiB.
    let wide = quickstart("memory-bench", |t| t.replace("batch 50", "batch 1000000"));
    for command in [
        format!("'{}' run '{}' --out '{}'", env!("CARGO_BIN_EXE_hoyerc"), big.display(), out.display()),
        format!("'{}' bench '{}' --steps 1 --backend cpu", env!("CARGO_BIN_EXE_hoyerc"), wide.display()),
    ] {
        let output = Command::new("sh")
            .args(["-c", &format!("ulimit -v 2097152; {command}")])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {err}");
        assert!(err.contains("E0713") && err.contains("address-space"), "{command}: {err}");
    }
}

/// Sizes within the bounds on every layer's output but not on what a layer computes on the
/// way (found by the `sizes` fuzzer as internal errors in kernel validation, and as
/// overflows in debug builds): a convolution whose columns pass 2^63 elements, an
/// embedding whose gradient's one-hot does. Now E0202, at check and for every command.
#[test]
fn tensors_inside_a_layer_are_bounded_too() {
    for (model, batch) in [
        ("x: f32[2147483648, 4, 5]) {\n    y = conv2d(x, 2, kernel = 2, stride = 5, padding = 65536)", 10),
        ("x: i32[1]) {\n    y = embedding(x, 2147483648, 4)", 1u64 << 40),
    ] {
        let spec = common::Scratch::file(
            "inside.hoyer",
            format!(
                "data toy = synthetic(classes = 3, train = 30, test = 10)\nmodel net({model}\n    return dense(flatten(y), 3)\n}}\n\
                 train net on toy {{ batch {batch}  phase fit {{ epochs 1  optimizer adam(lr = 1e-3) }} }}\n"
            ),
        );
        let (code, _, err) = common::hoyerc_in(root(), &["check", spec.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("E0202") && err.contains("on the way") && !err.contains("E0901"), "{err}");
        let out = common::Scratch::fresh("inside-out");
        let (code, _, err) =
            common::hoyerc_in(root(), &["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("E0202") && !err.contains("E0901"), "{err}");
    }
}

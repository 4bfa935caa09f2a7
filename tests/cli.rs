//! The command line as a user meets it: exit codes, output streams, `explain`, and files that
//! are missing, unreadable or pathological.

mod common;

use hoyer_front::codes::Code;
use std::path::Path;

fn hoyerc(args: &[&str]) -> (i32, String, String) {
    common::hoyerc_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn temp_file(name: &str, contents: &[u8]) -> common::Scratch {
    common::Scratch::file(name, contents)
}

#[test]
fn check_valid_examples_exits_0() {
    let (code, out, err) = hoyerc(&["check", "examples/quickstart.hoyer", "examples/lenet300_hs.hoyer"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "examples/quickstart.hoyer: ok\nexamples/lenet300_hs.hoyer: ok\n");
    assert!(err.is_empty());
}

#[test]
fn check_invalid_exits_1_and_reports_on_stderr() {
    let (code, out, err) = hoyerc(&["check", "tests/errors/e0401_bare_weight.hoyer"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("E0401") && err.contains("help:"), "{err}");
}

#[test]
fn missing_file_exits_2_and_other_files_are_still_checked() {
    let (code, out, err) =
        hoyerc(&["check", "no/such/file.hoyer", "examples/quickstart.hoyer", "tests/errors/e0501_zero_epochs.hoyer"]);
    assert_eq!(code, 2);
    assert!(err.contains("E0007") && err.contains("cannot read `no/such/file.hoyer`"), "{err}");
    assert!(out.contains("examples/quickstart.hoyer: ok"));
    assert!(err.contains("E0501"));
}

#[test]
fn a_folder_is_a_clear_error() {
    let (code, _, err) = hoyerc(&["check", "examples"]);
    assert_eq!(code, 2);
    assert!(err.contains("E0007"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(hoyerc(&["check"]).0, 2);
    assert_eq!(hoyerc(&["compile", "examples/quickstart.hoyer", "--emit", "nonsense"]).0, 2);
    assert_eq!(hoyerc(&["frobnicate"]).0, 2);
}

#[test]
fn compile_emits_ast_and_model() {
    let (code, out, _) = hoyerc(&["compile", "examples/quickstart.hoyer", "--emit", "ast"]);
    assert_eq!(code, 0);
    assert!(out.contains("ModelDef") && out.contains("\"fc1\""), "{out}");
    let (code, out, _) = hoyerc(&["compile", "examples/lenet300_hs.hoyer"]);
    assert_eq!(code, 0);
    assert!(out.contains("  total") && out.contains("266,610"), "{out}");
    let (code, out, err) = hoyerc(&["compile", "tests/errors/e0104_unknown_data.hoyer", "--emit", "model"]);
    assert_eq!(code, 1);
    assert!(out.is_empty() && err.contains("E0104"));
}

#[test]
fn warnings_do_not_fail_a_check() {
    let path = temp_file(
        "warn.hoyer",
        b"data d = synthetic(classes = 2, train = 8, test = 8)\n\
          model m(x: f32[4]) {\n  spare = dense(x, 3)\n  out2 = dense(x, 2)\n  return out2\n}\n\
          train m on d { phase p { epochs 1  optimizer sgd(lr = 0.1) } }\n",
    );
    let (code, out, err) = hoyerc(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with(": ok\n"));
    assert!(err.contains("W0601") && err.contains("1 warning"), "{err}");
}

#[test]
fn deep_nesting_through_the_binary() {
    let deep = format!("fn f(w) = {}w{}\n", "(".repeat(100_000), ")".repeat(100_000));
    let path = temp_file("deep.hoyer", deep.as_bytes());
    let (code, _, err) = hoyerc(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("E0003"), "{err}");
}

#[test]
fn explain_every_code() {
    for c in Code::ALL {
        let (code, out, err) = hoyerc(&["explain", c.as_str()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with(&format!("{}: {}", c.as_str(), c.title())));
        assert!(out.contains("A spec that does it right:"));
    }
    let (code, out, _) = hoyerc(&["explain", "e0401"]);
    assert_eq!(code, 0, "codes are case-insensitive");
    assert!(out.contains("selector"));
    let (code, _, err) = hoyerc(&["explain", "E9999"]);
    assert_eq!(code, 2);
    assert!(err.contains("known codes"));
}

#[test]
fn set_overrides_numbers_and_reports_bad_paths() {
    let (code, out, err) = hoyerc(&[
        "compile",
        "examples/lenet300_hs.hoyer",
        "--set",
        "sparsify.epochs=3",
        "--set",
        "sparsify.penalty=1e-4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1. phase sparsify: 3 epochs") && out.contains("penalty 1e-4 * hoyer_square"), "{out}");
    let (code, _, err) = hoyerc(&["compile", "examples/lenet300_hs.hoyer", "--set", "sparsify.epoch=3"]);
    assert_eq!(code, 1);
    assert!(err.contains("E0515") && err.contains("did you mean `sparsify.epochs`?"), "{err}");
    // A bad value is checked like any spec: located in the rewritten text.
    let (code, _, err) = hoyerc(&["compile", "examples/lenet300_hs.hoyer", "--set", "finetune.lr=-1"]);
    assert_eq!(code, 1);
    assert!(err.contains("E0502") && err.contains("(with --set)"), "{err}");
    let (code, _, err) = hoyerc(&["compile", "examples/lenet300_hs.hoyer", "--set", "batch=many"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a number"), "{err}");
}

/// Output piped into a program that stops reading early (`| head`) is not an error.
#[test]
fn a_closed_pipe_is_not_a_crash() {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hoyerc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["compile", "examples/lenet300_hs.hoyer", "--emit", "grad"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
}

/// A pipe or a device given as a spec is refused at once (reading it would block, or never
/// end).
#[test]
fn pipes_and_devices_are_not_specs() {
    let folder = common::Scratch::dir("fifo");
    let fifo = folder.join("fifo.hoyer");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        let started = std::time::Instant::now();
        let (code, _, err) = hoyerc(&["check", path]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("E0007") && err.contains("not a regular file"), "{err}");
        assert!(started.elapsed().as_secs() < 10);
    }
}

/// Output that cannot be written (a full disk) is an error, not a silent exit 0; a closed
/// pipe is not.
#[test]
fn a_full_disk_on_stdout_exits_2() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hoyerc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["compile", "examples/quickstart.hoyer", "--emit", "model"])
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("E0709") && err.contains("standard output"), "{err}");
}

/// `hoyerc report` on a folder that holds no run is a coded diagnostic.
#[test]
fn report_of_a_folder_without_a_run_is_coded() {
    let (code, _, err) = hoyerc(&["report", "tests"]);
    assert_eq!(code, 2);
    assert!(err.contains("E0705") && err.contains("model.safetensors"), "{err}");
}

/// `bench --kernels` names every kernel of the step as `--emit kernels` does, with times that
/// add up; the interpreter cannot time kernels and says so with a code.
#[test]
fn bench_times_each_kernel() {
    let (code, out, err) =
        hoyerc(&["bench", "examples/quickstart.hoyer", "--steps", "3", "--threads", "1", "--kernels"]);
    assert_eq!(code, 0, "{err}");
    let (_, listing, _) = hoyerc(&["compile", "examples/quickstart.hoyer", "--emit", "kernels"]);
    // The listing's first program is the first phase's step.
    let step = listing.split("\nphase ").next().unwrap_or(&listing);
    let in_step = step.lines().filter(|l| l.starts_with("kernel k")).count();
    let header = out.lines().find(|l| l.contains("where the step's time goes")).unwrap_or_else(|| panic!("{out}"));
    assert!(header.contains(&format!("in {in_step} kernels")), "{header} / {in_step} kernels in:\n{step}");
    let rows: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with('k') || l.contains(" rest ")).collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.contains(" ms ")), "{out}");
    let (code, _, err) =
        hoyerc(&["bench", "examples/quickstart.hoyer", "--steps", "3", "--backend", "interp", "--kernels"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot time its kernels") && err.contains("E07"), "{err}");
}

/// `--backend cuda` without a usable GPU is a coded diagnostic, not a panic: E0708 names
/// what is missing (the driver here). `--backend auto` (the default) trains on the CPU and
/// says so in the header; where CUDA can run, both train on the GPU and the header says that.
#[test]
fn cuda_asked_for_and_absent_is_a_diagnostic() {
    let gpu = hoyer_runtime::cuda::device::probe().is_ok();
    let out = temp_file("cuda-out", b"");
    std::fs::remove_file(&out).unwrap();
    let (code, _, err) =
        hoyerc(&["run", "examples/quickstart.hoyer", "--backend", "cuda", "--out", out.to_str().unwrap()]);
    assert!(!err.contains("panicked"), "{err}");
    if gpu {
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("; cuda, "), "{err}");
    } else {
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("E0708") && err.contains("help:"), "{err}");
    }
    let out = temp_file("cuda-auto-out", b"");
    std::fs::remove_file(&out).unwrap();
    let (code, _, err) =
        hoyerc(&["run", "examples/quickstart.hoyer", "--backend", "auto", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(if gpu { "; cuda, " } else { "; cpu, " }), "{err}");
}

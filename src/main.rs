//! `hoyerc`: check, compile and (later) run hoyer specs.

use clap::{Parser, Subcommand, ValueEnum};
use hoyer_front::codes::Code;
use hoyer_front::diagnostics::{Diagnostic, Report};
use hoyer_front::{check_source, decode, summary};
use hoyer_runtime::{say, sayln};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hoyerc", version, about = "Compiler for hoyer, a language for sparse neural-network training")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Colour in diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs: exit 0 if all are valid, 1 if any is invalid, 2 on a usage or I/O error.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check a spec and print one stage of its compilation.
    Compile {
        file: PathBuf,
        /// What to print.
        #[arg(long, value_enum, default_value_t = Emit::Model)]
        emit: Emit,
        /// Change a number of the spec: PATH=VALUE, e.g. sparsify.epochs=3 (repeatable).
        #[arg(long, value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    /// Train a spec: writes metrics.jsonl and model.safetensors to the output folder.
    Run {
        file: PathBuf,
        /// Output folder (default: runs/NAME for NAME.hoyer).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stop after this many optimizer steps in total; the outputs are still written.
        #[arg(long)]
        max_steps: Option<u64>,
        /// Stop before a step of the plan: a phase's name, or prune.N for the Nth prune
        /// (what `hoyerc sweep` branches from); the checkpoint is taken there.
        #[arg(long, value_name = "STEP")]
        stop_before: Option<String>,
        /// Overrides the spec's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Initial parameters from a safetensors file (overrides `init from`).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Folder of the IDX data (otherwise next to the spec, then $HOYER_DATA).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Which back end runs the step.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// Worker threads of the CPU back end (default: every core). Results are the same,
        /// bit for bit, for any number.
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// The memory the run may use, e.g. 16G (default: what the machine has available); a
        /// run whose estimate exceeds it is refused before it starts.
        #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
        memory_limit: Option<u64>,
        /// Continue an interrupted run from DIR/checkpoint.safetensors (DIR becomes the output
        /// folder).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "init"])]
        resume: Option<PathBuf>,
        /// Change a number of the spec: PATH=VALUE, e.g. sparsify.epochs=3 or
        /// sparsify.penalty=1e-4 (repeatable; `hoyerc explain E0515` lists the paths).
        #[arg(long, value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    /// Print the sparsity table of a run's folder and redraw its curves.svg (finished or
    /// interrupted runs alike); with several folders, compare the runs (accuracy, nonzeros,
    /// the Pareto front) and draw pareto.svg.
    Report {
        /// The runs' folders (each with model.safetensors and metrics.jsonl).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where several runs' comparison is drawn.
        #[arg(long, default_value = "pareto.svg")]
        svg: PathBuf,
    },
    /// Train a spec over a grid of `--set` values, each point a run folder of its own
    /// (resumed where a run stopped, skipped where it finished); then a table sorted by
    /// accuracy and density, sweep.json and pareto.svg in the sweep's folder.
    Sweep {
        file: PathBuf,
        /// An axis of the grid: PATH=V1,V2,... (repeatable; the grid is every combination).
        #[arg(long, value_name = "PATH=V1,V2,...", required = true)]
        grid: Vec<String>,
        /// Runs at a time, each on its share of the cores.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// The sweep's folder (default: runs/NAME-sweep for NAME.hoyer).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Folder of the IDX data (as for `run`).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Initial parameters of every run (as for `run`), e.g. a dense model's weights.
        #[arg(long)]
        init: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// Where a point's folder holds a run of another spec or other `--init` weights (the
        /// spec was edited since): train it again from the start, instead of refusing.
        #[arg(long)]
        rerun_changed: bool,
        /// A number changed for every point (as for `run`), before the grid's own.
        #[arg(long, value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// Stop each point after this many optimizer steps (as for `run`).
        #[arg(long)]
        max_steps: Option<u64>,
        /// Worker threads of each point's CPU back end (default: the cores shared among the
        /// `--jobs`).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
    /// Training throughput of each spec's first phase on in-memory random data, and
    /// inference throughput (the evaluation forward pass).
    Bench {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Timed steps (after 20 warm-up steps).
        #[arg(long, default_value_t = 200)]
        steps: usize,
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// Worker threads of the CPU back end (default: every core).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Also time each kernel of the step and print where the time goes (names as in
        /// `compile --emit kernels`).
        #[arg(long)]
        kernels: bool,
        /// The memory the bench may use (as for `run`).
        #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
        memory_limit: Option<u64>,
    },
    /// Explain an error code, with a corrected example.
    Explain {
        /// A code such as E0401.
        code: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendChoice {
    /// The GPU where CUDA can run here, otherwise the CPU (the run's header says which).
    Auto,
    /// Fused kernels on the CPU, matrix products through `gemm`.
    Cpu,
    /// NVRTC-compiled kernels and cuBLAS on an NVIDIA GPU.
    Cuda,
    /// The reference interpreter (float32): the oracle, and slow on large models.
    Interp,
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    /// The syntax tree, with byte spans.
    Ast,
    /// Layers, shapes, parameters, FLOPs, expanded selectors and the phase plan.
    Model,
    /// The IR of each phase: forward pass, loss and penalty.
    Ir,
    /// The IR of each phase's whole training step: gradients and optimizer update included.
    Grad,
    /// The kernel IR of each phase's training step: buffers, loop nests, views, products.
    Kernels,
    /// The Cranelift IR of each loop nest of each phase's training step.
    Clif,
    /// The CUDA C of each phase's training step (kernels, and the library products).
    Cuda,
}

/// Standard output that tolerates a closed pipe (`hoyerc report DIR | head`): what cannot be
/// written is dropped instead of panicking.
/// A failed write to standard output other than a closed pipe (a full disk): the command
/// then exits 2, saying so, instead of 0 with its output lost.
static STDOUT_FAILED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn stdout_result(r: std::io::Result<()>) {
    if let Err(e) = r.and_then(|()| {
        use std::io::Write as _;
        std::io::stdout().lock().flush()
    }) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut failed = STDOUT_FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        stdout_result(write!(std::io::stdout().lock(), $($arg)*));
    }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        stdout_result(writeln!(std::io::stdout().lock(), $($arg)*));
    }};
}

/// Rendered diagnostics wrap at this width, so that output does not depend on the terminal.
const WIDTH: usize = 100;

enum Outcome {
    Valid,
    Invalid,
    Unreadable,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    // Checking recurses over the syntax tree; its depth is bounded, and a large stack keeps
    // that bound far from the limit.
    let worker = std::thread::Builder::new().stack_size(64 << 20).spawn(move || run(cli.command, color));
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => {
            let failed = STDOUT_FAILED.lock().unwrap_or_else(|p| p.into_inner()).take();
            match failed {
                Some(e) => {
                    sayln!("E0709: hoyerc: cannot write to standard output: {e}");
                    ExitCode::from(2)
                }
                None => code,
            }
        }
        _ => {
            sayln!("hoyerc: internal error (please report it with the spec that caused it)");
            ExitCode::from(3)
        }
    }
}

fn run(command: Command, color: bool) -> ExitCode {
    match command {
        Command::Check { files } => {
            let mut worst = 0u8;
            for f in &files {
                let code = match check_file(f, color, None, &[]) {
                    Outcome::Valid => {
                        outln!("{}: ok", f.display());
                        0
                    }
                    Outcome::Invalid => 1,
                    Outcome::Unreadable => 2,
                };
                worst = worst.max(code);
            }
            ExitCode::from(worst)
        }
        Command::Compile { file, emit, set } => match check_file(&file, color, Some(emit), &set) {
            Outcome::Valid => ExitCode::SUCCESS,
            Outcome::Invalid => ExitCode::from(1),
            Outcome::Unreadable => ExitCode::from(2),
        },
        Command::Run {
            file,
            out,
            max_steps,
            stop_before,
            seed,
            init,
            data,
            backend,
            threads,
            memory_limit,
            resume,
            set,
        } => {
            // A resume takes what run.json recorded unless told otherwise: the run's --set
            // values and its data folder.
            let (set, data) = match &resume {
                Some(dir) => match hoyer_runtime::provenance::recorded_options(dir) {
                    Some((sets, folder)) => {
                        let set = if set.is_empty() { sets } else { set };
                        (set, data.or(folder))
                    }
                    None => (set, data),
                },
                None => (set, data),
            };
            let (checked, text, original) = match load_spec(&file, color, &set) {
                Ok(c) => c,
                Err(Outcome::Unreadable) => return ExitCode::from(2),
                Err(_) => return ExitCode::from(1),
            };
            let stem = file.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
            let stop_before = match (stop_before, checked.program.train.as_ref()) {
                (None, _) => None,
                (Some(name), Some(plan)) => match plan.step_index(&name) {
                    Some(i) => Some(i),
                    None => {
                        sayln!(
                            "hoyerc run: --stop-before {name}: the plan has no such step (its steps: {})",
                            plan.step_names().join(", ")
                        );
                        return ExitCode::from(2);
                    }
                },
                (Some(_), None) => None,
            };
            let opts = hoyer_runtime::train::RunOptions {
                out_dir: resume.clone().or(out).unwrap_or_else(|| PathBuf::from("runs").join(stem)),
                max_steps,
                stop_before,
                seed,
                init,
                data_dir: data,
                data_fallback: std::env::var_os("HOYER_DATA").map(PathBuf::from),
                spec_dir: hoyer_runtime::train::spec_dir(&file),
                progress: std::io::stderr().is_terminal(),
                resume: resume.is_some(),
                spec_path: file.clone(),
                spec_text: original,
                overrides: set.clone(),
                effective_text: text.clone(),
                memory_limit,
            };
            // Ctrl-C, SIGTERM (what `timeout` and job schedulers send) and SIGHUP: finish the
            // current step, write a checkpoint, stop.
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
                // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
                let _ = unsafe {
                    signal_hook::low_level::register(signal, move || {
                        hoyer_runtime::train::INTERRUPTED.store(signal, std::sync::atomic::Ordering::Relaxed);
                    })
                };
            }
            let backend = match make_backend(backend, threads) {
                Ok(b) => b,
                Err(e) => return run_error(&file, &text, &e, color),
            };
            match hoyer_runtime::train::run(&checked.program, backend.as_ref(), &opts) {
                Ok(o) => {
                    sayln!(
                        "done: {} steps, test accuracy {:.2}%, density {:.2}%; wrote {}",
                        o.steps,
                        o.test_accuracy * 100.0,
                        o.density * 100.0,
                        opts.out_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => run_error(&file, &text, &e, color),
            }
        }
        Command::Report { dirs, svg } if dirs.len() > 1 => {
            let labels: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            compare_runs(&dirs, &labels, &svg, None, color)
        }
        Command::Sweep { file, grid, jobs, out, data, init, backend, rerun_changed, set, max_steps, threads } => {
            let shared = PointArgs {
                data: data.as_deref(),
                init: init.as_deref(),
                backend: backend.to_possible_value().map_or("auto".into(), |v| v.get_name().to_string()),
                rerun_changed,
                sets: set,
                max_steps,
                threads,
            };
            sweep(&file, &grid, jobs, out, &shared, color)
        }
        Command::Report { dirs, .. } => {
            let dir = &dirs[0];
            match hoyer_runtime::report::from_run_dir(dir) {
                Ok((report, metrics)) => {
                    out!("{}", report.table());
                    let svg = dir.join("curves.svg");
                    match hoyer_runtime::files::write_atomically(
                        &svg,
                        hoyer_runtime::report::curves_svg(&metrics).as_bytes(),
                    ) {
                        Ok(()) => {
                            outln!("  {} epochs in metrics.jsonl; wrote {}", metrics.len(), svg.display());
                            ExitCode::SUCCESS
                        }
                        Err(e) => {
                            say!(
                                "{}",
                                Report::new(&dir.display().to_string(), String::new(), vec![e.diagnostic()])
                                    .render(WIDTH, color)
                            );
                            ExitCode::from(2)
                        }
                    }
                }
                Err(e) => {
                    let d = Diagnostic::error(Code::BadCheckpoint, e).help(
                        "`hoyerc report` takes the output folder of a run (with model.safetensors and metrics.jsonl)",
                    );
                    say!("{}", Report::new(&dir.display().to_string(), String::new(), vec![d]).render(WIDTH, color));
                    ExitCode::from(2)
                }
            }
        }
        Command::Bench { files, steps, backend, threads, kernels, memory_limit } => {
            let backend = match make_backend(backend, threads) {
                Ok(b) => b,
                Err(e) => return run_error(&files[0], "", &e, color),
            };
            for file in &files {
                let Ok((checked, text, _)) = load_spec(file, color, &[]) else { return ExitCode::from(1) };
                match hoyer_runtime::bench::bench(&checked.program, backend.as_ref(), steps, kernels, memory_limit) {
                    Ok(r) => {
                        outln!(
                            "{:<28} phase {:<10} batch {:<4} {:>10.0} samples/s {:>8.3} ms/step  ({}; compiled in {:.0} ms; inference {:.0} samples/s)",
                            file.file_stem().map_or(String::new(), |s| s.to_string_lossy().into_owned()),
                            r.phase,
                            r.batch,
                            r.samples_per_sec,
                            r.ms_per_step,
                            backend.describe(),
                            r.compile_ms,
                            r.inference_per_sec
                        );
                        print_kernel_times(&r.kernels);
                    }
                    Err(e) => return run_error(file, &text, &e, color),
                }
            }
            ExitCode::SUCCESS
        }
        Command::Explain { code } => match Code::parse(&code) {
            Some(c) => {
                out!("{}", explain(c));
                ExitCode::SUCCESS
            }
            None => {
                sayln!("hoyerc: `{code}` is not an error code; codes look like E0401");
                let all: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
                sayln!("known codes: {}", all.join(" "));
                ExitCode::from(2)
            }
        },
    }
}

/// `hoyerc report A B ...` and the end of a sweep: the runs' table (accuracy down, density
/// up, the Pareto front marked), the drawing at `svg`, and at `json` (a sweep's) the same
/// as JSON.
fn compare_runs(dirs: &[PathBuf], labels: &[String], svg: &Path, json: Option<&Path>, color: bool) -> ExitCode {
    use hoyer_runtime::sweep::{self, Point};
    let mut points = Vec::new();
    for (dir, label) in dirs.iter().zip(labels) {
        match Point::read(label, dir) {
            Ok(p) => points.push(p),
            Err(e) => sayln!("{}: skipped: {e}", dir.display()),
        }
    }
    if points.is_empty() {
        let d = Diagnostic::error(Code::BadCheckpoint, "none of these folders holds a run")
            .help("give the output folders of runs (with model.safetensors and metrics.jsonl)");
        say!("{}", Report::new("report", String::new(), vec![d]).render(WIDTH, color));
        return ExitCode::from(2);
    }
    out!("{}", sweep::table(&points));
    let mut written = vec![svg.to_path_buf()];
    let mut result = hoyer_runtime::files::write_atomically(svg, sweep::pareto_svg(&points).as_bytes());
    if let Some(json) = json {
        result =
            result.and_then(|()| hoyer_runtime::files::write_atomically(json, sweep::json_text(&points).as_bytes()));
        written.push(json.to_path_buf());
    }
    match result {
        Ok(()) => {
            outln!("  wrote {}", written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!(
                "{}",
                Report::new(&svg.display().to_string(), String::new(), vec![e.diagnostic()]).render(WIDTH, color)
            );
            ExitCode::from(2)
        }
    }
}

/// What every run of a sweep is given besides its `--set` values.
struct PointArgs<'a> {
    data: Option<&'a Path>,
    init: Option<&'a Path>,
    /// `--backend`'s value, as the command line spells it.
    backend: String,
    /// `--rerun-changed`: folders of another spec's runs are trained again.
    rerun_changed: bool,
    /// `--set` values of every point, before the grid's.
    sets: Vec<String>,
    max_steps: Option<u64>,
    threads: Option<usize>,
}

/// `hoyerc run` of a sweep's point into `dir`: resumed where `dir` holds a checkpoint (the
/// initial parameters are then in it), else started with `--init` where one was given.
fn run_command(exe: &Path, file: &Path, dir: &Path, overrides: &[String], shared: &PointArgs) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    // Named `hoyerc` in `ps` and `top`, not by the path it was started through.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::arg0(&mut cmd, "hoyerc");
    cmd.arg("run").arg(file);
    if dir.join("checkpoint.safetensors").is_file() {
        cmd.arg("--resume").arg(dir);
    } else {
        cmd.arg("--out").arg(dir);
        if let Some(init) = shared.init {
            cmd.arg("--init").arg(init);
        }
    }
    for s in shared.sets.iter().chain(overrides) {
        cmd.arg("--set").arg(s);
    }
    if let Some(d) = shared.data {
        cmd.arg("--data").arg(d);
    }
    if let Some(n) = shared.max_steps {
        cmd.args(["--max-steps", &n.to_string()]);
    }
    cmd.args(["--backend", &shared.backend]);
    cmd
}

/// `hoyerc sweep`: every point of the grid as a run of its own (`hoyerc run` in a child
/// process, its output in NAME.log beside its folder), `jobs` at a time; a finished run is
/// kept, a stopped one resumed. Then the comparison of them all.
fn sweep(file: &Path, axes: &[String], jobs: usize, out: Option<PathBuf>, shared: &PointArgs, color: bool) -> ExitCode {
    use hoyer_runtime::sweep;
    let axes: Vec<(String, Vec<String>)> = match axes.iter().map(|a| sweep::parse_axis(a)).collect() {
        Ok(a) => a,
        Err(e) => {
            sayln!("hoyerc sweep: {e}");
            return ExitCode::from(2);
        }
    };
    let points = sweep::grid(&axes);
    // Every point checks before anything runs: a typo in a path or value fails now.
    let (mut plan, mut spec_text) = (None, String::new());
    for p in &points {
        match load_spec(file, color, &[shared.sets.clone(), p.clone()].concat()) {
            Ok((checked, _, original)) => {
                plan = plan.or(checked.program.train);
                spec_text = original;
            }
            Err(_) => return ExitCode::from(1),
        }
    }
    // Where the grid changes nothing before a step of the plan (a prune's threshold, a
    // fine-tuning phase), the steps before it run once and every point branches from there.
    let branch = plan.as_ref().and_then(|plan| {
        let k = axes.iter().filter(|(_, v)| v.len() > 1).map(|(p, _)| plan.step_of_override(p).unwrap_or(0)).min()?;
        (k > 0 && points.len() > 1).then(|| plan.step_names()[k].clone())
    });
    let stem = file.file_stem().map_or("spec".into(), |s| s.to_string_lossy().into_owned());
    let root = out.unwrap_or_else(|| PathBuf::from("runs").join(format!("{stem}-sweep")));
    if let Err(e) = std::fs::create_dir_all(&root) {
        sayln!("hoyerc sweep: cannot create {}: {e}", root.display());
        return ExitCode::from(2);
    }
    // One sweep per folder: a second would train the same points and write the same logs.
    let _lock = match hoyer_runtime::files::FolderLock::take(&root) {
        Ok(lock) => lock,
        Err(e) => return run_error(file, "", &e, color),
    };
    // A folder that holds a run of an edited spec or other `--init` weights is not this
    // sweep's result: refused, or with --rerun-changed trained again.
    let with_fixed = |p: &[String]| [shared.sets.as_slice(), p].concat();
    let mut folders: Vec<(String, Vec<String>)> =
        points.iter().map(|p| (sweep::folder_name(p), with_fixed(p))).collect();
    folders.extend(branch.iter().map(|step| (format!("shared-before-{step}"), with_fixed(&points[0]))));
    // The --init file's size and CRC, read once (it may be large), not once per folder.
    let init = shared.init.map(hoyer_runtime::provenance::init_file);
    let stale: Vec<(String, String)> = folders
        .iter()
        .filter_map(|(name, sets)| {
            Some((name.clone(), sweep::stale(&root.join(name), &spec_text, init.as_ref(), sets)?))
        })
        .collect();
    if !stale.is_empty() && !shared.rerun_changed {
        let list: Vec<String> = stale.iter().map(|(name, why)| format!("{name}: {why}")).collect();
        let e = hoyer_runtime::error::RunError::new(
            Code::NotThisRun,
            format!(
                "{} of the folders in {} hold runs that are not of this sweep: {}",
                stale.len(),
                root.display(),
                list.join("; ")
            ),
        )
        .help("pass --rerun-changed to train those points again, or give this sweep another folder with --out");
        return run_error(file, "", &e, color);
    }
    for (name, why) in &stale {
        outln!("{name}: {why}; trained again (--rerun-changed)");
        let _ = std::fs::remove_dir_all(root.join(name));
        let _ = std::fs::remove_file(root.join(format!("{name}.log")));
    }
    // The runs are this very binary: on Linux through /proc/self/exe, which still runs it
    // where a rebuild has replaced the file on disk since the sweep started.
    let proc_exe = Path::new("/proc/self/exe");
    let exe = match if proc_exe.exists() { Ok(proc_exe.to_path_buf()) } else { std::env::current_exe() } {
        Ok(e) => e,
        Err(e) => {
            sayln!("hoyerc sweep: cannot find hoyerc itself: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs = jobs.clamp(1, points.len().max(1));
    let threads = shared.threads.unwrap_or((hoyer_runtime::cpu::available_cores() / jobs).max(1));
    if let Some(step) = &branch {
        let base = root.join(format!("shared-before-{step}"));
        if !(base.join("checkpoint.safetensors").is_file() && sweep::stopped_before(&base)) {
            outln!(
                "the steps before `{step}` run once, in {}; every point of the grid branches from there",
                base.display()
            );
            let mut cmd = run_command(&exe, file, &base, &points[0], shared);
            cmd.args(["--stop-before", step]);
            match cmd.status() {
                Ok(status) if status.success() => {}
                _ => {
                    sayln!("hoyerc sweep: the shared steps before `{step}` failed (see above); nothing branched");
                    return ExitCode::from(1);
                }
            }
        }
        if let Err(e) = sweep::branch(&base, &root, &points) {
            sayln!("hoyerc sweep: {e}");
            return ExitCode::from(2);
        }
    }
    let total = points.len();
    let command = |dir: &Path, p: &[String]| {
        let mut cmd = run_command(&exe, file, dir, p, shared);
        cmd.args(["--threads", &threads.to_string()]);
        cmd
    };
    let failed = match sweep::run_all(&root, &points, jobs, &command, &mut |line| outln!("{line}")) {
        Ok(failed) => failed,
        Err(e) => {
            sayln!("hoyerc sweep: {e}");
            return ExitCode::from(2);
        }
    };
    let names: Vec<String> = points.iter().map(|p| sweep::folder_name(p)).collect();
    let dirs: Vec<PathBuf> = names.iter().map(|n| root.join(n)).collect();
    let code = compare_runs(&dirs, &names, &root.join("pareto.svg"), Some(&root.join("sweep.json")), color);
    if failed > 0 {
        sayln!("hoyerc sweep: {failed} of {total} runs failed; running the sweep again resumes or retries them");
        return ExitCode::from(1);
    }
    code
}

fn make_backend(
    choice: BackendChoice,
    threads: Option<usize>,
) -> Result<Box<dyn hoyer_runtime::backend::Backend>, hoyer_runtime::error::RunError> {
    let cpu = || -> Result<Box<dyn hoyer_runtime::backend::Backend>, hoyer_runtime::error::RunError> {
        let threads = threads.unwrap_or_else(hoyer_runtime::cpu::available_cores);
        Ok(Box::new(hoyer_runtime::cpu::Cpu::new(threads)?))
    };
    Ok(match choice {
        // The GPU where CUDA can run; else the CPU, saying why where a driver is installed
        // (there, a missing NVRTC or cuBLAS is likely a mistake); the header names the choice.
        BackendChoice::Auto => match hoyer_runtime::cuda::exec::Cuda::new(kernel_cache_dir()) {
            Ok(cuda) => Box::new(cuda),
            Err(e) => {
                if hoyer_runtime::cuda::device::driver_present() {
                    sayln!("note: training on the CPU: CUDA cannot run here ({}, {})", e.code, e.message);
                }
                cpu()?
            }
        },
        BackendChoice::Cpu => cpu()?,
        BackendChoice::Cuda => Box::new(hoyer_runtime::cuda::exec::Cuda::new(kernel_cache_dir())?),
        BackendChoice::Interp => Box::new(hoyer_runtime::backend::Interpreter),
    })
}

/// Where compiled CUDA kernels are kept between runs: `$XDG_CACHE_HOME/hoyer/kernels`, else
/// `~/.cache/hoyer/kernels`, else the temporary folder.
fn kernel_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("hoyer").join("kernels")
}

fn parse_memory(text: &str) -> Result<u64, String> {
    hoyer_runtime::memory::parse_size(text).ok_or_else(|| format!("`{text}` is not a size; write e.g. 16G or 512M"))
}

/// Prints a run's error as a diagnostic (pointing into `text`, the spec, where it can); the
/// exit code (128 + the signal for an interrupt, else 1).
fn run_error(file: &Path, text: &str, e: &hoyer_runtime::error::RunError, color: bool) -> ExitCode {
    let name = file.display().to_string();
    say!("{}", Report::new(&name, text.to_string(), vec![e.diagnostic()]).render(WIDTH, color));
    let signal = hoyer_runtime::train::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed);
    ExitCode::from(if e.code == Code::Interrupted { 128 + signal.clamp(1, 127) as u8 } else { 1 })
}

/// The text of `hoyerc explain`.
fn explain(c: Code) -> String {
    let example = c.example().lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!("{}: {}\n\n{}\n\nA spec that does it right:\n\n{example}", c.as_str(), c.title(), c.explanation())
}

/// The IR of every phase of the training plan, in canonical text form.
fn emit_ir(program: &hoyer_front::program::Program, emit: Emit) -> Result<String, hoyer_compiler::error::CompileError> {
    use hoyer_compiler::error::CompileError;
    use hoyer_compiler::graph::{lower, step};
    use hoyer_compiler::pipeline::{self, Options};
    use hoyer_compiler::{codegen, kernel};
    use hoyer_front::program::PlanStep;
    use hoyer_ir as ir;
    let missing = |what: &str| CompileError::internal("emit", what);
    let plan = program.train.as_ref().ok_or_else(|| missing("the spec has no `train` block"))?;
    let model = program.model(&plan.model).ok_or_else(|| missing("the trained model is missing"))?;
    let batch = plan.batch as usize;
    // What every target's code generator shares (fused multiply-adds included).
    let opts = Options::default();
    let mut out = String::new();
    for s in &plan.steps {
        let PlanStep::Phase(phase) = s else { continue };
        let text = match emit {
            Emit::Ir => ir::print::print(&hoyer_compiler::graph::passes::simplify(
                &lower::lower(program, model, &phase.penalties, batch)?.graph,
            )),
            Emit::Grad => ir::print::print(step::build(program, model, phase, batch)?.graph()),
            Emit::Kernels => kernel::print::print(&pipeline::step(program, model, phase, batch, &opts)?.1.program),
            Emit::Clif => codegen::cpu::clif_text(&pipeline::step(program, model, phase, batch, &opts)?.1.program)?,
            _ => codegen::cuda::render(&pipeline::step(program, model, phase, batch, &opts)?.1.program)?.source,
        };
        out += &format!("phase {} {{\n{text}}}\n", phase.name);
    }
    Ok(out)
}

/// Reads a spec (once), applies `--set` overrides, checks it and prints its diagnostics;
/// when it is valid, the checked spec, the text it was checked from, and the file's text
/// as read (run.json records it).
fn load_spec(path: &Path, color: bool, sets: &[String]) -> Result<(hoyer_front::Checked, String, String), Outcome> {
    let name = path.display().to_string();
    // A spec is text of a few kilobytes; 16 MiB leaves room and keeps /dev/zero out.
    let bytes = hoyer_runtime::files::read_regular(path, 16 << 20).map_err(|e| {
        let d = Diagnostic::error(Code::Io, e).help("check the path; hoyerc takes .hoyer files");
        say!("{}", Report::new(&name, String::new(), vec![d]).render(WIDTH, color));
        Outcome::Unreadable
    })?;
    let original = String::from_utf8_lossy(&bytes).into_owned();
    let (mut text, bad_encoding) = decode(&bytes);
    let mut shown = name.clone();
    let result = match bad_encoding {
        Some(d) => Err(vec![d]),
        None if sets.is_empty() => check_source(&text),
        None => match hoyer_front::syntax::parse::parse(&text) {
            Err(d) => Err(d),
            Ok(file) => match hoyer_front::overrides::apply(&text, &file, sets) {
                Ok(changed) => {
                    text = changed;
                    shown = format!("{name} (with --set)");
                    check_source(&text)
                }
                Err(d) => Err(d),
            },
        },
    };
    match result {
        Ok(checked) => {
            if !checked.warnings.is_empty() {
                say!("{}", Report::new(&shown, text.clone(), checked.warnings.clone()).render(WIDTH, color));
            }
            Ok((checked, text, original))
        }
        Err(diagnostics) => {
            say!("{}", Report::new(&shown, text, diagnostics).render(WIDTH, color));
            Err(Outcome::Invalid)
        }
    }
}

/// Checks one file and prints the requested stage when it is valid.
fn check_file(path: &Path, color: bool, emit: Option<Emit>, sets: &[String]) -> Outcome {
    let checked = match load_spec(path, color, sets) {
        Ok((c, ..)) => c,
        Err(outcome) => return outcome,
    };
    match emit {
        Some(Emit::Ast) => outln!("{:#?}", checked.file),
        Some(Emit::Model) => out!("{}", summary::model_summary(&checked.program)),
        Some(emit) => match emit_ir(&checked.program, emit) {
            Ok(text) => out!("{text}"),
            Err(e) => {
                let name = path.display().to_string();
                say!("{}", Report::new(&name, String::new(), vec![e.diagnostic()]).render(WIDTH, color));
                return Outcome::Invalid;
            }
        },
        None => {}
    }
    Outcome::Valid
}

/// The kernels that took most of a step, longest first (`hoyerc bench --kernels`).
fn print_kernel_times(kernels: &[hoyer_runtime::backend::KernelTime]) {
    const SHOWN: usize = 15;
    if kernels.is_empty() {
        return;
    }
    let ms = |k: &hoyer_runtime::backend::KernelTime| k.time.as_secs_f64() * 1e3;
    let total: f64 = kernels.iter().map(ms).sum();
    let share = |t: f64| 100.0 * t / total.max(1e-12);
    let mut order: Vec<&hoyer_runtime::backend::KernelTime> = kernels.iter().collect();
    order.sort_by_key(|k| std::cmp::Reverse(k.time));
    outln!("  where the step's time goes ({total:.3} ms in {} kernels, each waited for):", kernels.len());
    for k in order.iter().take(SHOWN) {
        outln!("    {:<6} {:>8.3} ms {:>5.1}%  {}", k.name, ms(k), share(ms(k)), k.what);
    }
    if kernels.len() > SHOWN {
        let rest: f64 = order[SHOWN..].iter().map(|k| ms(k)).sum();
        outln!("    {:<6} {:>8.3} ms {:>5.1}%  the other {} kernels", "rest", rest, share(rest), kernels.len() - SHOWN);
    }
}

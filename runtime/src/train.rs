//! The training loop: phases in order, each with its own compiled step, optimizer state,
//! learning-rate schedule and penalties; one-shot prunes between phases, gradual prunes and
//! frozen masks within them; test accuracy and a metrics line after every epoch.

use crate::backend::Backend;
use crate::checkpoint::{Position, Tensors};
use crate::data::{Dataset, Rng};
use crate::error::RunError;
use crate::evaluate::Evaluator;
use crate::feed::Resident;
use crate::files::{write_atomically, FolderLock, Lines};
use crate::masks::Masks;
use crate::plans::Plans;
use crate::provenance;
use crate::prune::{self, Target};
use crate::report::{Report, TensorReport};
use crate::stepper::Stepper;
use crate::store::Store;
use crate::{checkpoint, init, say, sayln, schedule};
use hoyer_front::codes::Code;
use hoyer_front::program::{Model, PhasePlan, PlanStep, Program, PrunePlan, TrainPlan};
use hoyer_front::syntax::ast::GroupKind;
use hoyer_ir::Role;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// run.json's outcome of a run that `--stop-before` stopped (a sweep's shared run).
pub const STOPPED_BEFORE: &str = "stopped before a step of the plan (--stop-before)";

pub struct RunOptions {
    pub out_dir: PathBuf,
    /// Stop after this many optimizer steps in total (the outputs are still written).
    pub max_steps: Option<u64>,
    /// Stop before this step of the plan (its index), with the checkpoint taken between
    /// steps: where the runs of a sweep branch (each resumes a copy with its own `--set`).
    pub stop_before: Option<usize>,
    pub seed: Option<u64>,
    /// Initial parameters; overrides the spec's `init from`.
    pub init: Option<PathBuf>,
    /// Where IDX data lives; otherwise next to the spec, then `data_fallback`.
    pub data_dir: Option<PathBuf>,
    /// The last place to look for IDX data (the CLI passes `$HOYER_DATA`).
    pub data_fallback: Option<PathBuf>,
    /// The spec's folder: relative paths in the spec start there.
    pub spec_dir: PathBuf,
    /// Draw a progress bar (on a terminal); a line per epoch is printed either way.
    pub progress: bool,
    /// Continue from `out_dir/checkpoint.safetensors`.
    pub resume: bool,
    /// The spec file and its text as read (before `--set`), and the `--set` options given:
    /// recorded in run.json, and checked on a resume.
    pub spec_path: PathBuf,
    pub spec_text: String,
    pub overrides: Vec<String>,
    /// The spec's text with the `--set` overrides applied (what was checked and runs).
    pub effective_text: String,
    /// The memory the run may use, in bytes (otherwise what the machine has available).
    pub memory_limit: Option<u64>,
}

impl RunOptions {
    /// Where this run looks for data files.
    pub fn folders(&self) -> crate::data::load::Folders {
        crate::data::load::Folders {
            data_dir: self.data_dir.clone(),
            spec_dir: self.spec_dir.clone(),
            data_fallback: self.data_fallback.clone(),
        }
    }
}

/// Set (by the CLI's Ctrl-C handler) to stop after the current step with a checkpoint.
/// The signal that asked the run to stop (SIGINT, SIGTERM, SIGHUP), or 0: set by the CLI's
/// handler; the run then finishes its step, writes a checkpoint and stops.
pub static INTERRUPTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

fn interrupted() -> Option<i32> {
    Some(INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)).filter(|&s| s != 0)
}

/// The usual name of a stopping signal.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT (Ctrl-C)",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub steps: u64,
    pub test_accuracy: f64,
    pub density: f64,
    pub train_loss: f64,
}

/// How often (in steps) the host reads the running loss: for the progress line, and to stop
/// a diverging run. Reading it every step would tie the host to the device step by step.
const READ_EVERY: u64 = 10;

/// The run folder's copy of every message the run gives (`messages.rs`).
pub const LOG: &str = "log.txt";

pub fn run(program: &Program, backend: &dyn Backend, opts: &RunOptions) -> Result<Outcome, RunError> {
    let plan = program.train.as_ref().ok_or("the spec has no `train` block")?;
    let model = program.model(&plan.model).ok_or("the trained model is missing")?;
    let seed = opts.seed.unwrap_or(plan.seed);
    // Every program of the run is compiled once, here: the estimate's steps are the run's.
    let plans = Plans::new(backend.options());
    let limit = crate::memory::Limit::find(opts.memory_limit);
    let estimate = std::cell::RefCell::new(None);
    // Before anything large is allocated: does the run fit in memory?
    let fits = |samples: usize| -> Result<(), RunError> {
        match limit {
            Some(limit) => {
                let e = crate::memory::estimate(program, plan, model, samples, &plans)?;
                crate::memory::check(&e, limit)?;
                *estimate.borrow_mut() = Some(e);
                Ok(())
            }
            None => Ok(()),
        }
    };
    let (mut data, data_record, data_line) = crate::data::load::load(program, plan, model, &opts.folders(), &fits)
        .map_err(|e| {
            // Data that cannot be found or read points at the spec's data source.
            match program.data_set(&plan.data) {
                Some(ds) if e.label.is_none() && matches!(e.code, Code::DataNotFound | Code::BadDataFile) => {
                    e.at(ds.span, "the data read here")
                }
                _ => e,
            }
        })?;
    crate::data::load::check_token_ids(&data, model)?;
    let validation = match plan.validation {
        Some((n, span)) if n as usize >= data.train.len() => {
            return Err(RunError::new(
                Code::DataMismatch,
                format!("a validation split of {n} leaves no training data: the training set has {}", data.train.len()),
            )
            .help("hold out fewer samples, e.g. a tenth of the training set")
            .at(span, format!("{n} samples")))
        }
        Some((n, _)) => Some(crate::data::hold_out(&mut data.train, n as usize, data.features, plan.seed)),
        None => None,
    };
    // Scores per sample are the output's last axis (per position, for a language model).
    let outputs = *model.nodes[model.output].shape.last().unwrap_or(&1) as usize;
    if data.classes > outputs {
        return Err(RunError::new(
            Code::ClassCount,
            format!("the data has {} classes but model `{}` gives {outputs} scores", data.classes, model.name),
        )
        .help(format!("end the model with `dense(..., {})`", data.classes))
        .at(model.nodes[model.output].span, format!("{outputs} scores")));
    }
    // The last batch of an epoch, where it holds a single sample, is a batch of one for batch
    // norm on vectors and 1×1 maps (the checker knew the batch size, not the data's).
    let last_batch = data.train.len() % plan.batch as usize;
    let one_value =
        |n: &&hoyer_front::program::Node| n.layer.batch_statistics() && n.shape.iter().skip(1).product::<u64>() == 1;
    if let (1, Some(node)) = (last_batch, model.nodes.iter().find(one_value)) {
        return Err(RunError::new(
            Code::BatchNormOneValue,
            format!(
                "the last batch of every epoch holds one sample ({} training samples, batch {}): batch norm `{}` would see one value per channel",
                data.train.len(),
                plan.batch,
                node.binding.as_deref().unwrap_or("batchnorm")
            ),
        )
        .help("choose a batch size that leaves more than one sample in the last batch")
        .at(node.span, "normalizes each channel over the batch"));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| {
        RunError::new(Code::WriteFailed, format!("cannot create {}: {e}", opts.out_dir.display()))
            .help("choose a folder you can write with --out")
    })?;
    // One run per folder: the lock lives as long as this function.
    let _lock = FolderLock::take(&opts.out_dir)?;
    crate::files::remove_leftovers(&opts.out_dir);
    // The run's messages also go to its folder, where a closed stderr cannot lose them.
    let _log = crate::messages::log_to(&opts.out_dir.join(LOG));
    // What this run is (run.json), and on a resume, that it is the run the folder holds.
    let mut record =
        provenance::record(&opts.spec_path, &opts.spec_text, &opts.overrides, seed, &backend.describe(), data_record);
    let init_path = opts.init.clone().or_else(|| plan.init.as_ref().map(|p| opts.spec_dir.join(p)));
    if let Some(path) = init_path.as_ref().filter(|_| !opts.resume) {
        record["init"] = provenance::init_file(path);
    }
    if opts.resume {
        let stored = provenance::read(&opts.out_dir).map_err(|e| {
            RunError::new(Code::BadCheckpoint, format!("cannot resume: {e}"))
                .help("restore run.json (it says what the run was: its --set values, its data), or start the run again with --out")
        })?;
        match stored {
            Some(stored) => {
                provenance::check_resume(&stored, &record, &opts.out_dir)?;
                let mut resumes = stored["resumes"].as_array().cloned().unwrap_or_default();
                resumes.push(serde_json::json!({ "started": record["started"], "overrides": opts.overrides }));
                let mut kept = stored.clone();
                kept["resumes"] = resumes.into();
                kept["ended"] = serde_json::Value::Null;
                kept["outcome"] = serde_json::Value::Null;
                record = kept;
            }
            None => sayln!(
                "warning: {} has no run.json: cannot check that it holds a run of this spec",
                opts.out_dir.display()
            ),
        }
    }
    provenance::write(&opts.out_dir, &record)?;
    sayln!(
        "hoyerc: training `{}` on {data_line}; {}; seed {seed}; writing {}",
        model.name,
        backend.describe(),
        opts.out_dir.display()
    );
    // A run resumed after `then shrink` goes on with the shrunk model its checkpoint holds.
    let spec_model = model;
    let shrunk;
    let model = match opts.resume {
        true => {
            let path = opts.out_dir.join(checkpoint::CHECKPOINT);
            let widths = checkpoint::shrunk_widths(&path, model);
            shrunk = hoyer_compiler::shrink::with_widths(model, &widths).map_err(|e| {
                RunError::new(Code::BadCheckpoint, format!("cannot resume: {}: {e}", path.display())).help(
                    "the checkpoint is not of this spec's model, nor of a shrink of it; start the run again with --out",
                )
            })?;
            &shrunk
        }
        false => model,
    };
    let resumed = if opts.resume {
        let path = opts.out_dir.join(checkpoint::CHECKPOINT);
        let c = checkpoint::load_checkpoint(&path, model).map_err(|e| {
            RunError::new(Code::BadCheckpoint, format!("cannot resume: {e}"))
                .help("--resume takes the output folder of an earlier run of this spec")
        })?;
        let shrunk_before = model.params.iter().map(|p| &p.shape).ne(spec_model.params.iter().map(|p| &p.shape));
        check_position(plan, &c.position, data.train.len())
            .and_then(|()| check_shrunk(plan, &c.position, shrunk_before, &opts.out_dir, model))
            .map_err(|e| {
                RunError::new(Code::BadCheckpoint, format!("cannot resume: {}: {e}", path.display()))
                    .help("the checkpoint does not belong to this spec's plan; start the run again with --out")
            })?;
        Some(c)
    } else {
        None
    };
    let resume_at =
        resumed.as_ref().map(|c| Resume { position: c.position, states: c.states.clone(), sums: c.epoch_sums });
    let (params, masks, seed, start) = match resumed {
        Some(c) => (c.params, Masks::from_tensors(c.masks), c.seed, c.position),
        None => {
            let params = match init_path {
                Some(path) => {
                    let params = checkpoint::load(&path, model).map_err(|e| RunError::new(Code::BadCheckpoint, e))?;
                    let extra = checkpoint::extra_tensors(&path, model);
                    if !extra.is_empty() {
                        sayln!(
                            "warning: {} has tensors model `{}` does not use (ignored): {}",
                            path.display(),
                            model.name,
                            extra.join(", ")
                        );
                    }
                    params
                }
                None => init::pytorch_default(model, seed),
            };
            let masks = Masks::ones(&params);
            (params, masks, seed, Position::default())
        }
    };
    // A run stopped inside an epoch wrote a line for its part; the resumed epoch writes its own.
    let kept = if start.batch > 0 { start.global_step.saturating_sub(1) } else { start.global_step };
    let metrics = open_metrics(&opts.out_dir.join("metrics.jsonl"), kept)?;
    // The data set moves into the store once; the host keeps only the labels.
    let mut store = Store::new();
    let sample: Vec<usize> = model.input_shape.iter().map(|&d| d as usize).collect();
    let dtype = model.input_dtype;
    let mut train = Resident::upload(&mut store, "train", &data.train, &sample, dtype)?;
    if let Some(ds) = program.data_set(&plan.data).filter(|d| d.augment.any()) {
        let padding = ds.augment.crop.map_or(0, |c| c.1 as usize);
        train.augment(&mut store, hoyer_compiler::graph::lower::Augmentation { padding, flip: ds.augment.hflip })?;
    }
    let test = Resident::upload(&mut store, "test", &data.test, &sample, dtype)?;
    let validation = match validation {
        Some(v) => Some((Resident::upload(&mut store, "validation", &v, &sample, dtype)?, v.y)),
        None => None,
    };
    data.train.x = Vec::new();
    data.test.x = Vec::new();
    let mut t = Trainer {
        plans,
        memory: limit.zip(estimate.into_inner()),
        program,
        plan,
        model: model.clone(),
        original_size: spec_model.parameter_count() as usize,
        backend,
        data,
        params,
        masks,
        metrics,
        opts,
        seed,
        global_step: start.global_step,
        last: None,
        store,
        train,
        test,
        evaluator: Evaluator::new(plan.batch as usize),
        accuracy: None,
        validation,
        validation_accuracy: None,
        validation_loss: None,
        test_loss: None,
        text: matches!(
            program.data_set(&plan.data).map(|d| &d.source),
            Some(hoyer_front::program::DataSource::Text { .. })
        ),
        reports: vec![],
        // A resumed run keeps saying what the steps before it did.
        earlier_reports: if opts.resume { earlier_reports(&opts.out_dir, plan, start.plan_step) } else { vec![] },
        shrinks: if opts.resume { earlier_steps(&opts.out_dir, "shrink", plan, start.plan_step) } else { vec![] },
        prunes: if opts.resume { earlier_steps(&opts.out_dir, "prunes", plan, start.plan_step) } else { vec![] },
        stopped_before: false,
    };
    t.sync_to_store()?;
    let result = t.all_phases(start.plan_step, resume_at);
    // Whatever happened, the last parameters are written, and run.json says how it ended.
    record["ended"] = provenance::now().into();
    record["steps"] = t.global_step.into();
    record["outcome"] = match &result {
        Ok(()) if t.stopped_before => STOPPED_BEFORE.into(),
        Ok(()) => "finished".into(),
        Err(e) => format!("{}: {}", e.code, e.message).into(),
    };
    let saved = t.save();
    record["compiled"] = t
        .plans
        .compiled()
        .iter()
        .map(|c| serde_json::json!({ "program": c.what, "batch": c.batch, "parameters": c.parameters }))
        .collect::<Vec<_>>()
        .into();
    provenance::write(&opts.out_dir, &record)?;
    saved?;
    result?;
    if t.accuracy.is_none() {
        t.accuracy = Some(t.evaluate()?);
        t.validation_accuracy = t.evaluate_validation()?;
    }
    let last = t.report(None);
    // After a final phase its own table already said it all.
    let repeats = matches!(plan.steps.last(), Some(PlanStep::Phase(_)))
        && t.reports.len() + t.earlier_reports.len()
            == plan.steps.iter().filter(|s| matches!(s, PlanStep::Phase(_))).count();
    if !repeats {
        say!("{}", last.table());
    }
    t.write_reports(Some(&last))?;
    Ok(Outcome {
        steps: t.global_step,
        test_accuracy: t.accuracy.unwrap_or(f64::NAN),
        density: t.density(),
        train_loss: t.last.map_or(f64::NAN, |l| l.0),
    })
}

/// Finds and loads the data set.
/// Opens metrics.jsonl for appending. A resumed run keeps the lines of steps up to
/// `kept_steps` (those before its checkpoint), rewritten atomically; a fresh run starts the
/// file anew.
fn open_metrics(path: &Path, kept_steps: u64) -> Result<Lines, RunError> {
    let mut kept = String::new();
    if kept_steps > 0 {
        let text = crate::files::read_regular(path, 1 << 30).unwrap_or_default();
        for line in String::from_utf8_lossy(&text).lines() {
            let step = serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v["step"].as_u64());
            if step.is_some_and(|s| s <= kept_steps) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    Lines::open(path, Some(&kept))
}

struct Trainer<'a> {
    /// Every program the run compiles, each once.
    plans: Plans,
    /// The memory limit and the estimate checked against it at the start.
    memory: Option<(crate::memory::Limit, crate::memory::Estimate)>,
    program: &'a Program,
    plan: &'a TrainPlan,
    /// The model being trained: the spec's, or after `then shrink` the smaller one.
    model: Model,
    /// The spec's model's parameter count (trainable tensors, as PyTorch's `parameters()`:
    /// batch norm's running statistics are buffers), what density is a fraction of.
    original_size: usize,
    backend: &'a dyn Backend,
    data: Dataset,
    params: Vec<(String, Vec<f32>)>,
    /// Every parameter's mask (`masks.rs`).
    masks: Masks,
    metrics: Lines,
    opts: &'a RunOptions,
    seed: u64,
    global_step: u64,
    /// Last epoch's (train loss, penalty).
    last: Option<(f64, f64)>,
    /// Every tensor of the run: parameters, masks, optimizer state, the data sets.
    store: Store,
    train: Resident,
    test: Resident,
    /// The forward passes that evaluate the test and validation splits (one per batch size).
    evaluator: Evaluator,
    /// The latest test accuracy.
    accuracy: Option<f64>,
    /// The held-out training samples and their labels (`validation N`), and their accuracy.
    validation: Option<(Resident, Vec<u32>)>,
    validation_accuracy: Option<f64>,
    /// Their mean cross-entropy at the last evaluation.
    validation_loss: Option<f64>,
    /// The test split's mean cross-entropy at the last evaluation.
    test_loss: Option<f64>,
    /// Text data: losses are per byte, and the epoch line gives bits per byte.
    text: bool,
    /// One report per finished phase.
    reports: Vec<Report>,
    /// The reports of phases finished before a resume (from report.json).
    earlier_reports: Vec<serde_json::Value>,
    /// Each `then shrink`, as report.json records it (`shrink_record`).
    shrinks: Vec<serde_json::Value>,
    /// Each prune of the plan: what it zeroed, per tensor (`prune::Pruned`).
    prunes: Vec<serde_json::Value>,
    /// Whether `--stop-before` stopped the run.
    stopped_before: bool,
}

impl Trainer<'_> {
    /// Runs the plan from step `first`; `resume` is where a resumed run stopped inside it.
    fn all_phases(&mut self, first: usize, mut resume: Option<Resume>) -> Result<(), RunError> {
        let names = self.plan.step_names();
        for (i, s) in self.plan.steps.iter().enumerate().skip(first) {
            if self.budget_spent() {
                break;
            }
            if self.opts.stop_before == Some(i) {
                self.stopped_before = true;
                break;
            }
            let finished = match s {
                PlanStep::Phase(p) => {
                    let from = resume.take().filter(|r| r.position.plan_step == i);
                    let done = self.phase(i, p, from)?;
                    if done {
                        let r = self.report(Some(p.name.clone()));
                        say!("{}", r.table());
                        self.reports.push(r);
                    }
                    done
                }
                PlanStep::Prune(p) => {
                    resume = None;
                    self.prune_once(Some(&names[i]), p, None);
                    if p.shrink {
                        self.shrink(&names[i])?;
                    }
                    self.sync_to_store()?;
                    true
                }
            };
            // Between steps of the plan: a checkpoint with no optimizer state (a phase that
            // stopped early left its own).
            if finished {
                // report.json so far, before the checkpoint that skips this step on a resume:
                // a resumed run's report then goes on from it.
                self.write_reports(None)?;
                let at =
                    Position { plan_step: i + 1, epoch: 0, batch: 0, phase_steps: 0, global_step: self.global_step };
                self.checkpoint(at, vec![], &Sums::default())?;
            }
        }
        Ok(())
    }

    fn report(&self, phase: Option<String>) -> Report {
        let tensors = self
            .params
            .iter()
            .filter(|(n, _)| self.model.param(n).is_none_or(|p| p.trainable()))
            .map(|(n, v)| {
                TensorReport::new(n, &self.model.param(n).map_or_else(|| vec![v.len() as u64], |p| p.shape.clone()), v)
            })
            .collect();
        Report { phase, tensors, test_accuracy: self.accuracy, validation_accuracy: self.validation_accuracy }
    }

    /// report.json (every finished phase's report, each shrink, and at the end the final
    /// report) and curves.svg; written after every step of the plan and at the end.
    fn write_reports(&self, last: Option<&Report>) -> Result<(), RunError> {
        let mut json = serde_json::json!({
            "phases": self.earlier_reports.iter().cloned().chain(self.reports.iter().map(Report::to_json)).collect::<Vec<_>>(),
        });
        if let Some(last) = last {
            json["final"] = last.to_json();
        }
        if !self.shrinks.is_empty() {
            json["shrink"] = self.shrinks.clone().into();
        }
        if !self.prunes.is_empty() {
            json["prunes"] = self.prunes.clone().into();
        }
        let path = self.opts.out_dir.join("report.json");
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        write_atomically(&path, (text + "\n").as_bytes())?;
        let metrics = crate::report::read_metrics(&self.opts.out_dir);
        let svg = self.opts.out_dir.join("curves.svg");
        write_atomically(&svg, crate::report::curves_svg(&metrics).as_bytes())
    }

    fn checkpoint(&self, position: Position, states: Tensors, sums: &Sums) -> Result<(), RunError> {
        let masks = self.params.iter().map(|(n, _)| (n.clone(), self.masks.get(n).to_vec())).collect();
        let c = checkpoint::Checkpoint {
            position,
            seed: self.seed,
            params: self.params.clone(),
            masks,
            states,
            epoch_sums: (sums.loss, sums.penalty, sums.steps as u64),
        };
        checkpoint::save_checkpoint(&self.opts.out_dir.join(checkpoint::CHECKPOINT), &self.model, &c)
    }

    fn budget_spent(&self) -> bool {
        self.opts.max_steps.is_some_and(|m| self.global_step >= m)
    }

    /// Applies `plan` to the masks (at `target` sparsity for a gradual prune) and zeroes the
    /// pruned weights.
    /// Prunes by `plan` (at `target` sparsity for a gradual prune's step); a prune of the
    /// plan (`step` its name) says what it removed and report.json records it, a gradual
    /// prune's many small steps do not.
    fn prune_once(&mut self, step: Option<&str>, plan: &PrunePlan, target: Option<f64>) {
        let criterion = match (target, &plan.criterion) {
            (Some(t), hoyer_front::program::PruneCriterion::Sparsity { global, .. }) => {
                hoyer_front::program::PruneCriterion::Sparsity { target: t, global: *global }
            }
            _ => plan.criterion.clone(),
        };
        let mut masks: Vec<(String, Vec<f32>)> =
            plan.tensors.iter().map(|n| (n.clone(), self.masks.get(n).to_vec())).collect();
        // A coupled prune's unit groups: each row's other members, measured and zeroed with it.
        let groups: Vec<Vec<hoyer_front::program::Member>> = plan
            .tensors
            .iter()
            .map(|n| match (plan.coupled, self.model.unit_group(n)) {
                (true, Some(g)) => g.others().to_vec(),
                _ => vec![],
            })
            .collect();
        let mut part_masks: Vec<(String, Vec<f32>)> = Vec::new();
        let pruned = {
            let values_of = |n: &str| &self.params.iter().find(|p| p.0 == n).expect("selected parameter exists").1;
            let shape_of = |n: &str| &self.model.param(n).expect("selected parameter exists").shape;
            let mut targets: Vec<Target> = masks
                .iter_mut()
                .zip(&groups)
                .map(|((n, m), others)| {
                    let parts = others
                        .iter()
                        .map(|o| prune::Part {
                            values: values_of(&o.name),
                            shape: shape_of(&o.name),
                            along: o.along,
                            mask: self.masks.get(&o.name).to_vec(),
                        })
                        .collect();
                    Target { values: values_of(n), shape: shape_of(n), mask: m, parts }
                })
                .collect();
            let pruned = prune::prune(&criterion, &mut targets);
            for (t, others) in targets.into_iter().zip(&groups) {
                part_masks.extend(others.iter().map(|o| o.name.clone()).zip(t.parts.into_iter().map(|p| p.mask)));
            }
            pruned
        };
        // Groups overlap (a layer's columns are in the group before it): a tensor keeps what
        // every group that holds it keeps.
        for (n, m) in part_masks {
            match masks.iter_mut().find(|(k, _)| *k == n) {
                Some((_, mine)) => mine.iter_mut().zip(&m).for_each(|(a, b)| *a *= b),
                None => masks.push((n, m)),
            }
        }
        // A pruned filter or neuron takes its batch norm's γ and β with it.
        let rows = !plan.coupled
            && matches!(
                criterion,
                hoyer_front::program::PruneCriterion::Groups { kind: GroupKind::Rows | GroupKind::Groups, .. }
            );
        let mut coupled: Vec<(String, Vec<f32>)> = Vec::new();
        if rows {
            for (n, m) in &masks {
                let width = self.model.param(n).map_or(1, |p| p.shape[0] as usize).max(1);
                let per_row = m.len() / width;
                let gone: Vec<usize> =
                    (0..width).filter(|r| m[r * per_row..(r + 1) * per_row].iter().all(|&x| x == 0.0)).collect();
                if gone.is_empty() {
                    continue;
                }
                for c in hoyer_compiler::shrink::coupled_with_rows(&self.model, n) {
                    let mut cm = coupled
                        .iter()
                        .find(|(k, _)| *k == c)
                        .map_or_else(|| self.masks.get(&c).to_vec(), |(_, v)| v.clone());
                    let len = cm.len();
                    gone.iter().filter(|&&r| r < len).for_each(|&r| cm[r] = 0.0);
                    coupled.retain(|(k, _)| *k != c);
                    coupled.push((c, cm));
                }
            }
        }
        if let Some(step) = step {
            let lines: Vec<String> = plan
                .tensors
                .iter()
                .zip(&pruned)
                .map(|(n, p)| match self.model.unit_group(n).filter(|g| plan.coupled && !g.others().is_empty()) {
                    Some(g) => p.line(&format!("{n} with {}", g.describe_others())),
                    None => p.line(n),
                })
                .collect();
            sayln!("{step}: {}", lines.join("\n         "));
            if !coupled.is_empty() {
                let names: Vec<&str> = coupled.iter().map(|c| c.0.as_str()).collect();
                sayln!("         and with each zeroed row its batch norm's scale and shift: {}", names.join(", "));
            }
            self.prunes.push(serde_json::json!({
                "step": step,
                "tensors": plan.tensors.iter().zip(&pruned).map(|(n, p)| p.to_json(n)).collect::<Vec<_>>(),
                "coupled": if plan.coupled {
                    groups.iter().flatten().map(|m| m.name.clone()).fold(Vec::<String>::new(), |mut v, n| {
                        if !v.contains(&n) {
                            v.push(n);
                        }
                        v
                    })
                } else {
                    coupled.iter().map(|c| c.0.clone()).collect::<Vec<_>>()
                },
            }));
        }
        masks.extend(coupled);
        for (n, m) in masks {
            if let Some(p) = self.params.iter_mut().find(|p| p.0 == n) {
                p.1.iter_mut().zip(&m).for_each(|(w, &k)| *w *= k);
            }
            self.masks.replace(&n, m);
        }
    }

    /// `then shrink`: the model becomes the smaller one with the same logits
    /// (`hoyer_compiler::shrink`), its parameters and masks cut to it; later phases compile
    /// and train it. The store's tensors of the old shapes are retired, not freed (compiled
    /// programs held their addresses); the evaluators compile again.
    fn shrink(&mut self, step: &str) -> Result<(), RunError> {
        let weights: hoyer_compiler::shrink::Weights = self.params.iter().cloned().collect();
        let s = hoyer_compiler::shrink::shrink(&self.model, &weights).map_err(|e| {
            RunError::new(Code::Unsupported, e).help("drop `, then shrink`: the pruned groups then stay as zeros")
        })?;
        let before = self.model.clone();
        for (name, v) in self.params.iter_mut() {
            let cut = match s.weights.get(name) {
                Some(w) => w.clone(),
                None => s.cut(&self.model, name, v).ok_or_else(|| format!("cannot shrink `{name}`"))?,
            };
            let mask = s
                .cut(&self.model, name, self.masks.get(name))
                .ok_or_else(|| format!("cannot shrink `{name}`'s mask"))?;
            *v = cut;
            self.masks.replace(name, mask);
            self.store.retire(name);
        }
        self.model = s.model;
        self.evaluator = Evaluator::new(self.plan.batch as usize);
        sayln!("shrink: {}  →  {}", summary_line(&before), summary_line(&self.model));
        for note in &s.notes {
            sayln!("        {note}");
        }
        let mut record = shrink_record(step, &before, &self.model);
        record["kept"] = s.notes.clone().into();
        self.shrinks.push(record);
        Ok(())
    }

    /// Runs phase `index` of the plan, from its start or from where a checkpoint left it;
    /// `false` when `--max-steps` stopped it first.
    fn phase(&mut self, index: usize, phase: &PhasePlan, from: Option<Resume>) -> Result<bool, RunError> {
        let batch = self.plan.batch as usize;
        let n = self.data.train.len();
        if phase.masks_frozen || !phase.gradual.is_empty() {
            // Frozen masks hold pruned weights at zero from the first step.
            for (name, v) in self.params.iter_mut() {
                v.iter_mut().zip(self.masks.get(name)).for_each(|(w, &m)| *w *= m);
            }
            self.sync_to_store()?;
        }
        // A phase after a shrink is compiled only now: check that it fits as the estimate did.
        if let Some((limit, estimate)) = &self.memory {
            let arena = self.plans.step(self.program, &self.model, phase, batch)?.program.arena as u64;
            if let Some(e) = estimate.with_scratch(batch, arena * 4) {
                crate::memory::check(&e, *limit)?;
            }
        }
        let mut stepper = Stepper::new(
            &self.plans,
            self.backend,
            &mut self.store,
            self.program,
            &self.model,
            phase,
            batch,
            n % batch,
            &self.train,
        )?
        .salted(self.seed ^ (index as u64).wrapping_mul(0x5851_F42D_4C95_7F2D));
        let (start_epoch, skip, mut t) = match &from {
            // At a phase's start there is no optimizer state yet.
            Some(r) if r.position.phase_steps > 0 => {
                stepper.restore_state(&mut self.store, &r.states, r.position.phase_steps)?;
                (r.position.epoch, r.position.batch as usize, r.position.phase_steps)
            }
            _ => (0, 0, 0),
        };
        // A run stopped inside an epoch carries on that epoch's sums.
        let mut carried = from.filter(|r| r.position.batch > 0).map(|r| r.sums);
        let steps_per_epoch = n.div_ceil(batch) as u64;
        let bar = self.progress_bar(phase, steps_per_epoch * phase.epochs);
        if let Some(b) = &bar {
            b.set_position(t);
        }
        let mut rng = Rng::new(self.seed ^ (index as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D));
        // A resumed phase replays the shuffles of the epochs it skips, so that its batches
        // are the ones an uninterrupted run would see.
        for _ in 0..start_epoch {
            if self.plan.shuffle {
                let mut skipped: Vec<usize> = (0..n).collect();
                rng.shuffle(&mut skipped);
            }
        }
        for epoch in start_epoch..phase.epochs {
            let strengths: Vec<f64> = phase.penalties.iter().map(|p| schedule::strength(&p.strength, epoch)).collect();
            let mut order: Vec<usize> = (0..n).collect();
            if self.plan.shuffle {
                rng.shuffle(&mut order);
            }
            // The epoch's order goes to the store once; each step then names where it starts.
            self.train.set_order(&mut self.store, &order)?;
            // So do its augmentations: drawn from the seed, the phase and the epoch alone, so
            // that a resumed run sees the same ones.
            let mut augment =
                Rng::new(self.seed ^ 0xA116_3E17 ^ ((index as u64) << 32 | epoch).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            self.train.draw(&mut self.store, &mut augment)?;
            let started = Instant::now();
            let mut sums = Sums::default();
            if let Some((loss, penalty, steps)) = carried.take() {
                sums = Sums { loss, penalty, steps: steps as usize, read: steps as usize, samples: 0 };
            }
            let first = if epoch == start_epoch { skip } else { 0 };
            let batches = n.div_ceil(batch);
            for b in first..batches {
                let size = batch.min(n - b * batch);
                if self.budget_spent() {
                    // Stopped by --max-steps: a checkpoint lets --resume carry on from here.
                    sums.add(stepper.take_sums(&mut self.store)?);
                    self.read_params(phase, epoch)?;
                    let at = Position {
                        plan_step: index,
                        epoch,
                        batch: b as u64,
                        phase_steps: t,
                        global_step: self.global_step,
                    };
                    let state = stepper.state(&mut self.store)?;
                    self.checkpoint(at, state, &sums)?;
                    if sums.steps > 0 {
                        self.finish_epoch(phase, epoch, &sums, started)?;
                    }
                    return Ok(false);
                }
                for g in &phase.gradual {
                    let gradual = g.gradual.as_ref().expect("a gradual prune has a schedule");
                    if t.is_multiple_of(gradual.every_steps) {
                        let target = match g.criterion {
                            hoyer_front::program::PruneCriterion::Sparsity { target, .. } => target,
                            _ => 0.0,
                        };
                        let now = schedule::gradual_target(target, gradual, t, steps_per_epoch);
                        if now > 0.0 {
                            self.read_params(phase, epoch)?;
                            self.prune_once(None, g, Some(now));
                            self.sync_to_store()?;
                        }
                    }
                }
                let lr = schedule::learning_rate(
                    phase.optimizer.lr(),
                    &phase.lr_schedule,
                    epoch,
                    phase.epochs,
                    b as u64,
                    steps_per_epoch,
                );
                t += 1;
                stepper.step(&mut self.store, &self.train, b * batch, size, lr, &strengths)?;
                sums.steps += 1;
                sums.samples += size;
                self.global_step += 1;
                if self.global_step.is_multiple_of(READ_EVERY) || b + 1 == batches {
                    sums.add(stepper.take_sums(&mut self.store)?);
                    if !sums.loss.is_finite() {
                        return Err(self.diverged(phase, epoch, &format!("the loss became {}", sums.loss)));
                    }
                    if !sums.penalty.is_finite() {
                        return Err(self.diverged(phase, epoch, &format!("the penalty became {}", sums.penalty)));
                    }
                    if let Some(bar) = &bar {
                        let rate = sums.samples as f64 / started.elapsed().as_secs_f64().max(1e-9);
                        bar.set_message(format!("loss {:.4}  {:.0} samples/s", sums.loss / sums.read as f64, rate));
                    }
                }
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                if let Some(signal) = interrupted() {
                    sums.add(stepper.take_sums(&mut self.store)?);
                    self.read_params(phase, epoch)?;
                    let at = Position {
                        plan_step: index,
                        epoch,
                        batch: b as u64 + 1,
                        phase_steps: t,
                        global_step: self.global_step,
                    };
                    let state = stepper.state(&mut self.store)?;
                    self.checkpoint(at, state, &sums)?;
                    return Err(RunError::new(Code::Interrupted, format!(
                        "interrupted by {} in phase `{}`, epoch {}, after step {}; checkpoint written; continue with --resume {}",
                        signal_name(signal),
                        phase.name,
                        epoch + 1,
                        self.global_step,
                        self.opts.out_dir.display()
                    )));
                }
            }
            self.read_params(phase, epoch)?;
            self.finish_epoch(phase, epoch, &sums, started)?;
            let every = self.plan.checkpoint_every.unwrap_or(0);
            if every > 0 && (epoch + 1).is_multiple_of(every) && epoch + 1 < phase.epochs {
                let at = Position {
                    plan_step: index,
                    epoch: epoch + 1,
                    batch: 0,
                    phase_steps: t,
                    global_step: self.global_step,
                };
                let state = stepper.state(&mut self.store)?;
                self.checkpoint(at, state, &Sums::default())?;
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok(true)
    }

    /// Copies the parameters from the store into the host's copy (the last good weights),
    /// unless one holds a NaN or an infinity: then the run stops (E0703) naming the first such
    /// tensor, and the host keeps the weights from before.
    fn read_params(&mut self, phase: &PhasePlan, epoch: u64) -> Result<(), RunError> {
        for (name, _) in &self.params {
            if let Some(id) = self.role_of(name).and_then(|r| self.store.find(&r)) {
                let bad = self.store.read(id)?.iter().filter(|x| !x.is_finite()).count();
                if bad > 0 {
                    return Err(self.diverged(
                        phase,
                        epoch,
                        &format!("`{name}` holds {bad} NaN or infinite value{}", if bad == 1 { "" } else { "s" }),
                    ));
                }
            }
        }
        for (name, v) in self.params.iter_mut() {
            let role = self.model.param(name).map(|p| p.role());
            if let Some(id) = role.and_then(|r| self.store.find(&r)) {
                v.copy_from_slice(self.store.read(id)?);
            }
        }
        Ok(())
    }

    /// The role of parameter or buffer `name` of the model being trained.
    fn role_of(&self, name: &str) -> Option<Role> {
        self.model.param(name).map(|p| p.role())
    }

    /// The error that stops a diverging run: where, what went bad, and what is kept.
    fn diverged(&self, phase: &PhasePlan, epoch: u64, what: &str) -> RunError {
        RunError::new(
            Code::Diverged,
            format!(
                "{what} in phase `{}`, epoch {}, step {} (checked every {READ_EVERY} steps); the last checkpoint and model.safetensors hold the weights from before",
                phase.name,
                epoch + 1,
                self.global_step
            ),
        )
        .help("lower the learning rate or the penalty strength (a ramp helps), then resume from the checkpoint or rerun")
    }

    /// Writes the host's parameters and masks into the store (after a prune, or at the start).
    fn sync_to_store(&mut self) -> Result<(), RunError> {
        for (name, v) in &self.params {
            let p = self.model.param(name).ok_or_else(|| format!("no parameter `{name}`"))?;
            let id = self.store.shared_f32(&p.role(), &p.dims())?;
            self.store.write(id, v)?;
            self.masks.write(&mut self.store, &self.model, name)?;
        }
        Ok(())
    }

    fn finish_epoch(&mut self, phase: &PhasePlan, epoch: u64, sums: &Sums, started: Instant) -> Result<(), RunError> {
        let (loss_sum, penalty_sum, samples) = (sums.loss, sums.penalty, sums.samples);
        let elapsed = started.elapsed().as_secs_f64();
        let accuracy = self.evaluate()?;
        self.accuracy = Some(accuracy);
        self.validation_accuracy = self.evaluate_validation()?;
        let batches = sums.steps.max(1) as f64;
        self.last = Some((loss_sum / batches, penalty_sum / batches));
        let mut line = serde_json::json!({
            "phase": phase.name,
            "epoch": epoch + 1,
            "step": self.global_step,
            "train_loss": loss_sum / batches,
            "penalty": penalty_sum / batches,
            "test_accuracy": accuracy,
            "test_loss": self.test_loss,
            "validation_accuracy": self.validation_accuracy,
            "validation_loss": self.validation_loss,
            "samples_per_sec": samples as f64 / elapsed.max(1e-9),
            "density": self.density(),
        });
        // A language model's losses in nats per byte, as bits per byte and perplexity.
        let bits = |nats: Option<f64>| nats.map(|l| l / std::f64::consts::LN_2);
        if self.text {
            line["test_bits_per_byte"] = serde_json::json!(bits(self.test_loss));
            line["test_perplexity"] = serde_json::json!(self.test_loss.map(f64::exp));
            line["validation_bits_per_byte"] = serde_json::json!(bits(self.validation_loss));
        }
        self.metrics.append(&line.to_string())?;
        if self.text {
            let validation = match (self.validation_loss, bits(self.validation_loss)) {
                (Some(l), Some(b)) => format!("validation loss {l:.4} ({b:.3} bits/byte)  "),
                _ => String::new(),
            };
            sayln!(
                "{} epoch {:>3}/{}  loss {:.4}  penalty {:.4}  {validation}test loss {:.4} ({:.3} bits/byte, perplexity {:.2}, next-byte accuracy {:.2}%)  density {:.2}%",
                phase.name,
                epoch + 1,
                phase.epochs,
                loss_sum / batches,
                penalty_sum / batches,
                self.test_loss.unwrap_or(f64::NAN),
                bits(self.test_loss).unwrap_or(f64::NAN),
                self.test_loss.map_or(f64::NAN, f64::exp),
                accuracy * 100.0,
                self.density() * 100.0
            );
        } else {
            let validation =
                self.validation_accuracy.map_or(String::new(), |v| format!("validation accuracy {:.2}%  ", v * 100.0));
            sayln!(
                "{} epoch {:>3}/{}  loss {:.4}  penalty {:.4}  {validation}test accuracy {:.2}%  density {:.2}%",
                phase.name,
                epoch + 1,
                phase.epochs,
                loss_sum / batches,
                penalty_sum / batches,
                accuracy * 100.0,
                self.density() * 100.0
            );
        }
        Ok(())
    }

    /// Accuracy on the held-out training samples, where the spec holds some out (their mean
    /// loss in `validation_loss`).
    fn evaluate_validation(&mut self) -> Result<Option<f64>, RunError> {
        match &self.validation {
            Some((set, labels)) => {
                let e =
                    self.evaluator.evaluate(&self.plans, self.backend, &mut self.store, &self.model, set, labels)?;
                self.validation_loss = Some(e.loss);
                Ok(Some(e.accuracy))
            }
            None => Ok(None),
        }
    }

    /// Test accuracy, with the parameters in the store.
    fn evaluate(&mut self) -> Result<f64, RunError> {
        let labels = &self.data.test.y;
        let e = self.evaluator.evaluate(&self.plans, self.backend, &mut self.store, &self.model, &self.test, labels)?;
        self.test_loss = Some(e.loss);
        Ok(e.accuracy)
    }

    /// The fraction of the spec's model's parameters that are not zero (after a shrink,
    /// the removed ones count as zeros).
    fn density(&self) -> f64 {
        let trainable = |n: &str| self.model.param(n).is_some_and(|p| p.trainable());
        let nz: usize = self
            .params
            .iter()
            .filter(|(n, _)| trainable(n))
            .map(|(_, v)| v.iter().filter(|&&x| x != 0.0).count())
            .sum();
        nz as f64 / self.original_size.max(1) as f64
    }

    /// model.safetensors; after `then shrink` also model.hoyer, the shrunk architecture as a
    /// spec whose parameters model.safetensors holds.
    fn save(&self) -> Result<(), RunError> {
        let meta = [("format", "pt".to_string()), ("hoyer.steps", self.global_step.to_string())];
        checkpoint::save(&self.opts.out_dir.join("model.safetensors"), &self.model, &self.params, &meta)?;
        let spec = self.program.model(&self.plan.model);
        let shapes = |m: &Model| m.params.iter().map(|p| p.shape.clone()).collect::<Vec<_>>();
        // After a shrink, even one that removed nothing: the user asked for the shrunk spec.
        if !self.shrinks.is_empty() || spec.is_some_and(|spec| shapes(spec) != shapes(&self.model)) {
            let text = format!(
                "// {} with model `{}` as `then shrink` left it (hoyerc): the same layers, fewer units.\n\
                 // model.safetensors beside this file holds its parameters (`--init` loads them; PyTorch\n\
                 // loads them by name into modules of these shapes); `hoyerc bench` times it.\n{}",
                self.opts.spec_path.display(),
                self.model.name,
                with_model(&self.opts.effective_text, &self.model)
            );
            write_atomically(&self.opts.out_dir.join("model.hoyer"), text.as_bytes())?;
        }
        Ok(())
    }

    fn progress_bar(&self, phase: &PhasePlan, total: u64) -> Option<ProgressBar> {
        if !self.opts.progress {
            return None;
        }
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_prefix(phase.name.clone());
        Some(bar)
    }
}

/// `spec` (the text the model was checked from) with the block of `model` written anew from
/// `model` (a shrunk model's spec), where the checker found it.
fn with_model(spec: &str, model: &Model) -> String {
    let text = hoyer_front::summary::model_spec(model);
    match (spec.get(..model.span.start), spec.get(model.span.end..)) {
        (Some(before), Some(after)) => format!("{before}{}{after}", text.trim_end()),
        _ => text,
    }
}

/// A shrink as report.json records it: the models before and after as `summary_line`s, and
/// the architecture it left, on its own for the tools that compare runs.
fn shrink_record(step: &str, before: &Model, after: &Model) -> serde_json::Value {
    serde_json::json!({
        "step": step,
        "before": summary_line(before),
        "after": summary_line(after),
        "architecture": architecture(after),
    })
}

/// A model's input width and the width of each dense and conv layer: `784-300-100-10`.
pub fn architecture(m: &Model) -> String {
    let mut widths = vec![m.input_shape.first().copied().unwrap_or(0).to_string()];
    widths.extend(m.nodes.iter().filter_map(|n| n.layer.width()).map(|w| w.to_string()));
    widths.join("-")
}

/// A model's architecture, parameters and forward FLOPs: `784-300-100-10, 266,610
/// parameters, 0.53 MFLOP`.
pub fn summary_line(m: &Model) -> String {
    format!(
        "{}, {} parameters, {:.2} MFLOP",
        architecture(m),
        hoyer_front::summary::thousands(m.parameter_count()),
        m.forward_flops() as f64 / 1e6
    )
}

/// Whether a checkpoint's position lies inside `plan` (so that resuming replays a bounded
/// number of shuffles and lands on a real step).
fn check_position(plan: &TrainPlan, p: &Position, samples: usize) -> Result<(), String> {
    let batch = plan.batch.max(1) as usize;
    let per_epoch = samples.div_ceil(batch) as u64;
    match plan.steps.get(p.plan_step) {
        None if p.plan_step == plan.steps.len() && p.epoch == 0 && p.batch == 0 => {}
        None => return Err(format!("plan step {} of {}", p.plan_step + 1, plan.steps.len())),
        Some(PlanStep::Phase(ph)) => {
            // `batch` is the next batch; all of them when a run stopped after an epoch's last.
            if p.epoch >= ph.epochs || p.batch > per_epoch {
                return Err(format!(
                    "epoch {}, batch {} of phase `{}` ({} epochs of {per_epoch} batches)",
                    p.epoch + 1,
                    p.batch,
                    ph.name,
                    ph.epochs
                ));
            }
            if p.phase_steps != p.epoch * per_epoch + p.batch {
                return Err(format!(
                    "{} steps into phase `{}` at epoch {}, batch {}",
                    p.phase_steps,
                    ph.name,
                    p.epoch + 1,
                    p.batch
                ));
            }
        }
        Some(PlanStep::Prune(_)) if p.epoch == 0 && p.batch == 0 && p.phase_steps == 0 => {}
        Some(PlanStep::Prune(_)) => return Err("inside a prune".into()),
    }
    if p.global_step < p.phase_steps {
        return Err(format!("step {} of the run but {} of the phase", p.global_step, p.phase_steps));
    }
    Ok(())
}

/// That a checkpoint holds a shrunk model only after a shrink of the plan, and the one that
/// shrink left where report.json records it.
fn check_shrunk(plan: &TrainPlan, at: &Position, shrunk: bool, dir: &Path, model: &Model) -> Result<(), String> {
    if !shrunk {
        return Ok(());
    }
    let before = plan.steps.iter().take(at.plan_step).any(|s| matches!(s, PlanStep::Prune(p) if p.shrink));
    if !before {
        return Err("it holds a model narrower than the spec's, but the plan has not reached a `then shrink`".into());
    }
    match earlier_steps(dir, "shrink", plan, at.plan_step)
        .last()
        .and_then(|s| s["architecture"].as_str().map(str::to_string))
    {
        Some(recorded) if recorded != architecture(model) => Err(format!(
            "it holds a model of widths {}, but the shrink recorded in report.json left {recorded}",
            architecture(model)
        )),
        _ => Ok(()),
    }
}

/// The reports in `dir/report.json` of the phases that finished before plan step `resumed_at`.
fn earlier_reports(dir: &Path, plan: &TrainPlan, resumed_at: usize) -> Vec<serde_json::Value> {
    let done: Vec<&str> = plan
        .steps
        .iter()
        .take(resumed_at)
        .filter_map(|s| if let PlanStep::Phase(p) = s { Some(p.name.as_str()) } else { None })
        .collect();
    let phases = crate::report::read_json(dir).and_then(|v| v["phases"].as_array().cloned()).unwrap_or_default();
    phases.into_iter().filter(|p| p["phase"].as_str().is_some_and(|n| done.contains(&n))).take(done.len()).collect()
}

/// The records under `key` (`shrink`, `prunes`) in `dir/report.json` of the steps before plan
/// step `resumed_at`.
fn earlier_steps(dir: &Path, key: &str, plan: &TrainPlan, resumed_at: usize) -> Vec<serde_json::Value> {
    let done = &plan.step_names()[..resumed_at.min(plan.steps.len())];
    crate::report::read_json(dir)
        .and_then(|r| r[key].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["step"].as_str().is_some_and(|n| done.iter().any(|d| d == n)))
        .collect()
}

/// Where a resumed run picks up: position, optimizer state, the epoch's sums so far.
struct Resume {
    position: Position,
    states: Tensors,
    sums: (f64, f64, u64),
}

/// Losses and penalties summed over an epoch's steps (read from the store every few steps).
#[derive(Default)]
struct Sums {
    loss: f64,
    penalty: f64,
    /// Steps taken, steps whose sums have been read, samples (of this process, for the rate).
    steps: usize,
    read: usize,
    samples: usize,
}

impl Sums {
    fn add(&mut self, (loss, penalty): (f64, f64)) {
        self.loss += loss;
        self.penalty += penalty;
        self.read = self.steps;
    }
}

/// The folder of a spec file (for its relative paths).
pub fn spec_dir(spec: &Path) -> PathBuf {
    spec.parent().map(Path::to_path_buf).unwrap_or_default()
}

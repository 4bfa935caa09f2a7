//! Training throughput of a spec's first phase, measured the way `../shared/bench/
//! torch_anchor.py` measures PyTorch: in-memory random data (60 batches, cycled), 20 warm-up
//! steps, then `steps` timed optimizer steps of the real training step (the same `Stepper`
//! as `hoyerc run`: batch gather, step, parameters updated in place). Then inference: the
//! evaluation forward pass over the 60 batches (as `hoyerc run` evaluates), three times.

use crate::backend::{Backend, KernelTime};
use crate::data::{Rng, Split};
use crate::error::RunError;
use crate::feed::Resident;
use crate::init;
use crate::plans::Plans;
use crate::stepper::Stepper;
use crate::store::Store;
use hoyer_front::codes::Code;
use hoyer_front::program::{PlanStep, Program};
use hoyer_ir::Role;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchResult {
    pub phase: String,
    pub batch: usize,
    pub samples_per_sec: f64,
    pub ms_per_step: f64,
    /// Time to compile the phase's step (cold: the pipeline and code generation).
    pub compile_ms: f64,
    /// Evaluation samples/s: the forward pass with the batch gather and the logits read back.
    pub inference_per_sec: f64,
    /// Each kernel's time per timed step, in program order, where asked for and the back end
    /// can time them (it then waits for each kernel, so the step itself runs a little slower).
    pub kernels: Vec<KernelTime>,
}

/// Times `steps` steps of the first phase of `program`; with `kernels`, each kernel too.
/// Refused (E0713) where its data and step would not fit in memory (`memory::Limit`).
pub fn bench(
    program: &Program,
    backend: &dyn Backend,
    steps: usize,
    kernels: bool,
    memory_limit: Option<u64>,
) -> Result<BenchResult, RunError> {
    let missing = |what: &str| RunError::new(Code::Internal, what.to_string());
    let plan = program.train.as_ref().ok_or_else(|| missing("the spec has no `train` block"))?;
    let model = program.model(&plan.model).ok_or_else(|| missing("the trained model is missing"))?;
    let phase = plan
        .steps
        .iter()
        .find_map(|s| if let PlanStep::Phase(p) = s { Some(p) } else { None })
        .ok_or_else(|| missing("no phase"))?;
    let batch = plan.batch as usize;
    let sample: Vec<usize> = model.input_shape.iter().map(|&d| d as usize).collect();
    let features: usize = sample.iter().product();
    // Scores [classes], or [t, classes] per position of a language model's window.
    let out = &model.nodes[model.output].shape;
    let classes = *out.last().unwrap_or(&1);
    let targets = if out.len() == 2 { out[0] as usize } else { 1 };
    let n = 60 * batch;
    // Before the random data is made: does the bench fit in memory, as a run would have to?
    // (The estimate reads the step's scratch: the step is compiled, and timed, here.)
    let plans = Plans::new(backend.options());
    let started = Instant::now();
    plans.step(program, model, phase, batch)?;
    let mut compile = started.elapsed();
    if let Some(limit) = crate::memory::Limit::find(memory_limit) {
        crate::memory::check(&crate::memory::estimate(program, plan, model, n, &plans)?, limit)?;
    }
    let mut rng = Rng::new(0);
    let split = Split {
        x: (0..n * features).map(|_| rng.uniform() as f32).collect(),
        y: (0..n * targets).map(|_| rng.below(classes) as u32).collect(),
        targets,
    };
    let mut store = Store::new();
    let train = Resident::upload(&mut store, "train", &split, &sample, model.input_dtype)?;
    for (name, v) in init::pytorch_default(model, 0) {
        let p = model.param(&name).ok_or_else(|| missing("a parameter is missing"))?;
        let id = store.shared_f32(&p.role(), &p.dims())?;
        store.write(id, &v)?;
        let mask = store.shared_f32(&Role::Mask(name), &p.dims())?;
        store.fill(mask, 1.0);
    }
    let strengths: Vec<f64> = phase.penalties.iter().map(|p| crate::schedule::strength(&p.strength, 0)).collect();
    let lr = phase.optimizer.lr();
    let started = Instant::now();
    let mut stepper = Stepper::new(&plans, backend, &mut store, program, model, phase, batch, batch, &train)?;
    compile += started.elapsed();
    let compile_ms = compile.as_secs_f64() * 1e3;
    let step = |stepper: &mut Stepper, store: &mut Store, i: usize| {
        stepper.step(store, &train, (i % 60) * batch, batch, lr, &strengths)
    };
    for i in 0..20 {
        step(&mut stepper, &mut store, i)?;
    }
    if kernels && !stepper.time_kernels(batch) {
        return Err(RunError::new(Code::RunFailed, "this back end cannot time its kernels")
            .help("`--kernels` needs the cpu or cuda back end"));
    }
    let start = Instant::now();
    for i in 0..steps {
        step(&mut stepper, &mut store, i)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut evaluator = crate::evaluate::Evaluator::new(batch);
    evaluator.evaluate(&plans, backend, &mut store, model, &train, &split.y)?;
    let start = Instant::now();
    for _ in 0..3 {
        evaluator.evaluate(&plans, backend, &mut store, model, &train, &split.y)?;
    }
    let inference_per_sec = (3 * n) as f64 / start.elapsed().as_secs_f64();
    let kernels = stepper
        .kernel_times(batch)
        .into_iter()
        .map(|k| KernelTime { time: k.time.div_f64(steps.max(1) as f64), ..k })
        .collect();
    Ok(BenchResult {
        phase: phase.name.clone(),
        batch,
        samples_per_sec: (steps * batch) as f64 / secs,
        ms_per_step: secs / steps as f64 * 1e3,
        compile_ms,
        inference_per_sec,
        kernels,
    })
}

//! Training throughput of a spec's first phase, measured the way `../shared/bench/
//! torch_anchor.py` measures PyTorch: in-memory random data (60 batches, cycled), 20 warm-up
//! steps, then `steps` timed optimizer steps of the real training step.

use crate::backend::Backend;
use crate::data::Rng;
use crate::init;
use crate::stepper::Stepper;
use hoyer_compiler::program::{Program, Step as PlanStep};
use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchResult {
    pub phase: String,
    pub batch: usize,
    pub samples_per_sec: f64,
    pub ms_per_step: f64,
}

pub fn bench(program: &Program, backend: &dyn Backend, steps: usize) -> Result<BenchResult, String> {
    let plan = program.train.as_ref().ok_or("the spec has no `train` block")?;
    let model = program.model(&plan.model).ok_or("the trained model is missing")?;
    let phase =
        plan.steps.iter().find_map(|s| if let PlanStep::Phase(p) = s { Some(p) } else { None }).ok_or("no phase")?;
    let batch = plan.batch as usize;
    let features = model.input_shape.iter().product::<u64>() as usize;
    let classes = model.nodes[model.output].shape[0];
    let mut rng = Rng::new(0);
    let n = 60 * batch;
    let x: Vec<f32> = (0..n * features).map(|_| rng.uniform() as f32).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.below(classes) as f32).collect();
    let params = init::pytorch_default(model, 0);
    let masks: HashMap<String, Vec<f32>> = params.iter().map(|(k, v)| (k.clone(), vec![1.0; v.len()])).collect();
    let strengths: Vec<f64> = phase.penalties.iter().map(|p| crate::schedule::strength(&p.strength, 0)).collect();
    let lr = phase.optimizer.lr();
    let mut stepper = Stepper::new(backend, program, model, phase, batch, batch, &params, &masks)?;
    let mut run = |i: usize| -> Result<(), String> {
        let j = i % 60;
        stepper.step(
            &x[j * batch * features..(j + 1) * batch * features],
            &y[j * batch..(j + 1) * batch],
            lr,
            &strengths,
        )?;
        Ok(())
    };
    for i in 0..20 {
        run(i)?;
    }
    let start = Instant::now();
    for i in 0..steps {
        run(i)?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(BenchResult {
        phase: phase.name.clone(),
        batch,
        samples_per_sec: (steps * batch) as f64 / secs,
        ms_per_step: secs / steps as f64 * 1e3,
    })
}

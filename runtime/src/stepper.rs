//! One phase's compiled training step and its optimizer state: feeds a batch, the
//! parameters, the state and the per-step scalars, and applies the results. The training loop
//! and the benchmark both step through this.

use crate::backend::{Backend, Compiled};
use hoyer_compiler::program::{Model, Optimizer, PhasePlan, Program};
use hoyer_compiler::{lower, step};
use std::collections::HashMap;

pub struct Stepper {
    full: Box<dyn Compiled>,
    batch: usize,
    /// The step for a smaller last batch, when the data does not divide into batches.
    partial: Option<Box<dyn Compiled>>,
    optimizer: Optimizer,
    masked: bool,
    state: HashMap<String, Vec<f32>>,
    /// Optimizer steps taken so far in this phase.
    t: u64,
}

impl Stepper {
    /// Compiles the phase's step for `batch` samples, and for `last` samples if that differs.
    pub fn new(
        backend: &dyn Backend,
        program: &Program,
        model: &Model,
        phase: &PhasePlan,
        batch: usize,
        last: usize,
    ) -> Result<Stepper, String> {
        let built = step::build(program, model, phase, batch)?;
        let full = backend.compile(built.graph())?;
        let partial = if last != batch && last > 0 {
            Some(backend.compile(step::build(program, model, phase, last)?.graph())?)
        } else {
            None
        };
        let mut state = HashMap::new();
        for p in &model.params {
            for s in step::state_names(&phase.optimizer) {
                state.insert(step::state_input(&p.name, s), vec![0.0; p.numel() as usize]);
            }
        }
        Ok(Stepper { full, batch, partial, optimizer: phase.optimizer.clone(), masked: built.masked, state, t: 0 })
    }

    pub fn masked(&self) -> bool {
        self.masked
    }

    pub fn steps_taken(&self) -> u64 {
        self.t
    }

    /// One optimizer step on the batch `x` (samples × features) with labels `y`; updates
    /// `params` in place and returns (loss, penalty).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        params: &mut [(String, Vec<f32>)],
        masks: &HashMap<String, Vec<f32>>,
        x: &[f32],
        y: &[f32],
        lr: f64,
        strengths: &[f64],
    ) -> Result<(f64, f64), String> {
        self.t += 1;
        let t = self.t;
        let mut scalars: Vec<(String, [f32; 1])> = vec![(step::LR.into(), [lr as f32])];
        match self.optimizer {
            Optimizer::Adam { betas: (b1, b2), .. } => {
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2 = 1.0 - b2.powi(t as i32);
                scalars.push((step::STEP_SIZE.into(), [(lr / bc1) as f32]));
                scalars.push((step::BC2_SQRT.into(), [bc2.sqrt() as f32]));
            }
            Optimizer::Sgd { .. } => scalars.push((step::FIRST.into(), [if t == 1 { 1.0 } else { 0.0 }])),
        }
        for (k, s) in strengths.iter().enumerate() {
            scalars.push((lower::strength_input(k), [*s as f32]));
        }
        let exe = if y.len() == self.batch {
            &mut self.full
        } else {
            self.partial.as_mut().ok_or("no step for this batch size")?
        };
        exe.set_input(lower::DATA, x)?;
        exe.set_input(lower::LABELS, y)?;
        for (n, v) in params.iter() {
            exe.set_input(n, v)?;
            if self.masked {
                exe.set_input(&step::mask_input(n), &masks[n])?;
            }
        }
        for (n, v) in &self.state {
            exe.set_input(n, v)?;
        }
        for (n, v) in &scalars {
            exe.set_input(n, v)?;
        }
        exe.execute()?;
        for (n, v) in params.iter_mut() {
            v.copy_from_slice(exe.output(n).ok_or("the step lost a parameter")?);
        }
        for (n, v) in self.state.iter_mut() {
            v.copy_from_slice(exe.output(n).ok_or("the step lost an optimizer state")?);
        }
        let scalar = |name: &str| exe.output(name).map_or(f64::NAN, |v| v[0] as f64);
        Ok((scalar("loss"), scalar("penalty")))
    }
}

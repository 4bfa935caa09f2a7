//! One phase's compiled training step and its optimizer state. Parameters and state live in
//! the compiled program between steps (each step's outputs are carried into its inputs), so
//! a step copies only the batch; the training loop syncs parameters out (`store`) when it
//! evaluates, prunes or saves, and back in (`load`) after it changed them.

use crate::backend::{Backend, Compiled};
use crate::checkpoint::Tensors;
use hoyer_compiler::program::{Model, Optimizer, PhasePlan, Program};
use hoyer_compiler::{lower, step};
use std::collections::HashMap;

pub struct Stepper {
    /// The step per batch size: the full batch, and a smaller last batch if the data does not
    /// divide into batches.
    programs: Vec<(usize, Box<dyn Compiled>)>,
    /// Which program holds the latest parameters and state.
    current: usize,
    optimizer: Optimizer,
    masked: bool,
    params: Vec<String>,
    states: Vec<String>,
    /// Optimizer steps taken so far in this phase.
    t: u64,
}

impl Stepper {
    /// Compiles the phase's step for `batch` samples (and for `last` samples if that differs),
    /// starting from `params` and `masks` with fresh optimizer state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: &dyn Backend,
        program: &Program,
        model: &Model,
        phase: &PhasePlan,
        batch: usize,
        last: usize,
        params: &[(String, Vec<f32>)],
        masks: &HashMap<String, Vec<f32>>,
    ) -> Result<Stepper, String> {
        let built = step::build(program, model, phase, batch)?;
        let masked = built.masked;
        let mut programs = vec![(batch, backend.compile(built.graph())?)];
        if last != batch && last > 0 {
            programs.push((last, backend.compile(step::build(program, model, phase, last)?.graph())?));
        }
        let states: Vec<String> = model
            .params
            .iter()
            .flat_map(|p| step::state_names(&phase.optimizer).iter().map(move |s| step::state_input(&p.name, s)))
            .collect();
        let names: Vec<String> = params.iter().map(|p| p.0.clone()).collect();
        for (_, exe) in programs.iter_mut() {
            for n in names.iter().chain(&states) {
                exe.carry(n, n)?;
            }
        }
        let mut s =
            Stepper { programs, current: 0, optimizer: phase.optimizer.clone(), masked, params: names, states, t: 0 };
        s.load(params, masks)?;
        for st in &s.states {
            let n =
                model.params.iter().find(|p| st.starts_with(&format!("{}.", p.name))).map_or(0, |p| p.numel() as usize);
            s.programs[0].1.set_input(st, &vec![0.0; n])?;
        }
        Ok(s)
    }

    pub fn masked(&self) -> bool {
        self.masked
    }

    pub fn steps_taken(&self) -> u64 {
        self.t
    }

    /// Puts `params` (and, for a masked phase, `masks`) into the step.
    pub fn load(&mut self, params: &[(String, Vec<f32>)], masks: &HashMap<String, Vec<f32>>) -> Result<(), String> {
        let exe = &mut self.programs[self.current].1;
        for (n, v) in params {
            exe.set_input(n, v)?;
            if self.masked {
                exe.set_input(&step::mask_input(n), &masks[n])?;
            }
        }
        // Every program of the phase sees the same masks.
        if self.masked {
            for (i, (_, exe)) in self.programs.iter_mut().enumerate() {
                if i != self.current {
                    for (n, _) in params {
                        exe.set_input(&step::mask_input(n), &masks[n])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Copies the current parameters out.
    pub fn store(&self, params: &mut [(String, Vec<f32>)]) -> Result<(), String> {
        let exe = &self.programs[self.current].1;
        for (n, v) in params.iter_mut() {
            v.copy_from_slice(exe.output(n).ok_or("the step lost a parameter")?);
        }
        Ok(())
    }

    /// The optimizer state, by input name (`PARAM.STATE`).
    pub fn state(&self) -> Result<Tensors, String> {
        let exe = &self.programs[self.current].1;
        let states = self
            .states
            .iter()
            .map(|n| exe.output(n).map(|v| (n.clone(), v.to_vec())).ok_or_else(|| format!("the step lost `{n}`")))
            .collect::<Result<_, _>>()?;
        Ok(states)
    }

    /// Restores optimizer state saved by `state` (a resumed run).
    pub fn restore_state(&mut self, states: &[(String, Vec<f32>)], steps_taken: u64) -> Result<(), String> {
        let exe = &mut self.programs[self.current].1;
        for n in &self.states {
            let (_, v) = states.iter().find(|(k, _)| k == n).ok_or_else(|| format!("the checkpoint has no `{n}`"))?;
            exe.set_input(n, v)?;
        }
        self.t = steps_taken;
        Ok(())
    }

    /// Makes program `to` hold the latest parameters and state.
    fn switch(&mut self, to: usize) -> Result<(), String> {
        if to == self.current {
            return Ok(());
        }
        let (from, dest) = if self.current < to {
            let (a, b) = self.programs.split_at_mut(to);
            (&a[self.current].1, &mut b[0].1)
        } else {
            let (a, b) = self.programs.split_at_mut(self.current);
            (&b[0].1, &mut a[to].1)
        };
        for n in self.params.iter().chain(&self.states) {
            dest.set_input(n, from.output(n).ok_or("the step lost a value")?)?;
        }
        self.current = to;
        Ok(())
    }

    /// One optimizer step on the batch `x` (samples × features) with labels `y`; returns
    /// (loss, penalty).
    pub fn step(&mut self, x: &[f32], y: &[f32], lr: f64, strengths: &[f64]) -> Result<(f64, f64), String> {
        let which = self.programs.iter().position(|(b, _)| *b == y.len()).ok_or("no step for this batch size")?;
        self.switch(which)?;
        self.t += 1;
        let t = self.t;
        let exe = &mut self.programs[which].1;
        exe.set_input(lower::DATA, x)?;
        exe.set_input(lower::LABELS, y)?;
        exe.set_input(step::LR, &[lr as f32])?;
        match self.optimizer {
            Optimizer::Adam { betas: (b1, b2), .. } => {
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2 = 1.0 - b2.powi(t as i32);
                exe.set_input(step::STEP_SIZE, &[(lr / bc1) as f32])?;
                exe.set_input(step::BC2_SQRT, &[bc2.sqrt() as f32])?;
            }
            Optimizer::Sgd { .. } => exe.set_input(step::FIRST, &[if t == 1 { 1.0 } else { 0.0 }])?,
        }
        for (k, s) in strengths.iter().enumerate() {
            exe.set_input(&lower::strength_input(k), &[*s as f32])?;
        }
        exe.execute()?;
        let scalar = |name: &str| exe.output(name).map_or(f64::NAN, |v| v[0] as f64);
        Ok((scalar("loss"), scalar("penalty")))
    }
}

//! One phase's training step, run on the tensors of the store. Parameters, masks, optimizer
//! state and the running loss sums stay in the store between steps and are updated in
//! place; a step writes three scalars (learning rate and bias corrections) and where its
//! batch starts, gathers the batch from the resident training set, and runs. The host reads
//! the loss only when it reports (`take_sums`), and the parameters only when it needs them.

use crate::backend::{Backend, Bindings, Executable};
use crate::checkpoint::Tensors;
use crate::error::RunError;
use crate::feed::Resident;
use crate::plans::Plans;
use crate::store::{Store, TensorId};
use hoyer_compiler::graph::step;
use hoyer_compiler::pipeline;
use hoyer_front::codes::Code;
use hoyer_front::program::{Model, Optimizer, PhasePlan, Program};
use hoyer_ir::{Role, Scalar, Sum};

/// The per-step numbers of an optimizer's update at step `t` (from 1) of a phase, with
/// learning rate `lr`, as the step's scalar inputs take them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerScalars {
    /// Adam: lr / (1 − β1^t), as `torch.optim.Adam`'s `step_size`.
    pub step_size: f32,
    /// Adam: 1 / √(1 − β2^t): the update multiplies by it where PyTorch divides by
    /// `bias_correction2_sqrt`.
    pub inv_bias_correction2_sqrt: f32,
    /// SGD with momentum: 1 on the first step (the buffer starts as the gradient), else 0.
    pub first_step: f32,
}

impl OptimizerScalars {
    pub fn at(opt: &Optimizer, t: u64, lr: f64) -> OptimizerScalars {
        let first_step = if t == 1 { 1.0 } else { 0.0 };
        match *opt {
            Optimizer::Adam { betas: (b1, b2), .. } => {
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2 = 1.0 - b2.powi(t as i32);
                OptimizerScalars {
                    step_size: (lr / bc1) as f32,
                    inv_bias_correction2_sqrt: (1.0 / bc2.sqrt()) as f32,
                    first_step,
                }
            }
            Optimizer::Sgd { .. } => OptimizerScalars { step_size: 0.0, inv_bias_correction2_sqrt: 0.0, first_step },
        }
    }
}

/// The compiled step for one batch size, and the gather that feeds it.
struct ForBatch {
    batch: usize,
    gather: Box<dyn Executable>,
    step: Box<dyn Executable>,
}

pub struct Stepper {
    programs: Vec<ForBatch>,
    optimizer: Optimizer,
    /// Optimizer steps taken so far in this phase.
    t: u64,
    lr: TensorId,
    step_size: TensorId,
    inv_bc2_sqrt: TensorId,
    first: TensorId,
    strengths: Vec<TensorId>,
    loss_sum: TensorId,
    penalty_sum: TensorId,
    /// Each parameter's optimizer states.
    states: Vec<(Role, TensorId)>,
    /// Dropout's key, new every step from `salt` and the step count (so a resumed run draws
    /// the same masks).
    dropout_key: TensorId,
    salt: u64,
}

/// The tensor of each role the step shares with the rest of the run (everything but its
/// batch, which the gather fills), created in the store where missing.
fn shared_bindings(store: &mut Store, planned: &pipeline::Planned) -> Result<Bindings, RunError> {
    let mut bind = Bindings::new();
    for slot in planned.signature.roles() {
        if !matches!(slot.role, Role::Data | Role::Labels) {
            bind.insert(slot.role.clone(), store.shared(&slot.role, &slot.shape, slot.dtype)?);
        }
    }
    Ok(bind)
}

impl Stepper {
    /// Compiles the phase's step for `batch` samples (and for `last` if the data does not
    /// divide into batches), fed from `train`, with fresh optimizer state and loss sums.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plans: &Plans,
        backend: &dyn Backend,
        store: &mut Store,
        program: &Program,
        model: &Model,
        phase: &PhasePlan,
        batch: usize,
        last: usize,
        train: &Resident,
    ) -> Result<Stepper, RunError> {
        let mut programs = Vec::new();
        for size in [batch, last] {
            if size == 0 || programs.iter().any(|p: &ForBatch| p.batch == size) {
                continue;
            }
            let planned = plans.step(program, model, phase, size)?;
            let bind = shared_bindings(store, &planned)?;
            let step = backend.compile(&planned, store, &bind)?;
            let gather = train.gather(plans, backend, store, size, step.as_ref())?;
            programs.push(ForBatch { batch: size, gather, step });
        }
        let scalar = |store: &mut Store, s: Scalar| store.shared_f32(&Role::Scalar(s), &[]);
        let sum = |store: &mut Store, s: Sum| store.shared_f32(&Role::Sum(s), &[]);
        let states = model
            .trainable()
            .flat_map(|p| {
                let shape: Vec<usize> = p.shape.iter().map(|&d| d as usize).collect();
                step::state_names(&phase.optimizer).iter().map(move |s| (Role::state(&p.name, s), shape.clone()))
            })
            .map(|(role, shape)| store.shared_f32(&role, &shape).map(|id| (role, id)))
            .collect::<Result<Vec<_>, _>>()?;
        for (_, id) in &states {
            store.fill(*id, 0.0);
        }
        let s = Stepper {
            programs,
            optimizer: phase.optimizer.clone(),
            t: 0,
            lr: scalar(store, Scalar::Lr)?,
            step_size: scalar(store, Scalar::StepSize)?,
            inv_bc2_sqrt: scalar(store, Scalar::InvBiasCorrection2Sqrt)?,
            first: scalar(store, Scalar::FirstStep)?,
            strengths: (0..phase.penalties.len())
                .map(|k| scalar(store, Scalar::Strength(k)))
                .collect::<Result<_, _>>()?,
            loss_sum: sum(store, Sum::Loss)?,
            penalty_sum: sum(store, Sum::Penalty)?,
            states,
            dropout_key: scalar(store, Scalar::DropoutKey)?,
            salt: 0,
        };
        store.fill(s.loss_sum, 0.0);
        store.fill(s.penalty_sum, 0.0);
        Ok(s)
    }

    /// Dropout's masks differ between runs of other seeds and between phases.
    pub fn salted(mut self, salt: u64) -> Self {
        self.salt = salt;
        self
    }

    /// The optimizer state, by the names checkpoints give it (`PARAM.STATE`).
    pub fn state(&self, store: &mut Store) -> Result<Tensors, RunError> {
        self.states.iter().map(|(role, id)| Ok((role.to_string(), store.read(*id)?.to_vec()))).collect()
    }

    /// Restores optimizer state saved by `state` (a resumed run).
    pub fn restore_state(
        &mut self,
        store: &mut Store,
        states: &[(String, Vec<f32>)],
        steps_taken: u64,
    ) -> Result<(), RunError> {
        for (role, id) in &self.states {
            let name = role.to_string();
            let (_, v) = states
                .iter()
                .find(|(k, _)| *k == name)
                .ok_or_else(|| RunError::new(Code::BadCheckpoint, format!("the checkpoint has no `{name}`")))?;
            store.write(*id, v)?;
        }
        self.t = steps_taken;
        Ok(())
    }

    /// Starts parameter `param`'s optimizer state afresh at `indices` (elements of the
    /// flattened tensor): where a pruned weight grows back, its moments and momentum start
    /// from zero, as a new weight's would.
    pub fn reset_state(&mut self, store: &mut Store, param: &str, indices: &[usize]) -> Result<(), RunError> {
        for (role, id) in &self.states {
            if role.of_param() != Some(param) {
                continue;
            }
            let mut v = store.read(*id)?.to_vec();
            let n = v.len();
            for &i in indices {
                let slot = v.get_mut(i).ok_or_else(|| {
                    RunError::new(Code::Internal, format!("index {i} is outside `{role}` ({n} elements)"))
                })?;
                *slot = 0.0;
            }
            store.write(*id, &v)?;
        }
        Ok(())
    }

    /// One optimizer step on the `size` samples at `start` of the training order.
    pub fn step(
        &mut self,
        store: &mut Store,
        train: &Resident,
        start: usize,
        size: usize,
        lr: f64,
        strengths: &[f64],
    ) -> Result<(), RunError> {
        let which = self
            .programs
            .iter()
            .position(|p| p.batch == size)
            .ok_or_else(|| RunError::new(Code::Internal, format!("no step compiled for a batch of {size}")))?;
        self.t += 1;
        let t = self.t;
        store.set_scalar(self.lr, lr as f32)?;
        let scalars = OptimizerScalars::at(&self.optimizer, t, lr);
        match self.optimizer {
            Optimizer::Adam { .. } => {
                store.set_scalar(self.step_size, scalars.step_size)?;
                store.set_scalar(self.inv_bc2_sqrt, scalars.inv_bias_correction2_sqrt)?;
            }
            Optimizer::Sgd { .. } => store.set_scalar(self.first, scalars.first_step)?,
        }
        // Below 2^22, so that the key plus each layer's offset stays a whole float32.
        let key = hoyer_ir::semantics::lowbias32((self.salt ^ t.wrapping_mul(0x9E37_79B9)) as u32) >> 10;
        store.set_scalar(self.dropout_key, key as f32)?;
        for (id, s) in self.strengths.iter().zip(strengths) {
            store.set_scalar(*id, *s as f32)?;
        }
        train.set_start(store, start)?;
        let p = &mut self.programs[which];
        p.gather.run(store)?;
        p.step.run(store)
    }

    /// Times each kernel of the step for a batch of `size` from now on; false where the back
    /// end cannot.
    pub fn time_kernels(&mut self, size: usize) -> bool {
        self.programs.iter_mut().find(|p| p.batch == size).is_some_and(|p| p.step.time_kernels())
    }

    /// The step's kernel times for a batch of `size` (see `time_kernels`).
    pub fn kernel_times(&self, size: usize) -> Vec<crate::backend::KernelTime> {
        self.programs.iter().find(|p| p.batch == size).map_or_else(Vec::new, |p| p.step.kernel_times())
    }

    /// The sums of the losses and penalties since the last call, which resets them.
    pub fn take_sums(&mut self, store: &mut Store) -> Result<(f64, f64), RunError> {
        let sums = (store.scalar(self.loss_sum)? as f64, store.scalar(self.penalty_sum)? as f64);
        store.fill(self.loss_sum, 0.0);
        store.fill(self.penalty_sum, 0.0);
        Ok(sums)
    }
}

//! The whole training step of a phase as one graph: forward, loss, penalty, gradients (by
//! `autodiff`), and the optimizer update with PyTorch's semantics, masks included.
//!
//! Per-step numbers the runtime computes (learning rate from the schedule, Adam's bias
//! corrections, penalty strengths from ramps) are scalar inputs, so one compiled step serves
//! the whole phase.

use crate::error::CompileError;
use crate::graph::autodiff;
use crate::graph::lower;
use hoyer_front::program::{Model, Optimizer, PhasePlan, Program};
use hoyer_ir::{Binary, Graph, Role, Scalar, Sum, Unary, ValueId};

/// Optimizer state per parameter, named as PyTorch names it.
pub fn state_names(opt: &Optimizer) -> &'static [&'static str] {
    match opt {
        Optimizer::Sgd { momentum, .. } if *momentum != 0.0 => &["momentum_buffer"],
        Optimizer::Sgd { .. } => &[],
        Optimizer::Adam { .. } => &["exp_avg", "exp_avg_sq"],
    }
}

#[derive(Debug, Clone)]
pub struct TrainStep {
    /// The step, simplified (`passes::simplify`): what back ends compile.
    pub graph: Graph,
    /// Whether the step takes a `PARAM.mask` input per parameter (frozen masks, or gradual
    /// pruning in the phase).
    pub masked: bool,
    pub optimizer: Optimizer,
}

impl TrainStep {
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
}

/// Builds the step of `phase`. Every output updates the input of the same role: the running
/// sums of the loss and the penalty (read by the runtime only when it reports, then reset),
/// then for each parameter its new value and new optimizer states, then batch norm's
/// running statistics. So the step is one in-place update of the state it owns. Adam's
/// `InvBiasCorrection2Sqrt` lets the update multiply where PyTorch divides by √(1 − β2^t)
/// (one division fewer per element; the result differs in the last bit at most).
pub fn build(program: &Program, model: &Model, phase: &PhasePlan, batch: usize) -> Result<TrainStep, CompileError> {
    let mut fwd = lower::lower(program, model, &phase.penalties, batch)?;
    let masked = phase.masks_frozen || !phase.gradual.is_empty();
    let g = &mut fwd.graph;
    let wrt: Vec<ValueId> = fwd.params.iter().map(|p| p.1).collect();
    let grads = autodiff::grad(g, fwd.objective, &wrt);
    let mut outputs = Vec::new();
    // Without penalties the penalty sum stays 0: no add of a constant 0 (not an identity
    // where the sum is −0, so the simplifier keeps it).
    let sums =
        [(Sum::Loss, fwd.loss)].into_iter().chain((!phase.penalties.is_empty()).then_some((Sum::Penalty, fwd.penalty)));
    for (which, value) in sums {
        let sum = g.input_value(Role::Sum(which), vec![]);
        outputs.push((Role::Sum(which), g.binary(Binary::Add, sum, value)));
    }
    let scalars = Scalars::new(g, &phase.optimizer);
    for ((name, p), grad) in fwd.params.clone().into_iter().zip(grads) {
        let shape = g.shape(p).to_vec();
        let mask = masked.then(|| g.input_value(Role::Mask(name.clone()), shape.clone()));
        let states: Vec<ValueId> =
            state_names(&phase.optimizer).iter().map(|s| g.input_value(Role::state(&name, s), shape.clone())).collect();
        let (new_p, new_states) = update(g, &phase.optimizer, &scalars, p, grad, &states, mask);
        outputs.push((Role::Param(name.clone()), new_p));
        for (s, v) in state_names(&phase.optimizer).iter().zip(new_states) {
            outputs.push((Role::state(&name, s), v));
        }
    }
    // Batch norm's running statistics: new values from this batch.
    outputs.extend(fwd.updates.iter().cloned());
    g.outputs = outputs;
    g.validate().map_err(|e| CompileError::internal("autodiff", e))?;
    let graph = crate::graph::passes::simplify(g);
    graph.validate().map_err(|e| CompileError::internal("simplification", e))?;
    Ok(TrainStep { graph, masked, optimizer: phase.optimizer.clone() })
}

struct Scalars {
    lr: ValueId,
    step_size: Option<ValueId>,
    inv_bc2_sqrt: Option<ValueId>,
    first: Option<ValueId>,
}

impl Scalars {
    fn new(g: &mut Graph, opt: &Optimizer) -> Self {
        let lr = g.input_value(Role::Scalar(Scalar::Lr), vec![]);
        match opt {
            Optimizer::Adam { .. } => Scalars {
                lr,
                step_size: Some(g.input_value(Role::Scalar(Scalar::StepSize), vec![])),
                inv_bc2_sqrt: Some(g.input_value(Role::Scalar(Scalar::InvBiasCorrection2Sqrt), vec![])),
                first: None,
            },
            Optimizer::Sgd { momentum, .. } => Scalars {
                lr,
                step_size: None,
                inv_bc2_sqrt: None,
                first: (*momentum != 0.0).then(|| g.input_value(Role::Scalar(Scalar::FirstStep), vec![])),
            },
        }
    }
}

/// `k * x` for a constant `k`.
fn scale(g: &mut Graph, x: ValueId, k: f64) -> ValueId {
    let s = g.shape(x).to_vec();
    let c = g.constant(k, s);
    g.binary(Binary::Mul, x, c)
}

/// `s * x` for a scalar value `s`.
fn times_scalar(g: &mut Graph, x: ValueId, s: ValueId) -> ValueId {
    g.binary_bcast(Binary::Mul, s, x)
}

fn update(
    g: &mut Graph,
    opt: &Optimizer,
    s: &Scalars,
    p: ValueId,
    grad: ValueId,
    states: &[ValueId],
    mask: Option<ValueId>,
) -> (ValueId, Vec<ValueId>) {
    let (new_p, new_states) = match *opt {
        Optimizer::Sgd { momentum, dampening, weight_decay, nesterov, .. } => {
            let mut d = grad;
            if weight_decay != 0.0 {
                let wd = scale(g, p, weight_decay);
                d = g.binary(Binary::Add, d, wd);
            }
            let mut new_states = vec![];
            if momentum != 0.0 {
                let buf = states[0];
                let first = s.first.expect("momentum has a first-step input");
                // buf = first ? d : momentum * buf + (1 - dampening) * d
                let kept = scale(g, buf, momentum);
                let fresh = scale(g, d, 1.0 - dampening);
                let later = g.binary(Binary::Add, kept, fresh);
                let shape = g.shape(p).to_vec();
                let first_b = g.broadcast(first, &shape, vec![]);
                let new_buf = g.select(first_b, d, later);
                d = if nesterov {
                    let m = scale(g, new_buf, momentum);
                    g.binary(Binary::Add, d, m)
                } else {
                    new_buf
                };
                new_states.push(new_buf);
            }
            let step = times_scalar(g, d, s.lr);
            (g.binary(Binary::Sub, p, step), new_states)
        }
        Optimizer::Adam { betas: (b1, b2), eps, weight_decay, decoupled, .. } => {
            let (m, v) = (states[0], states[1]);
            let mut d = grad;
            let mut base = p;
            if weight_decay != 0.0 {
                if decoupled {
                    // AdamW: p ← p · (1 - lr · wd)
                    let lr_wd = times_scalar(g, p, s.lr);
                    let shrink = scale(g, lr_wd, weight_decay);
                    base = g.binary(Binary::Sub, p, shrink);
                } else {
                    let wd = scale(g, p, weight_decay);
                    d = g.binary(Binary::Add, d, wd);
                }
            }
            let m_old = scale(g, m, b1);
            let m_new_part = scale(g, d, 1.0 - b1);
            let new_m = g.binary(Binary::Add, m_old, m_new_part);
            let v_old = scale(g, v, b2);
            let d2 = g.binary(Binary::Mul, d, d);
            let v_new_part = scale(g, d2, 1.0 - b2);
            let new_v = g.binary(Binary::Add, v_old, v_new_part);
            // p ← p - step_size · m / (sqrt(v) · (1 / sqrt(bc2)) + eps)
            let root = g.unary(Unary::Sqrt, new_v);
            let inv_bc2 = s.inv_bc2_sqrt.expect("adam has bias corrections");
            let shape = g.shape(p).to_vec();
            let inv_bc2_b = g.broadcast(inv_bc2, &shape, vec![]);
            let scaled = g.binary(Binary::Mul, root, inv_bc2_b);
            let eps_c = g.constant(eps, shape);
            let denom = g.binary(Binary::Add, scaled, eps_c);
            let ratio = g.binary(Binary::Div, new_m, denom);
            let step = times_scalar(g, ratio, s.step_size.expect("adam has a step size"));
            (g.binary(Binary::Sub, base, step), vec![new_m, new_v])
        }
    };
    match mask {
        // Masked weights stay exactly 0 (a select, so not even a NaN update reaches them) and
        // their optimizer state is left as it was.
        Some(mask) => {
            let shape = g.shape(p).to_vec();
            let zero = g.constant(0.0, shape);
            let p_out = g.select(mask, new_p, zero);
            let states_out = new_states.iter().zip(states).map(|(&n, &o)| g.select(mask, n, o)).collect();
            (p_out, states_out)
        }
        None => (new_p, new_states),
    }
}

//! The compiler's one entry from a graph to kernels, shared by every back end:
//!
//! ```text
//! graph ─validate─▶ reshapes below element-wise ops, relus below views ─▶ simplify ─▶ split large reductions ─▶ copy what no view can read
//!       ─▶ recompute cheap values a reduction's readers need ─▶ fuse (kernels, in-place order)
//!       ─▶ kernel IR (views, buffers, arena) ─▶ coalesce axes, contract multiply-adds ─▶ validate
//! ```
//!
//! `step`, `eval` and `gather` build the three graphs a run needs (a phase's training step,
//! the forward pass for evaluation, the batch gather) and plan them. Configuration comes in
//! as `Options`; nothing here reads the environment.

use crate::error::CompileError;
use crate::graph::{lower, passes, step};
use crate::kernel::fusion;
use crate::kernel::{self, Body, Program};
use hoyer_front::program::{Model, PhasePlan, Program as Spec};
use hoyer_ir::{Dtype, Graph, Role, ValueId};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Contract `a * b + c` into fused multiply-adds (every target has them).
    pub fma: bool,
    /// Whole-tensor reductions of at least this many elements are split in two stages.
    pub split_reductions_above: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { fma: true, split_reductions_above: 1 << 14 }
    }
}

/// A graph made ready for a back end: the graph after the graph passes (what the reference
/// interpreter runs), its kernel program (what the code generators compile), and its
/// signature (what the runtime binds).
#[derive(Debug, Clone)]
pub struct Planned {
    pub graph: Graph,
    pub program: Program,
    pub signature: Signature,
}

/// One input or output of a compiled program: its role, element type and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub role: Role,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

/// Every input and output of a compiled program. An output with an input's role updates that
/// input in place (a parameter, an optimizer state, a running sum); the others are the
/// program's results (a batch, the logits).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signature {
    pub inputs: Vec<Slot>,
    pub outputs: Vec<Slot>,
}

impl Signature {
    pub fn of(g: &Graph) -> Signature {
        let slot = |role: &Role, v: ValueId| Slot { role: role.clone(), dtype: g.dtype(v), shape: g.shape(v).to_vec() };
        Signature {
            inputs: g.inputs().map(|(v, role)| slot(role, v)).collect(),
            outputs: g.outputs.iter().map(|(role, v)| slot(role, *v)).collect(),
        }
    }

    /// The slot of `role`, input or output.
    pub fn slot(&self, role: &Role) -> Option<&Slot> {
        self.inputs.iter().chain(&self.outputs).find(|s| s.role == *role)
    }

    /// Every role the program binds, each once (inputs first).
    pub fn roles(&self) -> Vec<&Slot> {
        let mut seen = Vec::new();
        for s in self.inputs.iter().chain(&self.outputs) {
            if !seen.iter().any(|t: &&Slot| t.role == s.role) {
                seen.push(s);
            }
        }
        seen
    }
}

/// Plans `graph`. Outputs named like inputs update them in place.
pub fn plan(graph: &Graph, opts: &Options) -> Result<Planned, CompileError> {
    fits(graph)?;
    graph.validate().map_err(|e| CompileError::internal("the IR", e))?;
    let g = passes::simplify(&passes::sink_unary(&passes::sink_reshapes(graph)));
    let g = passes::split_reductions(&g, opts.split_reductions_above);
    let g = passes::materialize(&g);
    let g = passes::recompute_cheap(&g);
    g.validate().map_err(|e| CompileError::internal("graph passes", e))?;
    let in_place: Vec<_> = g.updated_inputs().into_iter().filter(|(v, i)| i != v).collect();
    let schedule = fusion::fuse(&g, &in_place)?;
    let mut program = kernel::build::build(&g, &schedule)?;
    for k in program.kernels.iter_mut() {
        match &mut k.body {
            Body::Loop(l) => {
                kernel::passes::coalesce(l);
                if opts.fma {
                    kernel::passes::contract_fma(l);
                }
            }
            // A follower's first axis indexes bands of the product: not coalesced.
            Body::MatMul(_, epilogue, follower) if opts.fma => epilogue
                .iter_mut()
                .chain(follower.iter_mut().map(|f| &mut f.nest))
                .for_each(kernel::passes::contract_fma),
            Body::MatMul(..) => {}
        }
    }
    kernel::validate::validate(&program)?;
    let signature = Signature::of(&g);
    Ok(Planned { graph: g, program, signature })
}

/// The most elements a tensor of a step may have: 2^46 (2^48 bytes, what a 64-bit machine
/// addresses), so that no offset or size computed from it wraps. The checker bounds each
/// layer's output; what a layer computes on the way (a convolution's columns, a gradient's
/// one-hot) is bounded here.
const MAX_ELEMENTS: u64 = 1 << 46;

fn fits(g: &Graph) -> Result<(), CompileError> {
    for v in &g.values {
        let numel = v.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        if numel.is_none_or(|n| n > MAX_ELEMENTS) {
            return Err(CompileError::TooLarge { shape: v.shape.clone(), op: hoyer_ir::print::op_name(&v.op) });
        }
    }
    Ok(())
}

/// A phase's training step over `batch` samples.
pub fn step(
    spec: &Spec,
    model: &Model,
    phase: &PhasePlan,
    batch: usize,
    opts: &Options,
) -> Result<(step::TrainStep, Planned), CompileError> {
    let s = step::build(spec, model, phase, batch)?;
    let planned = plan(&s.graph, opts)?;
    Ok((s, planned))
}

/// The forward pass over `batch` samples: output `logits`.
pub fn eval(model: &Model, batch: usize, opts: &Options) -> Result<Planned, CompileError> {
    plan(&lower::lower_eval(model, batch)?.0, opts)
}

/// The batch gather from a resident data set (`lower::lower_gather`).
pub fn gather(
    rows: usize,
    sample: &[usize],
    dtype: hoyer_ir::Dtype,
    targets: usize,
    batch: usize,
    augment: Option<lower::Augmentation>,
    opts: &Options,
) -> Result<Planned, CompileError> {
    plan(&lower::lower_gather(rows, sample, dtype, targets, batch, augment), opts)
}

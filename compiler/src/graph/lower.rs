//! Lowering a checked spec to the IR: the model's forward pass over a batch, softmax
//! cross-entropy, and each penalty term instantiated from its `fn` body per selected tensor.
//! Gradients come later, from `autodiff`; nothing here is hand-differentiated.

use crate::error::CompileError;
use hoyer_front::check::func::{Domain, Evaluator, Val};
use hoyer_front::layers::{Lowering, Mode};
use hoyer_front::program::{Model, PenaltyTerm, Program};
use hoyer_front::syntax::ast::{BinOp, Span};
use hoyer_ir::{Augment, Binary, Dtype, Graph, Output, ReduceOp, Role, Scalar, Unary, ValueId};

/// The forward computation of one phase over a batch.
#[derive(Debug, Clone)]
pub struct Forward {
    pub graph: Graph,
    /// Trainable parameter inputs, in model order.
    pub params: Vec<(String, ValueId)>,
    /// New values of the buffers the forward pass keeps (batch norm's running statistics):
    /// outputs of the step that update their inputs.
    pub updates: Vec<(Role, ValueId)>,
    pub logits: ValueId,
    /// Mean cross-entropy over the batch.
    pub loss: ValueId,
    /// The sum of all penalty terms, each times its strength (the scalar `Strength(k)`).
    pub penalty: ValueId,
    /// `loss + penalty`: what the step differentiates.
    pub objective: ValueId,
    pub batch: usize,
}

/// Lowers the model and loss, with the given penalty terms.
pub fn lower(
    program: &Program,
    model: &Model,
    penalties: &[PenaltyTerm],
    batch: usize,
) -> Result<Forward, CompileError> {
    let mut g = Graph::default();
    let inputs = param_inputs(&mut g, model);
    let (logits, updates) = forward(&mut g, model, &inputs, batch, Mode::Train)?;
    let loss = cross_entropy(&mut g, logits, batch);
    let params: Vec<(String, ValueId)> =
        inputs.into_iter().filter(|(n, _)| model.param(n).is_some_and(|p| p.trainable())).collect();

    // The terms' sum, started from the first term rather than from 0 (0 + x is not x where
    // x is −0, so the simplifier may not drop the add).
    let mut penalty = None;
    for (k, term) in penalties.iter().enumerate() {
        let strength = g.input_value(Role::Scalar(Scalar::Strength(k)), vec![]);
        let mut sum = None;
        for t in &term.tensors {
            let p = if term.coupled {
                unit_group_matrix(&mut g, model, &params, t)?
            } else {
                params.iter().find(|(n, _)| n == t).ok_or_else(|| internal(format!("no parameter {t}")))?.1
            };
            let args: Vec<Val<ValueId>> = term.args.iter().map(|a| a.map_or(Val::Tensor(p), Val::Num)).collect();
            let v = Evaluator::new(&program.functions, GraphDomain { g: &mut g })
                .call_named(&term.function, &args, &[], Span::default())
                .map_err(|e| internal(format!("penalty `{}`: {}", term.function, e.message)))?;
            let v = match v {
                Val::Tensor(t) => t,
                Val::Num(n) => g.scalar(n),
                Val::List(_) => return Err(internal(format!("penalty `{}` gives a list", term.function))),
            };
            sum = Some(match sum {
                Some(s) => g.binary(Binary::Add, s, v),
                None => v,
            });
        }
        if let Some(s) = sum {
            let weighted = g.binary(Binary::Mul, strength, s);
            penalty = Some(match penalty {
                Some(p) => g.binary(Binary::Add, p, weighted),
                None => weighted,
            });
        }
    }
    let (penalty, objective) = match penalty {
        Some(p) => (p, g.binary(Binary::Add, loss, p)),
        None => (g.scalar(0.0), loss),
    };
    g.outputs = vec![
        (Role::Output(Output::Loss), loss),
        (Role::Output(Output::Penalty), penalty),
        (Role::Output(Output::Objective), objective),
    ];
    Ok(Forward { graph: g, params, updates, logits, loss, penalty, objective, batch })
}

/// The unit groups of layer weight `weight` (`Model::unit_group`) as one matrix
/// [units, members]: each member's values of unit u side by side in row u (a weight's row,
/// batch norm's entry, a reader's input columns), views of the parameters, concatenated.
fn unit_group_matrix(
    g: &mut Graph,
    model: &Model,
    params: &[(String, ValueId)],
    weight: &str,
) -> Result<ValueId, CompileError> {
    use hoyer_front::program::Along;
    let group = model.unit_group(weight).ok_or_else(|| internal(format!("`{weight}` has no unit groups")))?;
    let units = group.units as usize;
    let mut parts = Vec::with_capacity(group.members.len());
    for m in &group.members {
        let v =
            params.iter().find(|(n, _)| *n == m.name).ok_or_else(|| internal(format!("no parameter {}", m.name)))?.1;
        let shape = g.shape(v).to_vec();
        let numel: usize = shape.iter().product();
        parts.push(match m.along {
            Along::Rows => g.reshape(v, vec![units, numel / units]),
            // [out, units·per, k…] → [units, out, per·k…] → one row per unit.
            Along::Columns => {
                let blocks = g.reshape(v, vec![shape[0], units, numel / (shape[0] * units)]);
                let by_unit = g.permute(blocks, vec![1, 0, 2]);
                g.reshape(by_unit, vec![units, numel / units])
            }
        });
    }
    Ok(g.concat(&parts, 1))
}

/// One input per parameter and buffer of `model`, in model order.
fn param_inputs(g: &mut Graph, model: &Model) -> Vec<(String, ValueId)> {
    model
        .params
        .iter()
        .map(|p| {
            let role = if p.trainable() { Role::Param(p.name.clone()) } else { Role::Buffer(p.name.clone()) };
            (p.name.clone(), g.input_value(role, p.shape.iter().map(|&d| d as usize).collect()))
        })
        .collect()
}

/// The forward pass alone, for evaluation: outputs `logits`.
pub fn lower_eval(model: &Model, batch: usize) -> Result<(Graph, ValueId), CompileError> {
    let mut g = Graph::default();
    let params = param_inputs(&mut g, model);
    let (logits, _) = forward(&mut g, model, &params, batch, Mode::Eval)?;
    g.outputs = vec![(Role::Output(Output::Logits), logits)];
    let g = crate::graph::passes::simplify(&g);
    let logits = g.outputs[0].1;
    Ok((g, logits))
}

/// How the training gather transforms each image sample [c, h, w]: pad by `padding` and crop
/// back at the sample's offsets, then mirror where the sample's flip is 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augmentation {
    pub padding: usize,
    pub flip: bool,
}

/// The batch gather: `x` and `labels` of `batch` samples, rows `order[start + i]` of a data
/// set of `rows` samples of `sample` shape resident in memory. The runtime uploads `order`
/// once per epoch and sets `start` per step; nothing else crosses to the device.
/// `targets` labels per sample: 1 (a class), or one per position of a text window.
pub fn lower_gather(
    rows: usize,
    sample: &[usize],
    dtype: Dtype,
    targets: usize,
    batch: usize,
    augment: Option<Augmentation>,
) -> Graph {
    let mut g = Graph::default();
    let table_shape: Vec<usize> = std::iter::once(rows).chain(sample.iter().copied()).collect();
    let table = g.input_typed(Role::Table, dtype, table_shape);
    let labels_shape = if targets > 1 { vec![rows, targets] } else { vec![rows] };
    let labels = g.input_typed(Role::TableLabels, Dtype::I32, labels_shape);
    let order = g.input_typed(Role::Order, Dtype::I32, vec![rows]);
    let start = g.input_value(Role::Scalar(Scalar::Start), vec![]);
    let i = g.iota(vec![batch], 0);
    let start_b = g.broadcast(start, &[batch], vec![]);
    let position = g.binary(Binary::Add, start_b, i);
    let picked = g.gather(order, position);
    let x = g.gather(table, picked);
    let y = g.gather(labels, picked);
    let x = match (augment, sample) {
        (Some(a), &[c, h, w]) => augmented(&mut g, x, picked, rows, [batch, c, h, w], a),
        _ => x,
    };
    g.outputs = vec![(Role::Data, x), (Role::Labels, y)];
    g
}

/// `out[b, c, i, j] = x[b, c, i + dy − p, j' + dx − p]` (zero outside the image), with
/// `j' = w − 1 − j` where sample b flips: a second gather, within the batch, at an index
/// computed per element (exact in float32: a batch holds far fewer than 2^24 numbers).
fn augmented(g: &mut Graph, x: ValueId, picked: ValueId, rows: usize, shape: [usize; 4], a: Augmentation) -> ValueId {
    let [batch, c, h, w] = shape;
    let s = shape.to_vec();
    let per_sample = |g: &mut Graph, name: Augment| {
        let table = g.input_value(Role::Augment(name), vec![rows]);
        let v = g.gather(table, picked);
        g.broadcast(v, &s, vec![0])
    };
    let (dy, dx, flip) = (per_sample(g, Augment::Dy), per_sample(g, Augment::Dx), per_sample(g, Augment::Flip));
    let konst = |g: &mut Graph, v: f64| g.constant(v, s.clone());
    let at = |g: &mut Graph, axis: usize| g.iota(s.clone(), axis);
    let (bi, ci, hi, wi) = (at(g, 0), at(g, 1), at(g, 2), at(g, 3));
    let p = konst(g, a.padding as f64);
    // Rows: i + dy − p.
    let row = g.binary(Binary::Add, hi, dy);
    let row = g.binary(Binary::Sub, row, p);
    // Columns: (flip ? w − 1 − j : j) + dx − p.
    let col = if a.flip {
        let last = konst(g, (w - 1) as f64);
        let two = konst(g, 2.0);
        let twice = g.binary(Binary::Mul, two, wi);
        let span = g.binary(Binary::Sub, last, twice);
        let moved = g.binary(Binary::Mul, flip, span);
        g.binary(Binary::Add, wi, moved)
    } else {
        wi
    };
    let col = g.binary(Binary::Add, col, dx);
    let col = g.binary(Binary::Sub, col, p);
    // Inside the image: 0 ≤ row < h and 0 ≤ col < w (step(v) = v > 0).
    let mut inside = None;
    for (v, n) in [(row, h), (col, w)] {
        let one = konst(g, 1.0);
        let lo = g.binary(Binary::Add, v, one);
        let lo = g.unary(Unary::Step, lo);
        let n = konst(g, n as f64);
        let hi = g.binary(Binary::Sub, n, v);
        let hi = g.unary(Unary::Step, hi);
        let both = g.binary(Binary::Mul, lo, hi);
        inside = Some(match inside {
            Some(i) => g.binary(Binary::Mul, i, both),
            None => both,
        });
    }
    let inside = inside.expect("two axes");
    let per_image = konst(g, (c * h * w) as f64);
    let mut index = g.binary(Binary::Mul, bi, per_image);
    for (v, stride) in [(ci, h * w), (row, w), (col, 1)] {
        let k = konst(g, stride as f64);
        let term = g.binary(Binary::Mul, v, k);
        index = g.binary(Binary::Add, index, term);
    }
    let zero = konst(g, 0.0);
    let index = g.select(inside, index, zero);
    let n = batch * c * h * w;
    let flat = g.reshape(x, vec![n]);
    let index = g.reshape(index, vec![n]);
    let moved = g.gather(flat, index);
    let moved = g.reshape(moved, s.clone());
    g.select(inside, moved, zero)
}

fn internal(message: impl Into<String>) -> CompileError {
    CompileError::internal("lowering", message)
}

/// The model's forward pass: each layer lowers itself (`hoyer_front::layers`). Images travel
/// channels-last, [batch, height, width, channels] (a sample's shape in the spec is
/// PyTorch's [channels, height, width]): a convolution's windows then read whole channel
/// rows, its product's rows are its output's pixels with no transpose, and pooling and batch
/// statistics run along contiguous channels. Only the data coming in (a view) and `flatten`
/// (to PyTorch's channel-major order) change layout.
fn forward(
    g: &mut Graph,
    model: &Model,
    params: &[(String, ValueId)],
    batch: usize,
    mode: Mode,
) -> Result<(ValueId, Vec<(Role, ValueId)>), CompileError> {
    let mut vals: Vec<ValueId> = Vec::with_capacity(model.nodes.len());
    let mut updates = Vec::new();
    let mut dropouts = 0;
    for node in &model.nodes {
        let prefix = node.name.clone().unwrap_or_default();
        let param = |suffix: &str| {
            // A free parameter's one tensor is named after its binding alone (`pos`).
            let name = if suffix.is_empty() { prefix.to_string() } else { format!("{prefix}.{suffix}") };
            params.iter().find(|(n, _)| *n == name).map(|p| p.1)
        };
        let mut cx = Lowering {
            g: &mut *g,
            inputs: node.inputs.iter().map(|&i| vals[i]).collect(),
            shape: std::iter::once(batch).chain(node.shape.iter().map(|&d| d as usize)).collect(),
            mode,
            params: &param,
            updates: vec![],
            dropouts,
        };
        let v =
            node.layer.lower(&mut cx).map_err(|e| internal(format!("`{}` ({}): {e}", prefix, node.layer.name())))?;
        dropouts = cx.dropouts;
        updates.extend(cx.updates.into_iter().map(|(suffix, v)| (Role::Buffer(format!("{prefix}.{suffix}")), v)));
        vals.push(v);
    }
    Ok((vals[model.output], updates))
}

/// Mean softmax cross-entropy of `logits` [batch, classes] against integer labels, computed
/// stably: log-softmax = z - log Σ exp z, with z = logits - max. The maximum only shifts the
/// numbers (the loss does not depend on it), so no gradient flows through it, as in PyTorch.
/// The mean cross-entropy of `logits` [batch, classes] against one label per sample, or of
/// [batch, t, classes] (a language model's next-token scores) against one per position: the
/// mean over every position, as `F.cross_entropy` of the flattened scores.
fn cross_entropy(g: &mut Graph, logits: ValueId, batch: usize) -> ValueId {
    let full = g.shape(logits).to_vec();
    let (labels, logits) = if full.len() == 3 {
        let labels = g.input_typed(Role::Labels, Dtype::I32, vec![batch, full[1]]);
        let labels = g.reshape(labels, vec![batch * full[1]]);
        (labels, g.reshape(logits, vec![batch * full[1], full[2]]))
    } else {
        (g.input_typed(Role::Labels, Dtype::I32, vec![batch]), logits)
    };
    let shape = g.shape(logits).to_vec();
    let batch = shape[0];
    let max = g.reduce(ReduceOp::Max, logits, vec![1]);
    let max = g.unary(Unary::Detach, max);
    let max_b = g.broadcast(max, &shape, vec![0]);
    let z = g.binary(Binary::Sub, logits, max_b);
    let e = g.unary(Unary::Exp, z);
    let s = g.reduce(ReduceOp::Sum, e, vec![1]);
    let lse = g.unary(Unary::Log, s);
    let lse_b = g.broadcast(lse, &shape, vec![0]);
    let logp = g.binary(Binary::Sub, z, lse_b);
    let onehot = g.one_hot(labels, shape[1]);
    let picked = g.binary(Binary::Mul, onehot, logp);
    let total = g.sum_all(picked);
    let scale = g.scalar(-1.0 / batch as f64);
    g.binary(Binary::Mul, total, scale)
}

/// The `fn` language's evaluator (`hoyer_front::check::func`, the one the checker runs over
/// shapes) over graph values: each builtin, product and reduction becomes graph ops.
struct GraphDomain<'g> {
    g: &'g mut Graph,
}

impl Domain for GraphDomain<'_> {
    type Tensor = ValueId;
    const BY_SITE: bool = false;
    fn shape(&self, t: &ValueId) -> Vec<u64> {
        self.g.shape(*t).iter().map(|&d| d as u64).collect()
    }
    fn unary(&mut self, op: Unary, t: ValueId) -> ValueId {
        self.g.unary(op, t)
    }
    fn pow(&mut self, t: ValueId, c: f64) -> ValueId {
        self.g.pow_const(t, c)
    }
    fn binary(&mut self, op: BinOp, a: Val<ValueId>, b: Val<ValueId>) -> ValueId {
        let g = &mut *self.g;
        let like: Vec<usize> = match (&a, &b) {
            (Val::Tensor(t), _) | (_, Val::Tensor(t)) => g.shape(*t).to_vec(),
            _ => vec![],
        };
        let to_tensor = |g: &mut Graph, v: Val<ValueId>| -> ValueId {
            match v {
                Val::Tensor(t) => t,
                Val::Num(n) => g.constant(n, like.clone()),
                Val::List(_) => g.scalar(0.0),
            }
        };
        let (x, y) = (to_tensor(g, a), to_tensor(g, b));
        let bop = match op {
            BinOp::Add => Binary::Add,
            BinOp::Sub => Binary::Sub,
            BinOp::Mul => Binary::Mul,
            _ => return guarded_div(g, x, y),
        };
        g.binary_bcast(bop, x, y)
    }
    fn reduce(&mut self, name: &str, x: ValueId, axes: Vec<usize>) -> ValueId {
        let g = &mut *self.g;
        let count: usize = axes.iter().map(|&a| g.shape(x)[a]).product();
        match name {
            "sum" => g.reduce(ReduceOp::Sum, x, axes),
            "max" => g.reduce(ReduceOp::Max, x, axes),
            "mean" => {
                let s = g.reduce(ReduceOp::Sum, x, axes);
                let shape = g.shape(s).to_vec();
                let k = g.constant(1.0 / count as f64, shape);
                g.binary(Binary::Mul, s, k)
            }
            _ => {
                let sq = g.pow_const(x, 2.0);
                let s = g.reduce(ReduceOp::Sum, sq, axes);
                g.unary(Unary::Sqrt, s)
            }
        }
    }
}

/// `a / b` in a regularizer, where a zero `b` gives 0 and no gradient: a ratio of norms
/// (Hoyer, Hoyer-Square, Group-HS) of a tensor that is entirely zero, after a prune,
/// contributes nothing, as the reference code skips such tensors. Written
/// `b != 0 ? a / (b != 0 ? b : 1) : 0`, so that not even the untaken side's gradient is
/// 0/0. A NaN `b` still gives NaN (and stops the run).
fn guarded_div(g: &mut Graph, a: ValueId, b: ValueId) -> ValueId {
    let (sa, sb) = (g.shape(a).to_vec(), g.shape(b).to_vec());
    let shape = if sa.len() >= sb.len() { sa.clone() } else { sb.clone() };
    let widen =
        |g: &mut Graph, v: ValueId, s: &[usize]| if s == shape.as_slice() { v } else { g.broadcast(v, &shape, vec![]) };
    let (a, b) = (widen(g, a, &sa), widen(g, b, &sb));
    let one = g.constant(1.0, shape.clone());
    let zero = g.constant(0.0, shape);
    let safe = g.select(b, b, one);
    let q = g.binary(Binary::Div, a, safe);
    g.select(b, q, zero)
}

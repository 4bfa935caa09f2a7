//! Lowering a checked spec to the IR: the model's forward pass over a batch, softmax
//! cross-entropy, and each penalty term instantiated from its `fn` body per selected tensor.
//! Gradients come later, from `autodiff`; nothing here is hand-differentiated.

use crate::error::CompileError;
use hoyer_front::check::find_function;
use hoyer_front::program::{Function, LayerOp, Model, PenaltyTerm, Program};
use hoyer_front::syntax::ast::{BinOp, Expr, ExprKind};
use hoyer_ir::{Binary, Fill, Graph, InputKind, ReduceOp, Slide, Unary, ValueId};
use std::collections::HashMap;

/// The forward computation of one phase over a batch.
#[derive(Debug, Clone)]
pub struct Forward {
    pub graph: Graph,
    /// Trainable parameter inputs, in model order.
    pub params: Vec<(String, ValueId)>,
    /// New values of the buffers the forward pass keeps (batch norm's running statistics),
    /// by name: outputs of the step that update their inputs.
    pub updates: Vec<(String, ValueId)>,
    pub logits: ValueId,
    /// Mean cross-entropy over the batch.
    pub loss: ValueId,
    /// The sum of all penalty terms, each times its strength input `strength.K`.
    pub penalty: ValueId,
    /// `loss + penalty`: what the step differentiates.
    pub objective: ValueId,
    pub batch: usize,
}

/// Names of the data inputs.
pub const DATA: &str = "x";
pub const LABELS: &str = "labels";

/// The step's key for dropout's random numbers, set by the runtime every step.
pub const DROPOUT_KEY: &str = "dropout_key";

pub fn strength_input(term: usize) -> String {
    format!("strength.{term}")
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
        let strength = g.input_value(&strength_input(k), InputKind::Scalar, vec![]);
        let mut sum = None;
        for t in &term.tensors {
            let p = params.iter().find(|(n, _)| n == t).ok_or_else(|| internal(format!("no parameter {t}")))?.1;
            let args: Vec<LVal> = term.args.iter().map(|a| a.map_or(LVal::T(p), LVal::N)).collect();
            let v = Lowerer { g: &mut g, functions: &program.functions, memo: HashMap::new() }
                .call(&term.function, args, vec![])
                .map_err(|e| internal(format!("penalty `{}`: {e}", term.function)))?;
            let v = v.tensor(&mut g);
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
    g.outputs = vec![("loss".into(), loss), ("penalty".into(), penalty), ("objective".into(), objective)];
    Ok(Forward { graph: g, params, updates, logits, loss, penalty, objective, batch })
}

/// One input per parameter and buffer of `model`, in model order.
fn param_inputs(g: &mut Graph, model: &Model) -> Vec<(String, ValueId)> {
    model
        .params
        .iter()
        .map(|p| {
            let kind = if p.trainable() { InputKind::Param } else { InputKind::State };
            (p.name.clone(), g.input_value(&p.name, kind, p.shape.iter().map(|&d| d as usize).collect()))
        })
        .collect()
}

/// Training (batch statistics, running statistics updated) or evaluation (running
/// statistics), as PyTorch's `model.train()` and `model.eval()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Train,
    Eval,
}

/// The forward pass alone, for evaluation: outputs `logits`.
pub fn lower_eval(model: &Model, batch: usize) -> Result<(Graph, ValueId), CompileError> {
    let mut g = Graph::default();
    let params = param_inputs(&mut g, model);
    let (logits, _) = forward(&mut g, model, &params, batch, Mode::Eval)?;
    g.outputs = vec![("logits".into(), logits)];
    let g = crate::graph::passes::simplify(&g);
    let logits = g.outputs[0].1;
    Ok((g, logits))
}

/// Inputs of the batch gather: the resident data set, its labels, the epoch's order of
/// samples, and where in that order the batch starts.
pub const TABLE: &str = "table";
pub const TABLE_LABELS: &str = "table_labels";
pub const ORDER: &str = "order";
pub const START: &str = "start";
/// Per-sample augmentation of the training set, drawn every epoch: the crop's offsets
/// (0 to 2 · padding) and whether to flip.
pub const AUG_DY: &str = "augment_dy";
pub const AUG_DX: &str = "augment_dx";
pub const AUG_FLIP: &str = "augment_flip";

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
pub fn lower_gather(rows: usize, sample: &[usize], batch: usize, augment: Option<Augmentation>) -> Graph {
    let mut g = Graph::default();
    let table_shape: Vec<usize> = std::iter::once(rows).chain(sample.iter().copied()).collect();
    let table = g.input_value(TABLE, InputKind::Data, table_shape);
    let labels = g.input_value(TABLE_LABELS, InputKind::Labels, vec![rows]);
    let order = g.input_value(ORDER, InputKind::Data, vec![rows]);
    let start = g.input_value(START, InputKind::Scalar, vec![]);
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
    g.outputs = vec![(DATA.into(), x), (LABELS.into(), y)];
    g
}

/// `out[b, c, i, j] = x[b, c, i + dy − p, j' + dx − p]` (zero outside the image), with
/// `j' = w − 1 − j` where sample b flips: a second gather, within the batch, at an index
/// computed per element (exact in float32: a batch holds far fewer than 2^24 numbers).
fn augmented(g: &mut Graph, x: ValueId, picked: ValueId, rows: usize, shape: [usize; 4], a: Augmentation) -> ValueId {
    let [batch, c, h, w] = shape;
    let s = shape.to_vec();
    let per_sample = |g: &mut Graph, name: &str| {
        let table = g.input_value(name, InputKind::Data, vec![rows]);
        let v = g.gather(table, picked);
        g.broadcast(v, &s, vec![0])
    };
    let (dy, dx, flip) = (per_sample(g, AUG_DY), per_sample(g, AUG_DX), per_sample(g, AUG_FLIP));
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

/// The model's forward pass. Images travel channels-last, [batch, height, width, channels]
/// (a sample's shape in the spec is PyTorch's [channels, height, width]): a convolution's
/// windows then read whole channel rows, its product's rows are its output's pixels with no
/// transpose, and pooling and batch statistics run along contiguous channels. Only the data
/// coming in (a view) and `flatten` (to PyTorch's channel-major order) change layout.
fn forward(
    g: &mut Graph,
    model: &Model,
    params: &[(String, ValueId)],
    batch: usize,
    mode: Mode,
) -> Result<(ValueId, Vec<(String, ValueId)>), CompileError> {
    let param = |name: String| params.iter().find(|(n, _)| *n == name).map(|p| p.1);
    let mut vals: Vec<ValueId> = Vec::with_capacity(model.nodes.len());
    let mut updates = Vec::new();
    let mut dropouts = 0.0;
    for node in &model.nodes {
        let shape: Vec<usize> = std::iter::once(batch).chain(node.shape.iter().map(|&d| d as usize)).collect();
        let input = |i: usize| vals[node.inputs[i]];
        let layer = node.name.clone().unwrap_or_default();
        let weight = || param(format!("{layer}.weight")).ok_or_else(|| internal(format!("`{layer}` without weight")));
        let bias = || param(format!("{layer}.bias")).ok_or_else(|| internal(format!("`{layer}` without bias")));
        let buffer =
            |what: &str| param(format!("{layer}.{what}")).ok_or_else(|| internal(format!("`{layer}` without {what}")));
        let v = match &node.op {
            LayerOp::Input => {
                let x = g.input_value(DATA, InputKind::Data, shape.clone());
                if shape.len() == 4 {
                    g.permute(x, vec![0, 2, 3, 1])
                } else {
                    x
                }
            }
            LayerOp::Dense { bias: has_bias, .. } => {
                let y = g.matmul(input(0), weight()?, false, true);
                if *has_bias {
                    let bb = g.broadcast(bias()?, &shape, vec![1]);
                    g.binary(Binary::Add, y, bb)
                } else {
                    y
                }
            }
            LayerOp::Conv2d { out, kernel, stride, padding, bias: has_bias, dilation } => {
                // Columns [pixels, kh·kw·channels] times the weight [out, kh·kw·channels]ᵀ.
                // Channels innermost: a column row is whole runs of an input row's pixels
                // (kw·channels contiguous numbers), and only the small weight is permuted.
                let x = input(0);
                let (k, o) = (*kernel as usize, *out as usize);
                let channels = g.shape(x)[3];
                let slide = Slide {
                    size: k,
                    stride: *stride as usize,
                    padding: *padding as usize,
                    dilation: *dilation as usize,
                };
                let windows = g.window(x, vec![1, 2], vec![slide, slide], Fill::Zero);
                let windows = g.permute(windows, vec![0, 1, 2, 4, 5, 3]);
                let (oh, ow) = (shape[2], shape[3]);
                let pixels = batch * oh * ow;
                let columns = g.reshape(windows, vec![pixels, k * k * channels]);
                let w = g.permute(weight()?, vec![0, 2, 3, 1]);
                let w = g.reshape(w, vec![o, k * k * channels]);
                let mut y = g.matmul(columns, w, false, true);
                if *has_bias {
                    let bb = g.broadcast(bias()?, &[pixels, o], vec![1]);
                    y = g.binary(Binary::Add, y, bb);
                }
                g.reshape(y, vec![batch, oh, ow, o])
            }
            LayerOp::MaxPool { size, stride, padding } | LayerOp::AvgPool { size, stride, padding } => {
                let max = matches!(node.op, LayerOp::MaxPool { .. });
                let slide =
                    Slide { size: *size as usize, stride: *stride as usize, padding: *padding as usize, dilation: 1 };
                let fill = if max { Fill::NegInf } else { Fill::Zero };
                let x = input(0);
                let [n, h, w, c] = g.shape(x).to_vec()[..] else { return Err(internal("pooling a non-image")) };
                let k = slide.size;
                // Windows that tile the image (2×2, stride 2) are a reshape to [n, oh, k, ow,
                // k, c] reduced over its axes 2 and 4: no permute, so the gradient is a plain
                // reshape back, fused with what reads it.
                // (Average pooling with padding counts the zeros, as PyTorch's default.)
                let (windows, axes) = if slide.stride == k && slide.padding == 0 && h % k == 0 && w % k == 0 {
                    (g.reshape(x, vec![n, h / k, k, w / k, k, c]), vec![2, 4])
                } else {
                    (g.window(x, vec![1, 2], vec![slide, slide], fill), vec![4, 5])
                };
                if max {
                    g.reduce(ReduceOp::MaxFirst, windows, axes)
                } else {
                    let sum = g.reduce(ReduceOp::Sum, windows, axes);
                    let scale = g.scalar(1.0 / (slide.size * slide.size) as f64);
                    g.binary_bcast(Binary::Mul, sum, scale)
                }
            }
            LayerOp::BatchNorm { eps, momentum } => {
                let x = input(0);
                let (mean, var) = match mode {
                    Mode::Train => {
                        let (mean, var) = batch_statistics(g, x);
                        // running ← (1 − momentum) · running + momentum · batch, the variance
                        // unbiased (M / (M − 1)), as PyTorch.
                        let m: usize = g.shape(x)[..3].iter().product();
                        let unbias = m as f64 / (m.max(2) - 1) as f64;
                        for (what, stat, scale) in [("running_mean", mean, 1.0), ("running_var", var, unbias)] {
                            let old = buffer(what)?;
                            let keep = g.scalar(1.0 - momentum);
                            let kept = g.binary_bcast(Binary::Mul, old, keep);
                            let add = g.scalar(momentum * scale);
                            let added = g.binary_bcast(Binary::Mul, stat, add);
                            updates.push((format!("{layer}.{what}"), g.binary(Binary::Add, kept, added)));
                        }
                        let count = buffer("num_batches_tracked")?;
                        let one = g.scalar(1.0);
                        updates.push((format!("{layer}.num_batches_tracked"), g.binary(Binary::Add, count, one)));
                        (mean, var)
                    }
                    Mode::Eval => (buffer("running_mean")?, buffer("running_var")?),
                };
                // (x − mean) / √(var + eps) · weight + bias, per channel (the last axis).
                let shape = g.shape(x).to_vec();
                let per_channel = |g: &mut Graph, v: ValueId| g.broadcast(v, &shape, vec![3]);
                let e = g.scalar(*eps);
                let ve = g.binary_bcast(Binary::Add, var, e);
                let sd = g.unary(Unary::Sqrt, ve);
                let inv = g.unary(Unary::Recip, sd);
                let scale = g.binary(Binary::Mul, inv, weight()?);
                let mean_b = per_channel(g, mean);
                let centered = g.binary(Binary::Sub, x, mean_b);
                let scale_b = per_channel(g, scale);
                let scaled = g.binary(Binary::Mul, centered, scale_b);
                let bias_b = per_channel(g, bias()?);
                g.binary(Binary::Add, scaled, bias_b)
            }
            LayerOp::Dropout { p } if mode == Mode::Train && *p > 0.0 => {
                // keep = random(element, key + layer) < 1 − p, each layer its own numbers.
                let x = input(0);
                let s = g.shape(x).to_vec();
                let counter = element_numbers(g, &s);
                let key = g.input_value(DROPOUT_KEY, InputKind::Scalar, vec![]);
                let layer_key = g.scalar(dropouts * 1021.0);
                dropouts += 1.0;
                let key = g.binary(Binary::Add, key, layer_key);
                let key = g.broadcast(key, &s, vec![]);
                let u = g.binary(Binary::Random, counter, key);
                let keep_p = g.constant(1.0 - p, s.clone());
                let below = g.binary(Binary::Sub, keep_p, u);
                let keep = g.unary(Unary::Step, below);
                let scale = g.constant(1.0 / (1.0 - p), s);
                let kept = g.binary(Binary::Mul, x, keep);
                g.binary(Binary::Mul, kept, scale)
            }
            LayerOp::Dropout { .. } => input(0),
            LayerOp::Shortcut { out, stride } => {
                // Every stride-th pixel (windows of one pixel), then zero channels on both
                // sides (windows of one channel over a padded axis); both are views.
                let x = input(0);
                let s = *stride as usize;
                let one = |stride, padding| Slide { size: 1, stride, padding, dilation: 1 };
                let picked = g.window(x, vec![1, 2], vec![one(s, 0), one(s, 0)], Fill::Zero);
                let [n, h, w, c, _, _] = g.shape(picked).to_vec()[..] else { return Err(internal("shortcut shape")) };
                let picked = g.reshape(picked, vec![n, h, w, c]);
                let pad = (*out as usize - c) / 2;
                let padded = g.window(picked, vec![3], vec![one(1, pad)], Fill::Zero);
                g.reshape(padded, vec![n, h, w, *out as usize])
            }
            LayerOp::GlobalAvgPool => {
                let x = input(0);
                let [_, h, w, _] = g.shape(x).to_vec()[..] else { return Err(internal("pooling a non-image")) };
                let sum = g.reduce(ReduceOp::Sum, x, vec![1, 2]);
                let scale = g.scalar(1.0 / (h * w) as f64);
                g.binary_bcast(Binary::Mul, sum, scale)
            }
            LayerOp::Relu => g.unary(Unary::Relu, input(0)),
            LayerOp::Tanh => g.unary(Unary::Tanh, input(0)),
            LayerOp::Sigmoid => g.unary(Unary::Sigmoid, input(0)),
            LayerOp::Gelu => {
                // x/2 · (1 + erf(x/√2))
                let x = input(0);
                let s = g.shape(x).to_vec();
                let k = g.constant(std::f64::consts::FRAC_1_SQRT_2, s.clone());
                let u = g.binary(Binary::Mul, x, k);
                let e = g.unary(Unary::Erf, u);
                let one = g.constant(1.0, s.clone());
                let p = g.binary(Binary::Add, one, e);
                let half = g.constant(0.5, s);
                let hx = g.binary(Binary::Mul, half, x);
                g.binary(Binary::Mul, hx, p)
            }
            LayerOp::LeakyRelu { slope } => {
                // x > 0 ? x : slope · x, so that the gradient at 0 is the slope, as PyTorch's.
                let x = input(0);
                let s = g.shape(x).to_vec();
                let positive = g.unary(Unary::Step, x);
                let k = g.constant(*slope, s);
                let scaled = g.binary(Binary::Mul, k, x);
                g.select(positive, x, scaled)
            }
            LayerOp::Flatten => {
                // PyTorch flattens [channels, height, width].
                let x = input(0);
                let x = if g.shape(x).len() == 4 { g.permute(x, vec![0, 3, 1, 2]) } else { x };
                g.reshape(x, shape)
            }
            LayerOp::Add => g.binary(Binary::Add, input(0), input(1)),
        };
        vals.push(v);
    }
    Ok((vals[model.output], updates))
}

/// Each element's row-major position in a tensor of `shape`, as a number (exact below 2^24).
fn element_numbers(g: &mut Graph, shape: &[usize]) -> ValueId {
    let mut index: Option<ValueId> = None;
    let mut stride = 1usize;
    for axis in (0..shape.len()).rev() {
        let i = g.iota(shape.to_vec(), axis);
        let k = g.constant(stride as f64, shape.to_vec());
        let term = g.binary(Binary::Mul, i, k);
        index = Some(match index {
            Some(s) => g.binary(Binary::Add, s, term),
            None => term,
        });
        stride *= shape[axis];
    }
    index.unwrap_or_else(|| g.scalar(0.0))
}

/// The mean and biased variance of each channel of `x` [n, h, w, c] over the batch and the
/// image, each [c]: the statistics batch norm normalizes with while training.
fn batch_statistics(g: &mut Graph, x: ValueId) -> (ValueId, ValueId) {
    let shape = g.shape(x).to_vec();
    let m: usize = shape[..3].iter().product();
    let k = g.scalar(1.0 / m as f64);
    let sum = g.reduce(ReduceOp::Sum, x, vec![0, 1, 2]);
    let mean = g.binary_bcast(Binary::Mul, sum, k);
    let mean_b = g.broadcast(mean, &shape, vec![3]);
    let centered = g.binary(Binary::Sub, x, mean_b);
    let sq = g.binary(Binary::Mul, centered, centered);
    let ss = g.reduce(ReduceOp::Sum, sq, vec![0, 1, 2]);
    let var = g.binary_bcast(Binary::Mul, ss, k);
    (mean, var)
}

/// Mean softmax cross-entropy of `logits` [batch, classes] against integer labels, computed
/// stably: log-softmax = z - log Σ exp z, with z = logits - max. The maximum only shifts the
/// numbers (the loss does not depend on it), so no gradient flows through it, as in PyTorch.
fn cross_entropy(g: &mut Graph, logits: ValueId, batch: usize) -> ValueId {
    let shape = g.shape(logits).to_vec();
    let labels = g.input_value(LABELS, InputKind::Labels, vec![batch]);
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

/// A value while lowering a `fn` body: a tensor, a constant, or a list of constants.
#[derive(Debug, Clone)]
enum LVal {
    T(ValueId),
    N(f64),
    L(Vec<f64>),
}

impl LVal {
    fn tensor(self, g: &mut Graph) -> ValueId {
        match self {
            LVal::T(v) => v,
            LVal::N(n) => g.scalar(n),
            LVal::L(_) => g.scalar(0.0),
        }
    }
}

struct Lowerer<'a> {
    g: &'a mut Graph,
    functions: &'a [Function],
    /// Calls already lowered, by callee and arguments: a function called twice with the same
    /// arguments is one subgraph (linear size for chains of doubling calls).
    memo: HashMap<String, LVal>,
}

impl Lowerer<'_> {
    fn call(&mut self, name: &str, args: Vec<LVal>, named: Vec<(String, LVal)>) -> Result<LVal, String> {
        let unary = match name {
            "abs" => Some(Unary::Abs),
            "sqrt" => Some(Unary::Sqrt),
            "exp" => Some(Unary::Exp),
            "log" => Some(Unary::Log),
            "sign" => Some(Unary::Sign),
            _ => None,
        };
        if let Some(u) = unary {
            return Ok(match args.into_iter().next().ok_or("missing argument")? {
                LVal::T(x) => LVal::T(self.g.unary(u, x)),
                LVal::N(v) => LVal::N(u.apply(v)),
                LVal::L(_) => return Err(format!("`{name}` of a list")),
            });
        }
        if matches!(name, "sum" | "mean" | "max" | "norm2") {
            return self.reduce(name, args, named);
        }
        let key = format!("{name}|{args:?}|{named:?}");
        if let Some(v) = self.memo.get(&key) {
            return Ok(v.clone());
        }
        let f = find_function(self.functions, name).ok_or_else(|| format!("unknown function {name}"))?;
        let mut env: HashMap<String, LVal> = HashMap::new();
        for (p, v) in f.def.params.iter().zip(args) {
            env.insert(p.name.clone(), v);
        }
        for (n, v) in named {
            env.insert(n, v);
        }
        let v = self.expr(&f.def.body, &env)?;
        self.memo.insert(key, v.clone());
        Ok(v)
    }

    fn reduce(&mut self, name: &str, args: Vec<LVal>, named: Vec<(String, LVal)>) -> Result<LVal, String> {
        let x = match args.into_iter().next().ok_or("missing argument")? {
            LVal::T(x) => x,
            LVal::N(v) => return Ok(LVal::N(if name == "norm2" { v.abs() } else { v })),
            LVal::L(_) => return Err(format!("`{name}` of a list")),
        };
        let rank = self.g.shape(x).len();
        let listed = |v: &LVal| -> Vec<usize> {
            let raw = match v {
                LVal::N(n) => vec![*n],
                LVal::L(l) => l.clone(),
                LVal::T(_) => vec![],
            };
            raw.into_iter().map(|a| if a < 0.0 { (a as i64 + rank as i64) as usize } else { a as usize }).collect()
        };
        let mut axes: Vec<usize> = match named.iter().find(|(n, _)| n == "over" || n == "keep") {
            Some((n, v)) if n == "over" => listed(v),
            Some((_, v)) => {
                let keep = listed(v);
                (0..rank).filter(|a| !keep.contains(a)).collect()
            }
            None => (0..rank).collect(),
        };
        axes.sort_unstable();
        axes.dedup();
        let g = &mut *self.g;
        let count: usize = axes.iter().map(|&a| g.shape(x)[a]).product();
        Ok(LVal::T(match name {
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
        }))
    }

    fn expr(&mut self, e: &Expr, env: &HashMap<String, LVal>) -> Result<LVal, String> {
        Ok(match &e.kind {
            ExprKind::Number(v) => LVal::N(*v),
            ExprKind::Name(n) => env.get(n).cloned().ok_or_else(|| format!("unbound name {n}"))?,
            ExprKind::Neg(x) => match self.expr(x, env)? {
                LVal::T(t) => LVal::T(self.g.unary(Unary::Neg, t)),
                LVal::N(v) => LVal::N(-v),
                LVal::L(_) => return Err("negated list".into()),
            },
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for i in items {
                    match self.expr(i, env)? {
                        LVal::N(v) => out.push(v),
                        _ => return Err("a list holds numbers".into()),
                    }
                }
                LVal::L(out)
            }
            ExprKind::Binary(op, a, b) => {
                let (a, b) = (self.expr(a, env)?, self.expr(b, env)?);
                self.binary(*op, a, b)?
            }
            ExprKind::Call(c) => {
                let mut args = Vec::new();
                let mut named = Vec::new();
                for a in &c.args {
                    let v = self.expr(&a.value, env)?;
                    match &a.name {
                        Some(n) => named.push((n.name.clone(), v)),
                        None => args.push(v),
                    }
                }
                self.call(&c.func.name, args, named)?
            }
            _ => return Err("unexpected expression in a function".into()),
        })
    }

    fn binary(&mut self, op: BinOp, a: LVal, b: LVal) -> Result<LVal, String> {
        let g = &mut *self.g;
        if let (LVal::N(x), LVal::N(y)) = (&a, &b) {
            return Ok(LVal::N(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                BinOp::Pow => x.powf(*y),
            }));
        }
        if op == BinOp::Pow {
            let (LVal::T(x), LVal::N(c)) = (a, b) else { return Err("the exponent must be a constant".into()) };
            return Ok(LVal::T(g.pow_const(x, c)));
        }
        let to_tensor = |g: &mut Graph, v: LVal, like: &[usize]| -> ValueId {
            match v {
                LVal::T(t) => t,
                LVal::N(n) => g.constant(n, like.to_vec()),
                LVal::L(_) => g.scalar(0.0),
            }
        };
        let like: Vec<usize> = match (&a, &b) {
            (LVal::T(t), _) | (_, LVal::T(t)) => g.shape(*t).to_vec(),
            _ => vec![],
        };
        let (x, y) = (to_tensor(g, a, &like), to_tensor(g, b, &like));
        let bop = match op {
            BinOp::Add => Binary::Add,
            BinOp::Sub => Binary::Sub,
            BinOp::Mul => Binary::Mul,
            _ => return Ok(LVal::T(guarded_div(g, x, y))),
        };
        Ok(LVal::T(g.binary_bcast(bop, x, y)))
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

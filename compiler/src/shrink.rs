//! `then shrink`: a model and its weights to a smaller model that computes the same logits.
//!
//! Each dense or conv layer's output units (rows, filters) are kept or removed:
//! - a unit no later layer reads (its column or input channel is zero in every reader) goes;
//! - a unit whose incoming weights are all zero is a constant (its bias, through the
//!   activations after it); its readers add what it contributes to their own biases, and it
//!   goes. Where a reader cannot take that (no bias; a padded convolution or pooling, whose
//!   border sees zeros instead of the constant; dropout while training), the unit stays.
//!
//! Liveness runs over the model's nodes: forward for constants (a unit constant in, the
//! same unit constant out of every per-unit op), backward for readers (a kept unit reads
//! what its row or filter touches). A channel of a conv output is a block of H·W units after
//! `flatten`, in PyTorch's order. Batch norm, residual adds and option-A shortcuts are not
//! shrunk yet: a model with them is refused with a message saying so.

use crate::program::{LayerOp, Model, Node};
use std::collections::HashMap;

/// Weights by parameter name, as PyTorch lays them out (dense `[out, in]`, conv
/// `[out, in, kh, kw]`).
pub type Weights = HashMap<String, Vec<f32>>;

#[derive(Debug, Clone)]
pub struct Shrunk {
    pub model: Model,
    /// The shrunk model's weights and biases (biases with the removed constants folded in).
    pub weights: Weights,
    /// For each node, the original indices of the units it keeps along its first axis.
    pub kept: Vec<Vec<usize>>,
}

/// Units of each node along its first axis: a vector's entries, an image's channels.
fn units(node: &Node) -> usize {
    node.shape.first().copied().unwrap_or(1) as usize
}

/// Pixels per unit (1 for vectors).
fn pixels(node: &Node) -> usize {
    node.shape.iter().skip(1).product::<u64>() as usize
}

fn is_layer(op: &LayerOp) -> bool {
    matches!(op, LayerOp::Dense { .. } | LayerOp::Conv2d { .. })
}

/// A per-unit activation of a constant, where it is exactly computable here.
fn activate(op: &LayerOp, x: f32) -> Option<f32> {
    Some(match op {
        LayerOp::Relu => x.max(0.0),
        LayerOp::Tanh => x.tanh(),
        LayerOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        LayerOp::LeakyRelu { slope } if x < 0.0 => x * *slope as f32,
        LayerOp::LeakyRelu { .. } => x,
        LayerOp::Gelu if x == 0.0 => 0.0,
        _ => return None,
    })
}

/// A layer's weight as rows of `width`, each row a block of `per_in` values per input unit.
struct Rows<'a> {
    w: &'a [f32],
    width: usize,
    per_in: usize,
}

impl Rows<'_> {
    fn block(&self, r: usize, c: usize) -> &[f32] {
        &self.w[r * self.width + c * self.per_in..r * self.width + (c + 1) * self.per_in]
    }
    fn reads(&self, r: usize, c: usize) -> bool {
        self.block(r, c).iter().any(|&x| x != 0.0)
    }
    fn sum(&self, r: usize, c: usize) -> f64 {
        self.block(r, c).iter().map(|&x| x as f64).sum()
    }
}

impl Shrunk {
    /// `data`, a tensor shaped like parameter `name` of `original` (a weight, its mask, its
    /// optimizer state), cut to the shrunk model's shape: kept rows, and of a weight the
    /// kept input units.
    pub fn cut(&self, original: &Model, name: &str, data: &[f32]) -> Option<Vec<f32>> {
        let p = original.param(name)?;
        let node = &original.nodes[p.node];
        let rows = &self.kept[p.node];
        if p.shape.len() == 1 {
            return Some(rows.iter().map(|&r| data[r]).collect());
        }
        let input = node.inputs.first().copied()?;
        let width = data.len() / units(node);
        let w = Rows { w: data, width, per_in: width / units(&original.nodes[input]).max(1) };
        let mut out = Vec::with_capacity(rows.len() * self.kept[input].len() * w.per_in);
        for &r in rows {
            for &c in &self.kept[input] {
                out.extend_from_slice(w.block(r, c));
            }
        }
        Some(out)
    }
}

/// The smaller model computing `model`'s logits from `weights`, or why it cannot be made.
pub fn shrink(model: &Model, weights: &Weights) -> Result<Shrunk, String> {
    let n = model.nodes.len();
    for node in &model.nodes {
        if matches!(node.op, LayerOp::BatchNorm { .. } | LayerOp::Add | LayerOp::Shortcut { .. }) {
            return Err(format!(
                "`then shrink` cannot shrink a model with {} yet (only dense, conv, pooling, activations, dropout and flatten)",
                node.op.describe()
            ));
        }
    }
    let named = |i: usize, what: &str| format!("{}.{what}", model.nodes[i].name.as_deref().unwrap_or(""));
    let mut rows: HashMap<usize, Rows> = HashMap::new();
    for (i, node) in model.nodes.iter().enumerate() {
        if is_layer(&node.op) {
            let w =
                weights.get(&named(i, "weight")).ok_or_else(|| format!("no weights for `{}`", named(i, "weight")))?;
            let width = w.len() / units(node);
            rows.insert(i, Rows { w, width, per_in: width / units(&model.nodes[node.inputs[0]]).max(1) });
        }
    }
    let bias = |i: usize| weights.get(&named(i, "bias"));
    let padded = |op: &LayerOp| matches!(op, LayerOp::Conv2d { padding, .. } if *padding > 0);

    // Forward: each unit's constant value, where it has one.
    let mut constant: Vec<Vec<Option<f32>>> = Vec::with_capacity(n);
    for (i, node) in model.nodes.iter().enumerate() {
        let c: Vec<Option<f32>> = match &node.op {
            LayerOp::Input => vec![None; units(node)],
            LayerOp::Dense { .. } | LayerOp::Conv2d { .. } => {
                let (w, input) = (&rows[&i], &constant[node.inputs[0]]);
                (0..units(node))
                    .map(|r| {
                        let mut v = bias(i).map_or(0.0, |b| b[r] as f64);
                        for (c, x) in input.iter().enumerate() {
                            match x {
                                None if w.reads(r, c) => return None,
                                // A padded conv sees zeros, not the constant, at its border.
                                Some(x) if *x != 0.0 && padded(&node.op) && w.reads(r, c) => return None,
                                Some(x) => v += w.sum(r, c) * *x as f64,
                                None => {}
                            }
                        }
                        Some(v as f32)
                    })
                    .collect()
            }
            LayerOp::Flatten => {
                let per = pixels(&model.nodes[node.inputs[0]]);
                constant[node.inputs[0]].iter().flat_map(|&c| std::iter::repeat_n(c, per)).collect()
            }
            // Max pooling pads with −∞ and keeps a constant; average pooling counts padding
            // as zeros, so only a zero stays constant where it pads.
            LayerOp::MaxPool { .. } | LayerOp::GlobalAvgPool => constant[node.inputs[0]].clone(),
            LayerOp::AvgPool { padding, .. } => {
                constant[node.inputs[0]].iter().map(|c| c.filter(|&x| *padding == 0 || x == 0.0)).collect()
            }
            // Training scales what dropout keeps: only zero stays constant.
            LayerOp::Dropout { .. } => constant[node.inputs[0]].iter().map(|c| c.filter(|&x| x == 0.0)).collect(),
            op => constant[node.inputs[0]].iter().map(|c| c.and_then(|x| activate(op, x))).collect(),
        };
        constant.push(c);
    }

    // Backward: `read`, some kept unit reads it; `pinned`, some reader cannot do without it
    // (it varies there, or the reader cannot fold its constant). The logits are pinned.
    let mut read: Vec<Vec<bool>> = model.nodes.iter().map(|nd| vec![false; units(nd)]).collect();
    let mut pinned = read.clone();
    pinned[model.output].iter_mut().for_each(|p| *p = true);
    let mut keep: Vec<Vec<bool>> = vec![vec![]; n];
    for i in (0..n).rev() {
        let node = &model.nodes[i];
        keep[i] = (0..units(node)).map(|u| pinned[i][u] || (read[i][u] && constant[i][u].is_none())).collect();
        let Some(&j) = node.inputs.first() else { continue };
        match &node.op {
            LayerOp::Dense { .. } | LayerOp::Conv2d { .. } => {
                let w = &rows[&i];
                for c in 0..units(&model.nodes[j]) {
                    if !(0..units(node)).any(|r| keep[i][r] && w.reads(r, c)) {
                        continue;
                    }
                    match constant[j][c] {
                        None => read[j][c] = true,
                        Some(0.0) => {}
                        Some(_) if bias(i).is_some() && !padded(&node.op) => {}
                        Some(_) => pinned[j][c] = true,
                    }
                }
            }
            LayerOp::Flatten => {
                let per = pixels(&model.nodes[j]);
                for c in 0..units(&model.nodes[j]) {
                    read[j][c] |= read[i][c * per..(c + 1) * per].iter().any(|&r| r);
                    pinned[j][c] |= pinned[i][c * per..(c + 1) * per].iter().any(|&p| p);
                }
            }
            _ => {
                for u in 0..units(node) {
                    read[j][u] |= read[i][u];
                    pinned[j][u] |= pinned[i][u];
                }
            }
        }
    }
    // Per-unit ops keep what the layer (or input) before them keeps; the input keeps all.
    keep[0].iter_mut().for_each(|k| *k = true);
    for (i, node) in model.nodes.iter().enumerate() {
        if is_layer(&node.op) || node.inputs.is_empty() {
            continue;
        }
        let j = node.inputs[0];
        keep[i] = match node.op {
            LayerOp::Flatten => {
                let per = pixels(&model.nodes[j]);
                keep[j].iter().flat_map(|&k| std::iter::repeat_n(k, per)).collect()
            }
            _ => keep[j].clone(),
        };
    }
    let kept: Vec<Vec<usize>> = keep.iter().map(|k| (0..k.len()).filter(|&u| k[u]).collect()).collect();
    if let Some(i) = (0..n).find(|&i| is_layer(&model.nodes[i].op) && kept[i].is_empty()) {
        return Err(format!("every unit of `{}` is removed: nothing would reach the output", named(i, "weight")));
    }

    let widths: HashMap<String, u64> = (0..n)
        .filter(|&i| is_layer(&model.nodes[i].op))
        .filter_map(|i| Some((model.nodes[i].name.clone()?, kept[i].len() as u64)))
        .collect();
    let new = with_widths(model, &widths);
    let mut shrunk = Shrunk { model: new, weights: Weights::new(), kept };
    for (i, node) in model.nodes.iter().enumerate() {
        if !is_layer(&node.op) {
            continue;
        }
        let w = &rows[&i];
        let cut = shrunk.cut(model, &named(i, "weight"), w.w).expect("a layer's weight");
        shrunk.weights.insert(named(i, "weight"), cut);
        if let Some(b) = bias(i) {
            let j = node.inputs[0];
            // Each removed constant input's contribution, folded in.
            let folded: Vec<f32> = shrunk.kept[i]
                .iter()
                .map(|&r| {
                    let extra: f64 = (0..units(&model.nodes[j]))
                        .filter(|&c| !keep[j][c])
                        .map(|c| w.sum(r, c) * constant[j][c].unwrap_or(0.0) as f64)
                        .sum();
                    (b[r] as f64 + extra) as f32
                })
                .collect();
            shrunk.weights.insert(named(i, "bias"), folded);
        }
    }
    Ok(shrunk)
}

/// `model` with its dense and conv layers `widths[name]` units wide (the others as they
/// are), every shape after them following: a shrunk model, from its layers' widths alone
/// (a checkpoint's weights give them).
pub fn with_widths(model: &Model, widths: &HashMap<String, u64>) -> Model {
    let mut new = model.clone();
    for i in 0..new.nodes.len() {
        let input = new.nodes[i].inputs.first().map(|&j| new.nodes[j].shape.clone());
        let nd = &mut new.nodes[i];
        match (&mut nd.op, input) {
            (LayerOp::Dense { out, .. } | LayerOp::Conv2d { out, .. }, _) => {
                if let Some(&w) = nd.name.as_ref().and_then(|n| widths.get(n)) {
                    *out = w;
                }
                nd.shape[0] = *out;
            }
            (LayerOp::Input, _) | (_, None) => {}
            (LayerOp::Flatten, Some(input)) => nd.shape = vec![input.iter().product()],
            (_, Some(input)) => nd.shape[0] = input[0],
        }
    }
    for p in new.params.iter_mut() {
        let node = &new.nodes[p.node];
        p.shape[0] = node.shape[0];
        if p.shape.len() > 1 {
            let input = &new.nodes[node.inputs[0]];
            p.shape[1] = match node.op {
                LayerOp::Dense { .. } => input.shape.iter().product(),
                _ => input.shape[0],
            };
        }
    }
    new
}

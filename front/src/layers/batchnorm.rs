//! `batchnorm(x)`: PyTorch's `nn.BatchNorm2d`. Each channel of an image is normalized by the
//! batch's mean and biased variance while training (the running mean and unbiased variance
//! updated with PyTorch's momentum), by the running ones at evaluation; then scaled and
//! shifted.

use super::*;
use hoyer_ir::{Binary, ReduceOp, Unary};

/// PyTorch's `BatchNorm2d` defaults.
pub const EPS: f64 = 1e-5;
pub const MOMENTUM: f64 = 0.1;

pub static DEF: LayerDef = LayerDef {
    name: "batchnorm",
    doc: "batch normalization of each channel of an image, as nn.BatchNorm2d (eps 1e-5, momentum 0.1)",
    args: &[("input", true), ("eps", false), ("momentum", false)],
    example: "batchnorm(c1)",
    input_dtype: Dtype::F32,
    build,
};

/// Its buffers' names, as PyTorch's `BatchNorm2d` names them.
pub const BUFFERS: [&str; 3] = ["running_mean", "running_var", "num_batches_tracked"];

#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub eps: f64,
    pub momentum: f64,
}

fn setting(b: &mut Build, what: &'static str, default: f64, ok: fn(f64) -> bool) -> Option<f64> {
    b.number(what, default, ok, |got| {
        (
            Diagnostic::error(Code::BadLayerArgument, format!("`{what}` of `batchnorm` is {}", got.describe())).help(
                format!(
                    "`{what}` is a number {}: PyTorch's default is {}",
                    if what == "eps" { "above 0" } else { "from 0 to 1" },
                    fmt_num(default)
                ),
            ),
            format!("this {what}"),
        )
    })
}

fn build(b: &mut Build) -> Option<LayerRef> {
    let eps = setting(b, "eps", EPS, |v| v.is_finite() && v > 0.0);
    let momentum = setting(b, "momentum", MOMENTUM, |v| (0.0..=1.0).contains(&v));
    let (eps, momentum) = (eps?, momentum?);
    if b.input_shape().len() != 3 {
        let help = if b.input_shape().len() == 1 {
            "batch norm normalizes each channel of an image (PyTorch's BatchNorm2d): use it on a conv layer's output, before `flatten`"
        } else {
            "batch norm normalizes each channel of an image [channels, height, width]"
        };
        b.wrong_rank("an image [channels, height, width]", help);
        return None;
    }
    Some(Arc::new(BatchNorm { eps, momentum }))
}

impl Layer for BatchNorm {
    fn name(&self) -> &'static str {
        "batchnorm"
    }
    fn describe(&self) -> String {
        if self.eps != EPS || self.momentum != MOMENTUM {
            format!("batchnorm(eps = {}, momentum = {})", self.eps, self.momentum)
        } else {
            "batchnorm".into()
        }
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        inputs[0].to_vec()
    }
    fn params(&self, inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        let c = inputs[0][0];
        let p = |suffix, kind, shape: Vec<u64>, v| ParamDef { suffix, kind, shape, init: Init::Constant(v) };
        vec![
            p("weight", ParamKind::Weight, vec![c], 1.0),
            p("bias", ParamKind::Bias, vec![c], 0.0),
            p(BUFFERS[0], ParamKind::Buffer, vec![c], 0.0),
            p(BUFFERS[1], ParamKind::Buffer, vec![c], 1.0),
            p(BUFFERS[2], ParamKind::Buffer, vec![], 0.0),
        ]
    }
    fn batch_statistics(&self) -> bool {
        true
    }
    fn check_values(&self, suffix: &str, values: &[f32]) -> Result<(), String> {
        let bad = match suffix {
            "running_var" => values.iter().position(|v| !(v.is_finite() && *v >= 0.0)),
            "running_mean" => values.iter().position(|v| !v.is_finite()),
            _ => None,
        };
        match bad {
            Some(i) if suffix == "running_var" => {
                Err(format!("holds {} at channel {i}; a variance is finite and never negative", values[i]))
            }
            Some(i) => Err(format!("holds {} at channel {i}; a mean is finite", values[i])),
            None => Ok(()),
        }
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.inputs[0];
        let (mean, var) = match cx.mode {
            Mode::Train => {
                let (mean, var) = batch_statistics(cx.g, x);
                // running ← (1 − momentum) · running + momentum · batch, the variance
                // unbiased (M / (M − 1)), as PyTorch.
                let m: usize = cx.g.shape(x)[..3].iter().product();
                let unbias = m as f64 / (m.max(2) - 1) as f64;
                for (what, stat, scale) in [("running_mean", mean, 1.0), ("running_var", var, unbias)] {
                    let old = cx.param(what)?;
                    let g = &mut *cx.g;
                    let keep = g.scalar(1.0 - self.momentum);
                    let kept = g.binary_bcast(Binary::Mul, old, keep);
                    let add = g.scalar(self.momentum * scale);
                    let added = g.binary_bcast(Binary::Mul, stat, add);
                    let new = g.binary(Binary::Add, kept, added);
                    cx.updates.push((what, new));
                }
                let count = cx.param("num_batches_tracked")?;
                let one = cx.g.scalar(1.0);
                let counted = cx.g.binary(Binary::Add, count, one);
                cx.updates.push(("num_batches_tracked", counted));
                (mean, var)
            }
            Mode::Eval => (cx.param("running_mean")?, cx.param("running_var")?),
        };
        let (weight, bias) = (cx.param("weight")?, cx.param("bias")?);
        // (x − mean) / √(var + eps) · weight + bias, per channel (the last axis).
        let g = &mut *cx.g;
        let shape = g.shape(x).to_vec();
        let per_channel = |g: &mut Graph, v: ValueId| g.broadcast(v, &shape, vec![3]);
        let e = g.scalar(self.eps);
        let ve = g.binary_bcast(Binary::Add, var, e);
        let sd = g.unary(Unary::Sqrt, ve);
        let inv = g.unary(Unary::Recip, sd);
        let scale = g.binary(Binary::Mul, inv, weight);
        let mean_b = per_channel(g, mean);
        let centered = g.binary(Binary::Sub, x, mean_b);
        let scale_b = per_channel(g, scale);
        let scaled = g.binary(Binary::Mul, centered, scale_b);
        let bias_b = per_channel(g, bias);
        Ok(g.binary(Binary::Add, scaled, bias_b))
    }
    /// β, in training and evaluation alike, where γ is 0.
    fn constant<'w>(&self, _: Option<f32>, unit: usize, params: &dyn Fn(&str) -> Option<&'w [f32]>) -> Option<f32> {
        let (gamma, beta) = (params("weight")?, params("bias")?);
        (gamma[unit] == 0.0).then(|| beta[unit])
    }
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

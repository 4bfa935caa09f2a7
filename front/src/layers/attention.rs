//! `attention(x, heads = h, causal = false, bias = true)`: multi-head self-attention over a
//! sequence [t, d], as `nn.MultiheadAttention` computes it with its projections apart: four
//! `nn.Linear(d, d)` named `q`, `k`, `v` and `o` (`attn.q.weight` [d, d], `attn.q.bias` [d],
//! …). Each head h of width d/h attends with softmax(q_h·k_hᵀ / √(d/h)) over the tokens; with
//! `causal = true` token i sees tokens 0..=i only (the rest masked by a select before the
//! softmax, never by adding a large negative number); the heads side by side go through `o`.
//! The softmax subtracts each row's maximum first, so no score overflows.

use super::*;
use hoyer_ir::{Binary, ReduceOp, Unary};

pub static DEF: LayerDef = LayerDef {
    name: "attention",
    doc: "multi-head self-attention over a sequence [t, d]: projections q, k, v, o as nn.Linear(d, d), softmax(q·kᵀ/√(d/heads)); causal = true masks later tokens",
    args: &[("input", true), ("heads", true), ("causal", false), ("bias", false)],
    example: "attention(h, heads = 4, causal = true)",
    input_dtype: Dtype::F32,
    build,
};

/// The projections, in PyTorch's order of the parameters of the equivalent module.
const PROJECTIONS: [(&str, &str); 4] =
    [("q.weight", "q.bias"), ("k.weight", "k.bias"), ("v.weight", "v.bias"), ("o.weight", "o.bias")];

#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    pub heads: u64,
    pub causal: bool,
    pub bias: bool,
}

fn build(b: &mut Build) -> Option<LayerRef> {
    let heads = b.size("heads", "the number of heads", 1, None);
    let causal = b.flag("causal", false);
    let bias = b.flag("bias", true);
    let (heads, causal, bias) = (heads?, causal?, bias?);
    let [_, d] = b.input_shape()[..] else {
        b.wrong_rank(
            "a sequence of vectors [tokens, features]",
            "attention mixes the tokens of a sequence: give it an embedding's output [t, d]",
        );
        return None;
    };
    if d % heads != 0 {
        let span = b.span_of("heads");
        b.report(
            Diagnostic::error(Code::BadLayerArgument, format!("{heads} heads do not divide the width {d}"))
                .label(span, format!("{heads} heads"))
                .help(format!(
                    "each head takes d / heads features: choose heads among the divisors of {d}{}",
                    divisors_hint(d)
                )),
        );
        return None;
    }
    Some(Arc::new(Attention { heads, causal, bias }))
}

/// ` (1, 2, 4, 8, …)`: a few divisors to choose from.
fn divisors_hint(d: u64) -> String {
    let ds: Vec<String> = (1..=d).filter(|k| d % k == 0).take(9).map(|k| k.to_string()).collect();
    let more = if ds.len() > 8 { ", …" } else { "" };
    format!(" ({}{more})", ds[..ds.len().min(8)].join(", "))
}

impl Layer for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }
    fn describe(&self) -> String {
        let mut s = format!("attention(heads = {}", self.heads);
        if self.causal {
            s += ", causal = true";
        }
        if !self.bias {
            s += ", bias = false";
        }
        s + ")"
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        inputs[0].to_vec()
    }
    fn params(&self, inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        let d = inputs[0][1];
        let init = Init::UniformFanIn { fan_in: d };
        let mut out = Vec::new();
        for (w, b) in PROJECTIONS {
            out.push(ParamDef { suffix: w, kind: ParamKind::Weight, shape: vec![d, d], init });
            if self.bias {
                out.push(ParamDef { suffix: b, kind: ParamKind::Bias, shape: vec![d], init });
            }
        }
        out
    }
    /// Projections as products over all tokens of the batch; heads as a batch of products
    /// [batch·heads, t, d/h] (the split is a reshape and a permute); the masked, max-shifted
    /// softmax over the last axis; the heads merged back and projected by `o`.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.input(0);
        let shape = cx.g.shape(x).to_vec();
        let [b, t, d] = shape[..] else { return Err(format!("attention of {shape:?}")) };
        let h = self.heads as usize;
        let dh = d / h;
        let params: Vec<(ValueId, Option<ValueId>)> = PROJECTIONS
            .iter()
            .map(|(w, bias)| Ok((cx.param(w)?, if self.bias { Some(cx.param(bias)?) } else { None })))
            .collect::<Result<_, String>>()?;
        let g = &mut *cx.g;
        let project = |g: &mut Graph, rows: ValueId, (w, bias): (ValueId, Option<ValueId>)| {
            let y = g.matmul(rows, w, false, true);
            match bias {
                Some(bias) => {
                    let bb = g.broadcast(bias, &[b * t, d], vec![1]);
                    g.binary(Binary::Add, y, bb)
                }
                None => y,
            }
        };
        let split = |g: &mut Graph, y: ValueId| {
            let y = g.reshape(y, vec![b, t, h, dh]);
            let y = g.permute(y, vec![0, 2, 1, 3]);
            g.reshape(y, vec![b * h, t, dh])
        };
        let rows = g.reshape(x, vec![b * t, d]);
        let q = project(g, rows, params[0]);
        let q = split(g, q);
        let k = project(g, rows, params[1]);
        let k = split(g, k);
        let v = project(g, rows, params[2]);
        let v = split(g, v);
        let scores = g.matmul(q, k, false, true);
        let scale = g.scalar(1.0 / (dh as f64).sqrt());
        let mut scores = g.binary_bcast(Binary::Mul, scores, scale);
        let square = vec![b * h, t, t];
        if self.causal {
            // Key j is visible from query i where j ≤ i: step(i − j + ½) is 1 exactly there.
            let i = g.iota(square.clone(), 1);
            let j = g.iota(square.clone(), 2);
            let back = g.binary(Binary::Sub, i, j);
            let half = g.constant(0.5, square.clone());
            let shifted = g.binary(Binary::Add, back, half);
            let visible = g.unary(Unary::Step, shifted);
            let hidden = g.constant(f64::NEG_INFINITY, square.clone());
            scores = g.select(visible, scores, hidden);
        }
        let max = g.reduce(ReduceOp::Max, scores, vec![2]);
        let max = g.unary(Unary::Detach, max);
        let max = g.broadcast(max, &square, vec![0, 1]);
        let centered = g.binary(Binary::Sub, scores, max);
        let e = g.unary(Unary::Exp, centered);
        let total = g.reduce(ReduceOp::Sum, e, vec![2]);
        let total = g.broadcast(total, &square, vec![0, 1]);
        let weights = g.binary(Binary::Div, e, total);
        let heads = g.matmul(weights, v, false, false);
        let merged = g.reshape(heads, vec![b, h, t, dh]);
        let merged = g.permute(merged, vec![0, 2, 1, 3]);
        let merged = g.reshape(merged, vec![b * t, d]);
        let out = project(g, merged, params[3]);
        Ok(g.reshape(out, vec![b, t, d]))
    }
    fn flops(&self, inputs: &[&[u64]], _out: &[u64]) -> u64 {
        let (t, d) = (inputs[0][0], inputs[0][1]);
        // Four projections, the scores and the weighted sum of values.
        (8u64.saturating_mul(t).saturating_mul(d).saturating_mul(d))
            .saturating_add(4u64.saturating_mul(t).saturating_mul(t).saturating_mul(d))
    }
    /// The scores: heads × t × t per sample.
    fn work(&self, inputs: &[&[u64]], out: &[u64]) -> u64 {
        saturating_product([self.heads, inputs[0][0], inputs[0][0]].iter()).max(saturating_product(out))
    }
    /// Each output mixes every token and every head.
    fn units(&self) -> Units {
        Units::Whole
    }
}

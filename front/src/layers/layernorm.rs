//! `layernorm(x)`: PyTorch's `nn.LayerNorm(d)` over the last axis of a vector [d] or of a
//! sequence of vectors [t, d]: each vector normalized by its own mean and biased variance,
//! then scaled and shifted (`weight` and `bias` [d]; `bias = false` as PyTorch's
//! `bias=False`). The same in training and evaluation.

use super::*;
use hoyer_ir::{Binary, ReduceOp, Unary};

pub const EPS: f64 = 1e-5;

pub static DEF: LayerDef = LayerDef {
    name: "layernorm",
    doc: "layer normalization over the last axis, as nn.LayerNorm(d): weight and bias [d], eps 1e-5",
    args: &[("input", true), ("eps", false), ("bias", false)],
    example: "layernorm(h)",
    input_dtype: Dtype::F32,
    build,
};

#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    pub eps: f64,
    pub bias: bool,
}

fn build(b: &mut Build) -> Option<LayerRef> {
    let eps = b.number(
        "eps",
        EPS,
        |v| v.is_finite() && v > 0.0,
        |got| {
            (
                Diagnostic::error(Code::BadLayerArgument, format!("`eps` of `layernorm` is {}", got.describe()))
                    .help("`eps` is a number above 0: PyTorch's default is 1e-5"),
                "this eps".into(),
            )
        },
    );
    let bias = b.flag("bias", true);
    let (eps, bias) = (eps?, bias?);
    if !matches!(b.input_shape().len(), 1 | 2) {
        b.wrong_rank(
            "a vector [features] or a sequence of vectors [tokens, features]",
            "layer norm normalizes each vector over its last axis; for an image's channels use `batchnorm`",
        );
        return None;
    }
    Some(Arc::new(LayerNorm { eps, bias }))
}

impl Layer for LayerNorm {
    fn name(&self) -> &'static str {
        "layernorm"
    }
    fn describe(&self) -> String {
        let eps = if self.eps != EPS { format!("eps = {}", fmt_num(self.eps)) } else { String::new() };
        let bias = if self.bias { String::new() } else { "bias = false".into() };
        match (eps.is_empty(), bias.is_empty()) {
            (true, true) => "layernorm".into(),
            (false, false) => format!("layernorm({eps}, {bias})"),
            _ => format!("layernorm({eps}{bias})"),
        }
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        inputs[0].to_vec()
    }
    fn params(&self, inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        let d = *inputs[0].last().unwrap_or(&1);
        let mut p =
            vec![ParamDef { suffix: "weight", kind: ParamKind::Weight, shape: vec![d], init: Init::Constant(1.0) }];
        if self.bias {
            p.push(ParamDef { suffix: "bias", kind: ParamKind::Bias, shape: vec![d], init: Init::Constant(0.0) });
        }
        p
    }
    /// (x − mean) / √(var + eps) · weight + bias, the statistics over the last axis.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.inputs[0];
        let weight = cx.param("weight")?;
        let bias = if self.bias { Some(cx.param("bias")?) } else { None };
        let g = &mut *cx.g;
        let shape = g.shape(x).to_vec();
        let last = shape.len() - 1;
        let rows: Vec<usize> = (0..last).collect();
        let k = g.scalar(1.0 / shape[last] as f64);
        let sum = g.reduce(ReduceOp::Sum, x, vec![last]);
        let mean = g.binary_bcast(Binary::Mul, sum, k);
        let mean_b = g.broadcast(mean, &shape, rows.clone());
        let centered = g.binary(Binary::Sub, x, mean_b);
        let sq = g.binary(Binary::Mul, centered, centered);
        let ss = g.reduce(ReduceOp::Sum, sq, vec![last]);
        let var = g.binary_bcast(Binary::Mul, ss, k);
        let e = g.scalar(self.eps);
        let ve = g.binary_bcast(Binary::Add, var, e);
        let sd = g.unary(Unary::Sqrt, ve);
        let inv = g.unary(Unary::Recip, sd);
        let inv_b = g.broadcast(inv, &shape, rows);
        let normed = g.binary(Binary::Mul, centered, inv_b);
        let weight_b = g.broadcast(weight, &shape, vec![last]);
        let scaled = g.binary(Binary::Mul, normed, weight_b);
        Ok(match bias {
            Some(bias) => {
                let bias_b = g.broadcast(bias, &shape, vec![last]);
                g.binary(Binary::Add, scaled, bias_b)
            }
            None => scaled,
        })
    }
    /// Each output mixes every unit of its vector.
    fn units(&self) -> Units {
        Units::Whole
    }
}

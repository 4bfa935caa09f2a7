//! `dense(x, out)`: a fully connected layer, PyTorch's `nn.Linear`: y = x·Wᵀ + b, over a
//! vector [in], or over each token of a sequence [t, in] (giving [t, out]) as `nn.Linear`
//! does on a [batch, t, in] tensor.

use super::*;
use hoyer_ir::Binary;

pub static DEF: LayerDef = LayerDef {
    name: "dense",
    doc: "fully connected, as nn.Linear: y = x·Wᵀ + b, weight [out, in]; per token on a sequence [t, in]",
    args: &[("input", true), ("out", true), ("bias", false)],
    example: "dense(x, 300)",
    input_dtype: Dtype::F32,
    build,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub out: u64,
    pub bias: bool,
    /// Over each token of a sequence [t, in].
    pub per_token: bool,
}

fn build(b: &mut Build) -> Option<LayerRef> {
    let out = b.size("out", "the number of outputs", 1, None);
    let bias = b.flag("bias", true);
    let (out, bias) = (out?, bias?);
    if !matches!(b.input_shape().len(), 1 | 2) {
        let help = if b.input_shape().len() == 3 {
            "flatten the image first: `dense(flatten(c), ...)` or `... |> flatten |> dense(...)`"
        } else {
            "dense takes one feature vector per sample, or a sequence of them"
        };
        b.wrong_rank("a vector [features] or a sequence of vectors [tokens, features]", help);
        return None;
    }
    Some(Arc::new(Dense { out, bias, per_token: b.input_shape().len() == 2 }))
}

impl Layer for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }
    fn describe(&self) -> String {
        format!("dense({}{})", self.out, if self.bias { "" } else { ", bias = false" })
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        match inputs[0] {
            [t, _] => vec![*t, self.out],
            _ => vec![self.out],
        }
    }
    fn params(&self, inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        let fan_in: u64 = *inputs[0].last().unwrap_or(&1);
        let init = Init::UniformFanIn { fan_in };
        let mut p = vec![ParamDef { suffix: "weight", kind: ParamKind::Weight, shape: vec![self.out, fan_in], init }];
        if self.bias {
            p.push(ParamDef { suffix: "bias", kind: ParamKind::Bias, shape: vec![self.out], init });
        }
        p
    }
    /// A sequence's tokens are rows of one product: [batch·t, in] · Wᵀ.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.input(0);
        let shape = cx.g.shape(x).to_vec();
        let features = *shape.last().ok_or("dense of a scalar")?;
        let rows = shape.iter().product::<usize>() / features.max(1);
        let x = cx.g.reshape(x, vec![rows, features]);
        let mut y = cx.g.matmul(x, cx.param("weight")?, false, true);
        if self.bias {
            let bias = cx.g.broadcast(cx.param("bias")?, &[rows, self.out as usize], vec![1]);
            y = cx.g.binary(Binary::Add, y, bias);
        }
        Ok(cx.g.reshape(y, cx.shape.clone()))
    }
    fn flops(&self, inputs: &[&[u64]], _out: &[u64]) -> u64 {
        saturating_product([2, self.out].iter().chain(inputs[0]))
    }
    /// Per token, its outputs are a sequence's feature axis, not the units shrink removes
    /// (the first axis): kept whole until shrink knows sequences.
    fn units(&self) -> Units {
        if self.per_token {
            Units::Whole
        } else {
            Units::Rows { padded: false }
        }
    }
    fn width(&self) -> Option<u64> {
        Some(self.out)
    }
    fn with_width(&self, width: u64) -> Option<LayerRef> {
        Some(Arc::new(Dense { out: width, ..self.clone() }))
    }
}

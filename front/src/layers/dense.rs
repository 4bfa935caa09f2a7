//! `dense(x, out)`: a fully connected layer, PyTorch's `nn.Linear`: y = x·Wᵀ + b.

use super::*;
use hoyer_ir::Binary;

pub static DEF: LayerDef = LayerDef {
    name: "dense",
    doc: "fully connected, as nn.Linear: y = x·Wᵀ + b, weight [out, in]",
    args: &[("input", true), ("out", true), ("bias", false)],
    example: "dense(x, 300)",
    input_dtype: Dtype::F32,
    build,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub out: u64,
    pub bias: bool,
}

fn build(b: &mut Build) -> Option<LayerRef> {
    let out = b.size("out", "the number of outputs", 1, None);
    let bias = b.flag("bias", true);
    let (out, bias) = (out?, bias?);
    if b.input_shape().len() != 1 {
        let help = if b.input_shape().len() == 3 {
            "flatten the image first: `dense(flatten(c), ...)` or `... |> flatten |> dense(...)`"
        } else {
            "dense takes one feature vector per sample"
        };
        b.wrong_rank("a vector [features]", help);
        return None;
    }
    Some(Arc::new(Dense { out, bias }))
}

impl Layer for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }
    fn describe(&self) -> String {
        format!("dense({}{})", self.out, if self.bias { "" } else { ", bias = false" })
    }
    fn shape(&self, _inputs: &[&[u64]]) -> Vec<u64> {
        vec![self.out]
    }
    fn params(&self, inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        let fan_in: u64 = inputs[0].iter().product();
        let init = Init::UniformFanIn { fan_in };
        let mut p = vec![ParamDef { suffix: "weight", kind: ParamKind::Weight, shape: vec![self.out, fan_in], init }];
        if self.bias {
            p.push(ParamDef { suffix: "bias", kind: ParamKind::Bias, shape: vec![self.out], init });
        }
        p
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let y = cx.g.matmul(cx.input(0), cx.param("weight")?, false, true);
        if !self.bias {
            return Ok(y);
        }
        let bias = cx.g.broadcast(cx.param("bias")?, &cx.shape, vec![1]);
        Ok(cx.g.binary(Binary::Add, y, bias))
    }
    fn flops(&self, inputs: &[&[u64]], out: &[u64]) -> u64 {
        saturating_product([2].iter().chain(inputs[0]).chain(out))
    }
    fn units(&self) -> Units {
        Units::Rows { padded: false }
    }
    fn width(&self) -> Option<u64> {
        Some(self.out)
    }
    fn with_width(&self, width: u64) -> Option<LayerRef> {
        Some(Arc::new(Dense { out: width, ..self.clone() }))
    }
}

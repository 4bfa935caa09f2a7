//! Layers of sequences [tokens, features]:
//! - `tokens(x)`: an image [c, h, w] as h·w tokens of c features, PyTorch's
//!   `x.flatten(2).transpose(1, 2)` (a ViT's patches after a strided conv);
//! - `mean_tokens(x)`: the mean over the tokens, [t, d] → [d];
//! - `x[i]`: token i, [t, d] → [d] (a class token);
//! - `concat(a, b, …)`: sequences one after another, [t₁, d] and [t₂, d] → [t₁ + t₂, d];
//! - `param name: f32[…] = zeros | normal(std)`: a learned tensor of its own (a positional
//!   embedding, a class token), the same for every sample, named as `nn.Parameter` is.

use super::*;
use hoyer_ir::{Binary, ReduceOp};

pub static TOKENS: LayerDef = LayerDef {
    name: "tokens",
    doc: "an image [c, h, w] as a sequence of h·w tokens of c features, as x.flatten(2).transpose(1, 2)",
    args: &[("input", true)],
    example: "conv2d(x, 64, kernel = 7, stride = 7) |> tokens",
    input_dtype: Dtype::F32,
    build: |b| {
        b.image()?;
        Some(Arc::new(Tokens))
    },
};

pub static MEAN_TOKENS: LayerDef = LayerDef {
    name: "mean_tokens",
    doc: "the mean over the tokens of a sequence: [t, d] → [d]",
    args: &[("input", true)],
    example: "mean_tokens(h)",
    input_dtype: Dtype::F32,
    build: |b| {
        sequence(b)?;
        Some(Arc::new(MeanTokens))
    },
};

/// The input as a sequence [tokens, features], or a diagnostic.
fn sequence(b: &mut Build) -> Option<[u64; 2]> {
    match b.input_shape()[..] {
        [t, d] => Some([t, d]),
        _ => {
            b.wrong_rank(
                "a sequence of vectors [tokens, features]",
                "make a sequence with `embedding` (token ids) or `tokens` (an image's pixels)",
            );
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tokens;

impl Layer for Tokens {
    fn name(&self) -> &'static str {
        "tokens"
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        vec![inputs[0][1] * inputs[0][2], inputs[0][0]]
    }
    /// Images are channels-last inside ([batch, h, w, c]): already h·w tokens of c.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        Ok(cx.g.reshape(cx.input(0), cx.shape.clone()))
    }
    fn units(&self) -> Units {
        Units::Whole
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MeanTokens;

impl Layer for MeanTokens {
    fn name(&self) -> &'static str {
        "mean_tokens"
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        vec![inputs[0][1]]
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.input(0);
        let t = cx.g.shape(x)[1];
        let sum = cx.g.reduce(ReduceOp::Sum, x, vec![1]);
        let k = cx.g.scalar(1.0 / t as f64);
        Ok(cx.g.binary_bcast(Binary::Mul, sum, k))
    }
    fn units(&self) -> Units {
        Units::Whole
    }
}

/// `x[index]`: one token of a sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub index: u64,
}

impl Layer for Token {
    fn name(&self) -> &'static str {
        "token"
    }
    fn write(&self, inputs: &[String]) -> String {
        format!("{}[{}]", inputs[0], self.index)
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        vec![inputs[0][1]]
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let one = cx.g.slice(cx.input(0), 1, self.index as i64, 1);
        Ok(cx.g.reshape(one, cx.shape.clone()))
    }
    fn units(&self) -> Units {
        Units::Whole
    }
}

/// `concat(a, b, …)`: sequences of one width, one after another.
#[derive(Debug, Clone, PartialEq)]
pub struct Concat;

impl Layer for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn write(&self, inputs: &[String]) -> String {
        format!("concat({})", inputs.join(", "))
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        vec![inputs.iter().map(|s| s[0]).sum(), inputs[0][1]]
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let parts = cx.inputs.clone();
        Ok(cx.g.concat(&parts, 1))
    }
    fn units(&self) -> Units {
        Units::Whole
    }
}

/// How a free parameter starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FreeInit {
    Zeros,
    /// N(0, std²), as `nn.init.normal_(p, std = …)` (ViTs use 0.02).
    Normal(f64),
}

/// `param name: f32[…]`: a learned tensor of its own, broadcast over the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeParam {
    pub shape: Vec<u64>,
    pub init: FreeInit,
}

impl Layer for FreeParam {
    fn name(&self) -> &'static str {
        "param"
    }
    fn describe(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(u64::to_string).collect();
        let init = match self.init {
            FreeInit::Zeros => "zeros".to_string(),
            FreeInit::Normal(std) => format!("normal({})", fmt_num(std)),
        };
        format!("param f32[{}] = {init}", dims.join(", "))
    }
    /// `param pos: f32[17, 64] = normal(0.02)`, given its name.
    fn write(&self, name: &[String]) -> String {
        let d = self.describe();
        match name.first() {
            Some(n) => format!("param {n}: {}", d.trim_start_matches("param ")),
            None => d,
        }
    }
    fn shape(&self, _inputs: &[&[u64]]) -> Vec<u64> {
        self.shape.clone()
    }
    /// One tensor named after the binding alone (`pos`, as `self.pos = nn.Parameter(...)`).
    fn params(&self, _inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        let init = match self.init {
            FreeInit::Zeros => Init::Constant(0.0),
            FreeInit::Normal(std) => Init::Gaussian { std },
        };
        vec![ParamDef { suffix: "", kind: ParamKind::Weight, shape: self.shape.clone(), init }]
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let p = cx.param("")?;
        let dims: Vec<usize> = (1..cx.shape.len()).collect();
        Ok(cx.g.broadcast(p, &cx.shape, dims))
    }
    fn units(&self) -> Units {
        Units::Whole
    }
}

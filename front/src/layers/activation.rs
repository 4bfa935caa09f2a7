//! Element-wise activations: `relu`, `leaky_relu(slope = 0.01)`, `tanh`, `sigmoid`, and `gelu`
//! (exact, with erf: PyTorch's default). NaN stays NaN; the gradient at 0 is PyTorch's.

use super::*;
use hoyer_ir::{Binary, Unary};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    /// x · Φ(x), with the exact normal CDF.
    Gelu,
    LeakyRelu {
        slope: f64,
    },
}

const fn plain(
    name: &'static str,
    doc: &'static str,
    example: &'static str,
    build: fn(&mut Build) -> Option<LayerRef>,
) -> LayerDef {
    LayerDef { name, doc, args: &[("input", true)], example, input_dtype: Dtype::F32, build }
}

pub static RELU: LayerDef =
    plain("relu", "max(x, 0); its gradient at 0 is 0", "relu(x)", |_| Some(Arc::new(Activation::Relu)));
pub static TANH: LayerDef = plain("tanh", "the hyperbolic tangent", "tanh(x)", |_| Some(Arc::new(Activation::Tanh)));
pub static SIGMOID: LayerDef =
    plain("sigmoid", "1 / (1 + exp(−x))", "sigmoid(x)", |_| Some(Arc::new(Activation::Sigmoid)));
pub static GELU: LayerDef =
    plain("gelu", "x · Φ(x) with the exact normal CDF (erf), PyTorch's default", "gelu(x)", |_| {
        Some(Arc::new(Activation::Gelu))
    });

pub static LEAKY_RELU: LayerDef = LayerDef {
    name: "leaky_relu",
    doc: "x where x > 0, else slope · x (slope 0.01 unless given)",
    args: &[("input", true), ("slope", false)],
    example: "leaky_relu(x, slope = 0.1)",
    input_dtype: Dtype::F32,
    build: |b| {
        let slope = b.number(
            "slope",
            0.01,
            |v| v.is_finite() && v >= 0.0,
            |got| match got {
                NotANumber::Value(v) => (
                    Diagnostic::error(
                        Code::BadLayerArgument,
                        format!("the slope of `leaky_relu` must be a number of 0 or more, not {}", fmt_num(v)),
                    )
                    .help("the slope multiplies negative inputs: PyTorch's default is 0.01"),
                    "this slope".into(),
                ),
                NotANumber::Kind(kind) => (
                    Diagnostic::error(Code::BadLayerArgument, "the slope of `leaky_relu` must be a number")
                        .help("write a number, e.g. `leaky_relu(x, slope = 0.1)`"),
                    format!("this is {kind}"),
                ),
            },
        )?;
        Some(Arc::new(Activation::LeakyRelu { slope }))
    },
};

impl Layer for Activation {
    fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Gelu => "gelu",
            Activation::LeakyRelu { .. } => "leaky_relu",
        }
    }
    fn describe(&self) -> String {
        match self {
            Activation::LeakyRelu { slope } => format!("leaky_relu(slope = {slope})"),
            other => other.name().to_string(),
        }
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        inputs[0].to_vec()
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let g = &mut *cx.g;
        let x = cx.inputs[0];
        Ok(match self {
            Activation::Relu => g.unary(Unary::Relu, x),
            Activation::Tanh => g.unary(Unary::Tanh, x),
            Activation::Sigmoid => g.unary(Unary::Sigmoid, x),
            Activation::Gelu => {
                // x/2 · (1 + erf(x/√2))
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
            Activation::LeakyRelu { slope } => {
                // x > 0 ? x : slope · x, so that the gradient at 0 is the slope, as PyTorch's.
                let s = g.shape(x).to_vec();
                let positive = g.unary(Unary::Step, x);
                let k = g.constant(*slope, s);
                let scaled = g.binary(Binary::Mul, k, x);
                g.select(positive, x, scaled)
            }
        })
    }
    /// Of a constant, where it is exactly computable here.
    fn constant<'w>(&self, input: Option<f32>, _: usize, _: &dyn Fn(&str) -> Option<&'w [f32]>) -> Option<f32> {
        let x = input?;
        Some(match self {
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::LeakyRelu { slope } if x < 0.0 => x * *slope as f32,
            Activation::LeakyRelu { .. } => x,
            Activation::Gelu if x == 0.0 => 0.0,
            Activation::Gelu => return None,
        })
    }
}

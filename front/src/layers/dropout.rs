//! `dropout(x, p = 0.5)`: PyTorch's `nn.Dropout`. While training each value is zeroed with
//! probability p and the rest scaled by 1 / (1 − p), with numbers hashed from the seed, the
//! phase, the step and the element (the same on every back end and on a resumed run); at
//! evaluation it is the identity.

use super::*;
use hoyer_ir::{Binary, Role, Scalar, Unary};

pub static DEF: LayerDef = LayerDef {
    name: "dropout",
    doc: "zeroes each value with probability p while training and scales the rest by 1/(1 − p), as nn.Dropout",
    args: &[("input", true), ("p", false)],
    example: "dropout(x, p = 0.5)",
    input_dtype: Dtype::F32,
    build: |b| {
        let p = b.number(
            "p",
            0.5,
            |v| (0.0..1.0).contains(&v),
            |got| {
                (
                    Diagnostic::error(
                        Code::BadLayerArgument,
                        format!("the drop probability of `dropout` is {}", got.describe()),
                    )
                    .help("a probability from 0 up to (not including) 1: PyTorch's default is 0.5"),
                    "this probability".into(),
                )
            },
        )?;
        Some(Arc::new(Dropout { p }))
    },
};

#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    pub p: f64,
}

impl Layer for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }
    fn describe(&self) -> String {
        format!("dropout({})", self.p)
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        inputs[0].to_vec()
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.inputs[0];
        if cx.mode == Mode::Eval || self.p == 0.0 {
            return Ok(x);
        }
        // keep = random(element, key + layer) < 1 − p, each layer its own numbers.
        let g = &mut *cx.g;
        let s = g.shape(x).to_vec();
        let counter = element_numbers(g, &s);
        let key = g.input_value(Role::Scalar(Scalar::DropoutKey), vec![]);
        let layer_key = g.scalar(cx.dropouts as f64 * 1021.0);
        cx.dropouts += 1;
        let key = g.binary(Binary::Add, key, layer_key);
        let key = g.broadcast(key, &s, vec![]);
        let u = g.binary(Binary::Random, counter, key);
        let keep_p = g.constant(1.0 - self.p, s.clone());
        let below = g.binary(Binary::Sub, keep_p, u);
        let keep = g.unary(Unary::Step, below);
        let scale = g.constant(1.0 / (1.0 - self.p), s);
        let kept = g.binary(Binary::Mul, x, keep);
        Ok(g.binary(Binary::Mul, kept, scale))
    }
    /// Training scales what dropout keeps: only zero stays constant.
    fn constant<'w>(&self, input: Option<f32>, _: usize, _: &dyn Fn(&str) -> Option<&'w [f32]>) -> Option<f32> {
        input.filter(|&x| x == 0.0)
    }
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

//! `flatten(x)`: an image [c, h, w] to a vector in PyTorch's order (channel, row, column).

use super::*;

pub static DEF: LayerDef = LayerDef {
    name: "flatten",
    doc: "to one vector per sample, in PyTorch's order: channel, row, column",
    args: &[("input", true)],
    example: "flatten(c2)",
    input_dtype: Dtype::F32,
    build: |_| Some(Arc::new(Flatten)),
};

#[derive(Debug, Clone, PartialEq)]
pub struct Flatten;

impl Layer for Flatten {
    fn name(&self) -> &'static str {
        "flatten"
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        vec![inputs[0].iter().product()]
    }
    /// Images are channels-last inside: back to PyTorch's channel-major order first.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.inputs[0];
        let x = if cx.g.shape(x).len() == 4 { cx.g.permute(x, vec![0, 3, 1, 2]) } else { x };
        Ok(cx.g.reshape(x, cx.shape.clone()))
    }
    fn units(&self) -> Units {
        Units::Flatten
    }
}

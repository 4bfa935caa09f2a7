//! The model's input: a batch of samples of the declared shape. Images come in as PyTorch's
//! [batch, channels, height, width] and travel channels-last inside.

use super::*;
use hoyer_ir::{Dtype, Role};

#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub shape: Vec<u64>,
    /// f32 values, or i32 token ids (read by `embedding`).
    pub dtype: Dtype,
}

impl Layer for Input {
    fn name(&self) -> &'static str {
        "input"
    }
    fn shape(&self, _inputs: &[&[u64]]) -> Vec<u64> {
        self.shape.clone()
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.g.input_typed(Role::Data, self.dtype, cx.shape.clone());
        Ok(if cx.shape.len() == 4 { cx.g.permute(x, vec![0, 2, 3, 1]) } else { x })
    }
    fn units(&self) -> Units {
        Units::Whole
    }
    fn dtype(&self) -> Dtype {
        self.dtype
    }
}

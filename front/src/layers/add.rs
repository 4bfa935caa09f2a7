//! `a + b`: a residual add of two values of one shape.

use super::*;
use hoyer_ir::Binary;

#[derive(Debug, Clone, PartialEq)]
pub struct Add;

impl Layer for Add {
    fn name(&self) -> &'static str {
        "add"
    }
    fn write(&self, inputs: &[String]) -> String {
        format!("{} + {}", inputs[0], inputs[1])
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        inputs[0].to_vec()
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        Ok(cx.g.binary(Binary::Add, cx.inputs[0], cx.inputs[1]))
    }
    fn units(&self) -> Units {
        Units::Sum
    }
}

//! `shortcut(x, out, stride = 2)`: He et al.'s option-A shortcut of a residual block: every
//! `stride`-th pixel, with zero channels added equally on both sides up to `out` (PyTorch:
//! `F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, p, p))`). With stride 1 and as many channels out as
//! in it is the identity, so one block definition serves a stage's first block and the rest.

use super::*;
use hoyer_ir::{Fill, Slide};

pub static DEF: LayerDef = LayerDef {
    name: "shortcut",
    doc: "option-A residual shortcut: every stride-th pixel, zero channels added equally on both sides up to `out`",
    args: &[("input", true), ("out", true), ("stride", false)],
    example: "shortcut(x, 32, stride = 2)",
    input_dtype: Dtype::F32,
    build: |b| {
        let out = b.size("out", "the number of output channels", 1, None);
        let stride = b.size("stride", "the stride", 1, Some(2));
        let (out, stride) = (out?, stride?);
        let [c, _, _] = b.image()?;
        if out < c || (out - c) % 2 != 0 {
            let span = b.span_of("out");
            b.report(
                Diagnostic::error(
                    Code::BadLayerArgument,
                    format!("a shortcut from {c} to {out} channels cannot pad equally on both sides"),
                )
                .label(span, format!("{out} channels"))
                .help(format!(
                    "the option-A shortcut adds (out − in) / 2 zero channels on each side: use an even step up from {c}, e.g. {}",
                    2 * c
                )),
            );
            return None;
        }
        Some(Arc::new(Shortcut { out, stride, identity: stride == 1 && out == c }))
    },
};

#[derive(Debug, Clone, PartialEq)]
pub struct Shortcut {
    pub out: u64,
    pub stride: u64,
    /// Stride 1 and no channels added.
    pub identity: bool,
}

impl Layer for Shortcut {
    fn name(&self) -> &'static str {
        "shortcut"
    }
    fn describe(&self) -> String {
        format!("shortcut({}, stride = {})", self.out, self.stride)
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        let [_, h, w] = inputs[0][..] else { unreachable!("a shortcut of an image") };
        vec![self.out, h.div_ceil(self.stride), w.div_ceil(self.stride)]
    }
    /// Every stride-th pixel (windows of one pixel), then zero channels on both sides
    /// (windows of one channel over a padded axis); both are views.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let x = cx.inputs[0];
        if self.identity {
            return Ok(x);
        }
        let g = &mut *cx.g;
        let s = self.stride as usize;
        let one = |stride, padding| Slide { size: 1, stride, padding, dilation: 1 };
        let picked = g.window(x, vec![1, 2], vec![one(s, 0), one(s, 0)], Fill::Zero);
        let [n, h, w, c, _, _] = g.shape(picked).to_vec()[..] else { return Err("shortcut shape".into()) };
        let picked = g.reshape(picked, vec![n, h, w, c]);
        let pad = (self.out as usize - c) / 2;
        let padded = g.window(picked, vec![3], vec![one(1, pad)], Fill::Zero);
        Ok(g.reshape(padded, vec![n, h, w, self.out as usize]))
    }
    /// Its input's channels are placed among zero ones by position: the streams on both sides
    /// are kept whole (the identity shares its input's units).
    fn units(&self) -> Units {
        if self.identity {
            Units::PerUnit
        } else {
            Units::Whole
        }
    }
    fn constant<'w>(&self, input: Option<f32>, _: usize, _: &dyn Fn(&str) -> Option<&'w [f32]>) -> Option<f32> {
        input.filter(|_| self.identity)
    }
}

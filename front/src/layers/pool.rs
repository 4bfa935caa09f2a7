//! Pooling: `maxpool(x, size)` and `avgpool(x, size)` over windows of an image (stride and
//! padding as PyTorch's `max_pool2d` and `avg_pool2d`), and `global_avgpool(x)`, the mean of
//! each channel over the image.

use super::*;
use hoyer_ir::{Binary, Fill, ReduceOp, Slide};

pub static MAXPOOL: LayerDef = LayerDef {
    name: "maxpool",
    doc: "the maximum of each window of an image, as F.max_pool2d (its gradient goes to the first maximum)",
    args: &[("input", true), ("size", true), ("stride", false), ("padding", false)],
    example: "maxpool(c, 2)",
    input_dtype: Dtype::F32,
    build: |b| build(b, true),
};

pub static AVGPOOL: LayerDef = LayerDef {
    name: "avgpool",
    doc: "the mean of each window of an image, as F.avg_pool2d (padding counts as zeros)",
    args: &[("input", true), ("size", true), ("stride", false), ("padding", false)],
    example: "avgpool(c, 2)",
    input_dtype: Dtype::F32,
    build: |b| build(b, false),
};

pub static GLOBAL_AVGPOOL: LayerDef = LayerDef {
    name: "global_avgpool",
    doc: "the mean of each channel over the image: [c, h, w] to [c]",
    args: &[("input", true)],
    example: "global_avgpool(c)",
    input_dtype: Dtype::F32,
    build: |b| {
        b.image()?;
        Some(Arc::new(GlobalAvgPool))
    },
};

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub max: bool,
    pub size: u64,
    pub stride: u64,
    pub padding: u64,
}

fn build(b: &mut Build, max: bool) -> Option<LayerRef> {
    let name = b.def.name;
    let size = b.size("size", "the window size", 1, None);
    let stride = size.and_then(|s| b.size("stride", "the stride", 1, Some(s)));
    let padding = b.size("padding", "the padding", 0, Some(0));
    let (size, stride, padding) = (size?, stride?, padding?);
    let [_, h, w] = b.image()?;
    if 2 * padding > size {
        let span = b.span_of("padding");
        b.report(
            Diagnostic::error(
                Code::BadLayerArgument,
                format!("a padding of {padding} is more than half of `{name}`'s window of {size}"),
            )
            .label(span, format!("padding {padding}"))
            .help(format!(
                "a window must hold at least one real pixel (PyTorch's rule): use a padding of at most {}",
                size / 2
            )),
        );
        return None;
    }
    if size > h + 2 * padding || size > w + 2 * padding {
        b.window_too_large("size", "window", size, padding);
        return None;
    }
    Some(Arc::new(Pool { max, size, stride, padding }))
}

impl Layer for Pool {
    /// The windows: output pixels × window² × channels.
    fn work(&self, inputs: &[&[u64]], out: &[u64]) -> u64 {
        saturating_product(&[out[1], out[2], self.size, self.size, inputs[0][0]]).max(saturating_product(out))
    }
    fn name(&self) -> &'static str {
        if self.max {
            "maxpool"
        } else {
            "avgpool"
        }
    }
    fn describe(&self) -> String {
        let stride = if self.size != self.stride { format!(", stride = {}", self.stride) } else { String::new() };
        format!("{}({}{stride}{})", self.name(), self.size, unless_default("padding", self.padding, 0))
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        let [c, h, w] = inputs[0][..] else { unreachable!("pooling of an image") };
        let (h, w) = (h + 2 * self.padding, w + 2 * self.padding);
        vec![c, (h - self.size) / self.stride + 1, (w - self.size) / self.stride + 1]
    }
    /// Windows that tile the image (2×2, stride 2) are a reshape to [n, oh, k, ow, k, c]
    /// reduced over its axes 2 and 4: no permute, so the gradient is a plain reshape back,
    /// fused with what reads it. Average pooling with padding counts the zeros, as
    /// PyTorch's default.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let g = &mut *cx.g;
        let slide = Slide {
            size: self.size as usize,
            stride: self.stride as usize,
            padding: self.padding as usize,
            dilation: 1,
        };
        let fill = if self.max { Fill::NegInf } else { Fill::Zero };
        let x = cx.inputs[0];
        let [n, h, w, c] = g.shape(x).to_vec()[..] else { return Err("pooling a non-image".into()) };
        let k = slide.size;
        let (windows, axes) = if slide.stride == k && slide.padding == 0 && h % k == 0 && w % k == 0 {
            (g.reshape(x, vec![n, h / k, k, w / k, k, c]), vec![2, 4])
        } else {
            (g.window(x, vec![1, 2], vec![slide, slide], fill), vec![4, 5])
        };
        if self.max {
            return Ok(g.reduce(ReduceOp::MaxFirst, windows, axes));
        }
        let sum = g.reduce(ReduceOp::Sum, windows, axes);
        let scale = g.scalar(1.0 / (k * k) as f64);
        Ok(g.binary_bcast(Binary::Mul, sum, scale))
    }
    /// Max pooling pads with −∞ and keeps a constant; average pooling counts padding as
    /// zeros, so only a zero stays constant where it pads.
    fn constant<'w>(&self, input: Option<f32>, _: usize, _: &dyn Fn(&str) -> Option<&'w [f32]>) -> Option<f32> {
        input.filter(|&x| self.max || self.padding == 0 || x == 0.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalAvgPool;

impl Layer for GlobalAvgPool {
    fn name(&self) -> &'static str {
        "global_avgpool"
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        vec![inputs[0][0]]
    }
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let g = &mut *cx.g;
        let x = cx.inputs[0];
        let [_, h, w, _] = g.shape(x).to_vec()[..] else { return Err("pooling a non-image".into()) };
        let sum = g.reduce(ReduceOp::Sum, x, vec![1, 2]);
        let scale = g.scalar(1.0 / (h * w) as f64);
        Ok(g.binary_bcast(Binary::Mul, sum, scale))
    }
    fn constant<'w>(&self, input: Option<f32>, _: usize, _: &dyn Fn(&str) -> Option<&'w [f32]>) -> Option<f32> {
        input
    }
}

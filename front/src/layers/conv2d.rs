//! `conv2d(x, out, kernel = k)`: a 2-D convolution, PyTorch's `nn.Conv2d`, with stride,
//! padding and dilation.

use super::*;
use hoyer_ir::{Binary, Fill, Slide};

pub static DEF: LayerDef = LayerDef {
    name: "conv2d",
    doc: "2-D convolution, as nn.Conv2d: weight [out, in, k, k], with stride, padding and dilation",
    args: &[
        ("input", true),
        ("out", true),
        ("kernel", true),
        ("stride", false),
        ("padding", false),
        ("bias", false),
        ("dilation", false),
    ],
    example: "conv2d(x, 20, kernel = 5, stride = 1, padding = 0)",
    input_dtype: Dtype::F32,
    build,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    pub out: u64,
    pub kernel: u64,
    pub stride: u64,
    pub padding: u64,
    pub bias: bool,
    pub dilation: u64,
}

impl Conv2d {
    /// The pixels a dilated kernel spans: dilation · (kernel − 1) + 1.
    fn reach(&self) -> u64 {
        self.dilation.saturating_mul(self.kernel - 1).saturating_add(1)
    }
}

fn build(b: &mut Build) -> Option<LayerRef> {
    let out = b.size("out", "the number of output channels", 1, None);
    let kernel = b.size("kernel", "the kernel size", 1, None);
    let stride = b.size("stride", "the stride", 1, Some(1));
    let padding = b.size("padding", "the padding", 0, Some(0));
    let bias = b.flag("bias", true);
    let dilation = b.size("dilation", "the dilation", 1, Some(1));
    let layer =
        Conv2d { out: out?, kernel: kernel?, stride: stride?, padding: padding?, bias: bias?, dilation: dilation? };
    let [_, h, w] = b.image()?;
    let reach = layer.reach();
    if reach > h + 2 * layer.padding || reach > w + 2 * layer.padding {
        let what = if layer.dilation > 1 { "dilated kernel" } else { "kernel" };
        b.window_too_large("kernel", what, reach, layer.padding);
        return None;
    }
    Some(Arc::new(layer))
}

impl Layer for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn describe(&self) -> String {
        format!(
            "conv2d({}, kernel = {}{}{}{}{})",
            self.out,
            self.kernel,
            unless_default("dilation", self.dilation, 1),
            unless_default("stride", self.stride, 1),
            unless_default("padding", self.padding, 0),
            if self.bias { "" } else { ", bias = false" }
        )
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        let (h, w) = (inputs[0][1] + 2 * self.padding, inputs[0][2] + 2 * self.padding);
        vec![self.out, (h - self.reach()) / self.stride + 1, (w - self.reach()) / self.stride + 1]
    }
    fn params(&self, inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        let channels = inputs[0][0];
        let init = Init::UniformFanIn { fan_in: saturating_product(&[channels, self.kernel, self.kernel]) };
        let weight = vec![self.out, channels, self.kernel, self.kernel];
        let mut p = vec![ParamDef { suffix: "weight", kind: ParamKind::Weight, shape: weight, init }];
        if self.bias {
            p.push(ParamDef { suffix: "bias", kind: ParamKind::Bias, shape: vec![self.out], init });
        }
        p
    }
    /// Columns [pixels, kh·kw·channels] times the weight [out, kh·kw·channels]ᵀ. Channels
    /// innermost: a column row is whole runs of an input row's pixels (kw·channels
    /// contiguous numbers), and only the small weight is permuted.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let g = &mut *cx.g;
        let x = cx.inputs[0];
        let (k, o) = (self.kernel as usize, self.out as usize);
        let channels = g.shape(x)[3];
        let slide = Slide {
            size: k,
            stride: self.stride as usize,
            padding: self.padding as usize,
            dilation: self.dilation as usize,
        };
        let windows = g.window(x, vec![1, 2], vec![slide, slide], Fill::Zero);
        let windows = g.permute(windows, vec![0, 1, 2, 4, 5, 3]);
        let (batch, oh, ow) = (cx.shape[0], cx.shape[2], cx.shape[3]);
        let pixels = batch * oh * ow;
        let columns = g.reshape(windows, vec![pixels, k * k * channels]);
        let w = g.permute((cx.params)("weight").ok_or("no weight")?, vec![0, 2, 3, 1]);
        let w = g.reshape(w, vec![o, k * k * channels]);
        let mut y = g.matmul(columns, w, false, true);
        if self.bias {
            let bias = g.broadcast((cx.params)("bias").ok_or("no bias")?, &[pixels, o], vec![1]);
            y = g.binary(Binary::Add, y, bias);
        }
        Ok(g.reshape(y, vec![batch, oh, ow, o]))
    }
    /// The columns: output pixels × kernel² × input channels.
    fn work(&self, inputs: &[&[u64]], out: &[u64]) -> u64 {
        saturating_product(&[out[1], out[2], self.kernel, self.kernel, inputs[0][0]]).max(saturating_product(out))
    }
    fn flops(&self, inputs: &[&[u64]], out: &[u64]) -> u64 {
        saturating_product([2, inputs[0][0], self.kernel, self.kernel].iter().chain(out))
    }
    fn units(&self) -> Units {
        Units::Rows { padded: self.padding > 0 }
    }
    fn width(&self) -> Option<u64> {
        Some(self.out)
    }
    fn with_width(&self, width: u64) -> Option<LayerRef> {
        Some(Arc::new(Conv2d { out: width, ..self.clone() }))
    }
}

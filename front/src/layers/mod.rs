//! Layers: one definition per kind of layer.
//!
//! A layer kind is a `LayerDef` in `LAYERS` (its name, arguments, a one-line description, an
//! example call, and `build`, which checks a call's arguments and input shapes and makes the
//! layer) and a type implementing `Layer`: its shape rule, its parameters (PyTorch's names,
//! layouts and initialisation), its lowering to the IR, its FLOPs, how `then shrink` treats
//! its units, and how it is written back as a call. Everything else — the checker, the
//! lowering of a model, shrink, `--emit model`, `model.hoyer`, initial weights — asks the
//! layer, so adding a layer is one file here and one line in `LAYERS`.

mod activation;
mod add;
mod attention;
mod batchnorm;
mod conv2d;
mod dense;
mod dropout;
mod embedding;
mod flatten;
mod input;
mod layernorm;
mod pool;
mod sequence;
mod shortcut;

pub use add::Add;
pub use input::Input;
pub use sequence::{Concat, FreeInit, FreeParam, Token};

use crate::check::values::{self, const_eval, fmt_num, kind_name};
use crate::codes::Code;
use crate::diagnostics::{Diagnostic, Sink};
use crate::syntax::ast::{Call, Expr, ExprKind, Span};
use hoyer_ir::{Dtype, Graph, ValueId};
use std::fmt;
use std::sync::Arc;

/// A layer of a model, shared between the models that hold it (a shrunk model keeps the
/// layers whose width did not change).
pub type LayerRef = Arc<dyn Layer>;

/// What a layer is and does. Shapes are per sample, in PyTorch's layout (an image is
/// [channels, height, width]); `inputs` are the shapes of the layer's inputs.
pub trait Layer: fmt::Debug + Send + Sync + std::panic::RefUnwindSafe {
    /// The name a spec calls it by: `dense`.
    fn name(&self) -> &'static str;

    /// The call as a spec writes it without its input: `dense(300)`, `conv2d(16, kernel = 3)`;
    /// `--emit model` shows it and `model.hoyer` writes it back.
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// The expression that computes it from the expressions of its inputs (`model.hoyer`).
    fn write(&self, inputs: &[String]) -> String {
        let d = self.describe();
        match d.split_once('(') {
            Some((name, rest)) => format!("{name}({}, {rest}", inputs[0]),
            None => format!("{d}({})", inputs[0]),
        }
    }

    /// Its output shape. `build` checked that the inputs fit; shrink asks again with
    /// narrower inputs.
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64>;

    /// Its parameters and buffers, in PyTorch's order, names (after the layer's own) and
    /// layouts.
    fn params(&self, _inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        vec![]
    }

    /// Its forward pass.
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String>;

    /// Forward FLOPs per sample: 2 per multiply-add of its products.
    fn flops(&self, _inputs: &[&[u64]], _out: &[u64]) -> u64 {
        0
    }

    /// The most elements, per sample, of any tensor its forward or backward pass computes on
    /// the way: its output unless it makes larger ones (a convolution's columns, an
    /// embedding's one-hot gradient). The checker bounds a batch of it, so that no size the
    /// compiler computes wraps.
    fn work(&self, _inputs: &[&[u64]], out: &[u64]) -> u64 {
        saturating_product(out)
    }

    /// How `then shrink` sees its units (the entries of a vector, the channels of an image).
    fn units(&self) -> Units {
        Units::PerUnit
    }

    /// For a per-unit layer: the constant it gives on unit `unit` where its input there is
    /// `input` (a constant, or `None` where it varies); `None` where the output varies or is
    /// not exactly computable here.
    fn constant<'w>(
        &self,
        _input: Option<f32>,
        _unit: usize,
        _params: &dyn Fn(&str) -> Option<&'w [f32]>,
    ) -> Option<f32> {
        None
    }

    /// The number of units it makes itself (a dense layer's outputs, a convolution's
    /// filters), where it chooses them; the rest follow their input.
    fn width(&self) -> Option<u64> {
        None
    }

    /// The same layer `width` units wide (see `width`).
    fn with_width(&self, _width: u64) -> Option<LayerRef> {
        None
    }

    /// The type of its output's elements.
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    /// Whether training normalizes it over the batch (batch norm): it then needs more than
    /// one value per channel in every batch.
    fn batch_statistics(&self) -> bool {
        false
    }

    /// Why `values` cannot be its parameter or buffer `suffix` (from `--init` or a
    /// checkpoint), where they cannot: batch norm's `running_var` is a variance, never
    /// negative, and every statistic is finite.
    fn check_values(&self, _suffix: &str, _values: &[f32]) -> Result<(), String> {
        Ok(())
    }

    /// For a layer reading whole numbers as row indices (`embedding`): the bound they must
    /// stay below, which the runtime checks the data against before any kernel reads it.
    fn index_bound(&self) -> Option<u64> {
        None
    }
}

/// How shrink treats a layer's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// Each output unit is a row of its `weight` (a dense layer's neurons, a convolution's
    /// filters) reading blocks of input units; the output units are removable. `padded`: the
    /// border sees zeros, so a constant input unit is not constant there.
    Rows { padded: bool },
    /// Output unit u depends on input unit u alone (activations, pooling, dropout, batch
    /// norm): one space of units with its input (`Layer::constant` says what a constant
    /// becomes).
    PerUnit,
    /// `flatten`: input unit c becomes the block of c's pixels in the output.
    Flatten,
    /// A residual add: inputs and output are one space; a unit is constant where every
    /// input's is.
    Sum,
    /// Units that are mixed (layer norm) or placed by position (a padding shortcut), or the
    /// model's input: input and output are kept whole.
    Whole,
}

/// One parameter or buffer of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDef {
    /// After the layer's name: `weight` in `fc1.weight`.
    pub suffix: &'static str,
    pub kind: ParamKind,
    pub shape: Vec<u64>,
    pub init: Init,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Weight,
    Bias,
    /// State the forward pass keeps, not trained (PyTorch's buffers): batch norm's
    /// `running_mean`, `running_var` and `num_batches_tracked`. Saved and loaded with the
    /// parameters; no gradient, optimizer, penalty, mask or prune touches it.
    Buffer,
}

/// How a parameter starts, as PyTorch's modules initialise it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// U(−1/√fan_in, 1/√fan_in): `nn.Linear` and `nn.Conv2d` (kaiming_uniform with a = √5
    /// gives that bound), their biases with the weight's fan-in.
    UniformFanIn {
        fan_in: u64,
    },
    /// N(0, 1): `nn.Embedding`.
    Normal,
    /// N(0, std²): a free parameter's `normal(std)`.
    Gaussian {
        std: f64,
    },
    Constant(f64),
}

/// Training (batch statistics, dropout) or evaluation (running statistics, no dropout), as
/// PyTorch's `model.train()` and `model.eval()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// What a layer's lowering works with: the graph, its inputs' values, its parameters.
/// Images are channels-last inside ([batch, height, width, channels]); `shape` is the
/// layer's output as PyTorch lays it out, batch first.
pub struct Lowering<'a> {
    pub g: &'a mut Graph,
    pub inputs: Vec<ValueId>,
    pub shape: Vec<usize>,
    pub mode: Mode,
    /// The layer's parameters, by suffix.
    pub params: &'a dyn Fn(&str) -> Option<ValueId>,
    /// New values of the layer's buffers (batch norm's running statistics), by suffix.
    pub updates: Vec<(&'static str, ValueId)>,
    /// How many dropout layers drew random numbers so far (each draws its own; one that
    /// draws counts itself).
    pub dropouts: usize,
}

impl Lowering<'_> {
    pub fn input(&self, i: usize) -> ValueId {
        self.inputs[i]
    }
    pub fn param(&self, suffix: &str) -> Result<ValueId, String> {
        (self.params)(suffix).ok_or_else(|| format!("no parameter `{suffix}`"))
    }
}

/// A parameter of a layer's call: its name and whether it must be given.
pub type ArgDef = values::Param;

/// A kind of layer as the checker knows it.
pub struct LayerDef {
    pub name: &'static str,
    /// What it computes, in one line.
    pub doc: &'static str,
    /// Its arguments, the input first.
    pub args: &'static [ArgDef],
    /// A call that works, for help lines.
    pub example: &'static str,
    /// What its input holds: float32 values, or i32 token ids (`embedding`).
    pub input_dtype: Dtype,
    /// Checks a call's arguments and input shape and makes the layer, or reports why not.
    pub build: fn(&mut Build) -> Option<LayerRef>,
}

/// Every layer a model can call.
pub static LAYERS: &[&LayerDef] = &[
    &dense::DEF,
    &conv2d::DEF,
    &batchnorm::DEF,
    &layernorm::DEF,
    &embedding::DEF,
    &attention::DEF,
    &sequence::TOKENS,
    &sequence::MEAN_TOKENS,
    &pool::MAXPOOL,
    &pool::AVGPOOL,
    &pool::GLOBAL_AVGPOOL,
    &activation::RELU,
    &activation::LEAKY_RELU,
    &activation::TANH,
    &activation::SIGMOID,
    &activation::GELU,
    &dropout::DEF,
    &shortcut::DEF,
    &flatten::DEF,
];

pub fn find(name: &str) -> Option<&'static LayerDef> {
    LAYERS.iter().copied().find(|d| d.name == name)
}

/// The names of every layer, in `LAYERS`' order.
pub fn names() -> Vec<&'static str> {
    LAYERS.iter().map(|d| d.name).collect()
}

/// Largest dimension a model may have.
pub const MAX_DIM: u64 = 1 << 31;

/// The most elements one tensor of one sample may hold (a layer's output, a parameter).
pub const MAX_ELEMENTS: u64 = 1 << 40;

/// Whether a parameter file's tensor `name` is a buffer, not a parameter (batch norm's running
/// statistics and counter, by PyTorch's names): for readers without the model at hand.
pub fn is_buffer_name(name: &str) -> bool {
    let suffix = name.rsplit('.').next().unwrap_or(name);
    batchnorm::BUFFERS.contains(&suffix)
}

/// The product of `xs`, or `u64::MAX` past it (FLOPs of layers near the size limits).
pub fn saturating_product<'a>(xs: impl IntoIterator<Item = &'a u64>) -> u64 {
    xs.into_iter().fold(1u64, |p, &x| p.saturating_mul(x))
}

/// A call of a layer being checked: its arguments (bound to the definition's), its input's
/// shape, and where to report.
pub struct Build<'a> {
    pub(crate) sink: &'a mut Sink,
    pub(crate) def: &'static LayerDef,
    pub(crate) call: &'a Call,
    pub(crate) args: Vec<Option<&'a Expr>>,
    pub(crate) input: Vec<u64>,
}

impl<'a> Build<'a> {
    fn slot(&self, name: &str) -> usize {
        self.def.args.iter().position(|(n, _)| *n == name).unwrap_or_else(|| panic!("`{name}` is no argument"))
    }

    /// The expression given for argument `name`, if any.
    pub fn arg(&self, name: &str) -> Option<&'a Expr> {
        self.args[self.slot(name)]
    }

    /// Where argument `name` is written (the call, where it is not).
    pub fn span_of(&self, name: &str) -> Span {
        self.arg(name).map_or(self.call.span, |e| e.span)
    }

    /// The shape of the layer's input, per sample.
    pub fn input_shape(&self) -> &[u64] {
        &self.input
    }

    pub fn report(&mut self, d: Diagnostic) {
        self.sink.push(d);
    }

    /// A size, kernel, stride or padding: a whole number from `min` up to 2^31, or
    /// `default` where it is not given.
    pub fn size(&mut self, name: &str, what: &str, min: u64, default: Option<u64>) -> Option<u64> {
        let Some(e) = self.arg(name) else { return default };
        let layer = self.def.name;
        let v = match const_eval(e) {
            Ok(v) => v,
            Err(_) => {
                self.sink.push(
                    Diagnostic::error(Code::BadLayerArgument, format!("{what} of `{layer}` must be a whole number"))
                        .label(e.span, format!("this is {}", kind_name(e)))
                        .help("layer sizes are fixed when the spec is compiled: write a number"),
                );
                return None;
            }
        };
        if v.fract() != 0.0 || v < min as f64 || v > MAX_DIM as f64 {
            let range = if min == 0 { "from 0 to 2^31" } else { "from 1 to 2^31" };
            self.sink.push(
                Diagnostic::error(
                    Code::BadLayerArgument,
                    format!("{what} of `{layer}` must be a whole number {range}"),
                )
                .label(e.span, format!("this is {}", fmt_num(v)))
                .help(format!("e.g. `{}`", self.def.example)),
            );
            return None;
        }
        Some(v as u64)
    }

    /// `true` or `false`, or `default` where it is not given.
    pub fn flag(&mut self, name: &str, default: bool) -> Option<bool> {
        let Some(e) = self.arg(name) else { return Some(default) };
        match e.kind {
            ExprKind::Bool(b) => Some(b),
            _ => {
                let layer = self.def.name;
                self.sink.push(
                    Diagnostic::error(
                        Code::BadLayerArgument,
                        format!("`{name}` of `{layer}` must be `true` or `false`"),
                    )
                    .label(e.span, format!("this is {}", kind_name(e)))
                    .help(format!("write `{name} = false` to leave the {name} out")),
                );
                None
            }
        }
    }

    /// A constant number for which `ok` holds, or `default` where it is not given. Where it
    /// is not one, `complain` makes the diagnostic and the text of its label on the argument.
    pub fn number(
        &mut self,
        name: &str,
        default: f64,
        ok: impl Fn(f64) -> bool,
        complain: impl FnOnce(NotANumber) -> (Diagnostic, String),
    ) -> Option<f64> {
        let Some(e) = self.arg(name) else { return Some(default) };
        let got = match const_eval(e) {
            Ok(v) if ok(v) => return Some(v),
            Ok(v) => NotANumber::Value(v),
            Err(_) => NotANumber::Kind(kind_name(e)),
        };
        let (d, label) = complain(got);
        self.sink.push(d.label(e.span, label));
        None
    }

    /// The input as an image [channels, height, width], or a diagnostic.
    pub fn image(&mut self) -> Option<[u64; 3]> {
        match self.input[..] {
            [c, h, w] => Some([c, h, w]),
            _ => {
                let layer = self.def.name;
                let help = match self.input.len() {
                    2 => "give the image a channel axis: `f32[1, 28, 28]`, not `f32[28, 28]`".to_string(),
                    1 => format!(
                        "`{layer}` works on images: use it on an image input or a conv layer's output, before `flatten`"
                    ),
                    _ => "declare the input as an image, e.g. `x: f32[1, 28, 28]`".to_string(),
                };
                self.wrong_rank("an image [channels, height, width]", &help);
                None
            }
        }
    }

    /// The input has the wrong number of axes for this layer.
    pub fn wrong_rank(&mut self, wants: &str, help: &str) {
        let layer = self.def.name;
        let span = self.span_of("input");
        self.sink.push(
            Diagnostic::error(Code::WrongRank, format!("`{layer}` takes {wants}"))
                .label(span, format!("this has shape {}", fmt_shape(&self.input)))
                .help(help),
        );
    }

    /// A window (kernel, pooling) of `size` does not fit the input image.
    pub fn window_too_large(&mut self, arg: &str, what: &str, size: u64, padding: u64) {
        let span = self.span_of(arg);
        let shape = &self.input;
        let padded = if padding > 0 { format!(" (padded by {padding})") } else { String::new() };
        self.sink.push(
            Diagnostic::error(
                Code::WindowTooLarge,
                format!("a {what} of {size} does not fit in a {}×{} image{padded}", shape[1], shape[2]),
            )
            .label(span, format!("{what} {size}"))
            .help(format!("use a {what} of at most {}", shape[1].min(shape[2]) + 2 * padding)),
        );
    }
}

/// What an argument that should have been a suitable number was instead.
#[derive(Debug, Clone, Copy)]
pub enum NotANumber {
    /// A number outside the range.
    Value(f64),
    /// Not a number at all: `a string`, `a name`.
    Kind(&'static str),
}

impl NotANumber {
    /// `0.5`, or `a string`.
    pub fn describe(self) -> String {
        match self {
            NotANumber::Value(v) => fmt_num(v),
            NotANumber::Kind(k) => k.to_string(),
        }
    }
}

pub fn fmt_shape(shape: &[u64]) -> String {
    format!("[{}]", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}

/// A keyword argument's text when it differs from its default: `, stride = 2`.
pub(crate) fn unless_default<T: PartialEq + fmt::Display>(name: &str, value: T, default: T) -> String {
    if value == default {
        String::new()
    } else {
        format!(", {name} = {value}")
    }
}

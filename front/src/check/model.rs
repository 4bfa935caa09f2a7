//! Models: resolves layer names, infers per-sample shapes and names the parameters
//! (`fc1.weight`, `fc1.bias`) with PyTorch's layouts.

use super::values::{bind, const_eval, fmt_num, kind_name};
use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic, Sink};
use crate::program::{LayerOp, Model, Node, Param, ParamKind};
use crate::syntax::ast::{BinOp, Call, Expr, ExprKind, ModelDef, ModelStmt, Span};
use std::collections::{HashMap, HashSet};

pub const LAYERS: [&str; 14] = [
    "dense",
    "conv2d",
    "batchnorm",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "relu",
    "leaky_relu",
    "tanh",
    "sigmoid",
    "gelu",
    "dropout",
    "shortcut",
    "flatten",
];

/// Largest dimension, and largest tensor, a model may have.
const MAX_DIM: u64 = 1 << 31;
const MAX_ELEMENTS: u64 = 1 << 40;

struct ModelChecker<'s> {
    sink: &'s mut Sink,
    nodes: Vec<Node>,
    scope: HashMap<String, usize>,
    /// Bindings that failed to check: using them reports nothing more.
    failed: HashSet<String>,
    /// Nodes with parameters created while evaluating the current statement.
    created: Vec<usize>,
    binding: Option<String>,
}

pub fn check_model(sink: &mut Sink, def: &ModelDef) -> Option<Model> {
    let input_shape = input_shape(sink, def)?;
    let mut mc = ModelChecker {
        sink,
        nodes: vec![],
        scope: HashMap::new(),
        failed: HashSet::new(),
        created: vec![],
        binding: None,
    };
    mc.nodes.push(Node {
        name: Some(def.input.name.name.clone()),
        binding: Some(def.input.name.name.clone()),
        op: LayerOp::Input,
        inputs: vec![],
        shape: input_shape.clone(),
        span: def.input.span,
    });
    mc.scope.insert(def.input.name.name.clone(), 0);

    let mut bindings: Vec<(String, Span)> = Vec::new();
    let mut output = None;
    let mut ok = true;
    for stmt in &def.body {
        if let Some((_, ret_span)) = output {
            let span = match stmt {
                ModelStmt::Bind { name, .. } => name.span,
                ModelStmt::Return { span, .. } => *span,
            };
            mc.sink.push(
                Diagnostic::error(Code::AfterReturn, "statement after `return`")
                    .label(span, "this comes after the model returned")
                    .label(ret_span, "the model returns here")
                    .help("`return` must be the last statement of a model"),
            );
            ok = false;
            break;
        }
        match stmt {
            ModelStmt::Bind { name, value } => {
                if name.name == def.input.name.name || mc.scope.contains_key(&name.name) {
                    let first = bindings.iter().find(|(n, _)| *n == name.name).map_or(def.input.name.span, |b| b.1);
                    mc.sink.push(
                        Diagnostic::error(
                            Code::Duplicate,
                            format!("`{}` is defined twice in model `{}`", name.name, def.name.name),
                        )
                        .label(name.span, "defined again here")
                        .label(first, "first defined here")
                        .help("give each layer its own name"),
                    );
                    ok = false;
                    continue;
                }
                mc.binding = Some(name.name.clone());
                match mc.statement(value, &name.name) {
                    Some(id) => {
                        mc.scope.insert(name.name.clone(), id);
                        bindings.push((name.name.clone(), name.span));
                    }
                    None => {
                        mc.failed.insert(name.name.clone());
                        ok = false;
                    }
                }
            }
            ModelStmt::Return { value, span } => {
                mc.binding = None;
                match mc.statement(value, "out") {
                    Some(id) => output = Some((id, *span)),
                    None => ok = false,
                }
            }
        }
    }
    if !ok {
        return None;
    }
    let Some((output, ret_span)) = output else {
        mc.sink.push(
            Diagnostic::error(Code::MissingReturn, format!("model `{}` has no `return`", def.name.name))
                .label(def.name.span, "this model returns nothing")
                .help(match bindings.last() {
                    Some((last, _)) => format!("end the model with `return {last}`"),
                    None => "end the model with `return` and its output layer".into(),
                }),
        );
        return None;
    };

    let out_shape = mc.nodes[output].shape.clone();
    if out_shape.len() != 1 {
        mc.sink.push(
            Diagnostic::error(Code::BadOutput, "the model must return a vector of class scores")
                .label(ret_span, format!("this returns shape {}", fmt_shape(&out_shape)))
                .help("flatten the result and end with a dense layer: `dense(flatten(c2), 10)`"),
        );
        return None;
    }

    // Bindings that never reach the output train nothing.
    let mut reach = vec![false; mc.nodes.len()];
    reach[output] = true;
    for i in (0..mc.nodes.len()).rev() {
        if reach[i] {
            for &j in &mc.nodes[i].inputs {
                reach[j] = true;
            }
        }
    }
    for (name, span) in &bindings {
        if !reach[mc.scope[name]] {
            mc.sink.push(
                Diagnostic::warning(Code::UnusedLayer, format!("`{name}` does not contribute to the output"))
                    .label(*span, "never used on the way to `return`")
                    .help("remove it, or use it in a later layer"),
            );
        }
    }

    let mut params = Vec::new();
    for (i, node) in mc.nodes.iter().enumerate() {
        let Some(layer) = &node.name else { continue };
        if let LayerOp::BatchNorm { .. } = node.op {
            let c = node.shape[0];
            for (suffix, kind, shape) in [
                ("weight", ParamKind::Weight, vec![c]),
                ("bias", ParamKind::Bias, vec![c]),
                ("running_mean", ParamKind::Buffer, vec![c]),
                ("running_var", ParamKind::Buffer, vec![c]),
                ("num_batches_tracked", ParamKind::Buffer, vec![]),
            ] {
                params.push(Param { name: format!("{layer}.{suffix}"), layer: layer.clone(), kind, shape, node: i });
            }
            continue;
        }
        let (weight, bias) = match &node.op {
            LayerOp::Dense { out, bias } => {
                let inputs: u64 = mc.nodes[node.inputs[0]].shape.iter().product();
                (vec![*out, inputs], *bias)
            }
            LayerOp::Conv2d { out, kernel, bias, .. } => {
                let in_channels = mc.nodes[node.inputs[0]].shape[0];
                (vec![*out, in_channels, *kernel, *kernel], *bias)
            }
            _ => continue,
        };
        let out = weight[0];
        params.push(Param {
            name: format!("{layer}.weight"),
            layer: layer.clone(),
            kind: ParamKind::Weight,
            shape: weight,
            node: i,
        });
        if bias {
            params.push(Param {
                name: format!("{layer}.bias"),
                layer: layer.clone(),
                kind: ParamKind::Bias,
                shape: vec![out],
                node: i,
            });
        }
    }
    for p in &params {
        if p.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).is_none_or(|n| n > MAX_ELEMENTS) {
            mc.sink.push(
                Diagnostic::error(Code::BadDimension, format!("parameter `{}` is too large", p.name))
                    .label(mc.nodes[p.node].span, format!("shape {}", fmt_shape(&p.shape)))
                    .help("a tensor holds at most 2^40 elements"),
            );
            return None;
        }
    }

    Some(Model {
        name: def.name.name.clone(),
        input_name: def.input.name.name.clone(),
        input_shape,
        nodes: mc.nodes,
        output,
        params,
    })
}

fn input_shape(sink: &mut Sink, def: &ModelDef) -> Option<Vec<u64>> {
    let input = &def.input;
    let mut ok = true;
    if input.dtype.name != "f32" {
        sink.push(
            Diagnostic::error(Code::BadDtype, format!("unsupported element type `{}`", input.dtype.name))
                .label(input.dtype.span, "not supported")
                .help("model inputs are `f32`: write `f32[784]`"),
        );
        ok = false;
    }
    if input.dims.is_empty() {
        sink.push(
            Diagnostic::error(Code::BadDimension, "the model input has no dimensions")
                .label(input.span, "a scalar input")
                .help("give the per-sample shape: `f32[784]` or `f32[1, 28, 28]`"),
        );
        ok = false;
    }
    let mut shape = Vec::new();
    for (d, span) in &input.dims {
        match d {
            Some(v) if *v >= 1 && *v <= MAX_DIM => shape.push(*v),
            _ => {
                sink.push(
                    Diagnostic::error(Code::BadDimension, "input dimensions must be between 1 and 2^31")
                        .label(*span, "out of range")
                        .help("the batch axis is added by the compiler; give the shape of one sample"),
                );
                ok = false;
            }
        }
    }
    if ok && shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).is_none_or(|n| n > MAX_ELEMENTS) {
        sink.push(
            Diagnostic::error(Code::BadDimension, "the model input is too large")
                .label(input.span, "more than 2^40 elements per sample"),
        );
        ok = false;
    }
    ok.then_some(shape)
}

pub fn fmt_shape(shape: &[u64]) -> String {
    format!("[{}]", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}

impl ModelChecker<'_> {
    /// Evaluates one statement's expression; at most one layer with parameters may be
    /// created, and it takes the statement's name.
    fn statement(&mut self, value: &Expr, name: &str) -> Option<usize> {
        self.created.clear();
        let id = self.eval(value)?;
        if self.created.len() > 1 {
            let mut d = Diagnostic::error(
                Code::TwoLayersOneName,
                format!("`{name}` holds {} layers with parameters", self.created.len()),
            );
            for &c in &self.created {
                d = d.label(self.nodes[c].span, "a layer with parameters");
            }
            let batchnorm = self.created.iter().any(|&c| matches!(self.nodes[c].op, LayerOp::BatchNorm { .. }));
            let help = if batchnorm {
                "bind each layer with parameters to its own name, as PyTorch's conv1 and bn1: `c1 = conv2d(x, 16, kernel = 3)`, then `n1 = batchnorm(c1) |> relu`"
            } else {
                "bind each layer with parameters to its own name, e.g. `fc1 = dense(x, 300) |> relu`"
            };
            self.sink.push(d.help(help));
            return None;
        }
        if let Some(&c) = self.created.first() {
            if name == "out" && self.scope.contains_key("out") {
                self.sink.push(
                    Diagnostic::error(Code::Duplicate, "the returned layer would be named `out`, which is taken")
                        .label(self.nodes[c].span, "this layer is named `out`")
                        .help("bind it to a name and return that name"),
                );
                return None;
            }
            self.nodes[c].name = Some(name.to_string());
        }
        Some(id)
    }

    fn push(&mut self, op: LayerOp, inputs: Vec<usize>, shape: Vec<u64>, span: Span) -> usize {
        let has_params = matches!(op, LayerOp::Dense { .. } | LayerOp::Conv2d { .. } | LayerOp::BatchNorm { .. });
        self.nodes.push(Node { name: None, binding: self.binding.clone(), op, inputs, shape, span });
        let id = self.nodes.len() - 1;
        if has_params {
            self.created.push(id);
        }
        id
    }

    fn eval(&mut self, e: &Expr) -> Option<usize> {
        match &e.kind {
            ExprKind::Name(n) => {
                if let Some(&id) = self.scope.get(n) {
                    return Some(id);
                }
                if self.failed.contains(n) {
                    return None;
                }
                let known: Vec<&str> = self.scope.keys().map(String::as_str).collect();
                let help = if LAYERS.contains(&n.as_str()) {
                    Some(format!("`{n}` is a layer: call it, as in `{n}(x)`, or pipe into it with `|> {n}`"))
                } else {
                    did_you_mean(n, known.iter().copied())
                };
                self.sink.push(
                    Diagnostic::error(Code::UnknownName, format!("unknown name `{n}`"))
                        .label(e.span, "not defined above this line")
                        .maybe_help(help.or_else(|| Some(format!("defined here: {}", sorted(&known))))),
                );
                None
            }
            ExprKind::Call(call) => self.layer(call),
            ExprKind::Binary(BinOp::Add, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                let (a, b) = (a?, b?);
                if self.nodes[a].shape != self.nodes[b].shape {
                    self.sink.push(
                        Diagnostic::error(Code::ShapeMismatch, "cannot add layers of different shapes")
                            .label(
                                e.span,
                                format!("{} + {}", fmt_shape(&self.nodes[a].shape), fmt_shape(&self.nodes[b].shape)),
                            )
                            .help("a residual add needs both sides to have the same shape"),
                    );
                    return None;
                }
                let shape = self.nodes[a].shape.clone();
                Some(self.push(LayerOp::Add, vec![a, b], shape, e.span))
            }
            ExprKind::Selector(s) => {
                self.sink.push(
                    Diagnostic::error(Code::SelectorOutsidePenalty, format!("selector `{s}` in a model"))
                        .label(e.span, "selectors pick parameters in penalties and prunes")
                        .help("a model refers to its input and to layers bound above by name"),
                );
                None
            }
            _ => {
                let what = match &e.kind {
                    ExprKind::Binary(op, ..) => format!("`{}`", op.symbol()),
                    _ => kind_name(e).to_string(),
                };
                self.sink.push(
                    Diagnostic::error(Code::WrongKind, format!("a model is built from layers, not {what}"))
                        .label(e.span, "not a layer")
                        .help(format!("layers: {}, and `a + b` of equal shapes", LAYERS.join(", "))),
                );
                None
            }
        }
    }

    fn layer(&mut self, call: &Call) -> Option<usize> {
        let name = call.func.name.as_str();
        let params: &[(&str, bool)] = match name {
            "dense" => &[("input", true), ("out", true), ("bias", false)],
            "conv2d" => &[
                ("input", true),
                ("out", true),
                ("kernel", true),
                ("stride", false),
                ("padding", false),
                ("bias", false),
                ("dilation", false),
            ],
            "maxpool" | "avgpool" => &[("input", true), ("size", true), ("stride", false), ("padding", false)],
            "relu" | "tanh" | "sigmoid" | "gelu" | "flatten" | "global_avgpool" => &[("input", true)],
            "leaky_relu" => &[("input", true), ("slope", false)],
            "batchnorm" => &[("input", true), ("eps", false), ("momentum", false)],
            "dropout" => &[("input", true), ("p", false)],
            "shortcut" => &[("input", true), ("out", true), ("stride", false)],
            _ => {
                let help = did_you_mean(name, LAYERS).or_else(|| {
                    Some(if super::BUILTINS.contains(&name) {
                        format!("`{name}` is a function for penalties; models use layers: {}", LAYERS.join(", "))
                    } else {
                        format!("layers: {}", LAYERS.join(", "))
                    })
                });
                self.sink.push(
                    Diagnostic::error(Code::UnknownLayer, format!("unknown layer `{name}`"))
                        .label(call.func.span, "not a layer")
                        .maybe_help(help),
                );
                return None;
            }
        };
        let args = bind(self.sink, call, &format!("`{name}`"), params)?;
        let input = self.eval(args[0]?)?;
        let in_shape = self.nodes[input].shape.clone();
        let span = call.span;
        let int = |mc: &mut Self, i: usize, what: &str, min: u64, default: Option<u64>| -> Option<u64> {
            match args[i] {
                Some(e) => layer_size(mc.sink, e, name, what, min),
                None => default,
            }
        };
        let flag = |mc: &mut Self, i: usize| -> Option<bool> {
            match args[i] {
                Some(e) => match e.kind {
                    ExprKind::Bool(b) => Some(b),
                    _ => {
                        mc.sink.push(
                            Diagnostic::error(
                                Code::BadLayerArgument,
                                format!("`bias` of `{name}` must be `true` or `false`"),
                            )
                            .label(e.span, format!("this is {}", kind_name(e)))
                            .help("write `bias = false` to leave the bias out"),
                        );
                        None
                    }
                },
                None => Some(true),
            }
        };
        match name {
            "dense" => {
                let out = int(self, 1, "the number of outputs", 1, None);
                let bias = flag(self, 2);
                let (out, bias) = (out?, bias?);
                if in_shape.len() != 1 {
                    let help = if in_shape.len() == 3 {
                        "flatten the image first: `dense(flatten(c), ...)` or `... |> flatten |> dense(...)`"
                    } else {
                        "dense takes one feature vector per sample"
                    };
                    self.wrong_rank(args[0]?.span, "dense", "a vector [features]", &in_shape, help);
                    return None;
                }
                Some(self.push(LayerOp::Dense { out, bias }, vec![input], vec![out], span))
            }
            "conv2d" => {
                let out = int(self, 1, "the number of output channels", 1, None);
                let kernel = int(self, 2, "the kernel size", 1, None);
                let stride = int(self, 3, "the stride", 1, Some(1));
                let padding = int(self, 4, "the padding", 0, Some(0));
                let bias = flag(self, 5);
                let dilation = int(self, 6, "the dilation", 1, Some(1));
                let (out, kernel, stride, padding, bias, dilation) =
                    (out?, kernel?, stride?, padding?, bias?, dilation?);
                let [_, h, w] = self.image(args[0]?.span, "conv2d", &in_shape)?;
                let (hp, wp) = (h + 2 * padding, w + 2 * padding);
                // A dilated kernel spans dilation · (kernel − 1) + 1 pixels.
                let span_of = dilation.saturating_mul(kernel - 1).saturating_add(1);
                if span_of > hp || span_of > wp {
                    let what = if dilation > 1 { "dilated kernel" } else { "kernel" };
                    self.window_too_large(args[2]?.span, what, span_of, &in_shape, padding);
                    return None;
                }
                let shape = vec![out, (hp - span_of) / stride + 1, (wp - span_of) / stride + 1];
                let op = LayerOp::Conv2d { out, kernel, stride, padding, bias, dilation };
                Some(self.push(op, vec![input], shape, span))
            }
            "maxpool" | "avgpool" => {
                let size = int(self, 1, "the window size", 1, None);
                let stride = size.and_then(|s| int(self, 2, "the stride", 1, Some(s)));
                let padding = int(self, 3, "the padding", 0, Some(0));
                let (size, stride, padding) = (size?, stride?, padding?);
                let [c, h, w] = self.image(args[0]?.span, name, &in_shape)?;
                if 2 * padding > size {
                    self.sink.push(
                        Diagnostic::error(
                            Code::BadLayerArgument,
                            format!("a padding of {padding} is more than half of `{name}`'s window of {size}"),
                        )
                        .label(args[3]?.span, format!("padding {padding}"))
                        .help(format!(
                            "a window must hold at least one real pixel (PyTorch's rule): use a padding of at most {}",
                            size / 2
                        )),
                    );
                    return None;
                }
                let (hp, wp) = (h + 2 * padding, w + 2 * padding);
                if size > hp || size > wp {
                    self.window_too_large(args[1]?.span, "window", size, &in_shape, padding);
                    return None;
                }
                let op = if name == "maxpool" {
                    LayerOp::MaxPool { size, stride, padding }
                } else {
                    LayerOp::AvgPool { size, stride, padding }
                };
                Some(self.push(op, vec![input], vec![c, (hp - size) / stride + 1, (wp - size) / stride + 1], span))
            }
            "batchnorm" => {
                let mut number = |i: usize, what: &str, default: f64, ok: &dyn Fn(f64) -> bool| -> Option<f64> {
                    let Some(e) = args[i] else { return Some(default) };
                    match const_eval(e) {
                        Ok(v) if ok(v) => Some(v),
                        other => {
                            let got = match other {
                                Ok(v) => fmt_num(v),
                                Err(_) => kind_name(e).to_string(),
                            };
                            self.sink.push(
                                Diagnostic::error(Code::BadLayerArgument, format!("`{what}` of `batchnorm` is {got}"))
                                    .label(e.span, format!("this {what}"))
                                    .help(format!(
                                        "`{what}` is a number {}: PyTorch's default is {}",
                                        if what == "eps" { "above 0" } else { "from 0 to 1" },
                                        fmt_num(default)
                                    )),
                            );
                            None
                        }
                    }
                };
                let eps = number(1, "eps", crate::program::BATCHNORM_EPS, &|v| v.is_finite() && v > 0.0);
                let momentum = number(2, "momentum", crate::program::BATCHNORM_MOMENTUM, &|v| (0.0..=1.0).contains(&v));
                let (eps, momentum) = (eps?, momentum?);
                if in_shape.len() != 3 {
                    let help = if in_shape.len() == 1 {
                        "batch norm normalizes each channel of an image (PyTorch's BatchNorm2d): use it on a conv layer's output, before `flatten`"
                    } else {
                        "batch norm normalizes each channel of an image [channels, height, width]"
                    };
                    self.wrong_rank(args[0]?.span, "batchnorm", "an image [channels, height, width]", &in_shape, help);
                    return None;
                }
                Some(self.push(LayerOp::BatchNorm { eps, momentum }, vec![input], in_shape, span))
            }
            "shortcut" => {
                let out = int(self, 1, "the number of output channels", 1, None);
                let stride = int(self, 2, "the stride", 1, Some(2));
                let (out, stride) = (out?, stride?);
                let [c, h, w] = self.image(args[0]?.span, "shortcut", &in_shape)?;
                if out < c || (out - c) % 2 != 0 {
                    self.sink.push(
                        Diagnostic::error(
                            Code::BadLayerArgument,
                            format!("a shortcut from {c} to {out} channels cannot pad equally on both sides"),
                        )
                        .label(args[1]?.span, format!("{out} channels"))
                        .help(format!(
                            "the option-A shortcut adds (out − in) / 2 zero channels on each side: use an even step up from {c}, e.g. {}",
                            2 * c
                        )),
                    );
                    return None;
                }
                let shape = vec![out, h.div_ceil(stride), w.div_ceil(stride)];
                Some(self.push(LayerOp::Shortcut { out, stride }, vec![input], shape, span))
            }
            "dropout" => {
                let p = match args[1] {
                    None => 0.5,
                    Some(e) => match const_eval(e) {
                        Ok(v) if (0.0..1.0).contains(&v) => v,
                        other => {
                            let got = other.map_or_else(|_| kind_name(e).to_string(), fmt_num);
                            self.sink.push(
                                Diagnostic::error(
                                    Code::BadLayerArgument,
                                    format!("the drop probability of `dropout` is {got}"),
                                )
                                .label(e.span, "this probability")
                                .help("a probability from 0 up to (not including) 1: PyTorch's default is 0.5"),
                            );
                            return None;
                        }
                    },
                };
                Some(self.push(LayerOp::Dropout { p }, vec![input], in_shape, span))
            }
            "global_avgpool" => {
                let [c, _, _] = self.image(args[0]?.span, name, &in_shape)?;
                Some(self.push(LayerOp::GlobalAvgPool, vec![input], vec![c], span))
            }
            "relu" => Some(self.push(LayerOp::Relu, vec![input], in_shape, span)),
            "tanh" => Some(self.push(LayerOp::Tanh, vec![input], in_shape, span)),
            "sigmoid" => Some(self.push(LayerOp::Sigmoid, vec![input], in_shape, span)),
            "gelu" => Some(self.push(LayerOp::Gelu, vec![input], in_shape, span)),
            "leaky_relu" => {
                let slope = match args[1] {
                    None => 0.01,
                    Some(e) => match const_eval(e) {
                        Ok(v) if v.is_finite() && v >= 0.0 => v,
                        Ok(v) => {
                            self.sink.push(
                                Diagnostic::error(
                                    Code::BadLayerArgument,
                                    format!(
                                        "the slope of `leaky_relu` must be a number of 0 or more, not {}",
                                        fmt_num(v)
                                    ),
                                )
                                .label(e.span, "this slope")
                                .help("the slope multiplies negative inputs: PyTorch's default is 0.01"),
                            );
                            return None;
                        }
                        Err(_) => {
                            self.sink.push(
                                Diagnostic::error(Code::BadLayerArgument, "the slope of `leaky_relu` must be a number")
                                    .label(e.span, format!("this is {}", kind_name(e)))
                                    .help("write a number, e.g. `leaky_relu(x, slope = 0.1)`"),
                            );
                            return None;
                        }
                    },
                };
                Some(self.push(LayerOp::LeakyRelu { slope }, vec![input], in_shape, span))
            }
            _ => {
                let n = in_shape.iter().product();
                Some(self.push(LayerOp::Flatten, vec![input], vec![n], span))
            }
        }
    }

    fn image(&mut self, span: Span, layer: &str, shape: &[u64]) -> Option<[u64; 3]> {
        match shape {
            [c, h, w] => Some([*c, *h, *w]),
            _ => {
                let help = match shape.len() {
                    2 => "give the image a channel axis: `f32[1, 28, 28]`, not `f32[28, 28]`".to_string(),
                    1 => format!(
                        "`{layer}` works on images: use it on an image input or a conv layer's output, before `flatten`"
                    ),
                    _ => "declare the input as an image, e.g. `x: f32[1, 28, 28]`".to_string(),
                };
                self.wrong_rank(span, layer, "an image [channels, height, width]", shape, &help);
                None
            }
        }
    }

    fn wrong_rank(&mut self, span: Span, layer: &str, wants: &str, got: &[u64], help: &str) {
        self.sink.push(
            Diagnostic::error(Code::WrongRank, format!("`{layer}` takes {wants}"))
                .label(span, format!("this has shape {}", fmt_shape(got)))
                .help(help),
        );
    }

    fn window_too_large(&mut self, span: Span, what: &str, size: u64, shape: &[u64], padding: u64) {
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

fn sorted(names: &[&str]) -> String {
    let mut v: Vec<&str> = names.to_vec();
    v.sort();
    v.join(", ")
}

/// A size, kernel, stride or padding: a whole number from `min` up to 2^31.
fn layer_size(sink: &mut Sink, e: &Expr, layer: &str, what: &str, min: u64) -> Option<u64> {
    let v = match const_eval(e) {
        Ok(v) => v,
        Err(_) => {
            sink.push(
                Diagnostic::error(Code::BadLayerArgument, format!("{what} of `{layer}` must be a whole number"))
                    .label(e.span, format!("this is {}", kind_name(e)))
                    .help("layer sizes are fixed when the spec is compiled: write a number"),
            );
            return None;
        }
    };
    if v.fract() != 0.0 || v < min as f64 || v > MAX_DIM as f64 {
        let range = if min == 0 { "from 0 to 2^31" } else { "from 1 to 2^31" };
        sink.push(
            Diagnostic::error(Code::BadLayerArgument, format!("{what} of `{layer}` must be a whole number {range}"))
                .label(e.span, format!("this is {}", fmt_num(v)))
                .help(format!(
                    "e.g. `{}`",
                    match layer {
                        "dense" => "dense(x, 300)",
                        "conv2d" => "conv2d(x, 20, kernel = 5, stride = 1, padding = 0)",
                        _ => "maxpool(c, 2)",
                    }
                )),
        );
        return None;
    }
    Some(v as u64)
}

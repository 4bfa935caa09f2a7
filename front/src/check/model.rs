//! Models: resolves layer names, infers per-sample shapes and names the parameters
//! (`fc1.weight`, `fc1.bias`) with PyTorch's layouts.

use super::values::{bind, kind_name};
use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic, Sink};
use crate::layers::{self, fmt_shape, Add, Build, Input, LayerRef, MAX_DIM};
use crate::program::{params_of, Model, Node};
use crate::syntax::ast::{BinOp, Call, Expr, ExprKind, ModelDef, ModelStmt, Span};
use hoyer_ir::Dtype;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Largest tensor a model may have.
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
    let (input_shape, input_dtype) = input_shape(sink, def)?;
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
        layer: Arc::new(Input { shape: input_shape.clone(), dtype: input_dtype }),
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

    // The input's own name is no layer's: it has no parameters.
    let params = params_of(&mc.nodes);
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
        input_dtype,
        nodes: mc.nodes,
        output,
        params,
    })
}

fn input_shape(sink: &mut Sink, def: &ModelDef) -> Option<(Vec<u64>, Dtype)> {
    let input = &def.input;
    let mut ok = true;
    let dtype = Dtype::parse(&input.dtype.name);
    if dtype.is_none() {
        sink.push(
            Diagnostic::error(Code::BadDtype, format!("unsupported element type `{}`", input.dtype.name))
                .label(input.dtype.span, "not supported")
                .help("model inputs are `f32` values (`f32[784]`), or `i32` token ids for `embedding` (`i32[64]`)"),
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
    Some((shape, dtype?)).filter(|_| ok)
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
            let batchnorm = self.created.iter().any(|&c| self.nodes[c].layer.name() == "batchnorm");
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

    fn push(&mut self, layer: LayerRef, inputs: Vec<usize>, span: Span) -> usize {
        let shape = {
            let shapes: Vec<&[u64]> = inputs.iter().map(|&j| self.nodes[j].shape.as_slice()).collect();
            layer.shape(&shapes)
        };
        let has_params = {
            let shapes: Vec<&[u64]> = inputs.iter().map(|&j| self.nodes[j].shape.as_slice()).collect();
            !layer.params(&shapes, &shape).is_empty()
        };
        self.nodes.push(Node { name: None, binding: self.binding.clone(), layer, inputs, shape, span });
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
                let help = if layers::find(n).is_some() {
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
                let (ea, eb) = (a, b);
                let (a, b) = (self.eval(a), self.eval(b));
                let (a, b) = (a?, b?);
                for (v, e) in [(a, ea), (b, eb)] {
                    let dtype = self.nodes[v].layer.dtype();
                    if dtype != Dtype::F32 {
                        self.sink.push(
                            Diagnostic::error(Code::WrongKind, format!("cannot add {dtype} values"))
                                .label(e.span, format!("these are {dtype}"))
                                .help("token ids go through `embedding` first"),
                        );
                        return None;
                    }
                }
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
                Some(self.push(Arc::new(Add), vec![a, b], e.span))
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
                        .help(format!("layers: {}, and `a + b` of equal shapes", layers::names().join(", "))),
                );
                None
            }
        }
    }

    fn layer(&mut self, call: &Call) -> Option<usize> {
        let name = call.func.name.as_str();
        let Some(def) = layers::find(name) else {
            let all = layers::names();
            let help = did_you_mean(name, all.iter().copied()).or_else(|| {
                Some(if super::BUILTINS.contains(&name) {
                    format!("`{name}` is a function for penalties; models use layers: {}", all.join(", "))
                } else {
                    format!("layers: {}", all.join(", "))
                })
            });
            self.sink.push(
                Diagnostic::error(Code::UnknownLayer, format!("unknown layer `{name}`"))
                    .label(call.func.span, "not a layer")
                    .maybe_help(help),
            );
            return None;
        };
        let args = bind(self.sink, call, &format!("`{name}`"), def.args)?;
        let input = self.eval(args[0]?)?;
        let dtype = self.nodes[input].layer.dtype();
        if dtype != def.input_dtype {
            let help = match def.input_dtype {
                Dtype::I32 => format!("`{name}` reads token ids: declare the model's input as `i32[...]`"),
                Dtype::F32 => {
                    format!("token ids (`{dtype}`) go through `embedding` first, e.g. `embedding(x, 1000, 64)`")
                }
            };
            self.sink.push(
                Diagnostic::error(Code::WrongKind, format!("`{name}` takes {} values, not {dtype}", def.input_dtype))
                    .label(args[0]?.span, format!("these are {dtype}"))
                    .help(help),
            );
            return None;
        }
        let mut b = Build { sink: self.sink, def, call, args, input: self.nodes[input].shape.clone() };
        let layer = (def.build)(&mut b)?;
        Some(self.push(layer, vec![input], call.span))
    }
}

fn sorted(names: &[&str]) -> String {
    let mut v: Vec<&str> = names.to_vec();
    v.sort();
    v.join(", ")
}

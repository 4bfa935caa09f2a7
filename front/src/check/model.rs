//! Models: resolves layer names, infers per-sample shapes and names the parameters
//! (`fc1.weight`, `fc1.bias`) with PyTorch's layouts.

use super::values::{bind, const_eval, fmt_num, kind_name};
use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic, Label, Sink};
use crate::layers::{
    self, fmt_shape, Add, Build, Concat, FreeInit, FreeParam, Input, LayerRef, Token, MAX_DIM, MAX_ELEMENTS,
};
use crate::program::{params_of, Model, Node};
use crate::syntax::ast::{
    Arg, BinOp, BlockDef, Call, Expr, ExprKind, File, Ident, InputDecl, Item, ModelDef, ModelStmt, Span,
};
use hoyer_ir::Dtype;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Largest tensor a model may have.

/// Most layers a model may have once its blocks and repeats are written out.
const MAX_NODES: usize = 200_000;

/// Most copies one `repeat` makes.
const MAX_REPEAT: u64 = 10_000;

/// The blocks of a spec by name. A block named like a layer is an error (the layer would be
/// unreachable), reported here.
pub fn collect_blocks<'f>(sink: &mut Sink, file: &'f File) -> HashMap<String, &'f BlockDef> {
    let mut blocks = HashMap::new();
    for item in &file.items {
        let Item::Block(b) = item else { continue };
        if layers::find(&b.name.name).is_some() || b.name.name == "repeat" {
            sink.push(
                Diagnostic::error(Code::Duplicate, format!("block `{}` has the name of a built-in layer", b.name.name))
                    .label(b.name.span, "named like a layer")
                    .help("give the block its own name, e.g. `basic_block`"),
            );
            continue;
        }
        blocks.entry(b.name.name.clone()).or_insert(b);
    }
    blocks
}

struct ModelChecker<'s, 'b> {
    sink: &'s mut Sink,
    blocks: &'b HashMap<String, &'b BlockDef>,
    nodes: Vec<Node>,
    /// The names of the body being checked (the model's, or a block's) and their nodes.
    scope: HashMap<String, usize>,
    /// Bindings that failed to check: using them reports nothing more.
    failed: HashSet<String>,
    /// Nodes with parameters created while evaluating the current statement.
    created: Vec<usize>,
    /// The full name of the binding being evaluated (`layer1.0.conv1`).
    binding: Option<String>,
    /// Where the body being checked sits among PyTorch's modules: `""` in the model,
    /// `layer1.0.` in the first copy of `layer1 = repeat(...)`.
    prefix: String,
    /// The blocks being written out, innermost last (a block may not use itself).
    stack: Vec<String>,
    /// Set once the model is too large: nothing more is reported.
    too_large: bool,
}

/// What a body (a model's or a block's) returned, and the names it bound.
struct Body {
    output: usize,
    bindings: Vec<(String, Span)>,
}

pub fn check_model(sink: &mut Sink, def: &ModelDef, blocks: &HashMap<String, &BlockDef>) -> Option<Model> {
    let (input_shape, input_dtype) = input_shape(sink, def)?;
    let mut mc = ModelChecker {
        sink,
        blocks,
        nodes: vec![],
        scope: HashMap::new(),
        failed: HashSet::new(),
        created: vec![],
        binding: None,
        prefix: String::new(),
        stack: vec![],
        too_large: false,
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
    let defined = HashMap::from([(def.input.name.name.clone(), def.input.name.span)]);
    let Body { output, bindings } = mc.body(&def.body, "model", &def.name, defined)?;
    let ret_span = def
        .body
        .iter()
        .find_map(|s| if let ModelStmt::Return { span, .. } = s { Some(*span) } else { None })
        .unwrap_or(def.span);

    let out_shape = mc.nodes[output].shape.clone();
    // Class scores [classes], or a language model's scores per position [t, vocabulary].
    if !matches!(out_shape.len(), 1 | 2) {
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
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for p in &params {
        if let Some(&first) = seen.get(p.name.as_str()) {
            // Only flat names written as paths can collide (`a.b = ...` beside a block `a`).
            mc.sink.push(
                Diagnostic::error(Code::Duplicate, format!("two parameters are named `{}`", p.name))
                    .label(mc.nodes[p.node].span, "this layer's")
                    .label(mc.nodes[first].span, "and this one's")
                    .help("rename one of the bindings"),
            );
            return None;
        }
        seen.insert(&p.name, p.node);
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
        span: def.span,
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

impl ModelChecker<'_, '_> {
    /// Checks the statements of a model or a block (`kind` and `name` say which, for
    /// messages) in the current scope; `defined` holds the names it starts with (inputs).
    fn body(
        &mut self,
        stmts: &[ModelStmt],
        kind: &str,
        name: &Ident,
        mut defined: HashMap<String, Span>,
    ) -> Option<Body> {
        let mut bindings: Vec<(String, Span)> = Vec::new();
        let mut output = None;
        let mut ok = true;
        for stmt in stmts {
            if let Some((_, ret_span)) = output {
                let span = match stmt {
                    ModelStmt::Bind { name, .. } => name.span,
                    ModelStmt::Return { span, .. } | ModelStmt::Param { span, .. } => *span,
                };
                self.sink.push(
                    Diagnostic::error(Code::AfterReturn, "statement after `return`")
                        .label(span, format!("this comes after the {kind} returned"))
                        .label(ret_span, format!("the {kind} returns here"))
                        .help(format!("`return` must be the last statement of a {kind}")),
                );
                ok = false;
                break;
            }
            match stmt {
                ModelStmt::Bind { name: b, value } => {
                    if let Some(&first) = defined.get(&b.name) {
                        self.sink.push(
                            Diagnostic::error(
                                Code::Duplicate,
                                format!("`{}` is defined twice in {kind} `{}`", b.name, name.name),
                            )
                            .label(b.span, "defined again here")
                            .label(first, "first defined here")
                            .help("give each layer its own name"),
                        );
                        ok = false;
                        continue;
                    }
                    defined.insert(b.name.clone(), b.span);
                    let full = format!("{}{}", self.prefix, b.name);
                    self.binding = Some(full.clone());
                    match self.statement(value, &full) {
                        Some(id) => {
                            self.scope.insert(b.name.clone(), id);
                            bindings.push((b.name.clone(), b.span));
                        }
                        None => {
                            self.failed.insert(b.name.clone());
                            ok = false;
                        }
                    }
                }
                ModelStmt::Param { decl, init, span } => {
                    let b = &decl.name;
                    if let Some(&first) = defined.get(&b.name) {
                        self.sink.push(
                            Diagnostic::error(
                                Code::Duplicate,
                                format!("`{}` is defined twice in {kind} `{}`", b.name, name.name),
                            )
                            .label(b.span, "defined again here")
                            .label(first, "first defined here")
                            .help("give each parameter its own name"),
                        );
                        ok = false;
                        continue;
                    }
                    defined.insert(b.name.clone(), b.span);
                    let full = format!("{}{}", self.prefix, b.name);
                    self.binding = Some(full.clone());
                    match self.free_param(decl, init.as_ref(), *span) {
                        Some(id) => {
                            self.nodes[id].name = Some(full);
                            self.scope.insert(b.name.clone(), id);
                            bindings.push((b.name.clone(), b.span));
                        }
                        None => {
                            self.failed.insert(b.name.clone());
                            ok = false;
                        }
                    }
                }
                ModelStmt::Return { value, span } => {
                    let full = format!("{}out", self.prefix);
                    self.binding = (!self.prefix.is_empty()).then(|| full.clone());
                    match self.statement(value, &full) {
                        Some(id) => output = Some((id, *span)),
                        None => ok = false,
                    }
                }
            }
            if self.too_large {
                return None;
            }
        }
        if !ok {
            return None;
        }
        let Some((output, _)) = output else {
            self.sink.push(
                Diagnostic::error(Code::MissingReturn, format!("{kind} `{}` has no `return`", name.name))
                    .label(name.span, format!("this {kind} returns nothing"))
                    .help(match bindings.last() {
                        Some((last, _)) => format!("end the {kind} with `return {last}`"),
                        None => format!("end the {kind} with `return` and its output layer"),
                    }),
            );
            return None;
        };
        Some(Body { output, bindings })
    }

    /// The module path a block used in the current statement takes: the binding's full name
    /// (`attn`, `layer1.0.attn`), or `out` in a `return`.
    fn module_path(&self) -> String {
        self.binding.clone().unwrap_or_else(|| format!("{}out", self.prefix))
    }

    /// Writes out one use of block `def` under module path `path`: its arguments bound to its
    /// parameters (`input`, where given, is the first one's node: a repeat's previous copy;
    /// `overrides` replace arguments), its body checked in a scope of its own. Every
    /// diagnostic from inside also points at the use.
    fn instantiate(
        &mut self,
        def: &BlockDef,
        call: &Call,
        path: String,
        input: Option<usize>,
        overrides: &[(&str, &Expr)],
    ) -> Option<usize> {
        let block = &def.name.name;
        if let Some(outer) = self.stack.iter().position(|b| b == block) {
            let chain = self.stack[outer..].join("` → `");
            self.sink.push(
                Diagnostic::error(Code::Recursive, format!("block `{block}` uses itself (`{chain}` → `{block}`)"))
                    .label(call.func.span, "used here")
                    .label(def.name.span, "inside its own definition")
                    .help("a block cannot contain itself: repeat it with `repeat(n, ...)` instead"),
            );
            return None;
        }
        let params: Vec<(&str, bool)> =
            def.params.iter().enumerate().map(|(i, p)| (p.name.name.as_str(), i == 0 || p.default.is_none())).collect();
        let what = format!("block `{block}`");
        let mark = self.sink.diagnostics.len();
        // In a repeat's later copies the first argument is still bound, and not read: the
        // previous copy's output takes its place.
        let bound = bind(self.sink, call, &what, &params)?;
        // Each parameter is a tensor (the first, or a name of this scope) or a constant that
        // the block's layers read where they name it.
        let mut tensors: HashMap<String, usize> = HashMap::new();
        let mut constants: HashMap<String, Expr> = HashMap::new();
        let mut ok = true;
        for (i, p) in def.params.iter().enumerate() {
            let given = overrides.iter().find(|(n, _)| *n == p.name.name).map(|(_, e)| *e).or(bound[i]);
            if i == 0 {
                let id = match input {
                    Some(id) => Some(id),
                    None => given.and_then(|e| self.eval(e)),
                };
                match id {
                    Some(id) => {
                        tensors.insert(p.name.name.clone(), id);
                    }
                    None => ok = false,
                }
                continue;
            }
            let Some(e) = given.or(p.default.as_ref()) else { continue };
            match self.tensor_name(e) {
                Some(id) => {
                    tensors.insert(p.name.name.clone(), id);
                }
                None => {
                    constants.insert(p.name.name.clone(), e.clone());
                }
            }
        }
        if !ok {
            return None;
        }
        let stmts: Vec<ModelStmt> = def.body.iter().map(|s| substitute_stmt(s, &constants)).collect();
        let saved_scope = std::mem::replace(&mut self.scope, tensors.clone());
        let saved_failed = std::mem::take(&mut self.failed);
        let saved_created = std::mem::take(&mut self.created);
        let saved_binding = self.binding.take();
        let saved_prefix = std::mem::replace(&mut self.prefix, format!("{path}."));
        self.stack.push(block.clone());
        let defined = def.params.iter().map(|p| (p.name.name.clone(), p.name.span)).collect();
        let out = self.body(&stmts, "block", &def.name, defined).map(|b| b.output);
        self.stack.pop();
        self.scope = saved_scope;
        self.failed = saved_failed;
        self.created = saved_created;
        self.binding = saved_binding;
        self.prefix = saved_prefix;
        // Located in the block and at the use: a diagnostic about a value the use gave
        // (`stride = [0, 1]`) also names the block it went into.
        for d in &mut self.sink.diagnostics[mark..] {
            let inside = |s: &Span| s.start >= def.span.start && s.end <= def.span.end;
            if !d.labels.iter().any(|l| inside(&l.span)) {
                d.labels.push(Label { span: def.name.span, text: format!("in block `{block}`") });
            }
            if !d.labels.iter().any(|l| l.span == call.span) {
                d.labels.push(Label { span: call.span, text: format!("in `{path}`, this use of block `{block}`") });
            }
        }
        out
    }

    /// The node a name of the current scope holds, if `e` is one.
    fn tensor_name(&self, e: &Expr) -> Option<usize> {
        match &e.kind {
            ExprKind::Name(n) | ExprKind::Selector(n) => self.scope.get(n).copied(),
            _ => None,
        }
    }

    /// `repeat(n, block(x, ...), arg = [first, second, ..., rest])`: `n` copies of the block,
    /// each fed the previous one's output, named `path.0`, `path.1`, … as PyTorch's
    /// `nn.Sequential`. A list given to `repeat` for an argument of the block gives each
    /// copy its element (the last one for the copies after the list).
    fn repeat(&mut self, call: &Call) -> Option<usize> {
        let positional: Vec<&Arg> = call.args.iter().filter(|a| a.name.is_none()).collect();
        let help = "write `repeat(3, basic_block(x, 16))`: a count, then a use of a block";
        if positional.len() != 2 {
            let span = positional.get(2).map_or(call.span, |a| a.value.span);
            self.sink.push(
                Diagnostic::error(Code::Arity, "`repeat` takes a count and a use of a block")
                    .label(
                        span,
                        format!(
                            "{} positional argument{}",
                            positional.len(),
                            if positional.len() == 1 { "" } else { "s" }
                        ),
                    )
                    .help(help),
            );
            return None;
        }
        let (count, inner) = (&positional[0].value, &positional[1].value);
        let n = match const_eval(count) {
            Ok(v) if v.fract() == 0.0 && v >= 1.0 && v <= MAX_REPEAT as f64 => v as usize,
            got => {
                let label = match got {
                    Ok(v) => format!("this is {}", fmt_num(v)),
                    Err(_) => format!("this is {}", kind_name(count)),
                };
                self.sink.push(
                    Diagnostic::error(
                        Code::NotPositiveInteger,
                        format!("the count of `repeat` must be a whole number from 1 to {MAX_REPEAT}"),
                    )
                    .label(count.span, label)
                    .help(help),
                );
                return None;
            }
        };
        let block = match &inner.kind {
            ExprKind::Call(c) => self.blocks.get(&c.func.name).copied().map(|b| (c, b)),
            _ => None,
        };
        let Some((c, def)) = block else {
            let is_layer = matches!(&inner.kind, ExprKind::Call(c) if layers::find(&c.func.name).is_some());
            self.sink.push(
                Diagnostic::error(Code::WrongKind, "`repeat` repeats a block")
                    .label(inner.span, if is_layer { "a layer, not a block" } else { "not a use of a block" })
                    .help(if is_layer {
                        "put the layers in a block, `block mlp(x) { ... }`, and repeat that".to_string()
                    } else {
                        help.to_string()
                    }),
            );
            return None;
        };
        let mut overrides: Vec<(&str, &[Expr], Span)> = Vec::new();
        for a in call.args.iter().filter(|a| a.name.is_some()) {
            let name = a.name.as_ref().map(|n| n.name.as_str()).unwrap_or_default();
            if !def.params.iter().skip(1).any(|p| p.name.name == name) {
                let others = def.params.iter().skip(1).map(|p| p.name.name.as_str());
                self.sink.push(
                    Diagnostic::error(
                        Code::UnknownArgument,
                        format!("block `{}` has no argument `{name}`", def.name.name),
                    )
                    .label(a.name.as_ref().map_or(a.value.span, |n| n.span), "unknown argument")
                    .label(def.name.span, "the block")
                    .maybe_help(did_you_mean(name, others)),
                );
                return None;
            }
            let items = match &a.value.kind {
                ExprKind::List(items) if !items.is_empty() => items.as_slice(),
                _ => std::slice::from_ref(&a.value),
            };
            overrides.push((name, items, a.value.span));
        }
        let base = self.module_path();
        let mut prev = None;
        for i in 0..n {
            let chosen: Vec<(&str, &Expr)> =
                overrides.iter().map(|(name, items, _)| (*name, &items[i.min(items.len() - 1)])).collect();
            let out = self.instantiate(def, c, format!("{base}.{i}"), prev, &chosen)?;
            if self.nodes.len() > MAX_NODES {
                self.report_too_large(call.span);
                return None;
            }
            prev = Some(out);
        }
        prev
    }

    fn report_too_large(&mut self, span: Span) {
        if !self.too_large {
            self.too_large = true;
            self.sink.push(
                Diagnostic::error(Code::BadDimension, format!("the model has more than {MAX_NODES} layers"))
                    .label(span, "written out, this makes too many layers")
                    .help("use fewer or smaller repeats"),
            );
        }
    }

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

    /// Adds a layer; `None` (reported) where its output would be larger than a tensor may be.
    fn push(&mut self, layer: LayerRef, inputs: Vec<usize>, span: Span) -> Option<usize> {
        let shape = {
            let shapes: Vec<&[u64]> = inputs.iter().map(|&j| self.nodes[j].shape.as_slice()).collect();
            layer.shape(&shapes)
        };
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if shape.iter().any(|&d| d > MAX_DIM) || numel.is_none_or(|n| n > MAX_ELEMENTS) {
            self.sink.push(
                Diagnostic::error(Code::BadDimension, format!("`{}` would make a tensor too large", layer.name()))
                    .label(span, format!("output {} per sample", fmt_shape(&shape)))
                    .help("a tensor holds at most 2^40 elements per sample, each dimension at most 2^31: use a smaller padding, kernel or width"),
            );
            return None;
        }
        let has_params = {
            let shapes: Vec<&[u64]> = inputs.iter().map(|&j| self.nodes[j].shape.as_slice()).collect();
            !layer.params(&shapes, &shape).is_empty()
        };
        self.nodes.push(Node { name: None, binding: self.binding.clone(), layer, inputs, shape, span });
        let id = self.nodes.len() - 1;
        if has_params {
            self.created.push(id);
        }
        Some(id)
    }

    /// `param name: f32[…] = zeros | normal(std)`.
    fn free_param(&mut self, decl: &InputDecl, init: Option<&Expr>, span: Span) -> Option<usize> {
        if decl.dtype.name != "f32" {
            self.sink.push(
                Diagnostic::error(Code::BadDimension, format!("a parameter of type `{}`", decl.dtype.name))
                    .label(decl.dtype.span, "learned parameters are float32")
                    .help(format!("write `param {}: f32[...]`", decl.name.name)),
            );
            return None;
        }
        let mut shape = Vec::new();
        for &(d, s) in &decl.dims {
            match d {
                Some(d) if (1..=MAX_DIM).contains(&d) => shape.push(d),
                _ => {
                    self.sink.push(
                        Diagnostic::error(Code::BadDimension, "a parameter's dimension must be from 1 to 2^31")
                            .label(s, "this dimension")
                            .help("e.g. `param pos: f32[17, 64]`"),
                    );
                    return None;
                }
            }
        }
        if shape.is_empty() {
            self.sink.push(
                Diagnostic::error(Code::BadDimension, "a parameter needs a shape")
                    .label(decl.span, "no dimensions")
                    .help("e.g. `param cls: f32[1, 64]`"),
            );
            return None;
        }
        let bad_init = |sink: &mut Sink, at: Span| {
            sink.push(
                Diagnostic::error(Code::BadLayerArgument, "a parameter starts as `zeros` or `normal(std)`")
                    .label(at, "not an initializer")
                    .help("e.g. `= zeros` (a class token) or `= normal(0.02)` (a positional embedding, as ViTs use)"),
            );
        };
        let init = match init.map(|e| &e.kind) {
            None => FreeInit::Zeros,
            Some(ExprKind::Name(n)) if n == "zeros" => FreeInit::Zeros,
            Some(ExprKind::Call(c)) if c.func.name == "normal" => {
                let args = bind(self.sink, c, "`normal`", &[("std", true)])?;
                match const_eval(args[0]?) {
                    Ok(std) if std.is_finite() && std > 0.0 => FreeInit::Normal(std),
                    _ => {
                        bad_init(self.sink, args[0]?.span);
                        return None;
                    }
                }
            }
            Some(_) => {
                bad_init(self.sink, init.map_or(span, |e| e.span));
                return None;
            }
        };
        self.push(Arc::new(FreeParam { shape, init }), vec![], span)
    }

    /// `x[i]`: token i of a sequence.
    fn token(&mut self, e: &Expr, base: &Expr, index: &Expr) -> Option<usize> {
        let x = self.eval(base)?;
        let shape = self.nodes[x].shape.clone();
        let [t, _] = shape[..] else {
            self.sink.push(
                Diagnostic::error(
                    Code::WrongRank,
                    format!("`[...]` takes a token of a sequence, not of {}", fmt_shape(&shape)),
                )
                .label(base.span, format!("this is {}", fmt_shape(&shape)))
                .help("index a sequence [tokens, features]: an embedding's output, or `tokens(...)` of an image"),
            );
            return None;
        };
        let i = match const_eval(index) {
            Ok(v) if v.fract() == 0.0 && v >= 0.0 && v < t as f64 => v as u64,
            Ok(v) => {
                self.sink.push(
                    Diagnostic::error(Code::OutOfRange, format!("token {} of a sequence of {t}", fmt_num(v)))
                        .label(index.span, format!("the tokens are 0 to {}", t - 1))
                        .help("index a token that exists: the first is `[0]`"),
                );
                return None;
            }
            Err(_) => {
                self.sink.push(
                    Diagnostic::error(Code::BadLayerArgument, "a token index must be a whole number")
                        .label(index.span, "not a number")
                        .help("e.g. `h[0]`, the class token"),
                );
                return None;
            }
        };
        self.push(Arc::new(Token { index: i }), vec![x], e.span)
    }

    /// `concat(a, b, …)`: sequences of one width, one after another.
    fn concat(&mut self, call: &Call) -> Option<usize> {
        let parts: Vec<&Expr> = call.positional().collect();
        if parts.len() < 2 || call.args.iter().any(|a| a.name.is_some()) {
            self.sink.push(
                Diagnostic::error(Code::Arity, "`concat` joins two or more sequences")
                    .label(call.span, format!("{} given", parts.len()))
                    .help("e.g. `concat(cls, patches)`"),
            );
            return None;
        }
        let ids: Vec<Option<usize>> = parts.iter().map(|p| self.eval(p)).collect();
        let ids: Vec<usize> = ids.into_iter().collect::<Option<_>>()?;
        let width = self.nodes[ids[0]].shape.get(1).copied();
        for (&id, p) in ids.iter().zip(&parts) {
            let s = &self.nodes[id].shape;
            if s.len() != 2 || s.get(1).copied() != width {
                let shapes: Vec<String> = ids.iter().map(|&i| fmt_shape(&self.nodes[i].shape)).collect();
                self.sink.push(
                    Diagnostic::error(Code::ShapeMismatch, "`concat` joins sequences [tokens, features] of one width")
                        .label(p.span, format!("this is {}", fmt_shape(s)))
                        .help(format!("the parts are {}", shapes.join(", "))),
                );
                return None;
            }
        }
        self.push(Arc::new(Concat), ids, call.span)
    }

    fn eval(&mut self, e: &Expr) -> Option<usize> {
        match &e.kind {
            ExprKind::Index(base, index) => self.token(e, base, index),
            ExprKind::Call(call) if call.func.name == "concat" && !self.blocks.contains_key("concat") => {
                self.concat(call)
            }
            // A path without `*` is a name: the flat form of a nested module (`layer1.0.conv1`).
            ExprKind::Name(n) | ExprKind::Selector(n) if !n.contains('*') => {
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
                self.push(Arc::new(Add), vec![a, b], e.span)
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
        if let Some(&block) = self.blocks.get(name) {
            let path = self.module_path();
            let out = self.instantiate(block, call, path, None, &[]);
            if self.nodes.len() > MAX_NODES {
                self.report_too_large(call.span);
                return None;
            }
            return out;
        }
        if name == "repeat" {
            return self.repeat(call);
        }
        let Some(def) = layers::find(name) else {
            let mut all = layers::names();
            let mut blocks: Vec<&str> = self.blocks.keys().map(String::as_str).collect();
            blocks.sort();
            all.extend(blocks);
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
        self.push(layer, vec![input], call.span)
    }
}

fn sorted(names: &[&str]) -> String {
    let mut v: Vec<&str> = names.to_vec();
    v.sort();
    v.join(", ")
}

/// A block's statement with its constant parameters replaced by the arguments of one use.
fn substitute_stmt(s: &ModelStmt, constants: &HashMap<String, Expr>) -> ModelStmt {
    match s {
        ModelStmt::Bind { name, value } => ModelStmt::Bind { name: name.clone(), value: substitute(value, constants) },
        ModelStmt::Return { value, span } => ModelStmt::Return { value: substitute(value, constants), span: *span },
        ModelStmt::Param { decl, init, span } => {
            ModelStmt::Param { decl: decl.clone(), init: init.as_ref().map(|e| substitute(e, constants)), span: *span }
        }
    }
}

fn substitute(e: &Expr, constants: &HashMap<String, Expr>) -> Expr {
    let kind = match &e.kind {
        ExprKind::Name(n) => match constants.get(n) {
            Some(v) => return v.clone(),
            None => e.kind.clone(),
        },
        ExprKind::Neg(x) => ExprKind::Neg(Box::new(substitute(x, constants))),
        ExprKind::Binary(op, a, b) => {
            ExprKind::Binary(*op, Box::new(substitute(a, constants)), Box::new(substitute(b, constants)))
        }
        ExprKind::Call(c) => ExprKind::Call(Call {
            func: c.func.clone(),
            args: c.args.iter().map(|a| Arg { name: a.name.clone(), value: substitute(&a.value, constants) }).collect(),
            piped: c.piped,
            span: c.span,
        }),
        ExprKind::List(items) => ExprKind::List(items.iter().map(|x| substitute(x, constants)).collect()),
        ExprKind::Index(x, i) => {
            ExprKind::Index(Box::new(substitute(x, constants)), Box::new(substitute(i, constants)))
        }
        other => other.clone(),
    };
    Expr { kind, span: e.span }
}

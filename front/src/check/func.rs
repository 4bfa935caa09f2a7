//! `fn` definitions: checked once where they are written (names, calls, arguments,
//! recursion), then instantiated per selected tensor where a penalty uses them, which is
//! where shapes and axes are known.

use super::values::{bind, kind_name};
use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic, Sink};
use crate::program::Function;
use crate::syntax::ast::{BinOp, Expr, ExprKind, File, FnDef, Item, Span};
use std::collections::{HashMap, HashSet};

const ELEMENTWISE: [&str; 5] = ["abs", "sqrt", "exp", "log", "sign"];
const REDUCTIONS: [&str; 4] = ["sum", "mean", "max", "norm2"];
pub const BUILTINS: [&str; 9] = ["abs", "sqrt", "exp", "log", "sign", "sum", "mean", "max", "norm2"];

/// How deep functions may call functions when instantiated.
const MAX_CALL_DEPTH: usize = 64;

/// Checks the user's functions and adds the prelude's that they do not shadow. Only valid
/// functions are returned; `invalid` names those that were reported, so that their callers
/// are not reported again.
pub fn collect_functions(sink: &mut Sink, file: &File, prelude: &File) -> Vec<Function> {
    let user: Vec<&FnDef> =
        file.items.iter().filter_map(|i| if let Item::Fn(f) = i { Some(f) } else { None }).collect();
    let user_names: HashSet<&str> = user.iter().map(|f| f.name.name.as_str()).collect();
    let prelude_defs: Vec<&FnDef> = prelude
        .items
        .iter()
        .filter_map(|i| if let Item::Fn(f) = i { Some(f) } else { None })
        .filter(|f| !user_names.contains(f.name.name.as_str()))
        .collect();
    let all_names: Vec<&str> =
        user_names.iter().copied().chain(prelude_defs.iter().map(|f| f.name.name.as_str())).collect();

    let mut functions = Vec::new();
    for f in &user {
        if BUILTINS.contains(&f.name.name.as_str()) {
            sink.push(
                Diagnostic::error(Code::Duplicate, format!("`{}` is a built-in function", f.name.name))
                    .label(f.name.span, "cannot be redefined")
                    .help(format!("name it differently, e.g. `my_{}`", f.name.name)),
            );
            continue;
        }
        let before = sink.diagnostics.len();
        validate(sink, f, &all_names);
        if sink.diagnostics.len() == before {
            functions.push(Function { def: (*f).clone(), from_prelude: false });
        }
    }
    for f in prelude_defs {
        // The prelude is part of hoyer and tested to be valid; a user's shadowing cannot break it.
        let mut quiet = Sink::default();
        validate(&mut quiet, f, &all_names);
        if !quiet.has_errors() {
            functions.push(Function { def: f.clone(), from_prelude: true });
        }
    }
    report_recursion(sink, &mut functions);
    functions
}

fn validate(sink: &mut Sink, f: &FnDef, fn_names: &[&str]) {
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for p in &f.params {
        if let Some(first) = seen.insert(&p.name, p.span) {
            sink.push(
                Diagnostic::error(
                    Code::Duplicate,
                    format!("parameter `{}` of `{}` is named twice", p.name, f.name.name),
                )
                .label(p.span, "named again here")
                .label(first, "first named here")
                .help("give each parameter its own name"),
            );
        }
    }
    let params: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
    validate_expr(sink, &f.body, &params, fn_names);
}

fn validate_expr(sink: &mut Sink, e: &Expr, params: &[&str], fn_names: &[&str]) {
    match &e.kind {
        ExprKind::Number(_) => {}
        ExprKind::Name(n) => {
            if !params.contains(&n.as_str()) {
                let help = if BUILTINS.contains(&n.as_str()) || fn_names.contains(&n.as_str()) {
                    Some(format!("`{n}` is a function: call it, as in `{n}(w)`"))
                } else {
                    did_you_mean(n, params.iter().copied())
                        .or_else(|| Some(format!("this function's parameters are: {}", params.join(", "))))
                };
                sink.push(
                    Diagnostic::error(Code::UnknownName, format!("unknown name `{n}`"))
                        .label(e.span, "not a parameter of this function")
                        .maybe_help(help),
                );
            }
        }
        ExprKind::Selector(s) => sink.push(
            Diagnostic::error(Code::SelectorOutsidePenalty, format!("selector `{s}` inside a function"))
                .label(e.span, "functions work on their parameters")
                .help(
                    "add a parameter, and pass the selector where the function is used: `penalty 1e-4 * f(*.weight)`",
                ),
        ),
        ExprKind::Str(_) | ExprKind::Bool(_) => sink.push(
            Diagnostic::error(
                Code::WrongKind,
                format!("a function computes with numbers and tensors, not {}", kind_name(e)),
            )
            .label(e.span, kind_name(e)),
        ),
        ExprKind::Neg(x) => validate_expr(sink, x, params, fn_names),
        ExprKind::Binary(_, a, b) => {
            validate_expr(sink, a, params, fn_names);
            validate_expr(sink, b, params, fn_names);
        }
        ExprKind::List(items) => {
            for i in items {
                validate_expr(sink, i, params, fn_names);
            }
        }
        ExprKind::Call(call) => {
            let name = call.func.name.as_str();
            let what = format!("`{name}`");
            if ELEMENTWISE.contains(&name) {
                bind(sink, call, &what, &[("x", true)]);
            } else if REDUCTIONS.contains(&name) {
                if call.positional().count() > 1 {
                    let extra = call.positional().nth(1).map_or(call.span, |a| a.span);
                    sink.push(
                        Diagnostic::error(Code::BadAxes, format!("say which axes `{name}` reduces"))
                            .label(extra, "an axis given by position")
                            .help(format!("write `{name}(w, over = 1)` to reduce axis 1, or `{name}(w, keep = 0)` to reduce all others")),
                    );
                } else {
                    bind(sink, call, &what, &[("x", true), ("over", false), ("keep", false)]);
                }
            } else if fn_names.contains(&name) {
                // Arity against the callee is checked where it is instantiated.
            } else {
                let candidates = BUILTINS.iter().copied().chain(fn_names.iter().copied());
                let help = did_you_mean(name, candidates).or_else(|| {
                    Some(if name == "ramp" || name == "std_ratio" {
                        format!("`{name}` belongs in a penalty or prune, not in a function")
                    } else {
                        format!("built in: {}; define others with `fn`", BUILTINS.join(", "))
                    })
                });
                sink.push(
                    Diagnostic::error(Code::UnknownFunction, format!("unknown function `{name}`"))
                        .label(call.func.span, "not defined")
                        .maybe_help(help),
                );
            }
            for a in &call.args {
                validate_expr(sink, &a.value, params, fn_names);
            }
        }
    }
}

fn calls_in(e: &Expr, out: &mut Vec<(String, Span)>) {
    match &e.kind {
        ExprKind::Call(c) => {
            out.push((c.func.name.clone(), c.func.span));
            for a in &c.args {
                calls_in(&a.value, out);
            }
        }
        ExprKind::Neg(x) => calls_in(x, out),
        ExprKind::Binary(_, a, b) => {
            calls_in(a, out);
            calls_in(b, out);
        }
        ExprKind::List(items) => items.iter().for_each(|i| calls_in(i, out)),
        _ => {}
    }
}

/// Reports functions that reach themselves through calls, and drops them.
fn report_recursion(sink: &mut Sink, functions: &mut Vec<Function>) {
    let index: HashMap<String, usize> =
        functions.iter().enumerate().map(|(i, f)| (f.def.name.name.clone(), i)).collect();
    let edges: Vec<Vec<(usize, Span)>> = functions
        .iter()
        .map(|f| {
            let mut calls = Vec::new();
            calls_in(&f.def.body, &mut calls);
            calls.into_iter().filter_map(|(n, s)| index.get(&n).map(|&i| (i, s))).collect()
        })
        .collect();
    let mut recursive = HashSet::new();
    for start in 0..functions.len() {
        // Iterative search: does `start` reach itself?
        let mut stack: Vec<usize> = edges[start].iter().map(|e| e.0).collect();
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if n == start {
                recursive.insert(start);
                break;
            }
            if seen.insert(n) {
                stack.extend(edges[n].iter().map(|e| e.0));
            }
        }
    }
    let mut order: Vec<usize> = recursive.iter().copied().collect();
    order.sort();
    for &i in &order {
        let f = &functions[i];
        if f.from_prelude {
            continue;
        }
        let call = edges[i].iter().find(|(callee, _)| recursive.contains(callee)).map(|e| e.1);
        let mut d = Diagnostic::error(Code::Recursive, format!("function `{}` calls itself", f.def.name.name))
            .label(f.def.name.span, "recursive function")
            .help("functions are expanded inline, so they cannot recurse; write the expression out");
        if let Some(span) = call {
            d = d.label(span, "the call that leads back");
        }
        sink.push(d);
    }
    let mut i = 0;
    functions.retain(|_| {
        i += 1;
        !recursive.contains(&(i - 1))
    });
}

// ---------------------------------------------------------------- instantiation

/// What an expression computes, as far as the checker needs to know.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A tensor of this shape (`[]` for a scalar).
    Tensor(Vec<u64>),
    /// A number known at compile time.
    Num(f64),
    List(Vec<f64>),
}

impl Val {
    pub fn describe(&self) -> String {
        match self {
            Val::Tensor(s) if s.is_empty() => "a scalar".into(),
            Val::Tensor(s) => format!("a tensor of shape {}", crate::layers::fmt_shape(s)),
            Val::Num(_) => "a number".into(),
            Val::List(_) => "a list".into(),
        }
    }
    pub fn is_scalar(&self) -> bool {
        matches!(self, Val::Num(_)) || matches!(self, Val::Tensor(s) if s.is_empty())
    }
}

/// A mistake found while instantiating a function for particular arguments.
#[derive(Debug, Clone)]
pub struct InstError {
    pub code: Code,
    pub message: String,
    /// Where in the function's body, and whether that body is the user's or the prelude's.
    pub span: Span,
    pub in_prelude: bool,
    pub help: Option<String>,
}

pub struct Instantiator<'a> {
    pub functions: &'a [Function],
    /// Results of calls already evaluated, by callee, arguments, call site and depth: a chain
    /// of functions that each call the next twice is checked in linear time, not exponential.
    memo: std::cell::RefCell<HashMap<String, Result<Val, InstError>>>,
}

impl<'a> Instantiator<'a> {
    pub fn new(functions: &'a [Function]) -> Self {
        Instantiator { functions, memo: Default::default() }
    }

    /// Evaluates function `name` (builtin or defined) applied to `args` and `named`.
    pub fn call_named(
        &self,
        name: &str,
        args: &[Val],
        named: &[(String, Val, Span)],
        at: Span,
    ) -> Result<Val, InstError> {
        self.apply(name, args, named, at, false, 0)
    }

    fn err(code: Code, message: String, span: Span, in_prelude: bool) -> InstError {
        InstError { code, message, span, in_prelude, help: None }
    }

    fn apply(
        &self,
        name: &str,
        args: &[Val],
        named: &[(String, Val, Span)],
        at: Span,
        in_prelude: bool,
        depth: usize,
    ) -> Result<Val, InstError> {
        if depth > MAX_CALL_DEPTH {
            return Err(Self::err(
                Code::TooDeep,
                format!("functions call each other more than {MAX_CALL_DEPTH} deep"),
                at,
                in_prelude,
            ));
        }
        if ELEMENTWISE.contains(&name) {
            return match args {
                [Val::Num(v)] => Ok(Val::Num(elementwise(name, *v))),
                [Val::Tensor(s)] => Ok(Val::Tensor(s.clone())),
                [other] => Err(Self::err(
                    Code::WrongKind,
                    format!("`{name}` takes a tensor or number, not {}", other.describe()),
                    at,
                    in_prelude,
                )),
                _ => Err(Self::err(Code::Arity, format!("`{name}` takes one argument"), at, in_prelude)),
            };
        }
        if REDUCTIONS.contains(&name) {
            return reduce(name, args, named, at, in_prelude);
        }
        let key = format!("{name}|{args:?}|{named:?}|{at:?}|{in_prelude}|{depth}");
        if let Some(r) = self.memo.borrow().get(&key) {
            return r.clone();
        }
        let r = self.apply_defined(name, args, named, at, in_prelude, depth);
        self.memo.borrow_mut().insert(key, r.clone());
        r
    }

    fn apply_defined(
        &self,
        name: &str,
        args: &[Val],
        named: &[(String, Val, Span)],
        at: Span,
        in_prelude: bool,
        depth: usize,
    ) -> Result<Val, InstError> {
        let Some(f) = super::find_function(self.functions, name) else {
            return Err(Self::err(Code::UnknownFunction, format!("unknown function `{name}`"), at, in_prelude));
        };
        let params = &f.def.params;
        let mut env: HashMap<&str, Val> = HashMap::new();
        if args.len() > params.len() {
            return Err(Self::err(
                Code::Arity,
                format!(
                    "`{name}` takes {} argument{}, not {}",
                    params.len(),
                    if params.len() == 1 { "" } else { "s" },
                    args.len()
                ),
                at,
                in_prelude,
            ));
        }
        for (p, v) in params.iter().zip(args) {
            env.insert(&p.name, v.clone());
        }
        for (n, v, span) in named {
            match params.iter().find(|p| p.name == *n) {
                Some(p) if !env.contains_key(p.name.as_str()) => {
                    env.insert(&p.name, v.clone());
                }
                Some(_) => {
                    return Err(Self::err(
                        Code::Arity,
                        format!("argument `{n}` of `{name}` is given twice"),
                        *span,
                        in_prelude,
                    ))
                }
                None => {
                    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                    let mut e =
                        Self::err(Code::UnknownArgument, format!("`{name}` has no parameter `{n}`"), *span, in_prelude);
                    e.help = Some(format!("`{name}` takes: {}", names.join(", ")));
                    return Err(e);
                }
            }
        }
        if let Some(missing) = params.iter().find(|p| !env.contains_key(p.name.as_str())) {
            let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            let mut e = Self::err(Code::Arity, format!("`{name}` needs `{}`", missing.name), at, in_prelude);
            e.help = Some(format!("`{name}` takes: {}", names.join(", ")));
            return Err(e);
        }
        self.eval(&f.def.body, &env, f.from_prelude, depth + 1)
    }

    fn eval(&self, e: &Expr, env: &HashMap<&str, Val>, in_prelude: bool, depth: usize) -> Result<Val, InstError> {
        let err = |code, message: String| Self::err(code, message, e.span, in_prelude);
        match &e.kind {
            ExprKind::Number(v) => Ok(Val::Num(*v)),
            ExprKind::Name(n) => {
                env.get(n.as_str()).cloned().ok_or_else(|| err(Code::UnknownName, format!("unknown name `{n}`")))
            }
            ExprKind::Neg(x) => Ok(match self.eval(x, env, in_prelude, depth)? {
                Val::Num(v) => Val::Num(-v),
                other => other,
            }),
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for i in items {
                    match self.eval(i, env, in_prelude, depth)? {
                        Val::Num(v) => out.push(v),
                        other => {
                            return Err(Self::err(
                                Code::NotConstant,
                                format!("a list holds numbers, not {}", other.describe()),
                                i.span,
                                in_prelude,
                            ))
                        }
                    }
                }
                Ok(Val::List(out))
            }
            ExprKind::Binary(op, a, b) => {
                let (va, vb) = (self.eval(a, env, in_prelude, depth)?, self.eval(b, env, in_prelude, depth)?);
                binary(*op, va, vb, e, b.span, in_prelude)
            }
            ExprKind::Call(call) => {
                let mut args = Vec::new();
                let mut named = Vec::new();
                for a in &call.args {
                    let v = self.eval(&a.value, env, in_prelude, depth)?;
                    match &a.name {
                        Some(n) => named.push((n.name.clone(), v, a.value.span)),
                        None => args.push(v),
                    }
                }
                self.apply(&call.func.name, &args, &named, call.span, in_prelude, depth)
            }
            ExprKind::Selector(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {
                Err(err(Code::WrongKind, format!("{} cannot be computed with", kind_name(e))))
            }
        }
    }
}

fn elementwise(name: &str, v: f64) -> f64 {
    match name {
        "abs" => v.abs(),
        "sqrt" => v.sqrt(),
        "exp" => v.exp(),
        "log" => v.ln(),
        _ => {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
    }
}

fn binary(op: BinOp, a: Val, b: Val, e: &Expr, rhs_span: Span, in_prelude: bool) -> Result<Val, InstError> {
    let err = |code, message: String, span| Instantiator::err(code, message, span, in_prelude);
    if op == BinOp::Pow && !matches!(b, Val::Num(_)) {
        return Err(err(
            Code::NotConstant,
            format!("the exponent must be a constant number, not {}", b.describe()),
            rhs_span,
        ));
    }
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => Ok(Val::Num(match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::Div => x / y,
            BinOp::Pow => x.powf(y),
        })),
        (Val::List(_), _) | (_, Val::List(_)) => {
            Err(err(Code::WrongKind, format!("`{}` cannot take a list", op.symbol()), e.span))
        }
        (Val::Tensor(s), Val::Num(_)) | (Val::Num(_), Val::Tensor(s)) => Ok(Val::Tensor(s)),
        (Val::Tensor(s), Val::Tensor(t)) => {
            if s == t || t.is_empty() {
                Ok(Val::Tensor(s))
            } else if s.is_empty() {
                Ok(Val::Tensor(t))
            } else {
                let mut d = err(
                    Code::ShapeMismatch,
                    format!(
                        "`{}` of tensors with shapes {} and {}",
                        op.symbol(),
                        crate::layers::fmt_shape(&s),
                        crate::layers::fmt_shape(&t)
                    ),
                    e.span,
                );
                d.help = Some("element-wise operations need equal shapes, or a scalar on one side".into());
                Err(d)
            }
        }
    }
}

/// `sum`, `mean`, `max`, `norm2` over `over = axes`, or over all but `keep = axes`, or all.
fn reduce(
    name: &str,
    args: &[Val],
    named: &[(String, Val, Span)],
    at: Span,
    in_prelude: bool,
) -> Result<Val, InstError> {
    let err = |code, message: String, span| Instantiator::err(code, message, span, in_prelude);
    let shape = match args.first() {
        Some(Val::Tensor(s)) => s.clone(),
        Some(Val::Num(_)) => vec![],
        Some(other) => {
            return Err(err(Code::WrongKind, format!("`{name}` takes a tensor, not {}", other.describe()), at))
        }
        None => return Err(err(Code::Arity, format!("`{name}` needs a tensor"), at)),
    };
    let rank = shape.len() as i64;
    let over = named.iter().find(|n| n.0 == "over");
    let keep = named.iter().find(|n| n.0 == "keep");
    let (axes_arg, keeping) = match (over, keep) {
        (Some(_), Some(k)) => {
            let mut e = err(Code::BadAxes, format!("`{name}` takes `over` or `keep`, not both"), k.2);
            e.help = Some("`over` lists the axes to reduce, `keep` the axes to leave".into());
            return Err(e);
        }
        (Some(o), None) => (o, false),
        (None, Some(k)) => (k, true),
        (None, None) => return Ok(Val::Tensor(vec![])),
    };
    let listed: Vec<f64> = match &axes_arg.1 {
        Val::Num(v) => vec![*v],
        Val::List(l) => l.clone(),
        other => {
            return Err(err(
                Code::NotConstant,
                format!("axes must be constant whole numbers, not {}", other.describe()),
                axes_arg.2,
            ))
        }
    };
    let mut axes = Vec::new();
    for a in listed {
        if a.fract() != 0.0 {
            return Err(err(Code::NotConstant, format!("axis {a} is not a whole number"), axes_arg.2));
        }
        let i = a as i64;
        if i < -rank || i >= rank {
            let mut e =
                err(Code::AxisOutOfRange, format!("axis {i} is out of range for a tensor of rank {rank}"), axes_arg.2);
            e.help = Some(if rank == 0 {
                "a scalar has no axes".to_string()
            } else if rank == 1 {
                "its only axis is 0".to_string()
            } else {
                format!("axes go from 0 to {} (or -{rank} to -1)", rank - 1)
            });
            return Err(e);
        }
        let i = if i < 0 { i + rank } else { i } as usize;
        if axes.contains(&i) {
            return Err(err(Code::BadAxes, format!("axis {i} is listed twice"), axes_arg.2));
        }
        axes.push(i);
    }
    let remaining = shape.iter().enumerate().filter(|(i, _)| axes.contains(i) == keeping).map(|(_, d)| *d).collect();
    Ok(Val::Tensor(remaining))
}

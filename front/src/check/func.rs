//! `fn` definitions: checked once where they are written (names, calls, arguments,
//! recursion), then instantiated per selected tensor where a penalty uses them, which is
//! where shapes and axes are known.

use super::values::{bind, kind_name};
use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic, Sink};
use crate::program::Function;
use crate::syntax::ast::{BinOp, Expr, ExprKind, File, FnDef, Item, Span};
use hoyer_ir::Unary;
use std::collections::{HashMap, HashSet};

/// The element-wise builtins and the IR op each is.
const ELEMENTWISE: [(&str, Unary); 5] =
    [("abs", Unary::Abs), ("sqrt", Unary::Sqrt), ("exp", Unary::Exp), ("log", Unary::Log), ("sign", Unary::Sign)];
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
        ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Index(..) => sink.push(
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
            if unary_of(name).is_some() {
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

// ---------------------------------------------------------------- evaluation

/// What an expression of a `fn` body computes: a tensor of the domain (its shape for the
/// checker, a graph value for the lowering), a constant, or a list of constants (axes).
#[derive(Debug, Clone, PartialEq)]
pub enum Val<T = Vec<u64>> {
    Tensor(T),
    Num(f64),
    List(Vec<f64>),
}

impl Val {
    pub fn describe(&self) -> String {
        describe(self, &|s: &Vec<u64>| s.clone())
    }
    pub fn is_scalar(&self) -> bool {
        matches!(self, Val::Num(_)) || matches!(self, Val::Tensor(s) if s.is_empty())
    }
}

fn describe<T>(v: &Val<T>, shape: &dyn Fn(&T) -> Vec<u64>) -> String {
    match v {
        Val::Tensor(t) => match shape(t) {
            s if s.is_empty() => "a scalar".into(),
            s => format!("a tensor of shape {}", crate::layers::fmt_shape(&s)),
        },
        Val::Num(_) => "a number".into(),
        Val::List(_) => "a list".into(),
    }
}

/// What the evaluator computes with. The evaluator binds arguments, folds constants, checks
/// shapes and axes, and reports every mistake; a domain only builds: the checker's
/// (`Shapes`) follows shapes, the lowering's builds the graph.
pub trait Domain {
    type Tensor: Clone + std::fmt::Debug;
    /// Whether a call's result is remembered per call site (the checker's errors carry it).
    const BY_SITE: bool;
    fn shape(&self, t: &Self::Tensor) -> Vec<u64>;
    /// abs, sqrt, exp, log, sign, or a negation.
    fn unary(&mut self, op: Unary, t: Self::Tensor) -> Self::Tensor;
    /// `t ^ c` for a constant `c`.
    fn pow(&mut self, t: Self::Tensor, c: f64) -> Self::Tensor;
    /// `a op b` (not `^`), at least one a tensor, their shapes equal or one a scalar, no list.
    fn binary(&mut self, op: BinOp, a: Val<Self::Tensor>, b: Val<Self::Tensor>) -> Self::Tensor;
    /// `sum`, `mean`, `max` or `norm2` of `t` over `axes` (sorted, distinct, in range).
    fn reduce(&mut self, name: &str, t: Self::Tensor, axes: Vec<usize>) -> Self::Tensor;
}

/// The checker's domain: a tensor is its shape.
pub struct Shapes;

impl Domain for Shapes {
    type Tensor = Vec<u64>;
    const BY_SITE: bool = true;
    fn shape(&self, t: &Vec<u64>) -> Vec<u64> {
        t.clone()
    }
    fn unary(&mut self, _: Unary, t: Vec<u64>) -> Vec<u64> {
        t
    }
    fn pow(&mut self, t: Vec<u64>, _: f64) -> Vec<u64> {
        t
    }
    fn binary(&mut self, _: BinOp, a: Val, b: Val) -> Vec<u64> {
        match (a, b) {
            (Val::Tensor(s), Val::Tensor(t)) => {
                if s.is_empty() {
                    t
                } else {
                    s
                }
            }
            (Val::Tensor(s), _) | (_, Val::Tensor(s)) => s,
            _ => vec![],
        }
    }
    fn reduce(&mut self, _: &str, t: Vec<u64>, axes: Vec<usize>) -> Vec<u64> {
        t.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| *d).collect()
    }
}

/// A mistake found while evaluating a function for particular arguments.
#[derive(Debug, Clone)]
pub struct InstError {
    pub code: Code,
    pub message: String,
    /// Where in the function's body, and whether that body is the user's or the prelude's.
    pub span: Span,
    pub in_prelude: bool,
    pub help: Option<String>,
}

/// The one evaluator of the `fn` language: the checker runs it over shapes for each selected
/// tensor, the lowering over graph values, so both read the same builtins the same way.
pub struct Evaluator<'a, D: Domain> {
    pub functions: &'a [Function],
    pub domain: D,
    /// Results of calls already evaluated, by callee and arguments (and call site and depth,
    /// where the domain asks): a chain of functions that each call the next twice is
    /// evaluated in linear time and, lowered, is a graph of linear size.
    memo: HashMap<String, Result<Val<D::Tensor>, InstError>>,
}

fn err(code: Code, message: String, span: Span, in_prelude: bool) -> InstError {
    InstError { code, message, span, in_prelude, help: None }
}

fn unary_of(name: &str) -> Option<Unary> {
    ELEMENTWISE.iter().find(|(n, _)| *n == name).map(|(_, u)| *u)
}

impl<'a, D: Domain> Evaluator<'a, D> {
    pub fn new(functions: &'a [Function], domain: D) -> Self {
        Evaluator { functions, domain, memo: HashMap::new() }
    }

    /// Evaluates function `name` (builtin or defined) applied to `args` and `named`.
    pub fn call_named(
        &mut self,
        name: &str,
        args: &[Val<D::Tensor>],
        named: &[(String, Val<D::Tensor>, Span)],
        at: Span,
    ) -> Result<Val<D::Tensor>, InstError> {
        self.apply(name, args, named, at, false, 0)
    }

    fn describe(&self, v: &Val<D::Tensor>) -> String {
        describe(v, &|t| self.domain.shape(t))
    }

    fn apply(
        &mut self,
        name: &str,
        args: &[Val<D::Tensor>],
        named: &[(String, Val<D::Tensor>, Span)],
        at: Span,
        in_prelude: bool,
        depth: usize,
    ) -> Result<Val<D::Tensor>, InstError> {
        if depth > MAX_CALL_DEPTH {
            return Err(err(
                Code::TooDeep,
                format!("functions call each other more than {MAX_CALL_DEPTH} deep"),
                at,
                in_prelude,
            ));
        }
        if let Some(u) = unary_of(name) {
            return match args {
                [Val::Num(v)] => Ok(Val::Num(u.apply(*v))),
                [Val::Tensor(t)] => Ok(Val::Tensor(self.domain.unary(u, t.clone()))),
                [other] => Err(err(
                    Code::WrongKind,
                    format!("`{name}` takes a tensor or number, not {}", self.describe(other)),
                    at,
                    in_prelude,
                )),
                _ => Err(err(Code::Arity, format!("`{name}` takes one argument"), at, in_prelude)),
            };
        }
        if REDUCTIONS.contains(&name) {
            return self.reduce(name, args, named, at, in_prelude);
        }
        let key = if D::BY_SITE {
            format!("{name}|{args:?}|{named:?}|{at:?}|{in_prelude}|{depth}")
        } else {
            let named: Vec<(&String, &Val<D::Tensor>)> = named.iter().map(|(n, v, _)| (n, v)).collect();
            format!("{name}|{args:?}|{named:?}")
        };
        if let Some(r) = self.memo.get(&key) {
            return r.clone();
        }
        let r = self.apply_defined(name, args, named, at, in_prelude, depth);
        self.memo.insert(key, r.clone());
        r
    }

    fn apply_defined(
        &mut self,
        name: &str,
        args: &[Val<D::Tensor>],
        named: &[(String, Val<D::Tensor>, Span)],
        at: Span,
        in_prelude: bool,
        depth: usize,
    ) -> Result<Val<D::Tensor>, InstError> {
        let Some(f) = super::find_function(self.functions, name) else {
            return Err(err(Code::UnknownFunction, format!("unknown function `{name}`"), at, in_prelude));
        };
        let params = &f.def.params;
        let mut env: HashMap<&str, Val<D::Tensor>> = HashMap::new();
        if args.len() > params.len() {
            return Err(err(
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
                    return Err(err(
                        Code::Arity,
                        format!("argument `{n}` of `{name}` is given twice"),
                        *span,
                        in_prelude,
                    ))
                }
                None => {
                    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                    let mut e =
                        err(Code::UnknownArgument, format!("`{name}` has no parameter `{n}`"), *span, in_prelude);
                    e.help = Some(format!("`{name}` takes: {}", names.join(", ")));
                    return Err(e);
                }
            }
        }
        if let Some(missing) = params.iter().find(|p| !env.contains_key(p.name.as_str())) {
            let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            let mut e = err(Code::Arity, format!("`{name}` needs `{}`", missing.name), at, in_prelude);
            e.help = Some(format!("`{name}` takes: {}", names.join(", ")));
            return Err(e);
        }
        let (body, from_prelude) = (&f.def.body, f.from_prelude);
        self.eval(body, &env, from_prelude, depth + 1)
    }

    fn eval(
        &mut self,
        e: &Expr,
        env: &HashMap<&str, Val<D::Tensor>>,
        in_prelude: bool,
        depth: usize,
    ) -> Result<Val<D::Tensor>, InstError> {
        let fail = |code, message: String| err(code, message, e.span, in_prelude);
        match &e.kind {
            ExprKind::Number(v) => Ok(Val::Num(*v)),
            ExprKind::Name(n) => {
                env.get(n.as_str()).cloned().ok_or_else(|| fail(Code::UnknownName, format!("unknown name `{n}`")))
            }
            ExprKind::Neg(x) => match self.eval(x, env, in_prelude, depth)? {
                Val::Num(v) => Ok(Val::Num(-v)),
                Val::Tensor(t) => Ok(Val::Tensor(self.domain.unary(Unary::Neg, t))),
                Val::List(_) => Err(fail(Code::WrongKind, "a list cannot be negated".into())),
            },
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for i in items {
                    match self.eval(i, env, in_prelude, depth)? {
                        Val::Num(v) => out.push(v),
                        other => {
                            return Err(err(
                                Code::NotConstant,
                                format!("a list holds numbers, not {}", self.describe(&other)),
                                i.span,
                                in_prelude,
                            ))
                        }
                    }
                }
                Ok(Val::List(out))
            }
            ExprKind::Binary(op, a, b) => {
                let va = self.eval(a, env, in_prelude, depth)?;
                let vb = self.eval(b, env, in_prelude, depth)?;
                self.binary(*op, va, vb, e, b.span, in_prelude)
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
            ExprKind::Selector(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Index(..) => {
                Err(fail(Code::WrongKind, format!("{} cannot be computed with", kind_name(e))))
            }
        }
    }

    fn binary(
        &mut self,
        op: BinOp,
        a: Val<D::Tensor>,
        b: Val<D::Tensor>,
        e: &Expr,
        rhs_span: Span,
        in_prelude: bool,
    ) -> Result<Val<D::Tensor>, InstError> {
        if op == BinOp::Pow && !matches!(b, Val::Num(_)) {
            return Err(err(
                Code::NotConstant,
                format!("the exponent must be a constant number, not {}", self.describe(&b)),
                rhs_span,
                in_prelude,
            ));
        }
        match (&a, &b) {
            (Val::Num(x), Val::Num(y)) => {
                return Ok(Val::Num(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Pow => x.powf(*y),
                }))
            }
            (Val::List(_), _) | (_, Val::List(_)) => {
                return Err(err(Code::WrongKind, format!("`{}` cannot take a list", op.symbol()), e.span, in_prelude))
            }
            (Val::Tensor(s), Val::Tensor(t)) => {
                let (s, t) = (self.domain.shape(s), self.domain.shape(t));
                if s != t && !s.is_empty() && !t.is_empty() {
                    let mut d = err(
                        Code::ShapeMismatch,
                        format!(
                            "`{}` of tensors with shapes {} and {}",
                            op.symbol(),
                            crate::layers::fmt_shape(&s),
                            crate::layers::fmt_shape(&t)
                        ),
                        e.span,
                        in_prelude,
                    );
                    d.help = Some("element-wise operations need equal shapes, or a scalar on one side".into());
                    return Err(d);
                }
            }
            _ => {}
        }
        if let (BinOp::Pow, Val::Tensor(t), Val::Num(c)) = (op, &a, &b) {
            return Ok(Val::Tensor(self.domain.pow(t.clone(), *c)));
        }
        Ok(Val::Tensor(self.domain.binary(op, a, b)))
    }

    /// `sum`, `mean`, `max`, `norm2` over `over = axes`, or over all but `keep = axes`, or all.
    fn reduce(
        &mut self,
        name: &str,
        args: &[Val<D::Tensor>],
        named: &[(String, Val<D::Tensor>, Span)],
        at: Span,
        in_prelude: bool,
    ) -> Result<Val<D::Tensor>, InstError> {
        let fail = |code, message: String, span| err(code, message, span, in_prelude);
        let shape = match args.first() {
            Some(Val::Tensor(t)) => self.domain.shape(t),
            Some(Val::Num(_)) => vec![],
            Some(other) => {
                return Err(fail(Code::WrongKind, format!("`{name}` takes a tensor, not {}", self.describe(other)), at))
            }
            None => return Err(fail(Code::Arity, format!("`{name}` needs a tensor"), at)),
        };
        let rank = shape.len() as i64;
        let over = named.iter().find(|n| n.0 == "over");
        let keep = named.iter().find(|n| n.0 == "keep");
        let axes: Vec<usize> = match (over, keep) {
            (Some(_), Some(k)) => {
                let mut e = fail(Code::BadAxes, format!("`{name}` takes `over` or `keep`, not both"), k.2);
                e.help = Some("`over` lists the axes to reduce, `keep` the axes to leave".into());
                return Err(e);
            }
            (None, None) => (0..shape.len()).collect(),
            (Some(axes_arg), None) | (None, Some(axes_arg)) => {
                let keeping = keep.is_some();
                let listed: Vec<f64> = match &axes_arg.1 {
                    Val::Num(v) => vec![*v],
                    Val::List(l) => l.clone(),
                    other => {
                        return Err(fail(
                            Code::NotConstant,
                            format!("axes must be constant whole numbers, not {}", self.describe(other)),
                            axes_arg.2,
                        ))
                    }
                };
                let mut axes = Vec::new();
                for a in listed {
                    if a.fract() != 0.0 {
                        return Err(fail(Code::NotConstant, format!("axis {a} is not a whole number"), axes_arg.2));
                    }
                    let i = a as i64;
                    if i < -rank || i >= rank {
                        let mut e = fail(
                            Code::AxisOutOfRange,
                            format!("axis {i} is out of range for a tensor of rank {rank}"),
                            axes_arg.2,
                        );
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
                        return Err(fail(Code::BadAxes, format!("axis {i} is listed twice"), axes_arg.2));
                    }
                    axes.push(i);
                }
                let mut axes: Vec<usize> = (0..shape.len()).filter(|i| axes.contains(i) != keeping).collect();
                axes.sort_unstable();
                axes
            }
        };
        match &args[0] {
            Val::Num(v) => Ok(Val::Num(if name == "norm2" { v.abs() } else { *v })),
            Val::Tensor(t) => Ok(Val::Tensor(self.domain.reduce(name, t.clone(), axes))),
            Val::List(_) => unreachable!("refused above"),
        }
    }
}

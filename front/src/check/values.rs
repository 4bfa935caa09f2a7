//! Arguments and constant values, shared by every part of the checker: binding a call's
//! arguments to a signature, and reading numbers, counts, booleans and strings out of
//! expressions with a diagnostic where they are not what is needed.

use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic, Sink};
use crate::syntax::ast::{BinOp, Call, Expr, ExprKind, Span};

/// A parameter of a signature: its name and whether it must be given.
pub type Param = (&'static str, bool);

/// Binds `call`'s arguments to `params`: positional ones in order, then named ones. Reports
/// extra, unknown, repeated and missing arguments; `None` if any.
pub fn bind<'a, S: AsRef<str>>(
    sink: &mut Sink,
    call: &'a Call,
    what: &str,
    params: &[(S, bool)],
) -> Option<Vec<Option<&'a Expr>>> {
    let mut bound: Vec<Option<&Expr>> = vec![None; params.len()];
    let mut ok = true;
    let mut next_positional = 0;
    for arg in &call.args {
        let slot = match &arg.name {
            None => {
                if next_positional >= params.len() {
                    let max = params.len();
                    sink.push(
                        Diagnostic::error(Code::Arity, format!("too many arguments to {what}"))
                            .label(arg.value.span, "extra argument")
                            .help(format!("{what} takes {max} argument{}: {}", plural(max), names(params))),
                    );
                    ok = false;
                    continue;
                }
                next_positional += 1;
                next_positional - 1
            }
            Some(name) => match params.iter().position(|(p, _)| p.as_ref() == name.name) {
                Some(i) => i,
                None => {
                    let help = did_you_mean(&name.name, params.iter().map(|(p, _)| p.as_ref()))
                        .unwrap_or_else(|| format!("{what} takes: {}", names(params)));
                    sink.push(
                        Diagnostic::error(Code::UnknownArgument, format!("{what} has no argument `{}`", name.name))
                            .label(name.span, "unknown argument")
                            .help(help),
                    );
                    ok = false;
                    continue;
                }
            },
        };
        if bound[slot].is_some() {
            let span = arg.name.as_ref().map_or(arg.value.span, |n| n.span);
            sink.push(
                Diagnostic::error(
                    Code::Arity,
                    format!("argument `{}` of {what} is given twice", params[slot].0.as_ref()),
                )
                .label(span, "given again here")
                .help("keep one of them"),
            );
            ok = false;
        } else {
            bound[slot] = Some(&arg.value);
        }
    }
    for (i, (name, required)) in params.iter().enumerate() {
        let name = name.as_ref();
        if *required && bound[i].is_none() && ok {
            sink.push(
                Diagnostic::error(Code::Arity, format!("{what} needs `{name}`"))
                    .label(call.span, format!("`{name}` is missing"))
                    .help(format!("{what} takes: {}", names(params))),
            );
            ok = false;
        }
    }
    ok.then_some(bound)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn names<S: AsRef<str>>(params: &[(S, bool)]) -> String {
    params
        .iter()
        .map(|(p, req)| if *req { p.as_ref().to_string() } else { format!("{} (optional)", p.as_ref()) })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why an expression has no constant value.
pub enum NotConst {
    /// A tensor, name, selector or call.
    Symbolic(Span),
    /// A string, boolean or list.
    Kind(Span, &'static str),
}

pub fn kind_name(e: &Expr) -> &'static str {
    match e.kind {
        ExprKind::Number(_) => "a number",
        ExprKind::Bool(_) => "a boolean",
        ExprKind::Str(_) => "a string",
        ExprKind::Name(_) => "a name",
        ExprKind::Selector(_) => "a selector",
        ExprKind::List(_) => "a list",
        ExprKind::Call(_) => "a call",
        ExprKind::Neg(_) | ExprKind::Binary(..) => "an expression",
        ExprKind::Index(..) => "a token of a sequence",
    }
}

/// Folds arithmetic on numbers: `1/255`, `2e-4 * 3`, `-1`.
pub fn const_eval(e: &Expr) -> Result<f64, NotConst> {
    match &e.kind {
        ExprKind::Number(v) => Ok(*v),
        ExprKind::Neg(x) => Ok(-const_eval(x)?),
        ExprKind::Binary(op, a, b) => {
            let (a, b) = (const_eval(a)?, const_eval(b)?);
            Ok(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Pow => a.powf(b),
            })
        }
        ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::List(_) => Err(NotConst::Kind(e.span, kind_name(e))),
        ExprKind::Name(_) | ExprKind::Selector(_) | ExprKind::Call(_) | ExprKind::Index(..) => {
            Err(NotConst::Symbolic(e.span))
        }
    }
}

/// A constant number; `what` names it in messages ("the learning rate").
pub fn number(sink: &mut Sink, e: &Expr, what: &str) -> Option<f64> {
    match const_eval(e) {
        Ok(v) if v.is_finite() => Some(v),
        Ok(_) => {
            sink.push(
                Diagnostic::error(Code::BadNumber, format!("{what} is not a finite number"))
                    .label(e.span, "this evaluates to infinity or NaN")
                    .help("check for a division by zero or an overflowing power"),
            );
            None
        }
        Err(NotConst::Kind(span, kind)) => {
            sink.push(
                Diagnostic::error(Code::WrongKind, format!("{what} must be a number, not {kind}"))
                    .label(span, kind.to_string())
                    .help("write a number such as `0.1`, `1e-3`, `90%` or `1/255`"),
            );
            None
        }
        Err(NotConst::Symbolic(span)) => {
            sink.push(
                Diagnostic::error(Code::NotConstant, format!("{what} must be a constant number"))
                    .label(span, "not known when the spec is compiled")
                    .help("write a number such as `0.1`, `1e-3`, `90%` or `1/255`"),
            );
            None
        }
    }
}

/// The largest whole number a 64-bit float holds exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// A whole number of at least `min` (0 or 1).
pub fn count(sink: &mut Sink, e: &Expr, what: &str, min: u64) -> Option<u64> {
    let v = number(sink, e, what)?;
    if v.fract() != 0.0 || v < min as f64 {
        let least = if min == 0 { "0 or more" } else { "1 or more" };
        sink.push(
            Diagnostic::error(Code::NotPositiveInteger, format!("{what} must be a whole number, {least}"))
                .label(e.span, format!("this is {}", fmt_num(v)))
                .help(format!("write a whole number such as `{}`", if min == 0 { 0 } else { 10 })),
        );
        return None;
    }
    if v > MAX_EXACT {
        sink.push(
            Diagnostic::error(Code::BadNumber, format!("{what} is too large"))
                .label(e.span, "larger than 2^53")
                .help("use a smaller number"),
        );
        return None;
    }
    Some(v as u64)
}

pub fn boolean(sink: &mut Sink, e: &Expr, what: &str) -> Option<bool> {
    if let ExprKind::Bool(b) = e.kind {
        return Some(b);
    }
    sink.push(
        Diagnostic::error(Code::WrongKind, format!("{what} must be `true` or `false`, not {}", kind_name(e)))
            .label(e.span, "expected `true` or `false`"),
    );
    None
}

/// Checks `lo <= v` (or `lo < v`) and `v < hi` (or `v <= hi`); reports `E0502` otherwise.
pub fn in_range(sink: &mut Sink, v: f64, span: Span, what: &str, range: Range) -> Option<f64> {
    let ok = match range {
        Range::Positive => v > 0.0,
        Range::NonNegative => v >= 0.0,
        Range::Fraction => (0.0..1.0).contains(&v),
        Range::UnitInterval => (0.0..=1.0).contains(&v),
        Range::OpenUnit => v > 0.0 && v <= 1.0,
    };
    if ok {
        return Some(v);
    }
    let (must, help) = match range {
        Range::Positive => ("greater than 0", "e.g. `1e-3`"),
        Range::NonNegative => ("0 or more", "use 0 to switch it off"),
        Range::Fraction => ("at least 0 and below 1", "e.g. `0.9` or `90%`"),
        Range::UnitInterval => ("between 0 and 1", "e.g. `0.5`"),
        Range::OpenUnit => ("above 0 and at most 1", "e.g. `0.1`"),
    };
    sink.push(
        Diagnostic::error(Code::OutOfRange, format!("{what} must be {must}"))
            .label(span, format!("this is {}", fmt_num(v)))
            .help(help),
    );
    None
}

#[derive(Debug, Clone, Copy)]
pub enum Range {
    /// (0, ∞)
    Positive,
    /// [0, ∞)
    NonNegative,
    /// [0, 1)
    Fraction,
    /// [0, 1]
    UnitInterval,
    /// (0, 1]
    OpenUnit,
}

/// Numbers as a user would write them: `0.001`, `2e-4`, `250`.
pub fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1e-3 && v.abs() < 1e6 {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let s = format!("{v:e}");
        s
    }
}

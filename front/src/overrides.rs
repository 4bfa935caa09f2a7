//! `--set PATH=VALUE`: change a number written in a spec without editing the file, for
//! sweeps. Every number a researcher tunes has a path (see `slots`); an override rewrites
//! that number's text, and the new text is then checked like any spec.

use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic};
use crate::syntax::ast::{Expr, ExprKind, File, Item, PhaseStmt, PruneRule, SettingValue, Span, TrainStmt};

/// Every overridable number of `file`: its path and the span of its text.
pub fn slots(file: &File) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    // Each function's parameter names (the file's and the prelude's), which name the
    // constants a penalty passes them.
    let functions: std::collections::HashMap<&str, &[crate::syntax::ast::Ident]> = crate::prelude()
        .items
        .iter()
        .chain(&file.items)
        .filter_map(|i| if let Item::Fn(f) = i { Some((f.name.name.as_str(), f.params.as_slice())) } else { None })
        .collect();
    for item in &file.items {
        match item {
            Item::Data(d) => {
                for a in &d.source.args {
                    if let (Some(n), ExprKind::Number(_)) = (&a.name, &a.value.kind) {
                        out.push((format!("{}.{}", d.name.name, n.name), a.value.span));
                    }
                }
                for s in &d.settings {
                    if let SettingValue::Expr(e) = &s.value {
                        number(&mut out, format!("{}.{}", d.name.name, s.key.name), e);
                    }
                }
            }
            Item::Train(t) => {
                let mut prunes = 0;
                for stmt in &t.body {
                    match stmt {
                        TrainStmt::Setting(s) => {
                            if let SettingValue::Expr(e) = &s.value {
                                number(&mut out, s.key.name.clone(), e);
                            }
                        }
                        TrainStmt::Prune(p) => {
                            prunes += 1;
                            prune(&mut out, &crate::program::prune_step_name(prunes), p);
                        }
                        TrainStmt::Phase(ph) => {
                            let name = &ph.name.name;
                            let mut penalties = Vec::new();
                            for stmt in &ph.body {
                                match stmt {
                                    PhaseStmt::Prune(p) => prune(&mut out, &format!("{name}.prune"), p),
                                    PhaseStmt::Setting(s) => {
                                        let SettingValue::Expr(e) = &s.value else { continue };
                                        match s.key.name.as_str() {
                                            "optimizer" | "lr_schedule" => {
                                                if let ExprKind::Call(c) = &e.kind {
                                                    for a in &c.args {
                                                        let Some(arg) = &a.name else { continue };
                                                        number(
                                                            &mut out,
                                                            format!("{name}.{}.{}", s.key.name, arg.name),
                                                            &a.value,
                                                        );
                                                        if s.key.name == "optimizer" && arg.name == "lr" {
                                                            number(&mut out, format!("{name}.lr"), &a.value);
                                                        }
                                                    }
                                                }
                                            }
                                            "penalty" => {
                                                penalties.push(leading_strength(e));
                                                let at = format!("{name}.penalty.{}", penalties.len());
                                                constants(&mut out, &at, e, &functions);
                                            }
                                            key => number(&mut out, format!("{name}.{key}"), e),
                                        }
                                    }
                                }
                            }
                            for (i, strength) in penalties.iter().enumerate() {
                                if let Some(span) = strength {
                                    if penalties.len() == 1 {
                                        out.push((format!("{name}.penalty"), *span));
                                    }
                                    out.push((format!("{name}.penalty.{}", i + 1), *span));
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A plain number literal (possibly negated).
fn number(out: &mut Vec<(String, Span)>, path: String, e: &Expr) {
    match &e.kind {
        ExprKind::Number(_) => out.push((path, e.span)),
        ExprKind::Neg(x) if matches!(x.kind, ExprKind::Number(_)) => out.push((path, e.span)),
        _ => {}
    }
}

/// The numbers a penalty passes to its functions, by the parameters they bind: in phase
/// `sparsify`'s first penalty, `my_tl1(*.weight, 0.5)` of `fn my_tl1(w, a)` is
/// `sparsify.penalty.1.a`; a named argument by its name. Two calls binding the same name
/// share the path (a `--set` changes both).
fn constants(
    out: &mut Vec<(String, Span)>,
    at: &str,
    e: &Expr,
    functions: &std::collections::HashMap<&str, &[crate::syntax::ast::Ident]>,
) {
    match &e.kind {
        ExprKind::Call(c) => {
            let params = functions.get(c.func.name.as_str());
            let mut position = 0;
            for a in &c.args {
                let param = match &a.name {
                    Some(n) => Some(n.name.clone()),
                    None => {
                        position += 1;
                        params.and_then(|p| p.get(position - 1)).map(|p| p.name.clone())
                    }
                };
                if let Some(param) = param {
                    number(out, format!("{at}.{param}"), &a.value);
                }
                constants(out, at, &a.value, functions);
            }
        }
        ExprKind::Binary(_, a, b) => {
            constants(out, at, a, functions);
            constants(out, at, b, functions);
        }
        ExprKind::Neg(x) => constants(out, at, x, functions),
        ExprKind::List(xs) => xs.iter().for_each(|x| constants(out, at, x, functions)),
        _ => {}
    }
}

/// The number in front of a penalty: `2e-4 * hoyer_square(*)`.
fn leading_strength(e: &Expr) -> Option<Span> {
    match &e.kind {
        ExprKind::Binary(crate::syntax::ast::BinOp::Mul, a, _) if matches!(a.kind, ExprKind::Number(_)) => Some(a.span),
        _ => None,
    }
}

fn prune(out: &mut Vec<(String, Span)>, at: &str, p: &crate::syntax::ast::Prune) {
    match &p.rule {
        PruneRule::Below { groups: _, threshold } => match &threshold.kind {
            ExprKind::Call(c) if c.func.name == "std_ratio" => {
                if let Some(a) = c.args.first() {
                    number(out, format!("{at}.ratio"), &a.value);
                }
            }
            _ => number(out, format!("{at}.threshold"), threshold),
        },
        PruneRule::ToSparsity { target, .. } => number(out, format!("{at}.sparsity"), target),
    }
    if let Some((from, to)) = &p.window {
        number(out, format!("{at}.from"), from);
        number(out, format!("{at}.to"), to);
    }
    if let Some(every) = &p.every {
        number(out, format!("{at}.every"), every);
    }
}

/// Applies `PATH=VALUE` overrides to `src` (parsed as `file`); the new text, or diagnostics.
pub fn apply(src: &str, file: &File, sets: &[String]) -> Result<String, Vec<Diagnostic>> {
    let available = slots(file);
    let mut edits: Vec<(Span, String)> = Vec::new();
    let mut errors = Vec::new();
    for set in sets {
        let Some((path, value)) = set.split_once('=') else {
            errors.push(
                Diagnostic::error(Code::UnknownOverride, format!("`--set {set}` has no `=`"))
                    .help("write `--set PATH=VALUE`, e.g. `--set sparsify.epochs=3`"),
            );
            continue;
        };
        let (path, value) = (path.trim(), value.trim());
        // The value read as the spec reads a number: a literal (`60`, `2.5e-4`, `90%`) stands
        // in the text as it is; anything else (`1/255`, `-1`) goes in parentheses. Only the
        // number's own text goes in: a value with more (a comment, a second statement) is
        // refused, never spliced into the spec.
        const PREFIX: &str = "fn f() = ";
        let wrapped = format!("{PREFIX}{value}");
        let parsed = crate::syntax::parse::parse(&wrapped).ok().and_then(|f| match f.items.as_slice() {
            [Item::Fn(d)] if d.body.span.start == PREFIX.len() && d.body.span.end == wrapped.len() => {
                crate::check::const_number(&d.body).map(|_| matches!(d.body.kind, ExprKind::Number(_)))
            }
            _ => None,
        });
        let Some(literal) = parsed.filter(|_| !value.contains("//") && !value.contains("/*")) else {
            errors.push(
                Diagnostic::error(Code::UnknownOverride, format!("`--set {path}={value}`: the value is not a number"))
                    .help("write a number such as `3`, `1e-4`, `90%` or `1/255`"),
            );
            continue;
        };
        let hits: Vec<&(String, Span)> = available.iter().filter(|(p, _)| p == path).collect();
        if hits.is_empty() {
            let names: Vec<&str> = available.iter().map(|(p, _)| p.as_str()).collect();
            let help = did_you_mean(path, names.iter().copied())
                .unwrap_or_else(|| format!("paths in this spec: {}", names.join(", ")));
            errors.push(
                Diagnostic::error(Code::UnknownOverride, format!("`--set {path}`: no such number in the spec"))
                    .help(help),
            );
            continue;
        }
        for (_, span) in hits {
            edits.retain(|(s, _)| s != span);
            edits.push((*span, if literal { value.to_string() } else { format!("({value})") }));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    edits.sort_by_key(|(s, _)| std::cmp::Reverse(s.start));
    let mut text = src.to_string();
    for (span, value) in edits {
        text.replace_range(span.start..span.end, &value);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "data d = synthetic(classes = 3, train = 300, test = 60) { scale 1/2 }
model m(x: f32[4]) { return dense(x, 3) }
train m on d {
    batch 32
    phase sparsify { epochs 5  optimizer adam(lr = 1e-3)  penalty 2e-4 * hoyer_square(*) }
    prune below std_ratio(0.03) on *
    phase finetune { epochs 2  optimizer sgd(lr = 0.1, momentum = 0.9)  masks frozen
        prune gradually to sparsity 50% from epoch 0 to 2 on *.weight }
}
";

    fn paths() -> Vec<String> {
        slots(&crate::syntax::parse::parse(SPEC).unwrap()).into_iter().map(|s| s.0).collect()
    }

    #[test]
    fn every_tunable_number_has_a_path() {
        let p = paths();
        for want in [
            "d.classes",
            "d.train",
            "batch",
            "sparsify.epochs",
            "sparsify.lr",
            "sparsify.optimizer.lr",
            "sparsify.penalty",
            "prune.1.ratio",
            "finetune.optimizer.momentum",
            "finetune.prune.sparsity",
            "finetune.prune.to",
        ] {
            assert!(p.iter().any(|x| x == want), "{want} missing from {p:?}");
        }
    }

    #[test]
    fn overrides_rewrite_numbers_and_the_result_checks() {
        let file = crate::syntax::parse::parse(SPEC).unwrap();
        let sets = ["sparsify.epochs=3".to_string(), "sparsify.penalty=1e-4".into(), "prune.1.ratio=0.05".into()];
        let text = apply(SPEC, &file, &sets).unwrap();
        let checked = crate::check_source(&text).unwrap();
        let plan = checked.program.train.unwrap();
        let crate::program::PlanStep::Phase(p) = &plan.steps[0] else { panic!() };
        assert_eq!(p.epochs, 3);
        assert_eq!(p.penalties[0].strength, crate::program::Strength::Constant(1e-4));
        let crate::program::PlanStep::Prune(pr) = &plan.steps[1] else { panic!() };
        assert_eq!(pr.criterion, crate::program::PruneCriterion::StdRatio { ratio: 0.05 });
        // A literal stands as written (model.hoyer reads like a spec); an expression keeps
        // its parentheses, so that `2 * x` set to `1/255` reads `2 * (1/255)`.
        assert!(text.contains("epochs 3 ") && text.contains("penalty 1e-4 *"), "{text}");
        let text = apply(SPEC, &file, &["sparsify.lr=1/1000".to_string()]).unwrap();
        assert!(text.contains("adam(lr = (1/1000))"), "{text}");
        for (v, literal) in
            [("60", true), ("2.5e-4", true), ("1E+3", true), ("50%", true), ("-1", false), ("1/255", false)]
        {
            let text = apply(SPEC, &file, &[format!("sparsify.epochs={v}")]).unwrap();
            let want = if literal { format!("epochs {v} ") } else { format!("epochs ({v}) ") };
            assert!(text.contains(&want), "{v}: {text}");
        }
    }

    /// The constants a penalty passes to a user's regularizer (or the prelude's) have paths
    /// named by the parameters they bind.
    #[test]
    fn a_regularizers_constants_have_paths() {
        let spec = SPEC
            .replace("penalty 2e-4 * hoyer_square(*)", "penalty 2e-4 * soft(*, 0.5) + 1e-4 * group_hs(*.weight, 1)")
            + "fn soft(w, eps) = sum(abs(w)) / (sum(abs(w)) + eps)\n";
        let file = crate::syntax::parse::parse(&spec).unwrap();
        let p: Vec<String> = slots(&file).into_iter().map(|s| s.0).collect();
        assert!(
            p.iter().any(|x| x == "sparsify.penalty.1.eps") && p.iter().any(|x| x == "sparsify.penalty.1.axis"),
            "{p:?}"
        );
        let text = apply(&spec, &file, &["sparsify.penalty.1.eps=0.25".to_string()]).unwrap();
        assert!(text.contains("soft(*, 0.25)"), "{text}");
        assert!(crate::check_source(&text).is_ok());
    }

    #[test]
    fn bad_overrides_are_diagnostics() {
        let file = crate::syntax::parse::parse(SPEC).unwrap();
        let err = apply(SPEC, &file, &["sparsify.epoch=3".to_string()]).unwrap_err();
        assert_eq!(err[0].code, Code::UnknownOverride);
        assert_eq!(err[0].help.as_deref(), Some("did you mean `sparsify.epochs`?"));
        assert!(apply(SPEC, &file, &["batch=abc".to_string()]).is_err());
        assert!(apply(SPEC, &file, &["batch".to_string()]).is_err());
        // Nothing but the number goes into the spec: a comment would hide the rest of its
        // line, a second statement would change the plan.
        for value in ["32 // x", "32 /* x */", "2 phase x { epochs 1 }", "1)", "(1"] {
            assert!(apply(SPEC, &file, &[format!("batch={value}")]).is_err(), "{value:?} was spliced in");
        }
    }
}

//! Selectors over a model's parameters: `fc1.weight`, `*.weight`, `conv*`, `fc1`, `*`, and
//! over nested module names, `layer2.*.conv*.weight`, `blocks.*.attn.*`, `layer1`.
//!
//! A parameter's name is its module path and its kind: `layer1.0.conv1` and `weight`. A
//! selector with one part matches module paths and selects all their parameters; with more,
//! its last part matches the kind and the rest the path. `*` matches any run of characters,
//! dots included (so `*.weight` is every weight, however deep), and a path pattern also
//! matches everything inside the modules it matches (`layer1` and `layer1.*` are the same).

use crate::codes::Code;
use crate::diagnostics::{closest, Diagnostic, Sink};
use crate::program::{Model, Param};
use crate::syntax::ast::Selector;

pub fn matches(pattern: &str, param: &Param) -> bool {
    if !param.trainable() {
        return false;
    }
    let kind = param.name.rsplit('.').next().unwrap_or("");
    let (path, kind_pattern) = match pattern.rsplit_once('.') {
        None => (pattern, "*"),
        Some((path, kind)) => (path, kind),
    };
    // The path is the name before its kind: the layer, or inside it for a layer whose
    // parameters have parts (`blocks.0.attn.q` of `blocks.0.attn.q.weight`).
    let module = param.name.rsplit_once('.').map_or(param.layer.as_str(), |p| p.0);
    glob(kind_pattern, kind) && (glob(path, module) || glob(&format!("{path}.*"), module))
}

/// Glob with `*` only.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The parameters the selectors pick, in model order, each once. Every selector must match.
pub fn expand(sink: &mut Sink, selectors: &[Selector], model: &Model) -> Option<Vec<String>> {
    let mut ok = true;
    for s in selectors {
        if !model.params.iter().any(|p| matches(&s.pattern, p)) {
            sink.push(no_match(s, model));
            ok = false;
        }
    }
    ok.then(|| {
        model
            .params
            .iter()
            .filter(|p| selectors.iter().any(|s| matches(&s.pattern, p)))
            .map(|p| p.name.clone())
            .collect()
    })
}

/// The parameters one selector picks; reports when it picks none.
pub fn expand_one(
    sink: &mut Sink,
    pattern: &str,
    span: crate::syntax::ast::Span,
    model: &Model,
) -> Option<Vec<String>> {
    expand(sink, &[Selector { pattern: pattern.to_string(), span }], model)
}

fn no_match(s: &Selector, model: &Model) -> Diagnostic {
    let p = s.pattern.as_str();
    let mut candidates: Vec<&str> = model.params.iter().map(|p| p.name.as_str()).collect();
    candidates.extend(model.params.iter().map(|p| p.layer.as_str()));
    let help = if p == "weight" || p == "bias" {
        format!("a selector with one part names layers; to pick every {p}, write `*.{p}`")
    } else if let Some(c) = closest(p, candidates.iter().copied()) {
        format!("did you mean `{c}`?")
    } else {
        let names: Vec<&str> = model.params.iter().map(|p| p.name.as_str()).collect();
        let shown = if names.len() > 8 { format!("{}, …", names[..8].join(", ")) } else { names.join(", ") };
        format!("model `{}` has: {shown}", model.name)
    };
    Diagnostic::error(Code::EmptySelector, format!("selector `{p}` matches no parameter of model `{}`", model.name))
        .label(s.span, "matches nothing")
        .help(help)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("*", "fc1"));
        assert!(glob("fc*", "fc1"));
        assert!(glob("*1", "fc1"));
        assert!(glob("c*v*", "conv2"));
        assert!(!glob("fc*", "conv1"));
        assert!(!glob("fc1", "fc12"));
        assert!(glob("fc1", "fc1"));
        assert!(!glob("a*a", "a"));
    }
}

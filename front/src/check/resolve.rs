//! The resolution table: every model, block, layer binding, data set, function and phase of a
//! spec, where it is defined and every place it is used, by span. An editor's "go to
//! definition", "find references" and outline read it. It is built from the syntax tree
//! alone (it needs no shapes), so it is there for a spec the checker rejects too.

use crate::syntax::ast::*;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefKind {
    Data,
    Model,
    Block,
    Function,
    Phase,
    /// A binding of a model or block body (`fc1 = dense(x, 300)`).
    Layer,
    /// A model's input, a block's or a function's parameter.
    Parameter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Def {
    pub kind: DefKind,
    pub name: String,
    /// The name where it is defined.
    pub span: Span,
    /// For layers and parameters: the definition (model, block, function) holding them.
    pub owner: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub defs: Vec<Def>,
    /// Each use: where, and the index of its definition in `defs`.
    pub uses: Vec<(Span, usize)>,
}

impl Resolution {
    /// The definition named or used at byte `offset`, if any.
    pub fn at(&self, offset: usize) -> Option<usize> {
        let inside = |s: &Span| s.start <= offset && offset < s.end;
        self.defs.iter().position(|d| inside(&d.span)).or_else(|| self.uses.iter().find(|u| inside(&u.0)).map(|u| u.1))
    }

    /// Where definition `def` is used.
    pub fn uses_of(&self, def: usize) -> impl Iterator<Item = Span> + '_ {
        self.uses.iter().filter(move |u| u.1 == def).map(|u| u.0)
    }
}

pub fn resolve(file: &File) -> Resolution {
    let mut r = Resolution::default();
    let mut top: HashMap<(DefKind, &str), usize> = HashMap::new();
    for item in &file.items {
        let (kind, name) = match item {
            Item::Data(d) => (DefKind::Data, &d.name),
            Item::Model(m) => (DefKind::Model, &m.name),
            Item::Block(b) => (DefKind::Block, &b.name),
            Item::Fn(f) => (DefKind::Function, &f.name),
            Item::Train(_) | Item::Unknown(_) => continue,
        };
        let id = r.def(kind, name, None);
        top.entry((kind, name.name.as_str())).or_insert(id);
    }
    for item in &file.items {
        match item {
            Item::Model(m) => {
                let owner = top[&(DefKind::Model, m.name.name.as_str())];
                let mut scope = HashMap::new();
                scope.insert(m.input.name.name.clone(), r.def(DefKind::Parameter, &m.input.name, Some(owner)));
                r.body(&m.body, owner, scope, &top);
            }
            Item::Block(b) => {
                let owner = top[&(DefKind::Block, b.name.name.as_str())];
                let mut scope = HashMap::new();
                for p in &b.params {
                    if let Some(d) = &p.default {
                        r.expr(d, &HashMap::new(), &top);
                    }
                    scope.insert(p.name.name.clone(), r.def(DefKind::Parameter, &p.name, Some(owner)));
                }
                r.body(&b.body, owner, scope, &top);
            }
            Item::Fn(f) => {
                let owner = top[&(DefKind::Function, f.name.name.as_str())];
                let scope =
                    f.params.iter().map(|p| (p.name.clone(), r.def(DefKind::Parameter, p, Some(owner)))).collect();
                r.expr(&f.body, &scope, &top);
            }
            Item::Train(t) => {
                for (kind, name) in [(DefKind::Model, &t.model), (DefKind::Data, &t.data)] {
                    if let Some(&d) = top.get(&(kind, name.name.as_str())) {
                        r.uses.push((name.span, d));
                    }
                }
                let none = HashMap::new();
                for s in &t.body {
                    match s {
                        TrainStmt::Setting(s) => r.setting(s, &none, &top),
                        TrainStmt::Phase(p) => {
                            r.def(DefKind::Phase, &p.name, None);
                            for s in &p.body {
                                if let PhaseStmt::Setting(s) = s {
                                    r.setting(s, &none, &top);
                                }
                            }
                        }
                        TrainStmt::Prune(_) => {}
                    }
                }
            }
            Item::Data(_) | Item::Unknown(_) => {}
        }
    }
    r
}

impl Resolution {
    fn def(&mut self, kind: DefKind, name: &Ident, owner: Option<usize>) -> usize {
        self.defs.push(Def { kind, name: name.name.clone(), span: name.span, owner });
        self.defs.len() - 1
    }

    /// A model's or block's statements: each binding is visible from the next statement on.
    fn body(
        &mut self,
        stmts: &[ModelStmt],
        owner: usize,
        mut scope: HashMap<String, usize>,
        top: &HashMap<(DefKind, &str), usize>,
    ) {
        for s in stmts {
            match s {
                ModelStmt::Bind { name, value } => {
                    self.expr(value, &scope, top);
                    let id = self.def(DefKind::Layer, name, Some(owner));
                    scope.entry(name.name.clone()).or_insert(id);
                }
                ModelStmt::Return { value, .. } => self.expr(value, &scope, top),
                ModelStmt::Param { decl, init, .. } => {
                    if let Some(init) = init {
                        self.expr(init, &scope, top);
                    }
                    let id = self.def(DefKind::Layer, &decl.name, Some(owner));
                    scope.entry(decl.name.name.clone()).or_insert(id);
                }
            }
        }
    }

    fn setting(&mut self, s: &Setting, scope: &HashMap<String, usize>, top: &HashMap<(DefKind, &str), usize>) {
        match &s.value {
            SettingValue::Expr(e) => self.expr(e, scope, top),
            SettingValue::Args(args) => args.iter().for_each(|a| self.expr(&a.value, scope, top)),
            SettingValue::Unknown { .. } => {}
        }
    }

    fn expr(&mut self, e: &Expr, scope: &HashMap<String, usize>, top: &HashMap<(DefKind, &str), usize>) {
        match &e.kind {
            ExprKind::Name(n) | ExprKind::Selector(n) => {
                if let Some(&d) = scope.get(n) {
                    self.uses.push((e.span, d));
                }
            }
            ExprKind::Call(c) => {
                let callee =
                    [DefKind::Block, DefKind::Function].iter().find_map(|k| top.get(&(*k, c.func.name.as_str())));
                if let Some(&d) = callee {
                    self.uses.push((c.func.span, d));
                }
                c.args.iter().for_each(|a| self.expr(&a.value, scope, top));
            }
            ExprKind::Neg(x) => self.expr(x, scope, top),
            ExprKind::Binary(_, a, b) => {
                self.expr(a, scope, top);
                self.expr(b, scope, top);
            }
            ExprKind::List(items) => items.iter().for_each(|x| self.expr(x, scope, top)),
            ExprKind::Index(x, i) => {
                self.expr(x, scope, top);
                self.expr(i, scope, top);
            }
            ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Str(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "data d = synthetic(classes = 3, train = 30, test = 6)
fn l1(w) = sum(abs(w))
block mlp(x, width) {
    fc = dense(x, width) |> relu
    return fc
}
model net(x: f32[4]) {
    h = mlp(x, 8)
    out = dense(h, 3)
    return out
}
train net on d { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-3 * l1(*) } }
";

    fn at<'r>(r: &'r Resolution, needle: &str, nth: usize) -> Option<&'r Def> {
        let offset = SPEC.match_indices(needle).nth(nth).unwrap().0;
        r.at(offset).map(|d| &r.defs[d])
    }

    #[test]
    fn every_name_leads_to_its_definition_and_back() {
        let file = crate::syntax::parse::parse(SPEC).unwrap();
        let r = resolve(&file);
        // The block's use in the model, the binding `h` in `dense(h, 3)`, the model and data
        // set in `train`, the function in the penalty.
        assert_eq!(at(&r, "mlp", 1).map(|d| (d.kind, d.name.as_str())), Some((DefKind::Block, "mlp")));
        let h = at(&r, "h, 3)", 0).unwrap();
        assert_eq!((h.kind, h.span.start), (DefKind::Layer, SPEC.find("h = mlp").unwrap()));
        assert_eq!(at(&r, "net", 1).map(|d| d.kind), Some(DefKind::Model));
        assert_eq!(at(&r, "on d", 0).map(|d| d.kind), None, "`on` is a keyword");
        assert_eq!(at(&r, " d {", 0).map(|d| d.kind), None);
        assert_eq!(r.at(SPEC.find("on d").unwrap() + 3).map(|d| r.defs[d].kind), Some(DefKind::Data));
        assert_eq!(at(&r, "l1(*)", 0).map(|d| d.kind), Some(DefKind::Function));
        // A block's parameter inside the block, not the model's input of the same name.
        let x = at(&r, "x, width)", 1).unwrap();
        assert_eq!((x.kind, x.span.start), (DefKind::Parameter, SPEC.find("x, width) {").unwrap()));
        // Find references: `fc` defined once, used once (in `return fc`); the phase defined.
        let fc = r.defs.iter().position(|d| d.name == "fc").unwrap();
        assert_eq!(r.uses_of(fc).map(|s| &SPEC[s.start..s.end]).collect::<Vec<_>>(), ["fc"]);
        assert!(r.defs.iter().any(|d| d.kind == DefKind::Phase && d.name == "fit"));
    }
}

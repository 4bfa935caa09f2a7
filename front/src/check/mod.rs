//! The checker: resolves names, infers shapes, expands selectors and validates the training
//! schedule, reporting every independent mistake. Its output is a `Program`.
//!
//! One module per concern: `values` (arguments and constants, shared by all), `data`,
//! `model` (layers and shapes), `func` (`fn` bodies and their instantiation per tensor),
//! `selector`, `train` (phases, penalties, pruning).

mod data;
pub mod func;
mod model;
pub mod resolve;
mod selector;
mod train;
pub(crate) mod values;

pub use values::fmt_num;

use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic, Sink};
use crate::program::{Function, Program};
use crate::syntax::ast::{self, File, Item};
use std::collections::HashMap;

pub use func::BUILTINS;
pub use selector::matches as selector_matches;

/// Checks a parsed file against the prelude. Always returns a program (possibly partial)
/// and the diagnostics; the program is only meaningful when no error was reported.
pub fn check(file: &File, prelude: &File) -> (Program, Vec<Diagnostic>) {
    let mut sink = Sink::default();
    let mut program = Program { data: vec![], models: vec![], functions: vec![], train: None };

    // Names are unique per kind of item.
    let mut seen: HashMap<(&str, &str), ast::Span> = HashMap::new();
    for item in &file.items {
        let (kind, name) = match item {
            Item::Data(d) => ("data set", &d.name),
            Item::Model(m) => ("model", &m.name),
            Item::Block(b) => ("block", &b.name),
            Item::Fn(f) => ("function", &f.name),
            Item::Train(_) | Item::Unknown(_) => continue,
        };
        if let Some(first) = seen.insert((kind, &name.name), name.span) {
            sink.push(
                Diagnostic::error(Code::Duplicate, format!("{kind} `{}` is defined twice", name.name))
                    .label(name.span, "defined again here")
                    .label(first, "first defined here")
                    .help("rename one of them"),
            );
        }
    }

    for item in &file.items {
        if let Item::Unknown(u) = item {
            let help = did_you_mean(&u.word.name, ["data", "model", "block", "fn", "train"])
                .unwrap_or_else(|| "a spec is made of `data`, `model`, `block`, `fn` and `train` items".into());
            sink.push(
                Diagnostic::error(Code::UnknownStatement, format!("unknown item `{}`", u.word.name))
                    .label(u.word.span, "not an item")
                    .help(help),
            );
        }
    }

    for item in &file.items {
        if let Item::Data(d) = item {
            if let Some(ds) = data::check_data(&mut sink, d) {
                program.data.push(ds);
            }
        }
    }

    program.functions = func::collect_functions(&mut sink, file, prelude);

    let blocks = model::collect_blocks(&mut sink, file);
    for item in &file.items {
        if let Item::Model(m) = item {
            if let Some(model) = model::check_model(&mut sink, m, &blocks) {
                program.models.push(model);
            }
        }
    }

    let declared = train::Declared {
        models: file
            .items
            .iter()
            .filter_map(|i| if let Item::Model(m) = i { Some(m.name.name.clone()) } else { None })
            .collect(),
        data: file
            .items
            .iter()
            .filter_map(|i| if let Item::Data(d) = i { Some(d.name.name.clone()) } else { None })
            .collect(),
        invalid_fns: file
            .items
            .iter()
            .filter_map(|i| if let Item::Fn(f) = i { Some(f.name.name.clone()) } else { None })
            .filter(|n| find_function(&program.functions, n).is_none())
            .collect(),
    };
    let mut trains = file.items.iter().filter_map(|i| if let Item::Train(t) = i { Some(t) } else { None });
    if let Some(first) = trains.next() {
        program.train = train::check_train(&mut sink, first, &program, &declared);
    }
    for extra in trains {
        sink.push(
            Diagnostic::error(Code::SecondTrain, "a spec has at most one `train` block")
                .label(ast::Span::new(extra.span.start, extra.span.start + 5), "second `train` block")
                .help("put each training run in its own file, or sweep values with `hoyerc run --set`"),
        );
    }

    (program, sink.diagnostics)
}

/// The value of a constant expression (`1/255`, `-2e-4`), if it is one.
pub fn const_number(e: &ast::Expr) -> Option<f64> {
    values::const_eval(e).ok().filter(|v| v.is_finite())
}

/// Looks a function up: user functions first, then the prelude.
pub fn find_function<'a>(functions: &'a [Function], name: &str) -> Option<&'a Function> {
    functions.iter().find(|f| f.def.name.name == name)
}

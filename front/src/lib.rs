//! The front end of hoyer: a spec's text to a checked `Program`, and what editor tools need
//! on the way. Shared by the compiler, the CLI, and (later) the language server and the
//! formatter; it links no code generator.
//!
//! - `syntax`: the grammar's parser, the syntax tree with byte spans and its comments kept
//!   as trivia, line and UTF-16 positions.
//! - `check`: names, shapes, selectors and the schedule, every mistake a coded diagnostic
//!   (`diagnostics`, `codes`); its output is a `program::Program`.
//! - `layers`: one definition per kind of layer (arguments, shapes, parameters, lowering,
//!   FLOPs, shrink units).
//! - `overrides`: `--set PATH=VALUE`; `summary`: `--emit model` and a model's spec text.

pub mod check;
pub mod codes;
pub mod diagnostics;
pub mod layers;
pub mod overrides;
pub mod program;
pub mod summary;
pub mod syntax;

use codes::Code;
use diagnostics::Diagnostic;
use std::sync::OnceLock;
use syntax::{ast, parse};

/// The standard regularizers, in hoyer.
pub const PRELUDE_SOURCE: &str = include_str!("prelude.hoyer");

/// The parsed prelude (parsed once).
pub fn prelude() -> &'static ast::File {
    static PRELUDE: OnceLock<ast::File> = OnceLock::new();
    PRELUDE.get_or_init(|| parse::parse(PRELUDE_SOURCE).expect("the prelude parses (tested)"))
}

/// A spec that passed the checker (warnings may remain).
#[derive(Debug)]
pub struct Checked {
    pub file: ast::File,
    pub program: program::Program,
    pub warnings: Vec<Diagnostic>,
}

/// Reads the bytes of a spec as text; where they are not UTF-8, the diagnostic points at the
/// first bad byte of the lossily decoded text (whose prefix is unchanged).
pub fn decode(bytes: &[u8]) -> (String, Option<Diagnostic>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(e) => {
            let at = e.valid_up_to();
            let d = Diagnostic::error(Code::NotUtf8, "the file is not UTF-8 text")
                .label(ast::Span::new(at, at + 1), format!("byte {at} is not valid UTF-8"))
                .help("save the spec as UTF-8; is this the right file?");
            (String::from_utf8_lossy(bytes).into_owned(), Some(d))
        }
    }
}

/// Parses and checks a spec. `Err` holds every error found (and any warnings).
pub fn check_source(src: &str) -> Result<Checked, Vec<Diagnostic>> {
    let file = parse::parse(src)?;
    let (program, diagnostics) = check::check(&file, prelude());
    if diagnostics.iter().any(Diagnostic::is_error) {
        Err(diagnostics)
    } else {
        Ok(Checked { file, program, warnings: diagnostics })
    }
}

//! The hoyer compiler: source text → AST (`parse`) → checked `Program` (`check`, with miette
//! diagnostics: `diagnostics`, `codes`) → IR (`lower`, `autodiff`, `step`) → kernels
//! (`pipeline`: `passes`, `fusion`, `kernel`) → code (`codegen`).

pub mod ast;
pub mod autodiff;
pub mod check;
pub mod codegen;
pub mod codes;
pub mod diagnostics;
pub mod error;
pub mod fusion;
pub mod ir;
pub mod kernel;
pub mod lower;
pub mod overrides;
pub mod parse;
pub mod passes;
pub mod pipeline;
pub mod program;
pub mod shrink;
pub mod step;
pub mod summary;

use codes::Code;
use diagnostics::Diagnostic;
use std::sync::OnceLock;

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

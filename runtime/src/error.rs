//! Why a run stopped, with the stable code its diagnostic carries.

use hoyer_front::codes::Code;
use hoyer_front::diagnostics::Diagnostic;

#[derive(Debug, Clone)]
pub struct RunError {
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
    /// Where in the spec the problem lies, when it does (the model's output layer of a data
    /// set with more classes).
    pub label: Option<(hoyer_front::syntax::ast::Span, String)>,
}

impl RunError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        RunError { code, message: message.into(), help: None, label: None }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn at(mut self, span: hoyer_front::syntax::ast::Span, text: impl Into<String>) -> Self {
        self.label = Some((span, text.into()));
        self
    }
    pub fn diagnostic(&self) -> Diagnostic {
        let d = Diagnostic::error(self.code, self.message.clone()).maybe_help(self.help.clone());
        match &self.label {
            Some((span, text)) => d.label(*span, text.clone()),
            None => d,
        }
    }
}

impl From<hoyer_compiler::error::CompileError> for RunError {
    fn from(e: hoyer_compiler::error::CompileError) -> Self {
        let d = e.diagnostic();
        RunError { code: e.code(), message: e.to_string(), help: d.help, label: None }
    }
}

/// Anything else that stops a run.
impl From<String> for RunError {
    fn from(message: String) -> Self {
        RunError::new(Code::RunFailed, message)
    }
}

impl From<&str> for RunError {
    fn from(message: &str) -> Self {
        RunError::new(Code::RunFailed, message)
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

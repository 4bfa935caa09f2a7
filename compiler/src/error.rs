//! Errors below the checker. A spec that passed `check` should compile; what can still stop
//! it is either a feature not built yet (`Unsupported`, a user-facing E0707) or a mistake of
//! hoyerc itself (`Internal`, E0901, which says so and asks to be reported).

use crate::codes::Code;
use crate::diagnostics::Diagnostic;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("{what} is not supported yet")]
    Unsupported { what: String, help: String },
    #[error("internal compiler error in {stage}: {message}")]
    Internal { stage: &'static str, message: String },
}

impl CompileError {
    pub fn internal(stage: &'static str, message: impl Into<String>) -> Self {
        CompileError::Internal { stage, message: message.into() }
    }
    pub fn code(&self) -> Code {
        match self {
            CompileError::Unsupported { .. } => Code::Unsupported,
            CompileError::Internal { .. } => Code::Internal,
        }
    }
    pub fn diagnostic(&self) -> Diagnostic {
        let d = Diagnostic::error(self.code(), self.to_string());
        match self {
            CompileError::Unsupported { help, .. } => d.help(help.clone()),
            CompileError::Internal { .. } => {
                d.help("this is a bug in hoyerc, not in the spec: please report it with the spec and the command line")
            }
        }
    }
}

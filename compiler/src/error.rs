//! Errors below the checker. A spec that passed `check` compiles; what can still stop it is a
//! mistake of hoyerc itself (`Internal`, E0901, which says so and asks to be reported).

use hoyer_front::codes::Code;
use hoyer_front::diagnostics::Diagnostic;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("internal compiler error in {stage}: {message}")]
    Internal { stage: &'static str, message: String },
    /// A tensor of the step (a batch of a layer's output, or one it computes on the way, such
    /// as a convolution's columns) larger than a machine can index.
    #[error("the step needs a tensor of shape {shape:?} ({op}), more than 2^46 elements")]
    TooLarge { shape: Vec<usize>, op: &'static str },
}

impl CompileError {
    pub fn internal(stage: &'static str, message: impl Into<String>) -> Self {
        CompileError::Internal { stage, message: message.into() }
    }
    pub fn code(&self) -> Code {
        match self {
            CompileError::Internal { .. } => Code::Internal,
            CompileError::TooLarge { .. } => Code::BadDimension,
        }
    }
    pub fn diagnostic(&self) -> Diagnostic {
        let d = Diagnostic::error(self.code(), self.to_string());
        match self {
            CompileError::Internal { .. } => {
                d.help("this is a bug in hoyerc, not in the spec: please report it with the spec and the command line")
            }
            CompileError::TooLarge { op, .. } => d.help(match *op {
                "window" => "use a smaller batch or convolution: its columns hold batch × output pixels × kernel² × input channels values",
                "one_hot" => "use a smaller batch or vocabulary: an embedding's gradient holds batch × tokens × vocabulary values",
                _ => "use a smaller batch, or smaller layers",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoyer_front::diagnostics::Report;

    #[test]
    fn an_internal_error_says_so_with_its_own_code() {
        let e = CompileError::internal("fusion", "kernel dependencies form a cycle");
        let text = Report::new("spec.hoyer", String::new(), vec![e.diagnostic()]).render(100, false);
        assert!(text.contains("E0901"), "{text}");
        assert!(text.contains("internal compiler error in fusion"), "{text}");
        assert!(text.contains("bug in hoyerc"), "{text}");
    }
}

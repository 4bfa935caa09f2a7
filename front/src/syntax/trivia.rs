//! Comments, kept beside the syntax tree (the grammar skips them): a formatter writes them
//! back and an editor shows them, neither of which the checker needs.

use super::ast::Span;

/// `// text` to the end of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// From `//` to the end of the line, the newline excluded.
    pub span: Span,
    /// Whether code precedes it on its line (`x = dense(x, 3)  // why`).
    pub trailing: bool,
}

/// Every comment of `src`, in order. A `//` inside a string is not one; strings end at their
/// closing quote or at the end of the line, as the grammar's do.
pub fn comments(src: &str) -> Vec<Comment> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line_has_code, mut in_string) = (0, false, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line_has_code = false;
                in_string = false;
            }
            b'\\' if in_string => i += 1,
            b'"' => {
                in_string = !in_string;
                line_has_code = true;
            }
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                out.push(Comment { span: Span::new(i, end), trailing: line_has_code });
                i = end;
                continue;
            }
            b' ' | b'\t' | b'\r' => {}
            _ => line_has_code = true,
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_whole_and_trailing_not_in_strings() {
        let src = "// head\ndata d = idx(\"a//b\")  // tail\n  // indented\nmodel m(x: f32[1]) { return x }";
        let c = comments(src);
        let texts: Vec<&str> = c.iter().map(|c| &src[c.span.start..c.span.end]).collect();
        assert_eq!(texts, ["// head", "// tail", "// indented"]);
        assert_eq!(c.iter().map(|c| c.trailing).collect::<Vec<_>>(), [false, true, false]);
    }
}

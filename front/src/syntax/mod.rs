//! Source text to the syntax tree: `parse` (pest, from `grammar/hoyer.pest`) builds `ast`,
//! every node with its byte span; `trivia` keeps the comments the grammar skips; `lines`
//! turns byte offsets into editors' (line, UTF-16 column) positions and back.

pub mod ast;
pub mod lines;
pub mod parse;
pub mod trivia;

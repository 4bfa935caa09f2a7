//! Source text to the syntax tree: `parse` (pest, from `grammar/hoyer.pest`) builds `ast`,
//! every node with its byte span.

pub mod ast;
pub mod parse;

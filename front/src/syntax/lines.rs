//! Byte offsets to and from (line, column) positions as editors count them: lines from 0,
//! columns in UTF-16 code units (the Language Server Protocol's default), so that a span
//! over `α` or an emoji lands where the editor draws it.

/// The start of every line of a text.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { starts, len: text.len() }
    }

    /// The line and UTF-16 column of byte `offset` of `text` (the text this index was made
    /// from); an offset inside a character counts from that character's start.
    pub fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.len);
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let column =
            text[start..].char_indices().take_while(|(i, _)| start + i < offset).map(|(_, c)| c.len_utf16()).sum();
        (line, column)
    }

    /// The byte offset of (line, UTF-16 column); past the end of a line is its end, past
    /// the last line the end of the text.
    pub fn offset(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(&start) = self.starts.get(line) else { return self.len };
        let end = self.starts.get(line + 1).map_or(self.len, |&s| s - 1);
        let mut units = 0;
        for (i, c) in text[start..end].char_indices() {
            if units >= column {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns_round_trip() {
        // `α` is 2 bytes and 1 UTF-16 unit; `𝔽` is 4 bytes and 2 units.
        let text = "ab\n// α𝔽x\nlast";
        let ix = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(ix.position(text, x), (1, 6));
        assert_eq!(ix.offset(text, 1, 6), x);
        assert_eq!(ix.position(text, 0), (0, 0));
        assert_eq!(ix.position(text, text.len()), (2, 4));
        assert_eq!(ix.offset(text, 0, 99), 2, "past the end of a line is its end");
        assert_eq!(ix.offset(text, 9, 0), text.len());
        for off in (0..=text.len()).filter(|&o| text.is_char_boundary(o)) {
            let (l, c) = ix.position(text, off);
            assert_eq!(ix.offset(text, l, c), off, "offset {off}");
        }
    }
}

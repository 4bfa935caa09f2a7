//! `text("file", context = t)`: a text file as byte tokens (vocabulary 256). Its bytes are cut
//! into non-overlapping windows of t + 1 bytes, from the start; a window's first t bytes are
//! the sample and its last t the targets (each byte's target is the byte after it). The
//! last tenth of the windows (at least one) is the test split, the text's end; an epoch is
//! every training window once, in the order the run's seed shuffles.

use super::{Dataset, Split};
use crate::error::RunError;
use hoyer_front::codes::Code;
use std::path::Path;

/// The windows of `bytes`, or why there are none.
pub fn windows(bytes: &[u8], context: usize) -> Result<Dataset, String> {
    let n = bytes.len().saturating_sub(1) / context.max(1);
    if n < 2 {
        return Err(format!(
            "the text has {} bytes, too few for two windows of {context} bytes and their next bytes ({} bytes at least)",
            bytes.len(),
            2 * context + 1
        ));
    }
    let test = (n / 10).max(1);
    let split = |from: usize, to: usize| {
        let mut s = Split { x: Vec::new(), y: Vec::new(), targets: context };
        for w in from..to {
            let at = w * context;
            s.x.extend(bytes[at..at + context].iter().map(|&b| b as f32));
            s.y.extend(bytes[at + 1..at + context + 1].iter().map(|&b| b as u32));
        }
        s
    };
    Ok(Dataset {
        features: context,
        classes: hoyer_front::program::BYTE_VOCABULARY as usize,
        train: split(0, n - test),
        test: split(n - test, n),
    })
}

/// Reads `path` and makes its windows.
pub fn load(path: &Path, context: usize) -> Result<Dataset, RunError> {
    let bytes = std::fs::read(path)
        .map_err(|e| RunError::new(Code::DataNotFound, format!("cannot read the text {}: {e}", path.display())))?;
    windows(&bytes, context).map_err(|why| {
        RunError::new(Code::BadDataFile, format!("{}: {why}", path.display()))
            .help("train on a longer text, or make the context shorter (and the model's input with it)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_their_next_bytes() {
        // 23 bytes, context 2: (23 − 1) / 2 = 11 windows, the last tenth (1) the test.
        let text: Vec<u8> = (b'a'..=b'w').collect();
        let d = windows(&text, 2).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (10, 1));
        assert_eq!(d.train.sample(1, 2), [b'c' as f32, b'd' as f32]);
        assert_eq!(d.train.targets_of(1), [b'd' as u32, b'e' as u32]);
        assert_eq!(d.test.sample(0, 2), [b'u' as f32, b'v' as f32]);
        assert_eq!(d.test.targets_of(0), [b'v' as u32, b'w' as u32]);
        assert!(windows(b"abcd", 2).is_err(), "two windows need 5 bytes");
    }
}

//! CIFAR-10's binary version (`cifar-10-batches-bin`): `data_batch_1.bin` … `data_batch_5.bin`
//! and `test_batch.bin`, each a run of 3073-byte records, a label byte (0–9) then the image
//! as 1024 red, 1024 green and 1024 blue bytes, row by row: PyTorch's [3, 32, 32] layout.
//! Every malformed file is an error that names the file and says what is wrong.

use super::{Dataset, Split};
use crate::error::RunError;
use hoyer_front::codes::Code;
use hoyer_front::program::Normalize;
use std::path::{Path, PathBuf};

pub const TRAIN: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
pub const TEST: &str = "test_batch.bin";
pub const PIXELS: usize = 3 * 32 * 32;
const RECORD: usize = 1 + PIXELS;
const CLASSES: usize = 10;
/// The most a batch file may hold (10,000 records is 30 MB): far above the real files.
const MAX_FILE: u64 = 1 << 32;

/// The folder with the batches: `dir` itself, or the `cifar-10-batches-bin` the archive
/// unpacks to inside it.
pub fn folder(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")].into_iter().find(|d| d.join(TRAIN[0]).is_file())
}

/// The pixels and labels of one batch file.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<u8>, Vec<u32>), String> {
    let name = path.display();
    if bytes.is_empty() {
        return Err(format!("{name} is empty"));
    }
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(format!(
            "{name}: {} bytes is not a whole number of {RECORD}-byte records (a label byte and {PIXELS} pixels): truncated, or not a CIFAR-10 batch",
            bytes.len()
        ));
    }
    let n = bytes.len() / RECORD;
    let mut x = Vec::with_capacity(n * PIXELS);
    let mut y = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
        if r[0] as usize >= CLASSES {
            return Err(format!(
                "{name}: record {i} has label {}; CIFAR-10's are 0 to 9 (CIFAR-100's files have two label bytes)",
                r[0]
            ));
        }
        y.push(r[0] as u32);
        x.extend_from_slice(&r[1..]);
    }
    Ok((x, y))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    crate::files::read_regular(path, MAX_FILE)
}

/// Loads the six files from `dir` (see `folder`). A missing file is E0701, a malformed one
/// E0702.
pub fn load(dir: &Path, scale: f64, normalize: Option<&Normalize>) -> Result<Dataset, RunError> {
    let missing = |f: &str| {
        RunError::new(Code::DataNotFound, format!("{} has no `{f}`", dir.display())).help(
            "the folder needs data_batch_1.bin to data_batch_5.bin and test_batch.bin (CIFAR-10's binary version)",
        )
    };
    for f in TRAIN.iter().chain([&TEST]) {
        if !dir.join(f).is_file() {
            return Err(missing(f));
        }
    }
    let bad = |e: String| {
        RunError::new(Code::BadDataFile, e)
            .help("download the binary version again (cifar-10-binary.tar.gz) and unpack it whole")
    };
    let split = |files: &[&str]| -> Result<Split, RunError> {
        let (mut pixels, mut y) = (Vec::new(), Vec::new());
        for f in files {
            let p = dir.join(f);
            let (x, labels) = parse(&p, &read(&p).map_err(&bad)?).map_err(&bad)?;
            pixels.extend(x);
            y.extend(labels);
        }
        Ok(Split { x: super::prepared(&pixels, PIXELS, scale, normalize), y, targets: 1 })
    };
    let train = split(&TRAIN)?;
    let test = split(&[TEST])?;
    Ok(Dataset { features: PIXELS, classes: CLASSES, train, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        std::iter::once(label).chain(std::iter::repeat_n(fill, PIXELS)).collect()
    }

    #[test]
    fn parses_and_rejects() {
        let p = Path::new("b.bin");
        let two: Vec<u8> = record(3, 7).into_iter().chain(record(9, 200)).collect();
        let (x, y) = parse(p, &two).unwrap();
        assert_eq!(y, vec![3, 9]);
        assert_eq!((x[0], x[PIXELS]), (7, 200));
        assert!(parse(p, &two[..two.len() - 1]).unwrap_err().contains("whole number"));
        assert!(parse(p, &record(10, 0)).unwrap_err().contains("label 10"));
        assert!(parse(p, &[]).unwrap_err().contains("empty"));
    }
}

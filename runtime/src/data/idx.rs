//! MNIST-family IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-…`),
//! gzip-compressed or raw. Every malformed file is an error that names the file and says
//! what is wrong; nothing here panics on bad input.

use super::{Dataset, Split};
use crate::error::RunError;
use hoyer_compiler::codes::Code;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The four files of a data set folder.
const FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// Finds `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf, String> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!("{} has no `{name}` (or `{name}.gz`)", dir.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: not a valid gzip file ({e})", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes: returns its dimensions and its data.
pub fn parse(path: &Path, bytes: &[u8], rank: usize) -> Result<(Vec<usize>, Vec<u8>), String> {
    let name = path.display();
    if bytes.len() < 4 {
        return Err(format!("{name}: too short to be an IDX file ({} bytes)", bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] as usize != rank {
        return Err(format!(
            "{name}: wrong magic number {:02x}{:02x}{:02x}{:02x}; an IDX file of {rank}-dimensional unsigned bytes starts 000008{rank:02x}",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(format!("{name}: truncated header"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap_or([0; 4])) as usize)
        .collect();
    let expected =
        dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("{name}: dimensions overflow"))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(format!(
            "{name}: {} data bytes, but the header's dimensions {dims:?} need {expected} ({})",
            data.len(),
            if data.len() < expected { "the file is truncated" } else { "the file has trailing bytes" }
        ));
    }
    Ok((dims, data.to_vec()))
}

fn split(
    dir: &Path,
    images: &str,
    labels: &str,
    features: usize,
    scale: f64,
    normalize: Option<(f64, f64)>,
) -> Result<(Split, usize), String> {
    let (ip, lp) = (find(dir, images)?, find(dir, labels)?);
    let (idims, idata) = parse(&ip, &read(&ip)?, 3)?;
    let (ldims, ldata) = parse(&lp, &read(&lp)?, 1)?;
    if idims[0] != ldims[0] {
        return Err(format!(
            "{} holds {} images but {} holds {} labels",
            ip.display(),
            idims[0],
            lp.display(),
            ldims[0]
        ));
    }
    let per_image = idims[1] * idims[2];
    if per_image != features {
        return Err(format!(
            "{}: images have {} values ({}×{}), the model's input has {features}",
            ip.display(),
            per_image,
            idims[1],
            idims[2]
        ));
    }
    let (mean, std) = normalize.unwrap_or((0.0, 1.0));
    let x = idata.iter().map(|&b| ((b as f64 * scale - mean) / std) as f32).collect();
    let y: Vec<u32> = ldata.iter().map(|&b| b as u32).collect();
    let classes = y.iter().max().map_or(0, |&m| m as usize + 1);
    Ok((Split { x, y }, classes))
}

/// Loads the four files from `dir`. A missing file is E0701, a malformed one E0702.
pub fn load(dir: &Path, features: usize, scale: f64, normalize: Option<(f64, f64)>) -> Result<Dataset, RunError> {
    for f in FILES {
        find(dir, f).map_err(|e| {
            RunError::new(Code::DataNotFound, e).help("the folder needs all four IDX files, raw or .gz")
        })?;
    }
    let bad = |e: String| {
        RunError::new(Code::BadDataFile, e)
            .help("download the file again, or check that the folder holds the right data set")
    };
    let (train, c1) = split(dir, FILES[0], FILES[1], features, scale, normalize).map_err(bad)?;
    let (test, c2) = split(dir, FILES[2], FILES[3], features, scale, normalize).map_err(bad)?;
    Ok(Dataset { features, classes: c1.max(c2), train, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(rank: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, rank];
        dims.iter().for_each(|d| v.extend(d.to_be_bytes()));
        v.extend(data);
        v
    }

    #[test]
    fn parses_and_rejects() {
        let p = Path::new("f");
        assert_eq!(parse(p, &idx(1, &[3], &[1, 2, 3]), 1).unwrap(), (vec![3], vec![1, 2, 3]));
        assert!(parse(p, &idx(1, &[4], &[1, 2, 3]), 1).unwrap_err().contains("truncated"));
        assert!(parse(p, &idx(3, &[1, 1, 1], &[1]), 1).unwrap_err().contains("magic"));
        assert!(parse(p, &[0, 0], 1).unwrap_err().contains("too short"));
        assert!(parse(p, &idx(1, &[2], &[1, 2, 3]), 1).unwrap_err().contains("trailing"));
    }
}

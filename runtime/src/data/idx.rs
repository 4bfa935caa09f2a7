//! MNIST-family IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-…`),
//! gzip-compressed or raw. Every malformed file is an error that names the file and says
//! what is wrong; nothing here panics on bad input.

use super::{Dataset, Split};
use crate::error::RunError;
use hoyer_front::codes::Code;
use hoyer_front::program::Normalize;
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
        if candidate.exists() {
            return Err(format!("{} is not a regular file (a folder, a pipe or a device)", candidate.display()));
        }
    }
    Err(format!("{} has no `{name}` (or `{name}.gz`)", dir.display()))
}

/// The most data an IDX file may declare: far above any image data set a machine holds in
/// memory, and the bound that keeps a hostile header from asking for more.
const MAX_DATA: usize = 1 << 36;

/// Reads the IDX file at `path` (raw or gzip) of `rank`-dimensional unsigned bytes. The
/// header is read first, and then exactly as many data bytes as it declares (and one more,
/// to find trailing data): a gzip stream that inflates without end is cut there.
fn read(path: &Path, rank: usize) -> Result<(Vec<usize>, Vec<u8>), String> {
    let name = path.display();
    // Look before opening: opening a pipe blocks until something writes to it.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Err(format!("{name} is not a regular file"));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let mut head = [0u8; 2];
    let mut probe = std::io::BufReader::new(file);
    let peeked = {
        use std::io::BufRead;
        let buf = probe.fill_buf().map_err(|e| format!("cannot read {name}: {e}"))?;
        head[..buf.len().min(2)].copy_from_slice(&buf[..buf.len().min(2)]);
        buf.len()
    };
    if peeked >= 2 && head == [0x1f, 0x8b] {
        parse_from(path, flate2::read::GzDecoder::new(probe), rank, "not a valid gzip file")
    } else {
        parse_from(path, probe, rank, "cannot read it")
    }
}

/// Parses an IDX file of unsigned bytes: returns its dimensions and its data.
pub fn parse(path: &Path, bytes: &[u8], rank: usize) -> Result<(Vec<usize>, Vec<u8>), String> {
    parse_from(path, bytes, rank, "cannot read it")
}

/// As `parse`, for the bytes of a file that may be gzip-compressed.
pub fn parse_file_bytes(path: &Path, bytes: &[u8], rank: usize) -> Result<(Vec<usize>, Vec<u8>), String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse_from(path, flate2::read::GzDecoder::new(bytes), rank, "not a valid gzip file")
    } else {
        parse(path, bytes, rank)
    }
}

/// As `parse`, from a stream; `failure` says what a read error means (a broken gzip stream).
fn parse_from(path: &Path, mut r: impl Read, rank: usize, failure: &str) -> Result<(Vec<usize>, Vec<u8>), String> {
    let name = path.display();
    let io = |e: std::io::Error| format!("{name}: {failure} ({e})");
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut r, &mut magic).map_err(io)?;
    if got < 4 {
        return Err(format!("{name}: too short to be an IDX file ({got} bytes)"));
    }
    if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] as usize != rank {
        return Err(format!(
            "{name}: wrong magic number {:02x}{:02x}{:02x}{:02x}; an IDX file of {rank}-dimensional unsigned bytes starts 000008{rank:02x}",
            magic[0], magic[1], magic[2], magic[3]
        ));
    }
    let mut header = vec![0u8; 4 * rank];
    if read_up_to(&mut r, &mut header).map_err(io)? < header.len() {
        return Err(format!("{name}: truncated header"));
    }
    let dims: Vec<usize> =
        header.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_DATA)
        .ok_or_else(|| format!("{name}: the header's dimensions {dims:?} declare more data than hoyer reads"))?;
    let mut data = Vec::new();
    data.try_reserve_exact(expected + 1).map_err(|_| {
        format!("{name}: the header's dimensions {dims:?} need {expected} bytes, more than this machine can hold")
    })?;
    r.take(expected as u64 + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() != expected {
        return Err(format!(
            "{name}: {} data bytes, but the header's dimensions {dims:?} need {expected} ({})",
            if data.len() > expected { format!("more than {expected}") } else { data.len().to_string() },
            if data.len() < expected { "the file is truncated" } else { "the file has trailing bytes" }
        ));
    }
    Ok((dims, data))
}

/// Reads until `buf` is full or the stream ends; how many bytes it got.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn split(
    dir: &Path,
    images: &str,
    labels: &str,
    features: usize,
    scale: f64,
    normalize: Option<&Normalize>,
) -> Result<(Split, usize), String> {
    let (ip, lp) = (find(dir, images)?, find(dir, labels)?);
    let (idims, idata) = read(&ip, 3)?;
    let (ldims, ldata) = read(&lp, 1)?;
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
    let x = super::prepared(&idata, features, scale, normalize);
    let y: Vec<u32> = ldata.iter().map(|&b| b as u32).collect();
    let classes = y.iter().max().map_or(0, |&m| m as usize + 1);
    Ok((Split { x, y, targets: 1 }, classes))
}

/// How many samples the folder's train and test label files declare (their headers).
pub fn samples(dir: &Path) -> Result<usize, RunError> {
    let mut n = 0usize;
    for f in [FILES[1], FILES[3]] {
        let p = find(dir, f).map_err(|e| RunError::new(Code::DataNotFound, e))?;
        let (dims, _) = read(&p, 1).map_err(|e| RunError::new(Code::BadDataFile, e))?;
        n = n.saturating_add(dims[0]);
    }
    Ok(n)
}

/// Loads the four files from `dir`. A missing file is E0701, a malformed one E0702.
pub fn load(dir: &Path, features: usize, scale: f64, normalize: Option<&Normalize>) -> Result<Dataset, RunError> {
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

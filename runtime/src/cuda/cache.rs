//! Compiled kernels on disk: one cubin per hash of (NVRTC's version, its options, the
//! architecture, the source), so that a second run of a spec compiles nothing. A file is
//! written whole or not at all (a temporary, then a rename) and checked when read (length and
//! CRC-32): a damaged or foreign file is compiled again and replaced, never loaded. The
//! folder is the caller's choice; nothing here reads the environment.

use super::nvrtc::{self, Cubin, Failure};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"HOYCUBIN";

/// Where a cubin came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Cached,
    /// Compiled now; `stored` says whether the cache could keep it (a read-only folder is
    /// not an error: the run goes on, it only compiles again next time).
    Compiled {
        stored: bool,
    },
}

pub struct KernelCache {
    dir: PathBuf,
}

impl KernelCache {
    pub fn new(dir: impl Into<PathBuf>) -> KernelCache {
        KernelCache { dir: dir.into() }
    }

    /// The file a source compiled for `arch` is kept in.
    pub fn path(&self, source: &str, arch: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(b"hoyer cubin 1\0");
        if let Some((major, minor)) = nvrtc::version() {
            h.update(format!("nvrtc {major}.{minor}\0"));
        }
        for o in nvrtc::options(arch) {
            h.update(o.as_bytes());
            h.update(b"\0");
        }
        h.update(source.as_bytes());
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.cubin"))
    }

    /// The cubin of `source` (named `name` in NVRTC's messages) for `arch`: from the cache,
    /// or compiled by NVRTC and stored.
    pub fn cubin(&self, source: &str, name: &str, arch: &str) -> Result<(Cubin, Origin), Failure> {
        let path = self.path(source, arch);
        if let Some(image) = load(&path) {
            return Ok((Cubin { image, log: String::new() }, Origin::Cached));
        }
        let cubin = nvrtc::compile(source, name, arch)?;
        let stored = store(&path, &cubin.image).is_ok();
        Ok((cubin, Origin::Compiled { stored }))
    }
}

/// A stored cubin, if the file is there and whole.
fn load(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let (head, image) = bytes.split_at_checked(20)?;
    let len = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let crc = u32::from_le_bytes(head[16..20].try_into().ok()?);
    (&head[..8] == MAGIC && len == image.len() as u64 && crc32fast::hash(image) == crc).then(|| image.to_vec())
}

/// Writes `image` to `path` whole: a temporary beside it, then a rename.
fn store(path: &Path, image: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Vec::with_capacity(20 + image.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(image.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(image).to_le_bytes());
    bytes.extend_from_slice(image);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hoyer-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// What is stored loads back; a truncated, altered or foreign file does not.
    #[test]
    fn files_load_only_whole() {
        let dir = temp_dir("files");
        let path = dir.join("x.cubin");
        let image: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        store(&path, &image).unwrap();
        assert_eq!(load(&path).as_deref(), Some(&image[..]));
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        assert_eq!(load(&path), None, "truncated");
        let mut flipped = whole.clone();
        flipped[500] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(load(&path), None, "altered");
        std::fs::write(&path, b"not a cubin").unwrap();
        assert_eq!(load(&path), None, "foreign");
        assert!(!dir.read_dir().unwrap().any(|e| e.unwrap().path().to_string_lossy().contains(".tmp")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Sources and architectures get their own files.
    #[test]
    fn the_key_covers_source_and_architecture() {
        let c = KernelCache::new(temp_dir("keys"));
        let a = c.path("__global__ void k() {}", "sm_80");
        assert_eq!(a, c.path("__global__ void k() {}", "sm_80"));
        assert_ne!(a, c.path("__global__ void k() {}", "sm_90"));
        assert_ne!(a, c.path("__global__ void k() { }", "sm_80"));
    }
}

//! Writing a run's files so that nothing is ever half written.
//!
//! A whole file (model, checkpoint, report, plot, the kept part of the metrics on a resume)
//! is written to a temporary name of its own in the same folder (process id and a counter:
//! two writers never share one), flushed to disk, and renamed over the old one: a reader, or
//! a run killed at any instant, sees the previous complete version or the new complete one.
//! Metrics lines are appended whole, one write each. A run holds a lock on its folder, so
//! two runs never write into one.

use crate::error::RunError;
use hoyer_front::codes::Code;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

fn cannot(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::new(Code::WriteFailed, format!("cannot write {}: {e}", path.display()))
        .help("check that the folder exists, is writable, and that the disk is not full")
}

/// Replaces `path` with `bytes`, atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let partial = path.with_file_name(format!(
        ".{name}.{}.{}.partial",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&partial)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&partial, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(cannot(path, e));
    }
    // The rename itself reaches the disk with the folder's entry.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The regular file at `path`, open, and its length: never a pipe, a device or a folder
/// (which would block or fail strangely).
fn open_regular(path: &Path) -> Result<(std::fs::File, u64), String> {
    let name = path.display();
    // Look before opening: opening a pipe blocks until something writes to it.
    let not_regular = || format!("cannot read `{name}`: it is not a regular file (a folder, a pipe or a device)");
    if !std::fs::metadata(path).map_err(|e| format!("cannot read `{name}`: {e}"))?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{name}`: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read `{name}`: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok((file, meta.len()))
}

/// Reads `len` bytes of `file` into a buffer that could be allocated (an error, not an abort,
/// where it cannot). Never more than `len`: a pseudo-file (`/proc/self/pagemap`) says it is
/// empty and reads without end.
fn read_len(path: &Path, file: &mut std::fs::File, len: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let name = path.display();
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| format!("cannot read `{name}`: too large for memory ({len} bytes)"))?;
    file.take(len).read_to_end(&mut bytes).map_err(|e| format!("cannot read `{name}`: {e}"))?;
    Ok(bytes)
}

/// The bytes of the regular file at `path`, if it holds at most `max` of them (see
/// `open_regular` and `read_len`).
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let (mut file, len) = open_regular(path)?;
    if len > max {
        return Err(format!("cannot read `{}`: {len} bytes, more than the {max} such a file may have", path.display()));
    }
    read_len(path, &mut file, len)
}

/// The bytes of the safetensors file at `path`, read only once its header has been read and
/// checked against the file's length: a file whose header does not describe it (a
/// truncated download, another format, a huge header length) is refused before its tensors
/// are read. The header's tensors are checked in full by the safetensors crate afterwards.
pub fn read_safetensors(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    const MAX_HEADER: u64 = 100 << 20;
    let name = path.display();
    let (mut file, len) = open_regular(path)?;
    let not = |why: String| format!("{name} is not a safetensors file: {why}");
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|_| not(format!("{len} bytes, too short for a header")))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > len.saturating_sub(8) {
        return Err(not(format!("its header would be {n} bytes long, in a file of {len}")));
    }
    let header = read_len(path, &mut file, n)?;
    let json: serde_json::Value = serde_json::from_slice(&header).map_err(|e| not(format!("its header: {e}")))?;
    let tensors = json.as_object().ok_or_else(|| not("its header is not a JSON object".into()))?;
    let mut end = 0u64;
    for (tensor, info) in tensors.iter().filter(|(k, _)| *k != "__metadata__") {
        let offsets = info["data_offsets"].as_array().map(|a| a.iter().map(|v| v.as_u64()).collect::<Vec<_>>());
        match offsets.as_deref() {
            Some([Some(a), Some(b)]) if a <= b => end = end.max(*b),
            _ => return Err(not(format!("tensor `{tensor}` has no valid data_offsets"))),
        }
    }
    let described = (8 + n).checked_add(end);
    if described != Some(len) {
        let what = described.map_or("more than 2^64".to_string(), |d| d.to_string());
        return Err(not(format!("its header describes {what} bytes, the file has {len}")));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| format!("cannot read `{name}`: too large for memory ({len} bytes)"))?;
    bytes.extend((n).to_le_bytes());
    bytes.extend(header);
    bytes.extend(read_len(path, &mut file, end)?);
    if bytes.len() as u64 != len {
        return Err(format!("cannot read `{name}`: it changed while being read"));
    }
    Ok(bytes)
}

/// Removes the temporary files a killed writer left in `dir` (call it holding the folder's
/// lock: then nobody is writing there).
pub fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".partial") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// An append-only file of whole lines.
pub struct Lines {
    path: PathBuf,
    file: std::fs::File,
}

impl Lines {
    /// Opens `path` for appending, after replacing it (atomically) with `keep` when that is
    /// given: the lines of a resumed run up to its checkpoint.
    pub fn open(path: &Path, keep: Option<&str>) -> Result<Lines, RunError> {
        if let Some(text) = keep {
            write_atomically(path, text.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| cannot(path, e))?;
        Ok(Lines { path: path.to_path_buf(), file })
    }

    /// Appends one line in one write, and flushes it to disk.
    pub fn append(&mut self, line: &str) -> Result<(), RunError> {
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        self.file.write_all(text.as_bytes()).and_then(|()| self.file.sync_data()).map_err(|e| cannot(&self.path, e))
    }
}

/// The lock a run holds on its output folder while it runs (released when the process
/// ends, however it ends).
pub struct FolderLock {
    _file: std::fs::File,
}

impl FolderLock {
    /// Locks `dir`, or says which process holds it.
    pub fn take(dir: &Path) -> Result<FolderLock, RunError> {
        let path = dir.join(".hoyer.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| cannot(&path, e))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = write!(file, "{}", std::process::id());
                Ok(FolderLock { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_regular(&path, 64).unwrap_or_default();
                let holder = String::from_utf8_lossy(&holder);
                let holder = holder.trim();
                Err(RunError::new(
                    Code::FolderInUse,
                    format!(
                        "{} is in use by another run or sweep{}",
                        dir.display(),
                        if holder.is_empty() { String::new() } else { format!(" (process {holder})") }
                    ),
                )
                .help("wait for it to finish, stop it, or give this run another folder with --out"))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(cannot(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_appends_whole_lines() {
        let dir = std::env::temp_dir().join(format!("hoyer-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.json");
        write_atomically(&f, b"one").unwrap();
        write_atomically(&f, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "two");
        let m = dir.join("m.jsonl");
        let mut lines = Lines::open(&m, None).unwrap();
        lines.append("{\"a\": 1}").unwrap();
        drop(lines);
        let mut lines = Lines::open(&m, Some("{\"kept\": 1}\n")).unwrap();
        lines.append("{\"b\": 2}").unwrap();
        assert_eq!(std::fs::read_to_string(&m).unwrap(), "{\"kept\": 1}\n{\"b\": 2}\n");
        // No temporary files are left behind.
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
        // A second lock on the same folder is refused, naming the holder.
        let lock = FolderLock::take(&dir).unwrap();
        let e = FolderLock::take(&dir).err().unwrap();
        assert!(e.message.contains(&std::process::id().to_string()), "{}", e.message);
        drop(lock);
        drop(FolderLock::take(&dir).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

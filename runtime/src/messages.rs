//! What hoyerc tells its user, written so that a closed or failing standard error (a log
//! pipe or `tee` that died, `2>&1 | head -3`, a full disk under `2> log`) never stops a run.
//!
//! Every message goes to standard error while it can be written, and, while a run is going,
//! also to the run folder's `log.txt`: where stderr is gone, the run's messages are still
//! there. A failed write is never an error of the run.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set once a write to standard error fails; later messages skip it.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// The running run's `log.txt`, while one is open.
static RUN_LOG: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Writes `text` as it is (no newline added) to standard error and the run's log.
pub fn write(text: &str) {
    if !STDERR_GONE.load(Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        if err.write_all(text.as_bytes()).and_then(|()| err.flush()).is_err() {
            STDERR_GONE.store(true, Ordering::Relaxed);
        }
    }
    let mut log = RUN_LOG.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(file) = log.as_mut() {
        // A log that cannot be written (a full disk) is given up, the run goes on.
        if file.write_all(text.as_bytes()).is_err() {
            *log = None;
        }
    }
}

/// Whether standard error has failed (the run then says so in its log only).
pub fn stderr_gone() -> bool {
    STDERR_GONE.load(Ordering::Relaxed)
}

/// Appends the messages from now on to `path` (a run's `log.txt`) until the guard is dropped.
pub fn log_to(path: &Path) -> LogGuard {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok();
    *RUN_LOG.lock().unwrap_or_else(|p| p.into_inner()) = file;
    LogGuard
}

/// Closes the run's log when the run ends.
pub struct LogGuard;

impl Drop for LogGuard {
    fn drop(&mut self) {
        *RUN_LOG.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// `eprint!` that never panics: to standard error while it can be written, and to the run's
/// log while one is open.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::messages::write(&format!($($arg)*)) };
}

/// `eprintln!` that never panics (see `say!`).
#[macro_export]
macro_rules! sayln {
    ($($arg:tt)*) => { $crate::messages::write(&(format!($($arg)*) + "\n")) };
}

//! Shared by the integration tests: running the built `hoyerc`.

use std::path::Path;
use std::process::Command;

/// Runs hoyerc in `dir` with `args`, without colour. Returns (exit code, stdout, stderr).
pub fn hoyerc_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hoyerc"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("hoyerc runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

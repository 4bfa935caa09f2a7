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

/// The MNIST folder in HOYER_DATA, or `None` (saying so) where it is not set. Where
/// HOYER_REQUIRE_DATA=1 (CI sets it) a missing folder fails the test instead: the MNIST tests
/// must not pass by skipping.
#[allow(dead_code)]
pub fn mnist() -> Option<std::path::PathBuf> {
    let required = std::env::var_os("HOYER_REQUIRE_DATA").is_some_and(|v| v != "0");
    match std::env::var_os("HOYER_DATA").map(std::path::PathBuf::from) {
        Some(d) if d.join("train-labels-idx1-ubyte.gz").is_file() || d.join("train-labels-idx1-ubyte").is_file() => {
            Some(d)
        }
        found => {
            let why = match found {
                Some(d) => format!("HOYER_DATA={} holds no MNIST IDX files", d.display()),
                None => "HOYER_DATA is not set".to_string(),
            };
            assert!(!required, "HOYER_REQUIRE_DATA is set but {why}");
            eprintln!("skipped: {why}; set it to the folder with the MNIST IDX files (e.g. ../shared/data/mnist)");
            None
        }
    }
}

/// The Fashion-MNIST folder: $HOYER_FMNIST, else where Debian's `dataset-fashion-mnist`
/// puts it; `None` (saying so) where neither holds it, and a failure instead where
/// HOYER_REQUIRE_DATA=1 (CI installs the package).
#[allow(dead_code)]
pub fn fashion_mnist() -> Option<std::path::PathBuf> {
    let required = std::env::var_os("HOYER_REQUIRE_DATA").is_some_and(|v| v != "0");
    let dir = std::env::var_os("HOYER_FMNIST")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/usr/share/datasets/fashion-mnist"));
    if dir.join("train-labels-idx1-ubyte.gz").is_file() || dir.join("train-labels-idx1-ubyte").is_file() {
        return Some(dir);
    }
    assert!(!required, "HOYER_REQUIRE_DATA is set but {} holds no Fashion-MNIST (apt install dataset-fashion-mnist, or set HOYER_FMNIST)", dir.display());
    eprintln!(
        "skipped: no Fashion-MNIST in {} (apt install dataset-fashion-mnist, or set HOYER_FMNIST)",
        dir.display()
    );
    None
}

/// A folder `cifar` of CIFAR-10 binary batches, `records` each, labels 0..9 in turn and
/// pixels from a formula; `change` may break one file.
#[allow(dead_code)]
pub fn cifar_folder(
    root: &std::path::Path,
    records: usize,
    change: impl FnOnce(&std::path::Path),
) -> std::path::PathBuf {
    let d = root.join("cifar");
    std::fs::create_dir_all(&d).unwrap();
    let names = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    for (k, f) in names.iter().chain(["test_batch.bin"].iter()).enumerate() {
        let mut bytes = Vec::new();
        for r in 0..records {
            bytes.push(((k + r) % 10) as u8);
            bytes.extend((0..3072).map(|i| ((i * 7 + r * 13 + k) % 256) as u8));
        }
        std::fs::write(d.join(f), bytes).unwrap();
    }
    change(&d);
    d
}

/// A test's own folder, or a file in a folder of its own, under the temporary folder:
/// removed when the test passes, kept when it fails (to look at).
pub struct Scratch {
    path: std::path::PathBuf,
    root: std::path::PathBuf,
}

#[allow(dead_code)]
impl Scratch {
    fn root(name: &str) -> std::path::PathBuf {
        let root =
            std::env::temp_dir().join(format!("hoyer-{}-{}-{name}", env!("CARGO_CRATE_NAME"), std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    }

    /// An empty folder.
    pub fn dir(name: &str) -> Scratch {
        let root = Scratch::root(name);
        std::fs::create_dir_all(&root).unwrap();
        Scratch { path: root.clone(), root }
    }

    /// A path nothing is at yet (a run's `--out`).
    pub fn fresh(name: &str) -> Scratch {
        let root = Scratch::root(name);
        Scratch { path: root.clone(), root }
    }

    /// A file `name` holding `contents` (a spec), alone in its folder.
    pub fn file(name: &str, contents: impl AsRef<[u8]>) -> Scratch {
        let root = Scratch::root(name);
        std::fs::create_dir_all(&root).unwrap();
        let path = root.join(name);
        std::fs::write(&path, contents).unwrap();
        Scratch { path, root }
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

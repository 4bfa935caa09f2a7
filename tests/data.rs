//! IDX data: the loader reads raw and gzip files, and every malformed file is a coded
//! diagnostic that names the file, never a panic.

mod common;

use std::io::Write;
use std::path::Path;

const SPEC: &str = "data d = idx(\"d\") { scale 1/255 }
model m(x: f32[4]) { return dense(x, 3) }
train m on d { batch 2  phase p { epochs 1  optimizer sgd(lr = 0.1) } }
";

fn idx(rank: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, rank];
    dims.iter().for_each(|d| v.extend(d.to_be_bytes()));
    v.extend(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A folder with a spec and four valid 2×2-image files; `change` may break one of them.
fn setup(name: &str, compress: bool, change: impl FnOnce(&Path)) -> common::Scratch {
    let root = common::Scratch::dir(name);
    let d = root.join("d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(root.join("spec.hoyer"), SPEC).unwrap();
    let images: Vec<u8> = (0..6 * 4).map(|i| (i * 10 % 256) as u8).collect();
    let files = [
        ("train-images-idx3-ubyte", idx(3, &[6, 2, 2], &images)),
        ("train-labels-idx1-ubyte", idx(1, &[6], &[0, 1, 2, 0, 1, 2])),
        ("t10k-images-idx3-ubyte", idx(3, &[2, 2, 2], &images[..8])),
        ("t10k-labels-idx1-ubyte", idx(1, &[2], &[2, 1])),
    ];
    for (f, bytes) in files {
        if compress {
            std::fs::write(d.join(format!("{f}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(d.join(f), bytes).unwrap();
        }
    }
    change(&d);
    root
}

fn run(root: &Path) -> (i32, String) {
    let (code, _, err) = common::hoyerc_in(root, &["run", "spec.hoyer", "--out", "out"]);
    (code, err)
}

#[test]
fn valid_files_raw_and_gzip() {
    for compress in [false, true] {
        let root = setup(&format!("valid-{compress}"), compress, |_| {});
        let (code, err) = run(&root);
        assert_eq!(code, 0, "{err}");
        assert!(root.join("out/model.safetensors").is_file());
    }
}

/// A case: its name, how it breaks the folder, the code and a phrase it must report.
type Case = (&'static str, Box<dyn FnOnce(&Path)>, &'static str, &'static str);

#[test]
fn every_malformed_file_is_a_diagnostic_naming_it() {
    let cases: Vec<Case> = vec![
        (
            "magic",
            Box::new(|d: &Path| std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx(3, &[2, 1, 1], &[1, 2])).unwrap()),
            "E0702",
            "wrong magic number",
        ),
        (
            "truncated",
            Box::new(|d: &Path| {
                std::fs::write(d.join("train-images-idx3-ubyte"), idx(3, &[6, 2, 2], &[0; 20])).unwrap()
            }),
            "E0702",
            "truncated",
        ),
        (
            "trailing",
            Box::new(|d: &Path| std::fs::write(d.join("train-labels-idx1-ubyte"), idx(1, &[6], &[0; 7])).unwrap()),
            "E0702",
            "trailing bytes",
        ),
        (
            "short",
            Box::new(|d: &Path| std::fs::write(d.join("train-labels-idx1-ubyte"), [0u8, 0]).unwrap()),
            "E0702",
            "too short",
        ),
        (
            "counts",
            Box::new(|d: &Path| std::fs::write(d.join("train-labels-idx1-ubyte"), idx(1, &[5], &[0; 5])).unwrap()),
            "E0702",
            "holds 6 images but",
        ),
        (
            "size",
            Box::new(|d: &Path| {
                std::fs::write(d.join("t10k-images-idx3-ubyte"), idx(3, &[2, 3, 3], &[0; 18])).unwrap()
            }),
            "E0702",
            "the model's input has 4",
        ),
        (
            "gzip",
            Box::new(|d: &Path| std::fs::write(d.join("t10k-labels-idx1-ubyte"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap()),
            "E0702",
            "not a valid gzip file",
        ),
        (
            "classes",
            Box::new(|d: &Path| std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx(1, &[2], &[9, 1])).unwrap()),
            "E0712",
            "3 scores",
        ),
        (
            // A gzip bomb: a small header, then endless zeros; read only as far as declared.
            "bomb",
            Box::new(|d: &Path| {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                gz.write_all(&idx(1, &[2], &[])).unwrap();
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..64 {
                    gz.write_all(&zeros).unwrap();
                }
                std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), gz.finish().unwrap()).unwrap();
                std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
            }),
            "E0702",
            "trailing bytes",
        ),
        (
            "huge",
            Box::new(|d: &Path| {
                std::fs::write(d.join("train-images-idx3-ubyte"), idx(3, &[u32::MAX, u32::MAX, 4], &[])).unwrap()
            }),
            "E0702",
            "declare more",
        ),
        (
            "fifo",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
                let ok = std::process::Command::new("mkfifo").arg(d.join("t10k-labels-idx1-ubyte")).status().unwrap();
                assert!(ok.success());
            }),
            "E0701",
            "not a regular file",
        ),
        (
            "missing",
            Box::new(|d: &Path| std::fs::remove_file(d.join("t10k-images-idx3-ubyte")).unwrap()),
            "E0701",
            "t10k-images-idx3-ubyte",
        ),
    ];
    for (name, change, code_wanted, text) in cases {
        let root = setup(name, false, change);
        let (code, err) = run(&root);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(code_wanted) && err.contains(text), "{name}: {err}");
        if code_wanted == "E0702" {
            assert!(err.contains("-ubyte"), "{name}: the file is not named: {err}");
        }
    }
}

const CIFAR_SPEC: &str =
    "data c = cifar10(\"cifar\") { scale 1/255  normalize(mean = [0.49, 0.48, 0.45], std = [0.25, 0.24, 0.26]) }
model m(x: f32[3, 32, 32]) { c1 = conv2d(x, 4, kernel = 3, stride = 2)\n return dense(flatten(c1), 10) }
train m on c { batch 8  phase p { epochs 1  optimizer sgd(lr = 0.1) } }
";

#[test]
fn cifar10_reads_its_batches_and_names_every_broken_one() {
    let cases: Vec<Case> = vec![
        ("valid", Box::new(|_: &Path| {}), "", ""),
        (
            "missing",
            Box::new(|d: &Path| std::fs::remove_file(d.join("data_batch_4.bin")).unwrap()),
            "E0701",
            "no `data_batch_4.bin`",
        ),
        (
            "truncated",
            Box::new(|d: &Path| {
                let p = d.join("test_batch.bin");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 100]).unwrap()
            }),
            "E0702",
            "test_batch.bin: 30630 bytes is not a whole number of 3073-byte records",
        ),
        (
            "label",
            Box::new(|d: &Path| {
                let p = d.join("data_batch_2.bin");
                let mut b = std::fs::read(&p).unwrap();
                b[3073] = 12;
                std::fs::write(&p, b).unwrap()
            }),
            "E0702",
            "record 1 has label 12",
        ),
        ("empty", Box::new(|d: &Path| std::fs::write(d.join("data_batch_5.bin"), []).unwrap()), "E0702", "is empty"),
    ];
    for (name, change, code, phrase) in cases {
        let root = common::Scratch::dir(&format!("cifar-{name}"));
        std::fs::write(root.join("spec.hoyer"), CIFAR_SPEC).unwrap();
        common::cifar_folder(&root, 10, change);
        let (status, err) = run(&root);
        if code.is_empty() {
            assert_eq!(status, 0, "{name}: {err}");
            continue;
        }
        assert_ne!(status, 0, "{name}: a broken folder ran");
        assert!(err.contains(code) && err.contains(phrase), "{name}: want {code} `{phrase}`, got:\n{err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

/// IDX bytes read as token ids: every id must be below the embedding's vocabulary before a
/// kernel reads a row; the error points at the embedding.
#[test]
fn token_ids_outside_the_vocabulary_are_refused_before_training() {
    for (vocab, want) in [(256, None), (200, Some("token id 200 at position 0"))] {
        let root = setup(&format!("tokens-{vocab}"), false, |_| {});
        let spec = format!(
            "data d = idx(\"d\")
model m(x: i32[4]) {{
    e = embedding(x, {vocab}, 2)
    return dense(flatten(e), 3)
}}
train m on d {{ batch 2  phase p {{ epochs 1  optimizer sgd(lr = 0.1) }} }}
"
        );
        std::fs::write(root.join("spec.hoyer"), spec).unwrap();
        let (code, err) = run(&root);
        match want {
            None => assert_eq!(code, 0, "{err}"),
            Some(what) => {
                assert_eq!(code, 1, "{err}");
                assert!(err.contains("E0702") && err.contains(what) && err.contains(&format!("{vocab} rows")), "{err}");
            }
        }
    }
}

//! Which loader reads a spec's data set, where it looks for the files, and the checks a
//! loaded data set must pass against the model before anything is uploaded.

use super::synthetic::Synthetic;
use super::{cifar, idx, text, Dataset};
use crate::error::RunError;
use hoyer_front::codes::Code;
use hoyer_front::program::{DataSource, Model, Program, TrainPlan};
use std::path::{Path, PathBuf};

/// Where a run looks for data files: `--data DIR`, else beside the spec, else `$HOYER_DATA`.
#[derive(Debug, Clone)]
pub struct Folders {
    pub data_dir: Option<PathBuf>,
    pub spec_dir: PathBuf,
    pub data_fallback: Option<PathBuf>,
}

/// The data set, with its record for run.json and a line saying where it came from.
/// `fits` is asked, before anything is loaded, whether that many samples (train and test) fit
/// in memory.
pub fn load(
    program: &Program,
    plan: &TrainPlan,
    model: &Model,
    opts: &Folders,
    fits: &dyn Fn(usize) -> Result<(), RunError>,
) -> Result<(Dataset, serde_json::Value, String), RunError> {
    let ds = program.data_set(&plan.data).ok_or("the data set is missing")?;
    let features = model.input_shape.iter().product::<u64>() as usize;
    match &ds.source {
        DataSource::Synthetic { classes, train, test, noise, seed } => {
            fits((*train + *test) as usize)?;
            let synthetic = Synthetic {
                classes: *classes as usize,
                train: *train as usize,
                test: *test as usize,
                noise: *noise,
                seed: *seed,
            };
            let mut d = match model.index_bound() {
                Some((vocab, _)) => synthetic.generate_tokens(features, vocab as usize),
                None => synthetic.generate(features),
            };
            for x in [&mut d.train.x, &mut d.test.x] {
                super::prepare(x, features, ds.scale, ds.normalize.as_ref());
            }
            let record = serde_json::json!({ "name": ds.name, "source": "synthetic" });
            Ok((d, record, format!("`{}` (synthetic, generated from the spec)", ds.name)))
        }
        DataSource::Cifar10 { path } => {
            let candidates = data_folders(opts, path);
            let Some(c) = candidates.iter().find_map(|c| cifar::folder(c)) else {
                let tried: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
                return Err(RunError::new(
                    Code::DataNotFound,
                    format!("cannot find the CIFAR-10 batches of `{}` (\"{path}\"); looked in: {}", ds.name, tried.join(", ")),
                )
                .help("pass --data DIR with the folder holding data_batch_1.bin … test_batch.bin (or cifar-10-batches-bin)"));
            };
            // 50,000 + 10,000 samples in the real data set; the files say how many here.
            let records: u64 = cifar::TRAIN
                .iter()
                .chain([&cifar::TEST])
                .map(|f| std::fs::metadata(c.join(f)).map_or(0, |m| m.len()) / (1 + cifar::PIXELS as u64))
                .sum();
            fits(records as usize)?;
            let d = cifar::load(&c, ds.scale, ds.normalize.as_ref())?;
            let (record, line) = found(ds, "cifar10", &c, &["data_batch_", "test_batch"]);
            Ok((d, record, line))
        }
        DataSource::Text { path, context, context_span } => {
            let candidates: Vec<PathBuf> = match &opts.data_dir {
                Some(d) => vec![d.join(path), d.clone()],
                None => std::iter::once(opts.spec_dir.join(path))
                    .chain(opts.data_fallback.iter().map(|d| d.join(path)))
                    .collect(),
            };
            let Some(file) = candidates.iter().find(|c| c.is_file()) else {
                let tried: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
                return Err(RunError::new(
                    Code::DataNotFound,
                    format!("cannot find the text of `{}` (\"{path}\"); looked in: {}", ds.name, tried.join(", ")),
                )
                .help("pass --data FILE (the text itself) or --data DIR (the folder holding the spec's path)"));
            };
            let size = std::fs::metadata(file).map_or(0, |m| m.len() as usize);
            fits(size / (*context as usize).max(1))?;
            let d = text::load(file, *context as usize).map_err(|e| e.at(*context_span, "this context"))?;
            let folder = std::fs::canonicalize(file).unwrap_or(file.clone());
            let record = serde_json::json!({
                "name": ds.name,
                "source": "text",
                "file": folder.display().to_string(),
                "bytes": size,
                "context": context,
            });
            Ok((d, record, format!("`{}` from {} ({size} bytes)", ds.name, folder.display())))
        }
        DataSource::Idx { path } => {
            let mut tried = Vec::new();
            for c in data_folders(opts, path) {
                if c.join("train-labels-idx1-ubyte.gz").is_file() || c.join("train-labels-idx1-ubyte").is_file() {
                    fits(idx::samples(&c)?)?;
                    let d = idx::load(&c, features, ds.scale, ds.normalize.as_ref())?;
                    let (record, line) = found(ds, "idx", &c, &["train-", "t10k-"]);
                    return Ok((d, record, line));
                }
                tried.push(c.display().to_string());
            }
            Err(RunError::new(
                Code::DataNotFound,
                format!("cannot find the IDX files of `{}` (\"{path}\"); looked in: {}", ds.name, tried.join(", ")),
            )
            .help(if opts.data_dir.is_some() {
                "--data DIR must name the folder with the IDX files (or the folder holding the spec's path)"
            } else {
                "pass --data DIR, or set HOYER_DATA to the folder with the MNIST files"
            }))
        }
    }
}

/// A model of token ids reads rows of its embeddings by them: each must be a whole number
/// below the vocabulary before any kernel reads a row.
pub fn check_token_ids(data: &Dataset, model: &Model) -> Result<(), RunError> {
    let Some((vocab, node)) = model.index_bound() else { return Ok(()) };
    let f = data.features.max(1);
    for (split, name) in [(&data.train, "training"), (&data.test, "test")] {
        if let Some(at) = split.x.iter().position(|&v| !(v >= 0.0 && v < vocab as f32 && v.fract() == 0.0)) {
            return Err(RunError::new(
                Code::BadDataFile,
                format!(
                    "{name} sample {} holds token id {} at position {}, but the embedding has {vocab} rows (ids 0 to {})",
                    at / f,
                    split.x[at],
                    at % f,
                    vocab - 1
                ),
            )
            .help("give the embedding a row for every id the data holds, or check that the data set is the one meant")
            .at(node.span, format!("{vocab} rows")));
        }
    }
    Ok(())
}

/// Where a data set's folder may be, in order. `--data DIR` means that folder (or the spec's
/// path under it), nowhere else; otherwise the spec's path beside the spec, then under (or
/// as) the fallback folder.
fn data_folders(opts: &Folders, path: &str) -> Vec<PathBuf> {
    match &opts.data_dir {
        Some(d) => vec![d.clone(), d.join(path)],
        None => std::iter::once(opts.spec_dir.join(path))
            .chain(opts.data_fallback.iter().flat_map(|d| [d.join(path), d.clone()]))
            .collect(),
    }
}

/// run.json's record of a data set read from folder `c` (its files starting with one of
/// `prefixes`), and the header line naming it.
fn found(ds: &hoyer_front::program::DataSet, source: &str, c: &Path, prefixes: &[&str]) -> (serde_json::Value, String) {
    let folder = std::fs::canonicalize(c).unwrap_or(c.to_path_buf());
    let record = serde_json::json!({
        "name": ds.name,
        "source": source,
        "folder": folder.display().to_string(),
        "files": crate::provenance::files(c, prefixes),
    });
    (record, format!("`{}` from {}", ds.name, folder.display()))
}

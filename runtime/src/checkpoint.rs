//! Parameters and training checkpoints as safetensors files. Parameters are named as in the
//! spec, in PyTorch layouts, so that `model.load_state_dict(safetensors.torch.load_file(path))`
//! works for a module with the same layer names. Files are written to a temporary name and
//! renamed, so a crash never leaves a half-written file.

use crate::error::RunError;
use hoyer_front::program::Model;
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// Writes the parameters (model order) to `path`.
pub fn save(
    path: &Path,
    model: &Model,
    params: &[(String, Vec<f32>)],
    metadata: &[(&str, String)],
) -> Result<(), RunError> {
    let tensors: Vec<(String, Vec<u64>, &[f32])> =
        params.iter().map(|(n, v)| (n.clone(), shape_of(model, n, v), v.as_slice())).collect();
    write_atomically(path, &encode(&tensors, metadata))
}

fn shape_of(model: &Model, name: &str, v: &[f32]) -> Vec<u64> {
    model.param(name).map_or_else(|| vec![v.len() as u64], |p| p.shape.clone())
}

/// A safetensors file's bytes, its header checked first (`files::read_safetensors`).
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    crate::files::read_safetensors(path)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    crate::files::write_atomically(path, bytes)
}

/// The safetensors encoding: an 8-byte little-endian header length, a JSON header (keys
/// sorted, so equal tensors give equal files), padded with spaces to 8 bytes, then the
/// tensors' bytes in order.
pub fn encode(tensors: &[(String, Vec<u64>, &[f32])], metadata: &[(&str, String)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.to_string(), v.clone().into())).collect();
    header.insert("__metadata__".into(), meta.into());
    let mut offset = 0usize;
    for (name, shape, v) in tensors {
        let end = offset + 4 * v.len();
        header
            .insert(name.clone(), serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }));
        offset = end;
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend((json.len() as u64).to_le_bytes());
    out.extend(json);
    for (_, _, v) in tensors {
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    out
}

/// The tensors of the safetensors file at `path` that `model` has no parameter for.
pub fn extra_tensors(path: &Path, model: &Model) -> Vec<String> {
    let Ok(bytes) = read_file(path) else { return vec![] };
    let Ok(st) = SafeTensors::deserialize(&bytes) else { return vec![] };
    let mut extra: Vec<String> =
        st.names().into_iter().filter(|n| model.param(n).is_none()).map(|n| n.to_string()).collect();
    extra.sort();
    extra
}

/// The widths of `model`'s dense and conv layers in the file at `path` where they differ
/// from the model's (a checkpoint written after `then shrink`): each layer's weight's rows.
pub fn shrunk_widths(path: &Path, model: &Model) -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    let Ok(bytes) = read_file(path) else { return out };
    let Ok(st) = SafeTensors::deserialize(&bytes) else { return out };
    for p in model.params.iter().filter(|p| p.name.ends_with(".weight")) {
        // A checkpoint's parameters are `param/NAME`; model.safetensors' plain `NAME`.
        if let Ok(t) = st.tensor(&format!("param/{}", p.name)).or_else(|_| st.tensor(&p.name)) {
            let rows = t.shape().first().copied().unwrap_or(0) as u64;
            if rows != p.shape[0] && rows > 0 {
                out.insert(p.layer.clone(), rows);
            }
        }
    }
    out
}

/// Loads every parameter of `model` from `path`; names and shapes must match.
pub fn load(path: &Path, model: &Model) -> Result<Vec<(String, Vec<f32>)>, String> {
    load_bytes(path, &read_file(path)?, model)
}

/// As `load`, from the file's bytes (`path` names it in messages).
pub fn load_bytes(path: &Path, bytes: &[u8], model: &Model) -> Result<Vec<(String, Vec<f32>)>, String> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| format!("{} is not a safetensors file: {e}", path.display()))?;
    let mut out = Vec::new();
    for p in &model.params {
        let t = st.tensor(&p.name).map_err(|_| {
            let mut names = st.names();
            names.sort();
            format!("{} has no tensor `{}` (it has: {})", path.display(), p.name, names.join(", "))
        })?;
        let want: Vec<usize> = p.shape.iter().map(|&d| d as usize).collect();
        if t.shape() != want.as_slice() {
            return Err(format!(
                "{}: `{}` has shape {:?}, the model needs {:?}",
                path.display(),
                p.name,
                t.shape(),
                want
            ));
        }
        let values: Vec<f32> = match t.dtype() {
            Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F64 => {
                t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()
            }
            // PyTorch keeps batch norm's `num_batches_tracked` in int64.
            Dtype::I64 => {
                t.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()
            }
            other => {
                return Err(format!("{}: `{}` is {other:?}; hoyer reads F32, F64 and I64", path.display(), p.name))
            }
        };
        check_values(path, model, p, &values)?;
        out.push((p.name.clone(), values));
    }
    Ok(out)
}

/// That `values` can be `p` (its layer says: a batch-norm variance is never negative).
fn check_values(path: &Path, model: &Model, p: &hoyer_front::program::Param, values: &[f32]) -> Result<(), String> {
    model.nodes[p.node]
        .layer
        .check_values(p.suffix, values)
        .map_err(|e| format!("{}: `{}` {e}", path.display(), p.name))
}

/// Where a run is in its training plan: the next optimizer step starts at batch `batch` of
/// epoch `epoch` (both from 0) of plan step `plan_step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub plan_step: usize,
    pub epoch: u64,
    pub batch: u64,
    /// Optimizer steps taken in the current phase (Adam's bias correction, gradual pruning).
    pub phase_steps: u64,
    pub global_step: u64,
}

/// Everything a run needs to continue exactly where it stopped.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub position: Position,
    pub seed: u64,
    pub params: Tensors,
    pub masks: Tensors,
    /// Optimizer state by step input name (`PARAM.STATE`); empty between phases.
    pub states: Tensors,
    /// The epoch so far, when the checkpoint is inside one: summed loss, summed penalty, and
    /// steps, so that the resumed epoch's line averages the whole epoch.
    pub epoch_sums: (f64, f64, u64),
}

/// Named float32 tensors, in order.
pub type Tensors = Vec<(String, Vec<f32>)>;

pub const CHECKPOINT: &str = "checkpoint.safetensors";

pub fn save_checkpoint(path: &Path, model: &Model, c: &Checkpoint) -> Result<(), RunError> {
    let mut tensors: Vec<(String, Vec<u64>, &[f32])> = Vec::new();
    for (n, v) in &c.params {
        tensors.push((format!("param/{n}"), shape_of(model, n, v), v));
    }
    for (n, v) in &c.masks {
        tensors.push((format!("mask/{n}"), shape_of(model, n, v), v));
    }
    for (n, v) in &c.states {
        let param = model.params.iter().find(|p| n.starts_with(&format!("{}.", p.name)));
        tensors.push((format!("state/{n}"), param.map_or_else(|| vec![v.len() as u64], |p| p.shape.clone()), v));
    }
    let p = c.position;
    let meta = [
        ("format", "hoyer-checkpoint-1".to_string()),
        ("plan_step", p.plan_step.to_string()),
        ("epoch", p.epoch.to_string()),
        ("batch", p.batch.to_string()),
        ("phase_steps", p.phase_steps.to_string()),
        ("global_step", p.global_step.to_string()),
        ("seed", c.seed.to_string()),
        ("epoch_loss_sum", c.epoch_sums.0.to_string()),
        ("epoch_penalty_sum", c.epoch_sums.1.to_string()),
        ("epoch_steps", c.epoch_sums.2.to_string()),
    ];
    write_atomically(path, &encode(&tensors, &meta))
}

pub fn load_checkpoint(path: &Path, model: &Model) -> Result<Checkpoint, String> {
    load_checkpoint_bytes(path, &read_file(path)?, model)
}

/// As `load_checkpoint`, from the file's bytes (`path` names it in messages).
pub fn load_checkpoint_bytes(path: &Path, bytes: &[u8], model: &Model) -> Result<Checkpoint, String> {
    let bad = |e: safetensors::SafeTensorError| format!("{} is not a safetensors file: {e}", path.display());
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let info = meta.metadata().clone().unwrap_or_default();
    if info.get("format").map(String::as_str) != Some("hoyer-checkpoint-1") {
        return Err(format!("{} is not a hoyer checkpoint", path.display()));
    }
    let num = |k: &str| -> Result<u64, String> {
        info.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{}: checkpoint metadata lacks `{k}`", path.display()))
    };
    let position = Position {
        plan_step: num("plan_step")? as usize,
        epoch: num("epoch")?,
        batch: num("batch")?,
        phase_steps: num("phase_steps")?,
        global_step: num("global_step")?,
    };
    let read = |name: &str| -> Result<Vec<f32>, String> {
        let t = st.tensor(name).map_err(|_| format!("{}: the checkpoint has no `{name}`", path.display()))?;
        if t.dtype() != Dtype::F32 {
            return Err(format!("{}: `{name}` is {:?}; a hoyer checkpoint holds F32", path.display(), t.dtype()));
        }
        let v: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!("{}: `{name}` holds {} at element {bad}", path.display(), v[bad]));
        }
        Ok(v)
    };
    let (mut params, mut masks) = (Vec::new(), Vec::new());
    for p in &model.params {
        let name = format!("param/{}", p.name);
        let v = read(&name)?;
        let shape: Vec<u64> =
            st.tensor(&name).map(|t| t.shape().iter().map(|&d| d as u64).collect()).unwrap_or_default();
        if shape != p.shape {
            return Err(format!("{}: `{}` has shape {shape:?}, the model needs {:?}", path.display(), p.name, p.shape));
        }
        check_values(path, model, p, &v)?;
        params.push((p.name.clone(), v));
        let m = read(&format!("mask/{}", p.name))?;
        if m.len() as u64 != p.numel() || m.iter().any(|&x| x != 0.0 && x != 1.0) {
            return Err(format!(
                "{}: the mask of `{}` has {} values, not {} zeros and ones",
                path.display(),
                p.name,
                m.len(),
                p.numel()
            ));
        }
        masks.push((p.name.clone(), m));
    }
    let mut names: Vec<&str> = st.names().into_iter().filter(|n| n.starts_with("state/")).collect();
    names.sort();
    let mut states = Vec::new();
    for n in names {
        let name = &n["state/".len()..];
        let param = model.params.iter().find(|p| name.starts_with(&format!("{}.", p.name)));
        let v = read(n)?;
        match param {
            Some(p) if v.len() as u64 == p.numel() => states.push((name.to_string(), v)),
            _ => {
                return Err(format!(
                    "{}: optimizer state `{name}` fits no parameter of model `{}`",
                    path.display(),
                    model.name
                ))
            }
        }
    }
    // Checkpoints from before these were recorded resume with an empty epoch.
    let real = |k: &str| info.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let epoch_sums = (real("epoch_loss_sum"), real("epoch_penalty_sum"), num("epoch_steps").unwrap_or(0));
    Ok(Checkpoint { position, seed: num("seed")?, params, masks, states, epoch_sums })
}

//! Parameters as safetensors files, named as in the spec, in PyTorch layouts, so that
//! `model.load_state_dict(safetensors.torch.load_file(path))` works for a module with the same
//! layer names. Files are written to a temporary name and renamed, so a crash never leaves a
//! half-written checkpoint.

use hoyer_compiler::program::Model;
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

pub fn save(
    path: &Path,
    model: &Model,
    params: &[(String, Vec<f32>)],
    metadata: &[(&str, String)],
) -> Result<(), String> {
    std::fs::write(partial(path), encode(model, params, metadata))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::fs::rename(partial(path), path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn partial(path: &Path) -> std::path::PathBuf {
    path.with_extension("safetensors.partial")
}

/// The safetensors encoding: an 8-byte little-endian header length, a JSON header (keys
/// sorted, so equal parameters give equal files), padded with spaces to 8 bytes, then the
/// tensors' bytes in order.
pub fn encode(model: &Model, params: &[(String, Vec<f32>)], metadata: &[(&str, String)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.to_string(), v.clone().into())).collect();
    header.insert("__metadata__".into(), meta.into());
    let mut offset = 0usize;
    for (name, v) in params {
        let shape: Vec<u64> = model.param(name).map_or_else(|| vec![v.len() as u64], |p| p.shape.clone());
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
    for (_, v) in params {
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    out
}

/// Loads every parameter of `model` from `path`; names and shapes must match.
pub fn load(path: &Path, model: &Model) -> Result<Vec<(String, Vec<f32>)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| format!("{} is not a safetensors file: {e}", path.display()))?;
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
            other => return Err(format!("{}: `{}` is {other:?}; hoyer reads F32 and F64", path.display(), p.name)),
        };
        out.push((p.name.clone(), values));
    }
    Ok(out)
}

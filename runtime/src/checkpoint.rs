//! Parameters as safetensors files, named as in the spec, in PyTorch layouts, so that
//! `model.load_state_dict(safetensors.torch.load_file(path))` works for a module with the same
//! layer names. Files are written to a temporary name and renamed, so a crash never leaves a
//! half-written checkpoint.

use hoyer_compiler::program::Model;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

pub fn save(
    path: &Path,
    model: &Model,
    params: &[(String, Vec<f32>)],
    metadata: HashMap<String, String>,
) -> Result<(), String> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = params
        .iter()
        .map(|(name, v)| {
            let shape = model
                .param(name)
                .map(|p| p.shape.iter().map(|&d| d as usize).collect())
                .unwrap_or_else(|| vec![v.len()]);
            (name.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), shape)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, s)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot encode the checkpoint: {e}"))?;
    let data =
        safetensors::serialize(views, Some(metadata)).map_err(|e| format!("cannot encode the checkpoint: {e}"))?;
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, data).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
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

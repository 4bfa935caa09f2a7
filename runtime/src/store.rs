//! The tensor store: every tensor a run owns, addressed by handle.
//!
//! Parameters, masks, optimizer state, the resident data set, per-step scalars (learning
//! rate, bias corrections, where the batch starts) and the running loss sums live here for
//! the whole run. Compiled programs bind their buffers to these tensors once, when they are
//! compiled, so a step is a fixed sequence of kernel launches over fixed addresses; the step
//! for a smaller last batch and the evaluation programs bind the same parameter tensors, so
//! switching between them copies nothing. The host reads a tensor only when it needs it
//! (`read`): at a report, a prune, a checkpoint.
//!
//! Tensors are allocated once and never move or shrink while the store lives (a compiled
//! program holds their addresses); the memory is host memory today, and the CUDA back end
//! will keep the same handles over device memory.

use crate::error::RunError;
use hoyer_compiler::codes::Code;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u32);

struct Tensor {
    name: String,
    shape: Vec<usize>,
    data: Box<[f32]>,
}

pub struct Store {
    /// Distinguishes stores, so that a program compiled against one never runs on another.
    id: u64,
    tensors: Vec<Tensor>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Store { id: NEXT.fetch_add(1, Ordering::Relaxed), tensors: Vec::new() }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// A new zero-filled tensor. Names label tensors for messages and lookups; tensors a
    /// program keeps to itself (a batch) may share a name with another program's.
    pub fn alloc(&mut self, name: &str, shape: &[usize]) -> Result<TensorId, RunError> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let n = n.ok_or_else(|| RunError::new(Code::OutOfMemory, format!("tensor `{name}` {shape:?} is too large")))?;
        let mut data = Vec::new();
        data.try_reserve_exact(n).map_err(|_| {
            RunError::new(
                Code::OutOfMemory,
                format!("out of memory for tensor `{name}` {shape:?} ({} MB)", (n * 4) >> 20),
            )
            .help("use a smaller batch or data set")
        })?;
        data.resize(n, 0.0);
        self.tensors.push(Tensor { name: name.to_string(), shape: shape.to_vec(), data: data.into_boxed_slice() });
        Ok(TensorId(self.tensors.len() as u32 - 1))
    }

    /// The tensor named `name` (the first of that name), created zero-filled if there is none.
    /// An existing tensor must have `shape`.
    pub fn shared(&mut self, name: &str, shape: &[usize]) -> Result<TensorId, RunError> {
        match self.find(name) {
            Some(id) if self.shape(id) == shape => Ok(id),
            Some(id) => Err(RunError::new(
                Code::Internal,
                format!("tensor `{name}` is {:?}, a program needs {shape:?}", self.shape(id)),
            )),
            None => self.alloc(name, shape),
        }
    }

    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().position(|t| t.name == name).map(|i| TensorId(i as u32))
    }

    pub fn name(&self, id: TensorId) -> &str {
        &self.tensors[id.0 as usize].name
    }

    pub fn shape(&self, id: TensorId) -> &[usize] {
        &self.tensors[id.0 as usize].shape
    }

    pub fn len(&self, id: TensorId) -> usize {
        self.tensors[id.0 as usize].data.len()
    }

    /// Copies `data` into the tensor.
    pub fn write(&mut self, id: TensorId, data: &[f32]) -> Result<(), RunError> {
        let t = &mut self.tensors[id.0 as usize];
        if t.data.len() != data.len() {
            return Err(RunError::new(
                Code::Internal,
                format!("tensor `{}` holds {} values, given {}", t.name, t.data.len(), data.len()),
            ));
        }
        t.data.copy_from_slice(data);
        Ok(())
    }

    pub fn set_scalar(&mut self, id: TensorId, value: f32) -> Result<(), RunError> {
        self.write(id, &[value])
    }

    pub fn fill(&mut self, id: TensorId, value: f32) {
        self.tensors[id.0 as usize].data.fill(value);
    }

    /// The tensor's values, for the host to read.
    pub fn read(&self, id: TensorId) -> &[f32] {
        &self.tensors[id.0 as usize].data
    }

    pub fn scalar(&self, id: TensorId) -> f32 {
        self.read(id).first().copied().unwrap_or(f32::NAN)
    }

    /// The address of the tensor's first element, for compiled programs. It stays valid while
    /// the store lives: tensors never move.
    pub(crate) fn address(&mut self, id: TensorId) -> *mut f32 {
        self.tensors[id.0 as usize].data.as_mut_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_keep_their_addresses_and_shapes() {
        let mut s = Store::new();
        let a = s.alloc("a", &[2, 3]).unwrap();
        let p = s.address(a);
        for i in 0..100 {
            s.alloc(&format!("t{i}"), &[1000]).unwrap();
        }
        assert_eq!(s.address(a), p, "a tensor moved when others were added");
        assert_eq!(s.shared("a", &[2, 3]).unwrap(), a);
        assert!(s.shared("a", &[6]).is_err());
        s.write(a, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(s.read(a)[5], 6.0);
        assert!(s.write(a, &[1.0]).is_err());
        assert!(s.alloc("huge", &[usize::MAX, 2]).is_err());
    }
}

//! Data sets resident in the store, and the batch gather that feeds a step from them.
//!
//! A split (train or test) is uploaded once: its samples, its labels, and an order of the
//! samples (the epoch's shuffle, uploaded once per epoch). A batch is then one scalar, where
//! it starts in that order; a gather kernel picks the rows into the step's batch tensors.

use crate::backend::{Backend, Bindings, Executable};
use crate::data::Split;
use crate::error::RunError;
use crate::store::{Store, TensorId};
use hoyer_compiler::lower;
use hoyer_compiler::pipeline;

pub struct Resident {
    pub x: TensorId,
    pub y: TensorId,
    pub order: TensorId,
    pub start: TensorId,
    pub rows: usize,
    /// The shape of one sample.
    pub sample: Vec<usize>,
}

impl Resident {
    /// Uploads `split` as tensors `NAME.x`, `NAME.y`, `NAME.order` (the identity order) and
    /// `NAME.start`.
    pub fn upload(store: &mut Store, name: &str, split: &Split, sample: &[usize]) -> Result<Resident, RunError> {
        let rows = split.len();
        let x_shape: Vec<usize> = std::iter::once(rows).chain(sample.iter().copied()).collect();
        let x = store.alloc(&format!("{name}.x"), &x_shape)?;
        store.write(x, &split.x)?;
        let y = store.alloc(&format!("{name}.y"), &[rows])?;
        let labels: Vec<f32> = split.y.iter().map(|&c| c as f32).collect();
        store.write(y, &labels)?;
        let order = store.alloc(&format!("{name}.order"), &[rows])?;
        let identity: Vec<f32> = (0..rows).map(|i| i as f32).collect();
        store.write(order, &identity)?;
        let start = store.alloc(&format!("{name}.start"), &[])?;
        Ok(Resident { x, y, order, start, rows, sample: sample.to_vec() })
    }

    /// The order of the samples for the next batches (an epoch's shuffle).
    pub fn set_order(&self, store: &mut Store, order: &[usize]) -> Result<(), RunError> {
        let v: Vec<f32> = order.iter().map(|&i| i as f32).collect();
        store.write(self.order, &v)
    }

    /// The next batch starts at `start` in the order.
    pub fn set_start(&self, store: &mut Store, start: usize) -> Result<(), RunError> {
        store.set_scalar(self.start, start as f32)
    }

    /// The program that gathers `batch` samples into the `x` and `labels` tensors of `into`.
    pub fn gather(
        &self,
        backend: &dyn Backend,
        store: &mut Store,
        batch: usize,
        into: &dyn Executable,
    ) -> Result<Box<dyn Executable>, RunError> {
        let planned = pipeline::gather(self.rows, &self.sample, batch, &backend.options())?;
        let mut bind = Bindings::new();
        bind.insert(lower::TABLE.into(), self.x);
        bind.insert(lower::TABLE_LABELS.into(), self.y);
        bind.insert(lower::ORDER.into(), self.order);
        bind.insert(lower::START.into(), self.start);
        for name in [lower::DATA, lower::LABELS] {
            if let Some(t) = into.tensor(name) {
                bind.insert(name.into(), t);
            }
        }
        backend.compile(&planned, store, &bind)
    }
}

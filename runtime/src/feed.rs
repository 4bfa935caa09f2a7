//! Data sets resident in the store, and the batch gather that feeds a step from them.
//!
//! A split (train or test) is uploaded once: its samples, its labels, and an order of the
//! samples (the epoch's shuffle, uploaded once per epoch). A batch is then one scalar, where
//! it starts in that order; a gather kernel picks the rows into the step's batch tensors.

use crate::backend::{Backend, Bindings, Executable};
use crate::data::Rng;
use crate::data::Split;
use crate::error::RunError;
use crate::store::{Store, TensorId};
use hoyer_compiler::graph::lower;
use hoyer_compiler::pipeline;

pub struct Resident {
    pub x: TensorId,
    pub y: TensorId,
    pub order: TensorId,
    pub start: TensorId,
    pub rows: usize,
    /// The shape of one sample.
    pub sample: Vec<usize>,
    /// The training set's augmentation and its per-sample tables (offsets, flips).
    augment: Option<(lower::Augmentation, [TensorId; 3])>,
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
        Ok(Resident { x, y, order, start, rows, sample: sample.to_vec(), augment: None })
    }

    /// Gathers through `a` from now on; `draw` sets each epoch's offsets and flips.
    pub fn augment(&mut self, store: &mut Store, a: lower::Augmentation) -> Result<(), RunError> {
        let mut tables = [self.start; 3];
        for (t, name) in tables.iter_mut().zip([lower::AUG_DY, lower::AUG_DX, lower::AUG_FLIP]) {
            *t = store.alloc(name, &[self.rows])?;
            store.fill(*t, 0.0);
        }
        self.augment = Some((a, tables));
        Ok(())
    }

    /// New offsets (0 to 2 · padding, so the crop moves up to `padding` either way) and
    /// flips (one in two) for every sample, from `rng`.
    pub fn draw(&self, store: &mut Store, rng: &mut Rng) -> Result<(), RunError> {
        let Some((a, [dy, dx, flip])) = self.augment else { return Ok(()) };
        let span = 2 * a.padding as u64 + 1;
        let mut values = [vec![0f32; self.rows], vec![0f32; self.rows], vec![0f32; self.rows]];
        for i in 0..self.rows {
            for (k, v) in values.iter_mut().enumerate() {
                v[i] = match k {
                    2 if !a.flip => 0.0,
                    2 => rng.below(2) as f32,
                    _ => rng.below(span) as f32,
                };
            }
        }
        for (t, v) in [dy, dx, flip].into_iter().zip(values) {
            store.write(t, &v)?;
        }
        Ok(())
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
        let planned = pipeline::gather(self.rows, &self.sample, batch, self.augment.map(|a| a.0), &backend.options())?;
        let mut bind = Bindings::new();
        if let Some((_, tables)) = self.augment {
            for (t, name) in tables.into_iter().zip([lower::AUG_DY, lower::AUG_DX, lower::AUG_FLIP]) {
                bind.insert(name.into(), t);
            }
        }
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

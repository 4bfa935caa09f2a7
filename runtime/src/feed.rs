//! Data sets resident in the store, and the batch gather that feeds a step from them.
//!
//! A split (train or test) is uploaded once: its samples, its labels, and an order of the
//! samples (the epoch's shuffle, uploaded once per epoch). A batch is then one scalar, where
//! it starts in that order; a gather kernel picks the rows into the step's batch tensors.

use crate::backend::{Backend, Bindings, Executable};
use crate::data::Rng;
use crate::data::Split;
use crate::error::RunError;
use crate::plans::Plans;
use crate::store::{Store, TensorId};
use hoyer_compiler::graph::lower;
use hoyer_ir::{Augment, Dtype, Role, Scalar};

pub struct Resident {
    pub x: TensorId,
    pub y: TensorId,
    pub order: TensorId,
    pub start: TensorId,
    pub rows: usize,
    /// Labels per sample: 1, or a text window's next bytes.
    pub targets: usize,
    /// The shape of one sample, and the type of its elements (f32 values, or i32 token ids).
    pub sample: Vec<usize>,
    pub dtype: Dtype,
    /// The training set's augmentation and its per-sample tables (offsets, flips).
    augment: Option<(lower::Augmentation, [TensorId; 3])>,
}

const AUGMENT: [Augment; 3] = [Augment::Dy, Augment::Dx, Augment::Flip];

impl Resident {
    /// Uploads `split` as tensors `NAME.x` (of `dtype`: token ids are whole numbers in the
    /// split), `NAME.y`, `NAME.order` (the identity order) and `NAME.start`.
    pub fn upload(
        store: &mut Store,
        name: &str,
        split: &Split,
        sample: &[usize],
        dtype: Dtype,
    ) -> Result<Resident, RunError> {
        let rows = split.len();
        let x_shape: Vec<usize> = std::iter::once(rows).chain(sample.iter().copied()).collect();
        let x = store.alloc(&format!("{name}.x"), &x_shape, dtype)?;
        match dtype {
            Dtype::F32 => store.write(x, &split.x)?,
            Dtype::I32 => store.write_i32(x, &split.x.iter().map(|&v| v as i32).collect::<Vec<_>>())?,
        }
        let y_shape = if split.targets > 1 { vec![rows, split.targets] } else { vec![rows] };
        let y = store.alloc(&format!("{name}.y"), &y_shape, Dtype::I32)?;
        store.write_i32(y, &split.y.iter().map(|&c| c as i32).collect::<Vec<_>>())?;
        let order = store.alloc(&format!("{name}.order"), &[rows], Dtype::I32)?;
        store.write_i32(order, &(0..rows as i32).collect::<Vec<_>>())?;
        let start = store.alloc(&format!("{name}.start"), &[], Dtype::F32)?;
        Ok(Resident { x, y, order, start, rows, targets: split.targets, sample: sample.to_vec(), dtype, augment: None })
    }

    /// Gathers through `a` from now on; `draw` sets each epoch's offsets and flips.
    pub fn augment(&mut self, store: &mut Store, a: lower::Augmentation) -> Result<(), RunError> {
        let mut tables = [self.start; 3];
        for (t, which) in tables.iter_mut().zip(AUGMENT) {
            *t = store.alloc(&Role::Augment(which).to_string(), &[self.rows], Dtype::F32)?;
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
        let v: Vec<i32> = order.iter().map(|&i| i as i32).collect();
        store.write_i32(self.order, &v)
    }

    /// The next batch starts at `start` in the order.
    pub fn set_start(&self, store: &mut Store, start: usize) -> Result<(), RunError> {
        store.set_scalar(self.start, start as f32)
    }

    /// The program that gathers `batch` samples into the batch and labels tensors of `into`.
    pub fn gather(
        &self,
        plans: &Plans,
        backend: &dyn Backend,
        store: &mut Store,
        batch: usize,
        into: &dyn Executable,
    ) -> Result<Box<dyn Executable>, RunError> {
        let planned =
            plans.gather(self.rows, &self.sample, self.dtype, self.targets, batch, self.augment.map(|a| a.0))?;
        let mut bind = Bindings::new();
        if let Some((_, tables)) = self.augment {
            for (t, which) in tables.into_iter().zip(AUGMENT) {
                bind.insert(Role::Augment(which), t);
            }
        }
        bind.insert(Role::Table, self.x);
        bind.insert(Role::TableLabels, self.y);
        bind.insert(Role::Order, self.order);
        bind.insert(Role::Scalar(Scalar::Start), self.start);
        for role in [Role::Data, Role::Labels] {
            if let Some(t) = into.tensor(&role) {
                bind.insert(role, t);
            }
        }
        backend.compile(&planned, store, &bind)
    }
}

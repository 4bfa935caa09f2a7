//! Test accuracy from the resident test set, with the parameters where they are (the same
//! store tensors the steps update): per batch, a gather and the forward pass, and the
//! logits read back for the arg-max (the first maximum, as `torch.argmax`).

use crate::backend::{Backend, Bindings, Executable};
use crate::error::RunError;
use crate::feed::Resident;
use crate::plans::Plans;
use crate::store::{Store, TensorId};
use hoyer_front::codes::Code;
use hoyer_front::program::Model;
use hoyer_ir::{Output, Role};
use std::collections::HashMap;

/// The forward pass per batch size, shared by every split evaluated (test, validation), and
/// per split (by its table) and batch size the gather that feeds it.
pub struct Evaluator {
    batch: usize,
    forwards: HashMap<usize, Box<dyn Executable>>,
    gathers: HashMap<(TensorId, usize), Box<dyn Executable>>,
}

impl Evaluator {
    pub fn new(batch: usize) -> Evaluator {
        Evaluator { batch, forwards: HashMap::new(), gathers: HashMap::new() }
    }

    /// The fraction of `test` whose largest logit is at its label (`labels` on the host).
    pub fn accuracy(
        &mut self,
        plans: &Plans,
        backend: &dyn Backend,
        store: &mut Store,
        model: &Model,
        test: &Resident,
        labels: &[u32],
    ) -> Result<f64, RunError> {
        let n = test.rows;
        let mut correct = 0usize;
        for start in (0..n).step_by(self.batch.max(1)) {
            let size = self.batch.min(n - start);
            if let std::collections::hash_map::Entry::Vacant(e) = self.forwards.entry(size) {
                let planned = plans.eval(model, size)?;
                let mut bind = Bindings::new();
                for p in &model.params {
                    bind.insert(p.role(), store.shared_f32(&p.role(), &p.dims())?);
                }
                e.insert(backend.compile(&planned, store, &bind)?);
            }
            let forward = self.forwards.get_mut(&size).expect("compiled above");
            if let std::collections::hash_map::Entry::Vacant(e) = self.gathers.entry((test.x, size)) {
                e.insert(test.gather(plans, backend, store, size, forward.as_ref())?);
            }
            let gather = self.gathers.get_mut(&(test.x, size)).expect("compiled above");
            test.set_start(store, start)?;
            gather.run(store)?;
            forward.run(store)?;
            let logits = forward
                .tensor(&Role::Output(Output::Logits))
                .ok_or_else(|| RunError::new(Code::Internal, "no logits"))?;
            let logits = store.read(logits)?;
            let classes = logits.len() / size;
            for (i, row) in logits.chunks(classes).enumerate() {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] || (v.is_nan() && !row[best].is_nan()) {
                        best = j;
                    }
                }
                if best as u32 == labels[start + i] {
                    correct += 1;
                }
            }
        }
        Ok(correct as f64 / n.max(1) as f64)
    }
}

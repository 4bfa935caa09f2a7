//! Test accuracy (and the mean cross-entropy) from a resident split, with the parameters
//! where they are (the same store tensors the steps update): per batch, a gather and the
//! forward pass, and the logits read back for the arg-max (the first maximum, as
//! `torch.argmax`) and the loss.

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

    /// The fraction of `test` whose largest logit is at its label (`labels` on the host),
    /// and the mean cross-entropy (evaluation mode, as PyTorch's `model.eval()`), the loss
    /// in float64 from the logits read back.
    pub fn evaluate(
        &mut self,
        plans: &Plans,
        backend: &dyn Backend,
        store: &mut Store,
        model: &Model,
        test: &Resident,
        labels: &[u32],
    ) -> Result<Evaluation, RunError> {
        let n = test.rows;
        let mut correct = 0usize;
        let mut loss = 0.0f64;
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
            // One row of scores per sample, or per position of a text window.
            let per = test.targets.max(1);
            let classes = logits.len() / (size * per);
            for (i, row) in logits.chunks(classes).enumerate() {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] || (v.is_nan() && !row[best].is_nan()) {
                        best = j;
                    }
                }
                let label = labels[start * per + i] as usize;
                if best == label {
                    correct += 1;
                }
                // −log softmax at the label, with the maximum subtracted.
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
                loss += max + sum.ln() - row.get(label).map_or(f64::NAN, |&v| v as f64);
            }
        }
        let scored = (n * test.targets.max(1)).max(1) as f64;
        Ok(Evaluation { accuracy: correct as f64 / scored, loss: loss / scored })
    }
}

/// What an evaluation of a split gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub accuracy: f64,
    /// Mean cross-entropy per sample (per position, for text: in nats per byte).
    pub loss: f64,
}

//! The masks of a run, with one owner.
//!
//! A mask is 1 where its parameter's weight trains and 0 where it is pruned (a step with
//! masks holds those weights at exactly zero). The owner holds every mask of the run and
//! changes them in both directions: `replace` (a prune's or a shrink's result) and `regrow`
//! (0 → 1 at given elements: the weight starts at zero and its optimizer state afresh, as a
//! new connection's would, which dynamic sparse training needs). Masks reach the step
//! through the store, the step's memory on the CPU or the GPU alike; `regrow` changes the
//! mask, the weight and the optimizer state there together.

use crate::error::RunError;
use crate::stepper::Stepper;
use crate::store::Store;
use hoyer_front::codes::Code;
use hoyer_front::program::Model;
use hoyer_ir::Role;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Masks {
    masks: HashMap<String, Vec<f32>>,
}

impl Masks {
    /// Every weight of `params` trains.
    pub fn ones(params: &[(String, Vec<f32>)]) -> Masks {
        Masks { masks: params.iter().map(|(n, v)| (n.clone(), vec![1.0; v.len()])).collect() }
    }

    /// Masks as a checkpoint holds them.
    pub fn from_tensors(masks: impl IntoIterator<Item = (String, Vec<f32>)>) -> Masks {
        Masks { masks: masks.into_iter().collect() }
    }

    /// Parameter `name`'s mask.
    pub fn get(&self, name: &str) -> &[f32] {
        self.masks.get(name).map_or(&[], Vec::as_slice)
    }

    /// Sets parameter `name`'s mask (after a prune, or cut by a shrink).
    pub fn replace(&mut self, name: &str, mask: Vec<f32>) {
        self.masks.insert(name.to_string(), mask);
    }

    /// Writes parameter `name`'s mask into the store, where the step reads it.
    pub fn write(&self, store: &mut Store, model: &Model, name: &str) -> Result<(), RunError> {
        let p = model.param(name).ok_or_else(|| format!("no parameter `{name}`"))?;
        let id = store.shared_f32(&Role::Mask(name.to_string()), &p.dims())?;
        store.write(id, self.get(name))
    }

    /// Lets the pruned weights of `name` at `indices` (elements of the flattened tensor)
    /// train again: their mask becomes 1, the weight 0 and its optimizer state 0, in the
    /// store; elements that already train are left as they are.
    pub fn regrow(
        &mut self,
        store: &mut Store,
        model: &Model,
        stepper: &mut Stepper,
        name: &str,
        indices: &[usize],
    ) -> Result<(), RunError> {
        let mask = self.masks.get_mut(name).ok_or_else(|| format!("no mask for `{name}`"))?;
        if let Some(&i) = indices.iter().find(|&&i| i >= mask.len()) {
            return Err(RunError::new(
                Code::Internal,
                format!("index {i} is outside `{name}` ({} elements)", mask.len()),
            ));
        }
        let grown: Vec<usize> = indices.iter().copied().filter(|&i| mask[i] == 0.0).collect();
        grown.iter().for_each(|&i| mask[i] = 1.0);
        let p = model.param(name).ok_or_else(|| format!("no parameter `{name}`"))?;
        let weight = store.shared_f32(&p.role(), &p.dims())?;
        let mut w = store.read(weight)?.to_vec();
        grown.iter().for_each(|&i| w[i] = 0.0);
        store.write(weight, &w)?;
        stepper.reset_state(store, name, &grown)?;
        self.write(store, model, name)
    }
}

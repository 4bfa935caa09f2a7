//! Data sets in memory: samples as rows of `f32`, labels as class indices.

pub mod cifar;
pub mod idx;
pub mod load;
mod rng;
pub mod synthetic;
pub mod text;

pub use rng::Rng;

use hoyer_front::program::Normalize;

/// One split of a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `len() × features` values, row-major.
    pub x: Vec<f32>,
    /// `targets` class indices per sample: one class, or a text window's next bytes.
    pub y: Vec<u32>,
    pub targets: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len() / self.targets.max(1)
    }
    /// Sample `i`'s targets.
    pub fn targets_of(&self, i: usize) -> &[u32] {
        &self.y[i * self.targets..(i + 1) * self.targets]
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    pub fn sample(&self, i: usize, features: usize) -> &[f32] {
        &self.x[i * features..(i + 1) * features]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Values per sample (the product of the model's input shape).
    pub features: usize,
    pub classes: usize,
    pub train: Split,
    pub test: Split,
}

/// Samples of `features` bytes as model inputs: each value times `scale`, then normalized
/// (per channel where the spec lists one number per channel), computed in f64.
pub fn prepared(raw: &[u8], features: usize, scale: f64, normalize: Option<&Normalize>) -> Vec<f32> {
    raw.chunks(features.max(1))
        .flat_map(|sample| {
            sample.iter().enumerate().map(move |(i, &b)| {
                let v = b as f64 * scale;
                normalize.map_or(v, |n| n.apply(v, i, features)) as f32
            })
        })
        .collect()
}

/// As `prepared`, in place, for values already in float32 (generated data).
pub fn prepare(x: &mut [f32], features: usize, scale: f64, normalize: Option<&Normalize>) {
    for sample in x.chunks_mut(features.max(1)) {
        for (i, v) in sample.iter_mut().enumerate() {
            let s = *v as f64 * scale;
            *v = normalize.map_or(s, |n| n.apply(s, i, features)) as f32;
        }
    }
}

/// Moves `n` samples, chosen by `seed`, out of `train` into a validation split (both keep
/// the data set's order), so that recipes can be tuned without the test set.
pub fn hold_out(train: &mut Split, n: usize, features: usize, seed: u64) -> Split {
    let mut order: Vec<usize> = (0..train.len()).collect();
    Rng::new(seed ^ 0x0DA7_A5E7_5EED).shuffle(&mut order);
    let mut held = vec![false; train.len()];
    order[..n.min(order.len())].iter().for_each(|&i| held[i] = true);
    let targets = train.targets;
    let (mut kept, mut out) = (Split { x: vec![], y: vec![], targets }, Split { x: vec![], y: vec![], targets });
    for (i, &h) in held.iter().enumerate() {
        let to = if h { &mut out } else { &mut kept };
        to.x.extend_from_slice(train.sample(i, features));
        to.y.extend_from_slice(train.targets_of(i));
    }
    *train = kept;
    out
}

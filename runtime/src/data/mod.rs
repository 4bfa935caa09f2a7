//! Data sets in memory: samples as rows of `f32`, labels as class indices.

pub mod idx;
mod rng;
pub mod synthetic;

pub use rng::Rng;

/// One split of a classification data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `len() × features` values, row-major.
    pub x: Vec<f32>,
    /// One class index per sample.
    pub y: Vec<u32>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len()
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

//! The graph stage: from a checked program to the tensor IR of a training step, and the
//! passes over that IR before fusion.

pub mod autodiff;
pub mod lower;
pub mod passes;
pub mod step;

//! The hoyer runtime: data sets, buffers, executors, optimizers, pruning, phases,
//! checkpoints and reports. So far it holds the data sets.

pub mod data;

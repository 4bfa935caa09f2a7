//! The hoyer runtime: data sets, back ends, initialisation, schedules, pruning and the
//! training loop with its outputs.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod error;
pub mod init;
pub mod jit;
pub mod pair;
pub mod prune;
pub mod report;
pub mod schedule;
pub mod stepper;
pub mod train;

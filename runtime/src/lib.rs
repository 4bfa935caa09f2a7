//! The hoyer runtime: the tensor store, back ends (the reference interpreter and the CPU),
//! resident data and the batch gather, the training step, evaluation, schedules, pruning,
//! and the training loop with its outputs.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cpu;
pub mod cuda;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod feed;
pub mod files;
pub mod init;
pub mod masks;
pub mod memory;
pub mod plans;
pub mod provenance;
pub mod prune;
pub mod report;
pub mod schedule;
pub mod stepper;
pub mod store;
pub mod sweep;
pub mod train;

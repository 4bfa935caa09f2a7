//! The hoyer runtime: the tensor store (`store`), the programs of a run compiled once
//! (`plans`), back ends (the reference interpreter, `cpu`, `cuda`), data loaders (`data`),
//! resident data and the batch gather (`feed`), the training step (`stepper`), masks with one
//! owner (`masks`), evaluation, schedules, pruning, the training loop with its outputs
//! (`train`), checkpoints, reports, and sweeps with their scheduler (`sweep`).

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
pub mod messages;
pub mod plans;
pub mod plots;
pub mod provenance;
pub mod prune;
pub mod report;
pub mod schedule;
pub mod stepper;
pub mod store;
pub mod sweep;
pub mod train;

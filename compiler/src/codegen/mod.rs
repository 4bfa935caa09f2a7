//! Code generators: each takes the kernel IR.

pub mod cpu;
pub mod cuda;

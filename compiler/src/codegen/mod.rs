//! Code generators: each takes the kernel IR.

pub mod cpu;

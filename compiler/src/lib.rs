//! The hoyer compiler below the checker, in stages:
//!
//! - `graph`: a checked `Program` (hoyer-front) to the tensor IR (hoyer-ir): `lower` (the
//!   forward pass, loss and penalties), `autodiff` (the backward pass, one rule per
//!   primitive), `step` (the optimizer update: the whole training step as one graph), and
//!   `passes` (simplification, reduction splits, copies, recomputation).
//! - `kernel`: the kernel IR every code generator takes; `fusion` decides its kernels,
//!   `build` makes them, `passes` rewrite them, `validate` checks them.
//! - `codegen`: the kernel IR as Cranelift functions (CPU) or CUDA C.
//!
//! `pipeline` is the one entry from a graph to planned kernels; `shrink` is a model-to-model
//! pass (`then shrink`).

pub mod codegen;
pub mod error;
pub mod graph;
pub mod kernel;
pub mod pipeline;
pub mod shrink;

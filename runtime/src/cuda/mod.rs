//! The CUDA side of the runtime. For now: finding the device (`device`), NVRTC, which
//! compiles the CUDA C that `compiler::codegen::cuda` renders from the kernel IR, and the
//! cache of what it compiled (`cache`); the executor that launches it is the next step.
//! Everything is loaded at run time (cudarc's dynamic loading): the binary builds and starts
//! on machines without CUDA, and says what is missing when CUDA is asked for.

pub mod cache;
pub mod device;
pub mod nvrtc;
pub mod plan;

//! The CUDA side of the runtime. For now: finding the device (`device`), and NVRTC, which
//! compiles the CUDA C that `compiler::codegen::cuda` renders from the kernel IR (the executor
//! that launches it is the next step). Everything is loaded at run time (cudarc's dynamic loading): the binary builds
//! and starts on machines without CUDA, and says what is missing when CUDA is asked for.

pub mod device;
pub mod nvrtc;

//! The CUDA side of the runtime: finding the device (`device`), NVRTC, which compiles the
//! CUDA C that `compiler::codegen::cuda` renders from the kernel IR, the cache of what it
//! compiled (`cache`), a program as device operations (`plan`: pure host logic, tested
//! without a GPU), and the executor that runs them (`exec`). Everything is loaded at run
//! time (cudarc's dynamic loading): the binary builds and starts on machines without CUDA,
//! and says what is missing when CUDA is asked for.

pub mod cache;
pub mod device;
pub mod exec;
pub mod nvrtc;
pub mod plan;

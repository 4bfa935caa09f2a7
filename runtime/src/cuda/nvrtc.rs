//! NVRTC: CUDA C to a cubin for one GPU architecture, at run time.

use crate::error::RunError;
use cudarc::nvrtc::{result, sys};
use hoyer_front::codes::Code;
use std::ffi::CString;

/// Whether the NVRTC library can be loaded; the diagnostic says how to get it otherwise.
pub fn available() -> Result<(), RunError> {
    // SAFETY: only probes whether the shared library can be opened.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(RunError::new(Code::NoDevice, "the NVRTC library (libnvrtc.so.13) was not found").help(
            "install the CUDA 13 runtime compiler (e.g. `pip install nvidia-cuda-nvrtc==13.0.88`) and put its \
             lib folder (site-packages/nvidia/cu13/lib) on LD_LIBRARY_PATH",
        ))
    }
}

/// A successful compile: the cubin, and what NVRTC said (empty when it had nothing to say).
pub struct Cubin {
    pub image: Vec<u8>,
    pub log: String,
}

/// Why a compile failed: NVRTC's message and its log.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub log: String,
}

impl Failure {
    /// Whether NVRTC refused the architecture itself (a GPU newer than this NVRTC).
    pub fn unknown_architecture(&self) -> bool {
        self.message.contains("INVALID_OPTION") || self.log.contains("gpu-architecture")
    }

    /// As a run's error, with the source written to `source_path` and a way to reproduce it.
    pub fn into_error(self, source_path: &std::path::Path, arch: &str) -> RunError {
        RunError::new(
            Code::Internal,
            format!("NVRTC could not compile a generated kernel for {arch}: {}\n{}", self.message, self.log.trim_end()),
        )
        .help(format!(
            "this is a bug in hoyerc; the source is in {}; reproduce with `nvcc -arch={arch} -cubin {}` and report both",
            source_path.display(),
            source_path.display()
        ))
    }
}

fn text(chars: Vec<std::ffi::c_char>) -> String {
    let bytes: Vec<u8> = chars.into_iter().map(|c| c as u8).take_while(|&b| b != 0).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// NVRTC's options for `arch`: IEEE-exact, as the interpreter computes: no fast math, and no
/// `a * b + c` contracted into an FMA the kernel IR did not ask for (`--fmad=false`).
pub fn options(arch: &str) -> Vec<String> {
    vec![format!("--gpu-architecture={arch}"), "--std=c++17".to_string(), "--fmad=false".to_string()]
}

/// NVRTC's version (major, minor), where the library loads.
pub fn version() -> Option<(i32, i32)> {
    available().ok()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; the call writes two integers.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }.result().ok()?;
    Some((major, minor))
}

/// Compiles `source` to a cubin for `arch` (e.g. `sm_90`) with `options(arch)`.
pub fn compile(source: &str, name: &str, arch: &str) -> Result<Cubin, Failure> {
    let fail = |message: String, log: String| Failure { message, log };
    let src = CString::new(source).map_err(|_| fail("the source holds a NUL byte".into(), String::new()))?;
    let file = CString::new(name).map_err(|_| fail("the name holds a NUL byte".into(), String::new()))?;
    let prog = result::create_program(&src, Some(&file)).map_err(|e| fail(format!("{e:?}"), String::new()))?;
    let options = options(arch);
    // SAFETY: `prog` was created above and is destroyed once, below.
    let compiled = unsafe { result::compile_program(prog, &options) };
    let log = unsafe { result::get_program_log(prog) }.map(text).unwrap_or_default();
    let out = match compiled {
        Err(e) => Err(fail(format!("{e:?}"), log)),
        Ok(()) => {
            let mut size = 0usize;
            // SAFETY: as above; the buffer has the size NVRTC reports.
            let image = unsafe {
                sys::nvrtcGetCUBINSize(prog, &mut size).result().and_then(|()| {
                    let mut image = vec![0u8; size];
                    sys::nvrtcGetCUBIN(prog, image.as_mut_ptr().cast()).result().map(|()| image)
                })
            };
            image.map(|image| Cubin { image, log }).map_err(|e| fail(format!("{e:?}"), String::new()))
        }
    };
    // SAFETY: created above, not destroyed before.
    let _ = unsafe { result::destroy_program(prog) };
    out
}

//! Finding the CUDA device a run would use, and saying plainly why there is none. Every
//! library is loaded at run time: where the driver library is missing, nothing of CUDA is
//! touched (cudarc panics if asked to call into a library it could not load).

use crate::error::RunError;
use cudarc::driver::{result, sys};
use hoyer_front::codes::Code;

/// The GPU found (device 0).
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    /// Compute capability, e.g. (9, 0) for an H100.
    pub capability: (i32, i32),
    pub memory_bytes: usize,
}

impl Device {
    /// The NVRTC target for this device (`sm_90`).
    pub fn arch(&self) -> String {
        format!("sm_{}{}", self.capability.0, self.capability.1)
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {} GiB)", self.name, self.arch(), self.memory_bytes >> 30)
    }
}

/// Whether an NVIDIA driver library is installed (a machine with no GPU usually has none).
pub fn driver_present() -> bool {
    // SAFETY: only probes whether the shared library can be opened.
    unsafe { sys::is_culib_present() }
}

fn absent(what: impl Into<String>, help: &str) -> RunError {
    RunError::new(Code::NoDevice, what).help(help.to_string())
}

/// Device 0 with everything a CUDA run needs (driver, a device, NVRTC, cuBLAS), or the first
/// thing missing as an `E0708` diagnostic.
pub fn probe() -> Result<Device, RunError> {
    const ELSE: &str = "or train on the CPU with `--backend cpu` (what `--backend auto` does here)";
    if !driver_present() {
        return Err(absent(
            "no NVIDIA driver: the CUDA driver library (libcuda.so) was not found",
            &format!("install the NVIDIA driver (CUDA 13 needs driver 580 or newer), {ELSE}"),
        ));
    }
    result::init().map_err(|e| {
        absent(format!("the CUDA driver did not start: {e}"), &format!("check `nvidia-smi` on this machine, {ELSE}"))
    })?;
    let count =
        result::device::get_count().map_err(|e| absent(format!("the CUDA driver found no device: {e}"), ELSE))?;
    if count == 0 {
        return Err(absent("no CUDA device: the driver is installed but sees no GPU", ELSE));
    }
    let dev = result::device::get(0).map_err(|e| absent(format!("CUDA device 0 cannot be opened: {e}"), ELSE))?;
    let attribute = |a| {
        // SAFETY: `dev` came from `device::get`.
        unsafe { result::device::get_attribute(dev, a) }
            .map_err(|e| absent(format!("CUDA device 0 cannot be queried: {e}"), ELSE))
    };
    let major = attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let name = result::device::get_name(dev).unwrap_or_else(|_| "CUDA device 0".into());
    // SAFETY: `dev` came from `device::get`.
    let memory_bytes = unsafe { result::device::total_mem(dev) }.unwrap_or(0);
    super::nvrtc::available()?;
    // SAFETY: only probes whether the shared library can be opened.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(absent(
            "the cuBLAS library (libcublas.so.13) was not found",
            &format!(
                "install CUDA 13's cuBLAS (e.g. `pip install nvidia-cublas`) and put its lib folder on LD_LIBRARY_PATH, {ELSE}"
            ),
        ));
    }
    Ok(Device { name, capability: (major, minor), memory_bytes })
}

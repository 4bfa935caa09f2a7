//! The CUDA executor: a program's device plan (`plan`) on one GPU, through cudarc.
//!
//! One context and one stream per back end; every launch, product and copy goes on that
//! stream, in order, so nothing needs events. Kernels are compiled by NVRTC for the device's
//! own architecture at the first compile of a program, through the on-disk cache (`cache`).
//! Tensors live in device memory the store tracks (`Store::attach_device`): a run uploads what
//! the host changed, and marks what it wrote. The arena of temporaries is one allocation per
//! program. The first run launches each operation; the second is captured as a CUDA graph,
//! and every later run replays it (fixed addresses: the plan never changes them). Products go
//! to cuBLAS, which picks no algorithm that uses atomics by default, so a run gives the same
//! bits every time on one GPU.

use super::cache::KernelCache;
use super::device::Device;
use super::plan::{self, DeviceOp, Gemm};
use crate::backend::{bind_all, Backend, Bindings, Executable, KernelTime};
use crate::error::RunError;
use crate::store::{DeviceMemory, Store, TensorId};
use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    sys, CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg,
};
use hoyer_compiler::codegen::cuda;
use hoyer_compiler::kernel::{Access, Storage};
use hoyer_compiler::pipeline::{Options, Planned};
use hoyer_front::codes::Code;
use hoyer_ir::{Dtype, Role};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Turns a driver or cuBLAS failure into a run's error (out of memory its own code).
fn failed(what: &str, e: impl std::fmt::Debug) -> RunError {
    let text = format!("{e:?}");
    if text.contains("OUT_OF_MEMORY") || text.contains("ALLOC_FAILED") {
        RunError::new(Code::OutOfMemory, format!("out of GPU memory ({what})"))
            .help("use a smaller batch, or train on the CPU with `--backend cpu`")
    } else {
        RunError::new(Code::RunFailed, format!("CUDA failed ({what}): {text}"))
    }
}

/// The GPU's context, stream and cuBLAS handle, shared by the back end, its programs and the
/// store's device memory.
struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
}

pub struct Cuda {
    gpu: Arc<Gpu>,
    device: Device,
    cache: KernelCache,
}

impl Cuda {
    /// The back end on device 0 (found by `device::probe`, which says what is missing),
    /// keeping compiled kernels in `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Result<Cuda, RunError> {
        let device = super::device::probe()?;
        let ctx = CudaContext::new(0).map_err(|e| failed("opening device 0", e))?;
        // One stream, in order: cudarc's per-allocation events are not needed, and they
        // would be recorded into the captured graphs.
        // SAFETY: nothing is allocated yet.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| failed("creating a stream", e))?;
        let blas = CudaBlas::new(stream.clone()).map_err(|e| failed("starting cuBLAS", e))?;
        Ok(Cuda { gpu: Arc::new(Gpu { ctx, stream, blas }), device, cache: KernelCache::new(cache_dir) })
    }
}

impl Cuda {
    /// What the CUDA code generator wants of the pipeline (every GPU has FMA).
    pub fn pipeline_options() -> Options {
        Options { fma: true, ..Options::default() }
    }
}

/// Device memory for the store: cudarc allocations kept alive here, by address.
struct Memory {
    gpu: Arc<Gpu>,
    slices: Vec<CudaSlice<u8>>,
}

impl DeviceMemory for Memory {
    fn alloc(&mut self, name: &str, bytes: usize) -> Result<u64, RunError> {
        let slice =
            self.gpu.stream.alloc_zeros::<u8>(bytes.max(4)).map_err(|e| failed(&format!("allocating `{name}`"), e))?;
        let (address, _) = slice.device_ptr(&self.gpu.stream);
        self.slices.push(slice);
        Ok(address)
    }

    fn upload(&mut self, dst: u64, src: &[u8]) -> Result<(), RunError> {
        // SAFETY: `dst` is an allocation of at least `src.len()` values (the store's own).
        unsafe { cudarc::driver::result::memcpy_htod_async(dst, src, self.gpu.stream.cu_stream()) }
            .map_err(|e| failed("copying to the GPU", e))
    }

    fn download(&mut self, src: u64, dst: &mut [u8]) -> Result<(), RunError> {
        // SAFETY: as above; the stream is synchronized before `dst` is used.
        unsafe { cudarc::driver::result::memcpy_dtoh_async(dst, src, self.gpu.stream.cu_stream()) }
            .map_err(|e| failed("copying from the GPU", e))?;
        self.gpu.stream.synchronize().map_err(|e| failed("waiting for the GPU", e))
    }
}

/// A device operation with its addresses resolved.
enum Resolved {
    Launch { name: String, function: CudaFunction, grid: u32, block: u32, args: Vec<u64> },
    Gemm { g: Gemm, a: u64, b: u64, c: u64 },
}

impl Resolved {
    /// Its name and shape, as `hoyerc bench --kernels` prints them.
    fn label(&self) -> (String, String) {
        match self {
            Resolved::Launch { name, grid, block, .. } => (name.clone(), format!("<<<{grid}, {block}>>>")),
            Resolved::Gemm { g, .. } => {
                let t = |t: bool| if t { 'T' } else { 'N' };
                let batch = if g.batch > 1 { format!(" × {}", g.batch) } else { String::new() };
                ("sgemm".into(), format!("{}×{}×{} {}{}{batch}", g.m, g.n, g.k, t(g.transa), t(g.transb)))
            }
        }
    }
}

/// Per-operation timing (`hoyerc bench --kernels`): every operation between two events,
/// launched one by one, never as a graph.
struct Timing {
    events: Vec<CudaEvent>,
    total: Vec<std::time::Duration>,
}

struct CudaProgram {
    gpu: Arc<Gpu>,
    store: u64,
    ops: Vec<Resolved>,
    /// The store's tensors the program binds, and those it writes.
    bound: Vec<TensorId>,
    written: Vec<TensorId>,
    tensors: HashMap<Role, TensorId>,
    _arena: CudaSlice<f32>,
    runs: u64,
    graph: Option<CudaGraph>,
    timing: Option<Timing>,
}

impl Backend for Cuda {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn describe(&self) -> String {
        format!("cuda, {}", self.device)
    }

    fn options(&self) -> Options {
        Cuda::pipeline_options()
    }

    fn compile(&self, planned: &Planned, store: &mut Store, bind: &Bindings) -> Result<Box<dyn Executable>, RunError> {
        let p = &planned.program;
        let rendered = cuda::render(p).map_err(|e| RunError::new(Code::Internal, e.to_string()))?;
        let ops = plan::plan(p, &rendered.launches)?;
        let arch = self.device.arch();
        let (cubin, _) = self.cache.cubin(&rendered.source, "step.cu", &arch).map_err(|f| {
            if f.unknown_architecture() {
                return RunError::new(
                    Code::NoDevice,
                    format!("this NVRTC cannot compile for {} ({arch})", self.device),
                )
                .help("install an NVRTC that knows this GPU (CUDA 13.0 or newer), or train with `--backend cpu`");
            }
            let path = std::env::temp_dir().join(format!("hoyer-failed-{}.cu", std::process::id()));
            let _ = std::fs::write(&path, &rendered.source);
            f.into_error(&path, &arch)
        })?;
        let module = self
            .gpu
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin.image))
            .map_err(|e| failed("loading the compiled kernels", e))?;
        let mut functions: HashMap<String, CudaFunction> = HashMap::new();
        for op in &ops {
            if let DeviceOp::Launch { function, .. } = op {
                if !functions.contains_key(function) {
                    let f = module.load_function(function).map_err(|e| failed(&format!("finding {function}"), e))?;
                    functions.insert(function.clone(), f);
                }
            }
        }
        store.attach_device(Box::new(Memory { gpu: self.gpu.clone(), slices: Vec::new() }));
        let bound_roles: Vec<(Role, Vec<usize>, Dtype)> =
            p.buffers.iter().filter_map(|b| Some((b.role()?.clone(), b.shape.clone(), b.dtype))).collect();
        let tensors = bind_all(store, &bound_roles, bind)?;
        let arena =
            self.gpu.stream.alloc_zeros::<f32>(p.arena.max(1)).map_err(|e| failed("the step's scratch memory", e))?;
        let (arena_base, _) = arena.device_ptr(&self.gpu.stream);
        let mut address = Vec::with_capacity(p.buffers.len());
        for b in &p.buffers {
            address.push(match &b.storage {
                Storage::Bound(role) => store.device_address(tensors[role])?,
                Storage::Temp { offset } => arena_base + 4 * *offset as u64,
            });
        }
        let resolved: Vec<Resolved> = ops
            .into_iter()
            .map(|op| match op {
                DeviceOp::Launch { function, grid, block, args } => Resolved::Launch {
                    name: function.clone(),
                    function: functions[&function].clone(),
                    grid,
                    block,
                    args: args.iter().map(|&b| address[b]).collect(),
                },
                DeviceOp::Gemm(g) => Resolved::Gemm {
                    g,
                    a: address[g.a.buffer] + 4 * g.a.offset as u64,
                    b: address[g.b.buffer] + 4 * g.b.offset as u64,
                    c: address[g.c.buffer] + 4 * g.c.offset as u64,
                },
            })
            .collect();
        let mut written = Vec::new();
        for k in &p.kernels {
            for a in &k.args {
                let b = &p.buffers[a.buffer.index()];
                if let (Storage::Bound(role), true) = (&b.storage, a.access != Access::Read) {
                    written.push(tensors[role]);
                }
            }
        }
        written.sort();
        written.dedup();
        let mut bound: Vec<TensorId> = tensors.values().copied().collect();
        bound.sort();
        Ok(Box::new(CudaProgram {
            gpu: self.gpu.clone(),
            store: store.id(),
            ops: resolved,
            bound,
            written,
            tensors,
            _arena: arena,
            runs: 0,
            graph: None,
            timing: None,
        }))
    }
}

impl CudaProgram {
    /// Queues every operation on the stream (run, or captured into a graph); `events`, where
    /// given, are recorded before the first operation and after each.
    fn enqueue(&self, events: Option<&[CudaEvent]>) -> Result<(), RunError> {
        let stream = &self.gpu.stream;
        let mark = |i: usize| match events {
            Some(e) => e[i].record(stream).map_err(|e| failed("recording an event", e)),
            None => Ok(()),
        };
        mark(0)?;
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Resolved::Launch { function, grid, block, args, .. } => {
                    let mut launch = stream.launch_builder(function);
                    for a in args {
                        launch.arg(a);
                    }
                    let cfg = LaunchConfig { grid_dim: (*grid, 1, 1), block_dim: (*block, 1, 1), shared_mem_bytes: 0 };
                    // SAFETY: each argument is the device address of the buffer the kernel's
                    // parameter names, of the size the program declares (plan and compile).
                    unsafe { launch.launch(cfg) }.map_err(|e| failed("launching a kernel", e))?;
                }
                Resolved::Gemm { g, a, b, c } => {
                    let op = |t: bool| {
                        if t {
                            blas_sys::cublasOperation_t::CUBLAS_OP_T
                        } else {
                            blas_sys::cublasOperation_t::CUBLAS_OP_N
                        }
                    };
                    let (alpha, beta) = (1.0f32, 0.0f32);
                    // SAFETY: the operands lie inside their buffers (`plan::gemm` derived the
                    // leading dimensions from views the validator checked).
                    unsafe {
                        if g.batch > 1 {
                            blas::sgemm_strided_batched(
                                *self.gpu.blas.handle(),
                                op(g.transa),
                                op(g.transb),
                                g.m,
                                g.n,
                                g.k,
                                &alpha,
                                *a as *const f32,
                                g.a.ld,
                                g.a.stride,
                                *b as *const f32,
                                g.b.ld,
                                g.b.stride,
                                &beta,
                                *c as *mut f32,
                                g.c.ld,
                                g.c.stride,
                                g.batch,
                            )
                        } else {
                            blas::sgemm(
                                *self.gpu.blas.handle(),
                                op(g.transa),
                                op(g.transb),
                                g.m,
                                g.n,
                                g.k,
                                &alpha,
                                *a as *const f32,
                                g.a.ld,
                                *b as *const f32,
                                g.b.ld,
                                &beta,
                                *c as *mut f32,
                                g.c.ld,
                            )
                        }
                    }
                    .map_err(|e| failed("a cuBLAS product", e))?;
                }
            }
            mark(i + 1)?;
        }
        Ok(())
    }

    /// One run with every operation timed between events.
    fn run_timed(&mut self) -> Result<(), RunError> {
        self.enqueue(self.timing.as_ref().map(|t| t.events.as_slice()))?;
        self.gpu.stream.synchronize().map_err(|e| failed("waiting for the GPU", e))?;
        let Timing { events, total } = self.timing.as_mut().expect("timing");
        for (w, t) in events.windows(2).zip(total) {
            let ms = w[0].elapsed_ms(&w[1]).map_err(|e| failed("reading an event", e))?;
            *t += std::time::Duration::from_secs_f64(ms.max(0.0) as f64 / 1e3);
        }
        Ok(())
    }
}

impl Executable for CudaProgram {
    fn run(&mut self, store: &mut Store) -> Result<(), RunError> {
        if store.id() != self.store {
            return Err(RunError::new(Code::Internal, "a program ran on another store than it was compiled for"));
        }
        for &id in &self.bound {
            store.upload_if_changed(id)?;
        }
        match &self.graph {
            _ if self.timing.is_some() => self.run_timed()?,
            Some(graph) => graph.launch().map_err(|e| failed("replaying the step", e))?,
            // The first run launches one by one (and loads what it needs); the second is
            // captured, then replayed from then on.
            None if self.runs == 0 => self.enqueue(None)?,
            None => {
                let stream = &self.gpu.stream;
                stream
                    .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                    .map_err(|e| failed("capturing the step", e))?;
                let queued = self.enqueue(None);
                let graph = stream.end_capture(sys::CUgraphInstantiate_flags(0));
                queued?;
                let graph = graph.map_err(|e| failed("capturing the step", e))?;
                match graph {
                    Some(graph) => {
                        graph.launch().map_err(|e| failed("replaying the step", e))?;
                        self.graph = Some(graph);
                    }
                    None => self.enqueue(None)?,
                }
            }
        }
        self.runs += 1;
        for &id in &self.written {
            store.written_on_device(id);
        }
        Ok(())
    }

    fn tensor(&self, role: &Role) -> Option<TensorId> {
        self.tensors.get(role).copied()
    }

    fn time_kernels(&mut self) -> bool {
        let events = (0..=self.ops.len())
            .map(|_| self.gpu.ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT)))
            .collect::<Result<Vec<_>, _>>();
        match events {
            Ok(events) => {
                self.timing = Some(Timing { events, total: vec![std::time::Duration::ZERO; self.ops.len()] });
                true
            }
            Err(_) => false,
        }
    }

    fn kernel_times(&self) -> Vec<KernelTime> {
        let Some(timing) = &self.timing else { return Vec::new() };
        self.ops
            .iter()
            .zip(&timing.total)
            .map(|(op, &time)| {
                let (name, what) = op.label();
                KernelTime { name, what, time }
            })
            .collect()
    }
}

//! The CPU back end: runs the kernels of `fusion::fuse` in float32. Matrix products go to
//! the `gemm` crate; a fused kernel runs as one pass over its iteration space, in chunks, with
//! its intermediate values in registers (chunk-sized scratch arrays) rather than in memory.
//! Only values that cross kernel boundaries get buffers.

use crate::backend::{check_size, Backend, Compiled};
use hoyer_compiler::codegen::{IndexMap, KOp, KernelProgram};
use hoyer_compiler::fusion::{self, Kernel, KernelKind};
use hoyer_compiler::ir::interp::strides;
use hoyer_compiler::ir::{numel, Binary, Graph, Op, ReduceOp, Unary, ValueId};

/// Elements per chunk of a fused kernel: small enough for the registers to stay in cache.
const CHUNK: usize = 512;

pub struct Cpu {
    /// 1, or 2 to split large kernels between this thread and the helper (`pair`).
    pub threads: usize,
    /// Compile fused kernels to machine code with Cranelift; otherwise evaluate their kernel
    /// programs chunk by chunk.
    pub jit: bool,
}

impl Default for Cpu {
    /// Both cores where there are two or more; `HOYER_THREADS=1` keeps to one.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = std::env::var("HOYER_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(cores);
        let jit = std::env::var("HOYER_JIT").map_or(true, |v| v != "0");
        Cpu { threads: threads.clamp(1, 2), jit }
    }
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Compiled>, String> {
        graph.validate()?;
        let schedule = fusion::fuse(graph);
        let mut buffers: Vec<Vec<f32>> = vec![Vec::new(); graph.values.len()];
        let mut inputs = Vec::new();
        for (id, name, _) in graph.inputs() {
            inputs.push((name.to_string(), id));
        }
        let mut execs = Vec::new();
        for k in &schedule.kernels {
            for w in &k.writes {
                buffers[w.index()] = vec![0.0; numel(graph.shape(*w))];
            }
            execs.push(match k.kind {
                KernelKind::MatMul => {
                    let v = k.values[0];
                    let Op::MatMul { a, b, ta, tb } = graph.value(v).op else {
                        return Err("matmul kernel without a matmul".into());
                    };
                    Exec::MatMul { a, b, ta, tb, out: v }
                }
                KernelKind::Permute => {
                    let v = k.values[0];
                    let Op::Permute { input, ref perm } = graph.value(v).op else {
                        return Err("permute kernel without a permute".into());
                    };
                    Exec::Permute { input, perm: perm.clone(), out: v }
                }
                KernelKind::Fused => Exec::Fused(Box::new(FusedKernel::new(graph, k)?)),
            });
        }
        // Outputs that are inputs or constants need buffers too.
        let mut outputs = Vec::new();
        for (name, o) in &graph.outputs {
            if buffers[o.index()].is_empty() {
                buffers[o.index()] = match graph.value(*o).op {
                    Op::Const(c) => vec![c as f32; numel(graph.shape(*o))],
                    _ => vec![0.0; numel(graph.shape(*o))],
                };
            }
            outputs.push((name.clone(), *o));
        }
        let shapes = graph.values.iter().map(|v| v.shape.clone()).collect();
        // Machine code for every fused kernel, compiled together.
        let mut jit = None;
        if self.jit {
            let mut j = crate::jit::Jit::new()?;
            let programs: Vec<KernelProgram> = execs
                .iter()
                .filter_map(|e| if let Exec::Fused(k) = e { Some(k.plan.program.clone()) } else { None })
                .collect();
            let mut code = j.compile(&programs)?.into_iter();
            for e in execs.iter_mut() {
                if let Exec::Fused(k) = e {
                    k.code = code.next();
                }
            }
            jit = Some(j);
        }
        let set = vec![false; inputs.len()];
        let written: Vec<bool> = {
            let mut w = vec![false; graph.values.len()];
            for k in &schedule.kernels {
                k.writes.iter().for_each(|v| w[v.index()] = true);
            }
            w
        };
        Ok(Box::new(CpuProgram {
            shapes,
            buffers,
            inputs,
            set,
            execs,
            outputs,
            threads: self.threads,
            written,
            swaps: vec![],
            _jit: jit,
        }))
    }
}

enum Exec {
    MatMul { a: ValueId, b: ValueId, ta: bool, tb: bool, out: ValueId },
    Permute { input: ValueId, perm: Vec<usize>, out: ValueId },
    Fused(Box<FusedKernel>),
}

struct CpuProgram {
    shapes: Vec<Vec<usize>>,
    /// One buffer per value that an input, a kernel's result or an output needs.
    buffers: Vec<Vec<f32>>,
    inputs: Vec<(String, ValueId)>,
    /// Which inputs have been given a value.
    set: Vec<bool>,
    execs: Vec<Exec>,
    /// Outputs by name; a carried output points at the input buffer it was swapped into.
    outputs: Vec<(String, ValueId)>,
    threads: usize,
    /// Values some kernel writes in full on every execution.
    written: Vec<bool>,
    /// (output value, input value) buffers exchanged after each execution.
    swaps: Vec<(ValueId, ValueId)>,
    /// Owns the kernels' machine code.
    _jit: Option<crate::jit::Jit>,
}

impl Compiled for CpuProgram {
    fn set_input(&mut self, name: &str, data: &[f32]) -> Result<(), String> {
        // Inputs the graph does not use (e.g. an unused learning rate) are ignored.
        if let Some(i) = self.inputs.iter().position(|(n, _)| n == name) {
            let id = self.inputs[i].1;
            check_size(name, data.len(), numel(&self.shapes[id.index()]))?;
            let buf = &mut self.buffers[id.index()];
            buf.clear();
            buf.extend_from_slice(data);
            self.set[i] = true;
        }
        Ok(())
    }

    fn output(&self, name: &str) -> Option<&[f32]> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, o)| self.buffers[o.index()].as_slice())
    }

    fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|o| o.0.clone()).collect()
    }

    fn carry(&mut self, output: &str, input: &str) -> Result<(), String> {
        let o = self.outputs.iter().position(|(n, _)| n == output).ok_or_else(|| format!("no output `{output}`"))?;
        let i = self.inputs.iter().position(|(n, _)| n == input).ok_or_else(|| format!("no input `{input}`"))?;
        let (out_v, in_v) = (self.outputs[o].1, self.inputs[i].1);
        if self.shapes[out_v.index()] != self.shapes[in_v.index()] {
            return Err(format!("cannot carry `{output}` into `{input}`: shapes differ"));
        }
        // A buffer can be swapped only if a kernel rewrites all of it on every execution and
        // no other carried output shares it; otherwise the step's value stays where it is.
        let shared = self.outputs.iter().filter(|(_, v)| *v == out_v).count() > 1;
        if self.written[out_v.index()] && !shared && out_v != in_v {
            self.swaps.push((out_v, in_v));
            self.outputs[o].1 = in_v;
        } else {
            return Err(format!("output `{output}` cannot be carried"));
        }
        self.set[i] = true;
        Ok(())
    }

    fn execute(&mut self) -> Result<(), String> {
        if let Some(i) = self.set.iter().position(|s| !s) {
            return Err(format!("input `{}` was not given", self.inputs[i].0));
        }
        for e in &mut self.execs {
            match e {
                Exec::MatMul { a, b, ta, tb, out } => {
                    let (sa, sb) = (&self.shapes[a.index()], &self.shapes[b.index()]);
                    let so = &self.shapes[out.index()];
                    let (m, n) = (so[0], so[1]);
                    let k = if *ta { sa[0] } else { sa[1] };
                    let mut dst = std::mem::take(&mut self.buffers[out.index()]);
                    matmul(
                        &mut dst,
                        &self.buffers[a.index()],
                        sa[1],
                        *ta,
                        &self.buffers[b.index()],
                        sb[1],
                        *tb,
                        m,
                        n,
                        k,
                        self.threads,
                    );
                    self.buffers[out.index()] = dst;
                }
                Exec::Permute { input, perm, out } => {
                    let in_strides = strides(&self.shapes[input.index()]);
                    let per_axis: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
                    let mut dst = std::mem::take(&mut self.buffers[out.index()]);
                    let map = IndexMap::General { out_shape: self.shapes[out.index()].clone(), per_axis };
                    let src = &self.buffers[input.index()];
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = src[map.index(i)];
                    }
                    self.buffers[out.index()] = dst;
                }
                Exec::Fused(k) => k.run(&mut self.buffers, self.threads > 1),
            }
        }
        for &(out, input) in &self.swaps {
            let (a, b) = (out.index(), input.index());
            let (lo, hi) = (a.min(b), a.max(b));
            let (left, right) = self.buffers.split_at_mut(hi);
            std::mem::swap(&mut left[lo], &mut right[0]);
        }
        Ok(())
    }
}

/// `dst[m×n] = op(a) · op(b)`, row-major, `a_cols`/`b_cols` the stored row lengths. Large
/// products are split in two along their longer output side, one half per core; gemm's own
/// fine-grained threading costs more than it gains at these sizes.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    a: &[f32],
    a_cols: usize,
    ta: bool,
    b: &[f32],
    b_cols: usize,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
) {
    // Element (i, p) of op(a) is at i·a_rs + p·a_cs in the stored matrix; likewise for b.
    let (a_rs, a_cs) = if ta { (1, a_cols) } else { (a_cols, 1) };
    let (b_rs, b_cs) = if tb { (1, b_cols) } else { (b_cols, 1) };
    if threads < 2 || m * n * k < 1 << 18 {
        gemm_block(dst, n, a, a_rs, a_cs, b, b_rs, b_cs, m, n, k);
        return;
    }
    if m >= n {
        // Rows of dst: contiguous halves.
        let half = m / 2;
        let (top, bottom) = dst.split_at_mut(half * n);
        let bottom = std::sync::Mutex::new(bottom);
        crate::pair::helper().join(
            &|| {
                let mut bottom = bottom.lock().unwrap_or_else(|e| e.into_inner());
                gemm_block(&mut bottom, n, &a[half * a_rs..], a_rs, a_cs, b, b_rs, b_cs, m - half, n, k)
            },
            || gemm_block(top, n, a, a_rs, a_cs, b, b_rs, b_cs, half, n, k),
        );
    } else {
        // Columns of dst: each half writes its own columns of every row.
        let half = n / 2;
        let ptr = SendPtr(dst.as_mut_ptr());
        let (left, right) = (ptr, SendPtr(ptr.0.wrapping_add(half)));
        let b_right = SendConst(b.as_ptr().wrapping_add(half * b_cs));
        crate::pair::helper().join(
            // SAFETY: the two calls write disjoint columns of the m×n buffer `dst`, which both
            // address with row stride n; nothing else touches `dst` meanwhile.
            &|| unsafe { gemm_raw(right.get(), n, a, a_rs, a_cs, b_right.get(), b_rs, b_cs, m, n - half, k) },
            || unsafe { gemm_raw(left.get(), n, a, a_rs, a_cs, b.as_ptr(), b_rs, b_cs, m, half, k) },
        );
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

#[derive(Clone, Copy)]
struct SendConst(*const f32);
// SAFETY: a read-only pointer into a buffer that outlives the join.
unsafe impl Send for SendConst {}
unsafe impl Sync for SendConst {}

impl SendConst {
    fn get(self) -> *const f32 {
        self.0
    }
}

impl SendPtr {
    /// Taking `self` whole makes closures capture the wrapper, not the raw pointer inside.
    fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: used only to hand disjoint parts of one buffer to the two sides of a join.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `dst[m×n] (row stride dst_rs) = op(a) · op(b)` on one thread.
#[allow(clippy::too_many_arguments)]
fn gemm_block(
    dst: &mut [f32],
    dst_rs: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    m: usize,
    n: usize,
    k: usize,
) {
    debug_assert!(dst.len() >= (m.max(1) - 1) * dst_rs + n);
    // SAFETY: dst holds m rows of n values at row stride dst_rs (checked above); a and b
    // hold the m×k and k×n elements their strides address (shapes checked at graph build).
    unsafe { gemm_raw(dst.as_mut_ptr(), dst_rs, a, a_rs, a_cs, b.as_ptr(), b_rs, b_cs, m, n, k) }
}

/// # Safety
/// `dst` must address m rows of n values at row stride `dst_rs`, `b` the k×n elements its
/// strides address, and neither may alias `a`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    dst: *mut f32,
    dst_rs: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    m: usize,
    n: usize,
    k: usize,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b,
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A fused kernel: its instructions (shared by both threads) and a register file per thread.
struct FusedKernel {
    plan: Plan,
    regs: [Vec<Vec<f32>>; 2],
    /// The kernel as Cranelift compiled it, when the JIT is on.
    code: Option<crate::jit::KernelFn>,
}

/// The kernel program, and what the chunked evaluator derives from it.
struct Plan {
    program: KernelProgram,
    /// Per op: the buffer a same-shape load reads, which then stands in for its register.
    direct: Vec<Option<ValueId>>,
}

/// Raw views of every buffer, taken once before a kernel runs, so that two threads can read
/// shared buffers and write disjoint ranges without holding references to the same `Vec`.
struct Views(Vec<(*mut f32, usize)>);
// SAFETY: see `Plan::range`: readers only read, writers write disjoint element ranges.
unsafe impl Sync for Views {}
unsafe impl Send for Views {}

impl Views {
    /// # Safety
    /// No thread may be writing elements of `v` in `start..start + len` meanwhile.
    unsafe fn slice(&self, v: ValueId, start: usize, len: usize) -> &[f32] {
        let (p, n) = self.0[v.index()];
        debug_assert!(start + len <= n);
        unsafe { std::slice::from_raw_parts(p.add(start), len) }
    }
    /// # Safety
    /// As `slice`, for the whole buffer.
    unsafe fn all(&self, v: ValueId) -> &[f32] {
        let (p, n) = self.0[v.index()];
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

/// Buffer addresses in an array, as JIT-compiled kernels take them.
struct Pointers(Vec<*mut f32>);
// SAFETY: as `Views`.
unsafe impl Sync for Pointers {}

impl Pointers {
    /// Through `&self`, so that closures capture the (Sync) wrapper.
    fn addresses(&self) -> *const *mut f32 {
        self.0.as_ptr()
    }
}

/// Adds (or takes the maximum of) the second half's reduction into the first's.
fn merge(reduce: &Option<(ReduceOp, usize, ValueId, IndexMap)>, acc: &mut [f64], other: &[f64]) {
    match reduce {
        Some((ReduceOp::Sum, ..)) => acc.iter_mut().zip(other).for_each(|(a, b)| *a += b),
        Some((ReduceOp::Max, ..)) => acc.iter_mut().zip(other).for_each(|(a, b)| *a = a.max(*b)),
        None => {}
    }
}

/// Kernels smaller than this run on one thread.
const PARALLEL_MIN: usize = 1 << 14;

impl FusedKernel {
    fn new(g: &Graph, k: &Kernel) -> Result<FusedKernel, String> {
        let p = KernelProgram::new(g, k)?;
        let regs = vec![vec![0.0; CHUNK]; p.ops.len()];
        // Same-shape loads are not copied: their readers take the buffer's slice directly.
        let direct =
            p.ops.iter().map(|op| if let KOp::Load(v, IndexMap::Same) = op { Some(*v) } else { None }).collect();
        Ok(FusedKernel { plan: Plan { program: p, direct }, regs: [regs.clone(), regs], code: None })
    }

    fn run(&mut self, buffers: &mut [Vec<f32>], parallel: bool) {
        let plan = &self.plan;
        let (init, out_len) = match &plan.program.reduce {
            Some((op, _, out, _)) => {
                (if *op == ReduceOp::Sum { 0.0 } else { f64::NEG_INFINITY }, buffers[out.index()].len())
            }
            None => (0.0, 0),
        };
        let views = Views(buffers.iter_mut().map(|b| (b.as_mut_ptr(), b.len())).collect());
        let [first, second] = &mut self.regs;
        let mut acc = vec![init; out_len];
        if let Some(code) = self.code {
            let ptrs = Pointers(views.0.iter().map(|v| v.0).collect());
            // SAFETY: the kernel reads and writes the buffers `ptrs` points at, within the
            // element ranges given, as the chunked path does; see `Plan::range`.
            let run = |from: usize, to: usize, acc: &mut [f64]| unsafe {
                code(ptrs.addresses(), from as u64, to as u64, acc.as_mut_ptr())
            };
            if parallel && plan.program.n >= PARALLEL_MIN {
                let mid = (plan.program.n / 2).div_ceil(CHUNK) * CHUNK;
                let other = std::sync::Mutex::new(vec![init; out_len]);
                crate::pair::helper().join(
                    &|| {
                        let mut acc = other.lock().unwrap_or_else(|e| e.into_inner());
                        run(mid, plan.program.n, &mut acc);
                    },
                    || run(0, mid, &mut acc),
                );
                let acc2 = other.into_inner().unwrap_or_else(|e| e.into_inner());
                merge(&plan.program.reduce, &mut acc, &acc2);
            } else {
                run(0, plan.program.n, &mut acc);
            }
        } else if parallel && plan.program.n >= PARALLEL_MIN {
            let mid = (plan.program.n / 2).div_ceil(CHUNK) * CHUNK;
            let other = std::sync::Mutex::new((second, vec![init; out_len]));
            crate::pair::helper().join(
                &|| {
                    let mut guard = other.lock().unwrap_or_else(|e| e.into_inner());
                    let (regs, acc) = &mut *guard;
                    // SAFETY: this half writes elements mid..n of the kernel's stored buffers,
                    // the other half 0..mid; loads read buffers no kernel writes meanwhile.
                    unsafe { plan.range(&views, mid, plan.program.n, regs, acc) }
                },
                // SAFETY: as above, for 0..mid.
                || unsafe { plan.range(&views, 0, mid, first, &mut acc) },
            );
            let (_, acc2) = other.into_inner().unwrap_or_else(|e| e.into_inner());
            merge(&plan.program.reduce, &mut acc, &acc2);
        } else {
            // SAFETY: one thread, which writes only the kernel's stored buffers.
            unsafe { plan.range(&views, 0, plan.program.n, first, &mut acc) };
        }
        drop(views);
        if let Some((_, _, out, _)) = &plan.program.reduce {
            buffers[out.index()].iter_mut().zip(&acc).for_each(|(d, &a)| *d = a as f32);
        }
    }
}

impl Plan {
    /// Runs elements `from..to` (chunk-aligned `from`) with the register file `regs`,
    /// accumulating a reduction into `acc`.
    ///
    /// # Safety
    /// `views` must view live buffers; no other thread may write the buffers this kernel
    /// loads, nor the elements `from..to` of the buffers it stores.
    unsafe fn range(&self, views: &Views, from: usize, to: usize, regs: &mut [Vec<f32>], acc: &mut [f64]) {
        let mut start = from;
        while start < to {
            let len = CHUNK.min(to - start);
            for i in 0..self.program.ops.len() {
                if self.direct[i].is_some() {
                    continue;
                }
                // Registers before `i` are inputs to it; split to borrow them beside it.
                let (done, rest) = regs.split_at_mut(i);
                let dst = &mut rest[0][..len];
                let direct = &self.direct;
                let get = |k: usize| -> &[f32] {
                    match direct[k] {
                        Some(v) => unsafe { views.slice(v, start, len) },
                        None => &done[k][..len],
                    }
                };
                match &self.program.ops[i] {
                    KOp::Load(v, map) => {
                        let src = unsafe { views.all(*v) };
                        match map {
                            IndexMap::Scalar => dst.fill(src[0]),
                            m => dst.iter_mut().enumerate().for_each(|(j, d)| *d = src[m.index(start + j)]),
                        }
                    }
                    KOp::Const(c) => dst.fill(*c),
                    KOp::Unary(u, x) => unary(*u, get(*x), dst),
                    KOp::Pow(x, c) => {
                        let src = get(*x);
                        if *c == 2.0 {
                            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s * s);
                        } else {
                            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s.powf(*c));
                        }
                    }
                    KOp::Binary(b, x, y) => binary(*b, get(*x), get(*y), dst),
                    KOp::OneHot { labels, classes } => {
                        let l = unsafe { views.all(*labels) };
                        dst.iter_mut().enumerate().for_each(|(j, d)| {
                            let e = start + j;
                            *d = if l[e / classes] as usize == e % classes { 1.0 } else { 0.0 };
                        });
                    }
                }
            }
            for (r, v) in &self.program.stores {
                let (p, n) = views.0[v.index()];
                debug_assert!(start + len <= n);
                unsafe { std::ptr::copy_nonoverlapping(regs[*r].as_ptr(), p.add(start), len) };
            }
            if let Some((op, r, _, map)) = &self.program.reduce {
                let src: &[f32] = match self.direct[*r] {
                    Some(v) => unsafe { views.slice(v, start, len) },
                    None => &regs[*r][..len],
                };
                match (op, map) {
                    (ReduceOp::Sum, IndexMap::Scalar) => acc[0] += src.iter().map(|&x| x as f64).sum::<f64>(),
                    (ReduceOp::Sum, m) => {
                        src.iter().enumerate().for_each(|(j, &x)| acc[m.index(start + j)] += x as f64)
                    }
                    (ReduceOp::Max, m) => src.iter().enumerate().for_each(|(j, &x)| {
                        let o = m.index(start + j);
                        acc[o] = acc[o].max(x as f64);
                    }),
                }
            }
            start += len;
        }
    }
}

fn unary(u: Unary, src: &[f32], dst: &mut [f32]) {
    let it = dst.iter_mut().zip(src);
    match u {
        Unary::Neg => it.for_each(|(d, &s)| *d = -s),
        Unary::Abs => it.for_each(|(d, &s)| *d = s.abs()),
        Unary::Sqrt => it.for_each(|(d, &s)| *d = s.sqrt()),
        Unary::Exp => it.for_each(|(d, &s)| *d = s.exp()),
        Unary::Log => it.for_each(|(d, &s)| *d = s.ln()),
        Unary::Sign => it.for_each(|(d, &s)| {
            *d = if s > 0.0 {
                1.0
            } else if s < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        Unary::Relu => it.for_each(|(d, &s)| *d = s.max(0.0)),
        Unary::Step => it.for_each(|(d, &s)| *d = if s > 0.0 { 1.0 } else { 0.0 }),
        Unary::Recip => it.for_each(|(d, &s)| *d = 1.0 / s),
    }
}

fn binary(b: Binary, x: &[f32], y: &[f32], dst: &mut [f32]) {
    let it = dst.iter_mut().zip(x.iter().zip(y));
    match b {
        Binary::Add => it.for_each(|(d, (&a, &c))| *d = a + c),
        Binary::Sub => it.for_each(|(d, (&a, &c))| *d = a - c),
        Binary::Mul => it.for_each(|(d, (&a, &c))| *d = a * c),
        Binary::Div => it.for_each(|(d, (&a, &c))| *d = a / c),
        Binary::Max => it.for_each(|(d, (&a, &c))| *d = a.max(c)),
        Binary::Eq => it.for_each(|(d, (&a, &c))| *d = if a == c { 1.0 } else { 0.0 }),
    }
}

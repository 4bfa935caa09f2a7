//! CUDA C for the kernel IR (`hoyerc compile --emit cuda`). Every loop nest becomes one
//! `extern "C" __global__` function in one translation unit; a matrix product is a library
//! call (cuBLAS) whose epilogue is a kernel of its own.
//!
//! Mapping of a loop nest:
//! - **element-wise**: one thread per point of the parallel axes, in a grid-stride loop;
//!   coordinates come from the linear index by division by the (constant) extents.
//! - **reduction, one thread per output**: where the reduction is short, or its elements are
//!   strided and the outputs are many (consecutive threads then read consecutive outputs'
//!   elements); the thread runs the reduction axes in order.
//! - **reduction, one block per output**: where it is long and contiguous, or long and the
//!   outputs too few to keep the GPU busy with a thread each (a conv's bias gradient: 20
//!   outputs, each a sum of 57,600 elements 20 apart, took 2.5 ms a step on 20 threads); each
//!   thread accumulates every `blockDim`-th element, then the block combines the partial sums in a
//!   fixed tree: warp shuffles (offsets 16, 8, 4, 2, 1), then one warp over the warps' results
//!   in shared memory. No atomics anywhere: the same launch gives the same bits every time.
//!
//! Every element-wise op is rendered from its program in `ir::semantics`, so NaN, ±0 and ±inf
//! follow the same rules as the CPU back end and the interpreter. Constants print as exact
//! float literals; `sqrtf` and `/` are IEEE-rounded, and nothing is contracted into an FMA the
//! kernel IR did not ask for (NVRTC without fast math, `--fmad=false`).

use crate::error::CompileError;
use crate::kernel::{AccType, Access, Body, Dtype, Inst, Kernel, Loop, MatMul, Program, View};
use hoyer_ir::semantics::{self, ElemOp, Prim};
use hoyer_ir::ReduceOp;
use std::fmt::Write;

/// Threads per block of every kernel.
pub const BLOCK: u32 = 256;
/// Reductions at least this long over contiguous elements get a block per output.
const BLOCK_REDUCTION: usize = 128;
/// Fewer outputs than this leave most of a GPU idle with a thread each (64 blocks; an H100
/// has 132 multiprocessors): a long reduction then gets a block per output even if strided.
const FEW_OUTPUTS: usize = 64 * BLOCK as usize;

/// How a kernel of the program is launched.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// `name<<<grid, block>>>(args...)`, the arguments being the kernel's buffers in order.
    Kernel { name: String, grid: u32, block: u32 },
    /// A library matrix product, then (if any) its epilogue kernel.
    Library { product: MatMul, epilogue: Option<(String, u32, u32)> },
}

/// One program's CUDA C and how to launch each of its kernels.
#[derive(Debug, Clone)]
pub struct Cuda {
    pub source: String,
    pub launches: Vec<Launch>,
}

fn internal(message: impl Into<String>) -> CompileError {
    CompileError::internal("CUDA code generation", message)
}

/// An exact float literal.
fn literal(c: f32) -> String {
    if c.is_nan() {
        "__int_as_float(0x7fffffff)".into()
    } else if c.is_infinite() {
        if c > 0.0 { "__int_as_float(0x7f800000)" } else { "__int_as_float(0xff800000)" }.into()
    } else {
        let s = format!("{c:?}");
        let s = if s.contains(['.', 'e']) { s } else { format!("{s}.0") };
        format!("{s}f")
    }
}

/// The C expression of an element-wise op on operand expressions `args`.
fn expression(op: ElemOp, args: &[String]) -> String {
    if op == ElemOp::Fma {
        return format!("fmaf({}, {}, {})", args[0], args[1], args[2]);
    }
    let prog = semantics::program(op);
    let mut slots: Vec<String> = Vec::with_capacity(prog.len());
    for p in prog {
        let e = match p {
            Prim::Arg(k) => args[k].clone(),
            Prim::Const(c) => literal(c as f32),
            Prim::Add(a, b) => format!("({} + {})", slots[a], slots[b]),
            Prim::Sub(a, b) => format!("({} - {})", slots[a], slots[b]),
            Prim::Mul(a, b) => format!("({} * {})", slots[a], slots[b]),
            Prim::Div(a, b) => format!("({} / {})", slots[a], slots[b]),
            Prim::Neg(a) => format!("(-{})", slots[a]),
            Prim::Abs(a) => format!("fabsf({})", slots[a]),
            Prim::Sqrt(a) => format!("sqrtf({})", slots[a]),
            Prim::Exp(a) => format!("expf({})", slots[a]),
            Prim::Log(a) => format!("logf({})", slots[a]),
            Prim::Tanh(a) => format!("tanhf({})", slots[a]),
            Prim::Erf(a) => format!("erff({})", slots[a]),
            Prim::Random(a, b) => format!("hoyer_random({}, {})", slots[a], slots[b]),
            Prim::Pow(a, c) => format!("powf({}, {})", slots[a], literal(c as f32)),
            Prim::Cmp(c, a, b) => format!("({} {} {})", slots[a], c.c_op(), slots[b]),
            Prim::Select(c, a, b) => format!("({} ? {} : {})", slots[c], slots[a], slots[b]),
        };
        slots.push(e);
    }
    slots.pop().unwrap_or_default()
}

/// `a` combined with `b` by the reduction: the `max` op's semantics for maxima.
fn combine(op: ReduceOp, a: &str, b: &str) -> String {
    match op {
        ReduceOp::Sum => format!("{a} + {b}"),
        ReduceOp::Max | ReduceOp::MaxFirst => {
            expression(ElemOp::Binary(hoyer_ir::Binary::Max), &[a.to_string(), b.to_string()])
        }
    }
}

/// The element index of `view` with coordinate `i{d}` per axis.
fn index(view: &View) -> String {
    let mut terms: Vec<String> = Vec::new();
    if view.offset != 0 {
        terms.push(view.offset.to_string());
    }
    for (d, &s) in view.strides.iter().enumerate() {
        match s {
            0 => {}
            1 => terms.push(format!("i{d}")),
            s => terms.push(format!("{s}LL * i{d}")),
        }
    }
    if terms.is_empty() {
        "0".into()
    } else {
        terms.join(" + ")
    }
}

/// A guard's coordinate `constant + Σ coeffs[d]·i{d}`.
fn guard_coordinate(g: &crate::kernel::Guard) -> String {
    let mut terms: Vec<String> = vec![format!("{}LL", g.constant)];
    for (d, &c) in g.coeffs.iter().enumerate() {
        match c {
            0 => {}
            1 => terms.push(format!("i{d}")),
            c => terms.push(format!("{c}LL * i{d}")),
        }
    }
    format!("({})", terms.join(" + "))
}

/// A load through `view` of `name`: where every guard holds the element, where one fails the
/// first failing guard's fill (the conditional reads nothing then).
fn load(name: &str, view: &View) -> String {
    let mut index = index(view);
    let mut checks = Vec::new();
    for g in &view.guards {
        let e = guard_coordinate(g);
        let (ok, q) = if g.divisor == 1 {
            (format!("{e} >= 0LL && {e} < {}LL", g.extent), e)
        } else {
            let q = format!("({e} / {}LL)", g.divisor);
            (format!("{e} >= 0LL && {e} % {}LL == 0LL && {q} < {}LL", g.divisor, g.extent), q)
        };
        if g.stride != 0 {
            index = format!("{index} + {}LL * {q}", g.stride);
        }
        checks.push((ok, literal(g.fill.value() as f32)));
    }
    let mut e = format!("{name}[{index}]");
    for (ok, fill) in checks.into_iter().rev() {
        e = format!("(({ok}) ? {e} : {fill})");
    }
    e
}

/// Coordinates `i{first}..` of linear index `var` over `extents` (those in `used`).
fn coordinates(out: &mut String, indent: &str, var: &str, first: usize, extents: &[usize], used: &[bool]) {
    let mut inner = 1usize;
    let mut lines = Vec::new();
    for (k, &e) in extents.iter().enumerate().rev() {
        let d = first + k;
        if !used[d] {
            inner *= e;
            continue;
        }
        let expr = match (inner, k) {
            (1, 0) => var.to_string(),
            (1, _) => format!("{var} % {e}LL"),
            (_, 0) => format!("{var} / {inner}LL"),
            _ => format!("({var} / {inner}LL) % {e}LL"),
        };
        lines.push(format!("{indent}const long long i{d} = {expr};"));
        inner *= e;
    }
    for l in lines.into_iter().rev() {
        let _ = writeln!(out, "{l}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Before,
    Inner,
    After,
}

struct Nest<'a> {
    l: &'a Loop,
    /// Per domain axis: whether any view or index reads its coordinate.
    used: Vec<bool>,
    after: Vec<bool>,
    /// Per instruction: whether it varies along the reduction axes.
    inner: Vec<bool>,
    /// The arguments holding integers (stores to them convert).
    int_args: Vec<u32>,
}

impl<'a> Nest<'a> {
    fn new(l: &'a Loop, p: &Program, k: &Kernel) -> Self {
        let int_args =
            (0..k.args.len() as u32).filter(|&a| p.buffer(k.args[a as usize].buffer).dtype == Dtype::I32).collect();
        let np = l.parallel.len();
        let after = l.after_reduction();
        let mut inner = vec![false; l.body.len()];
        for (i, inst) in l.body.iter().enumerate() {
            let own = match inst {
                Inst::Load { view, .. } | Inst::Gather { view, .. } => view.depth() > np,
                Inst::Index(a) => *a >= np,
                _ => false,
            };
            inner[i] = !after[i] && (own || inst.operands().iter().any(|r| inner[r.index()]));
        }
        let mut used = vec![false; l.rank()];
        let mut mark = |v: &View| {
            let coeffs = v.guards.iter().flat_map(|g| g.coeffs.iter().enumerate());
            v.strides.iter().enumerate().chain(coeffs).filter(|(_, s)| **s != 0).for_each(|(d, _)| used[d] = true)
        };
        for inst in &l.body {
            match inst {
                Inst::Load { view, .. } | Inst::Gather { view, .. } => mark(view),
                _ => {}
            }
        }
        l.stores.iter().for_each(|s| mark(&s.view));
        for inst in &l.body {
            if let Inst::Index(a) = inst {
                used[*a] = true;
            }
        }
        Nest { l, used, after, inner, int_args }
    }

    fn inst(&self, i: usize, names: &[String]) -> String {
        let r = |x: &crate::kernel::Reg| format!("r{}", x.0);
        let e = match &self.l.body[i] {
            Inst::Load { arg, view } => load(&names[*arg as usize], view),
            Inst::Gather { arg, row, row_stride, view } => {
                format!("{}[{} + (long long){} * {row_stride}LL]", names[*arg as usize], index(view), r(row))
            }
            Inst::Const(c) => literal(*c),
            Inst::Index(a) => format!("(float)i{a}"),
            Inst::Op(op, args) => expression(*op, &args.iter().map(r).collect::<Vec<_>>()),
            Inst::Acc(k) => format!("acc_f{k}"),
        };
        format!("const float r{i} = {e};")
    }

    /// Where an instruction runs: before the reduction axes, inside them, or after.
    fn section(&self, i: usize) -> Section {
        if self.after[i] {
            Section::After
        } else if self.inner[i] {
            Section::Inner
        } else {
            Section::Before
        }
    }

    /// Statements for the instructions of `section`, then its stores (a store that steps
    /// along a reduction axis runs inside it).
    fn emit(&self, out: &mut String, indent: &str, names: &[String], section: Section) {
        let np = self.l.parallel.len();
        for i in 0..self.l.body.len() {
            if self.section(i) == section {
                let _ = writeln!(out, "{indent}{}", self.inst(i, names));
            }
        }
        for s in &self.l.stores {
            let mut at = self.section(s.value.index());
            if at == Section::Before && s.view.depth() > np {
                at = Section::Inner;
            }
            if at == section {
                let cast = if self.int_args.contains(&s.arg) { "(int)" } else { "" };
                let _ = writeln!(out, "{indent}{}[{}] = {cast}r{};", names[s.arg as usize], index(&s.view), s.value.0);
            }
        }
    }

    /// Whether the reduction reads contiguous elements along its innermost axis.
    fn contiguous(&self) -> bool {
        let last = self.l.rank() - 1;
        self.l.body.iter().enumerate().all(|(i, inst)| match inst {
            Inst::Load { view, .. } | Inst::Gather { view, .. } if self.inner[i] => matches!(view.strides[last], 0 | 1),
            _ => true,
        })
    }
}

fn signature(p: &Program, k: &Kernel, name: &str) -> (String, Vec<String>) {
    let names: Vec<String> = (0..k.args.len()).map(|i| format!("a{i}")).collect();
    let params: Vec<String> = k
        .args
        .iter()
        .zip(&names)
        .map(|(a, n)| {
            // Integer buffers are read into float registers and written back converted.
            let ty = match p.buffer(a.buffer).dtype {
                Dtype::F32 => "float",
                Dtype::I32 => "int",
            };
            match a.access {
                Access::Read => format!("const {ty}* __restrict__ {n}"),
                _ => format!("{ty}* __restrict__ {n}"),
            }
        })
        .collect();
    let described: Vec<String> =
        k.args.iter().zip(&names).map(|(a, n)| format!("{n} = {}", p.buffer(a.buffer).name)).collect();
    let head = format!(
        "// {}: {}\nextern \"C\" __global__ void __launch_bounds__({BLOCK}) {name}({})",
        k.name,
        described.join(", "),
        params.join(", ")
    );
    (head, names)
}

/// Renders one loop nest as a kernel named `name`; returns its grid size.
fn loop_kernel(out: &mut String, p: &Program, k: &Kernel, l: &Loop, name: &str) -> Result<u32, CompileError> {
    let (head, names) = signature(p, k, name);
    let nest = Nest::new(l, p, k);
    let np = l.parallel.len();
    let points: usize = l.parallel.iter().product();
    let reduce_points: usize = l.reduce.iter().product();
    let blocks = |n: usize| n.div_ceil(BLOCK as usize).clamp(1, 1 << 16) as u32;
    let _ = writeln!(out, "{head} {{");
    let grid;
    match l.reductions.len() {
        0 => {
            grid = blocks(points);
            let _ = writeln!(
                out,
                "  for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < {points}LL; p += (long long)gridDim.x * blockDim.x) {{"
            );
            coordinates(out, "    ", "p", 0, &l.parallel, &nest.used);
            nest.emit(out, "    ", &names, Section::Before);
            let _ = writeln!(out, "  }}");
        }
        _ => {
            // One accumulator per reduction, each with its own type and tree.
            let accs: Vec<(String, String, String, ReduceOp)> = l
                .reductions
                .iter()
                .map(|red| {
                    let t = if red.acc == AccType::F64 { "double" } else { "float" }.to_string();
                    let init = match red.op {
                        ReduceOp::Sum => "0.0".to_string(),
                        ReduceOp::Max | ReduceOp::MaxFirst => "-__int_as_float(0x7f800000)".to_string(),
                    };
                    let x = format!("({t})r{}", red.value.0);
                    (t, init, x, red.op)
                })
                .collect();
            let by_block = reduce_points >= BLOCK_REDUCTION && (nest.contiguous() || points < FEW_OUTPUTS);
            let (indent, p_loop) = if by_block {
                for (k, (t, ..)) in accs.iter().enumerate() {
                    let _ = writeln!(out, "  __shared__ {t} partial{k}[{}];", BLOCK / 32);
                }
                let _ = writeln!(out, "  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;");
                grid = points.clamp(1, 1 << 16) as u32;
                ("    ", format!("  for (long long p = blockIdx.x; p < {points}LL; p += gridDim.x) {{"))
            } else {
                grid = blocks(points);
                (
                    "    ",
                    format!(
                        "  for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < {points}LL; p += (long long)gridDim.x * blockDim.x) {{"
                    ),
                )
            };
            let _ = writeln!(out, "{p_loop}");
            coordinates(out, indent, "p", 0, &l.parallel, &nest.used);
            nest.emit(out, indent, &names, Section::Before);
            for (k, (t, init, ..)) in accs.iter().enumerate() {
                let _ = writeln!(out, "{indent}{t} acc{k} = {init};");
            }
            if by_block {
                let _ = writeln!(out, "    for (long long q = threadIdx.x; q < {reduce_points}LL; q += blockDim.x) {{");
            } else {
                let _ = writeln!(out, "    for (long long q = 0; q < {reduce_points}LL; ++q) {{");
            }
            coordinates(out, "      ", "q", np, &l.reduce, &nest.used);
            nest.emit(out, "      ", &names, Section::Inner);
            for (k, (_, _, x, op)) in accs.iter().enumerate() {
                let _ = writeln!(out, "      acc{k} = {};", combine(*op, &format!("acc{k}"), x));
            }
            let _ = writeln!(out, "    }}");
            let tree = |out: &mut String, indent: &str| {
                let _ = writeln!(out, "{indent}for (int o = 16; o > 0; o >>= 1) {{");
                for (k, (t, _, _, op)) in accs.iter().enumerate() {
                    let _ = writeln!(out, "{indent}  const {t} other{k} = __shfl_down_sync(0xffffffffu, acc{k}, o);");
                    let _ =
                        writeln!(out, "{indent}  acc{k} = {};", combine(*op, &format!("acc{k}"), &format!("other{k}")));
                }
                let _ = writeln!(out, "{indent}}}");
            };
            let finish = |out: &mut String, indent: &str| {
                for k in 0..accs.len() {
                    let _ = writeln!(out, "{indent}const float acc_f{k} = (float)acc{k};");
                }
                nest.emit(out, indent, &names, Section::After);
            };
            if by_block {
                let _ = writeln!(out, "    // A fixed tree: within each warp, then over the warps.");
                tree(out, "    ");
                let _ = writeln!(out, "    if (lane == 0) {{");
                for k in 0..accs.len() {
                    let _ = writeln!(out, "      partial{k}[warp] = acc{k};");
                }
                let _ = writeln!(out, "    }}");
                let _ = writeln!(out, "    __syncthreads();");
                let _ = writeln!(out, "    if (warp == 0) {{");
                for (k, (t, init, ..)) in accs.iter().enumerate() {
                    let _ = writeln!(out, "      acc{k} = lane < {} ? partial{k}[lane] : ({t}){init};", BLOCK / 32);
                }
                tree(out, "      ");
                let _ = writeln!(out, "      if (lane == 0) {{");
                finish(out, "        ");
                let _ = writeln!(out, "      }}");
                let _ = writeln!(out, "    }}");
                let _ = writeln!(out, "    __syncthreads();");
            } else {
                let _ = writeln!(out, "    {{");
                finish(out, "      ");
                let _ = writeln!(out, "    }}");
            }
            let _ = writeln!(out, "  }}");
        }
    }
    let _ = writeln!(out, "}}\n");
    for (i, inst) in l.body.iter().enumerate() {
        if nest.after[i] && matches!(inst, Inst::Load { .. } | Inst::Gather { .. }) {
            return Err(internal(format!("{}: a load after the reduction", k.name)));
        }
    }
    Ok(grid)
}

/// The CUDA C of a whole program.
pub fn render(p: &Program) -> Result<Cuda, CompileError> {
    let mut source = String::from(
        "// Generated by hoyerc from the kernel IR (hoyerc compile --emit cuda).\n\
         // Compile with NVRTC: --gpu-architecture=sm_XX --fmad=false (IEEE: no fast math, no contraction).\n\n",
    );
    // `random(a, b)` of ir::semantics: conversions saturate (NaN to 0) as in PTX's cvt.
    source.push_str(
        "__device__ __forceinline__ unsigned int hoyer_lowbias32(unsigned int x) {\n\
         \x20   x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; return x ^ (x >> 16);\n\
         }\n\
         __device__ __forceinline__ float hoyer_random(float a, float b) {\n\
         \x20   unsigned int x = hoyer_lowbias32(__float2uint_rz(a) ^ hoyer_lowbias32(__float2uint_rz(b)));\n\
         \x20   return (float)(x >> 8) * (1.0f / 16777216.0f);\n\
         }\n\n",
    );
    let mut launches = Vec::new();
    for k in &p.kernels {
        match &k.body {
            Body::Loop(l) => {
                let grid = loop_kernel(&mut source, p, k, l, &k.name)?;
                launches.push(Launch::Kernel { name: k.name.clone(), grid, block: BLOCK });
            }
            Body::MatMul(m, epilogue, follower) => {
                let arg = |a: u32| p.buffer(k.args[a as usize].buffer).name.as_str();
                let _ = writeln!(
                    source,
                    "// {}: library matrix product (cuBLAS): {}[{}, {}] = {}[rows {}, cols {}]+{} · {}[rows {}, cols {}]+{}, k = {}\n",
                    k.name,
                    arg(m.out),
                    m.m,
                    m.n,
                    arg(m.a.arg),
                    m.a.rows,
                    m.a.cols,
                    m.a.offset,
                    arg(m.b.arg),
                    m.b.rows,
                    m.b.cols,
                    m.b.offset,
                    m.k
                );
                if m.batch > 1 {
                    let _ = writeln!(
                        source,
                        "// {} products, strided batched: matrix after matrix {} apart in {}, {} in {}\n",
                        m.batch,
                        m.a.batch,
                        arg(m.a.arg),
                        m.b.batch,
                        arg(m.b.arg)
                    );
                }
                let epilogue = match epilogue {
                    Some(l) => {
                        let name = format!("{}_epilogue", k.name);
                        let grid = loop_kernel(&mut source, p, k, l, &name)?;
                        Some((name, grid, BLOCK))
                    }
                    None => None,
                };
                launches.push(Launch::Library { product: m.clone(), epilogue });
                // On the GPU the follower is a kernel of its own after the product.
                if let Some(f) = follower {
                    let name = format!("{}_then", k.name);
                    let grid = loop_kernel(&mut source, p, k, &f.nest, &name)?;
                    launches.push(Launch::Kernel { name, grid, block: BLOCK });
                }
            }
        }
    }
    Ok(Cuda { source, launches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_exact() {
        for c in [0.1f32, -2.5, 1e-8, 3.0e38, 1.0, 0.0, -0.0, f32::MIN_POSITIVE] {
            let l = literal(c);
            let parsed: f32 = l.trim_end_matches('f').parse().unwrap();
            assert_eq!(parsed.to_bits(), c.to_bits(), "{l}");
        }
        assert_eq!(literal(f32::NEG_INFINITY), "__int_as_float(0xff800000)");
    }

    #[test]
    fn ops_render_their_semantics() {
        let a = ["x".to_string(), "y".to_string(), "z".to_string()];
        assert_eq!(expression(ElemOp::Unary(hoyer_ir::Unary::Relu), &a[..1]), "((x < 0.0f) ? 0.0f : x)");
        assert_eq!(expression(ElemOp::Fma, &a), "fmaf(x, y, z)");
        assert_eq!(expression(ElemOp::Binary(hoyer_ir::Binary::Max), &a[..2]), "((x != x) ? x : ((x >= y) ? x : y))");
    }
}

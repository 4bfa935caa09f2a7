//! The kernel IR: what every code generator takes.
//!
//! A `Program` is a list of buffers and a list of kernels run in order. A buffer is either
//! bound by the runtime to a tensor it owns (by role: a parameter, an optimizer state, a data
//! batch, a scalar such as the learning rate) or a temporary at an offset of the program's
//! scratch arena (offsets are reused once a temporary is dead). A kernel names its arguments
//! (buffer and role) and has one of two bodies:
//!
//! - a **loop nest** over an iteration domain of parallel axes, then reduction axes. Each
//!   point runs `body`, a list of instructions in SSA form (register `%i` is instruction
//!   `i`); loads and stores go through strided `View`s of the domain (a broadcast is stride 0,
//!   a transpose swapped strides, a sliding window two axes on one buffer dimension). A
//!   reduction is *output-major*: each point of the parallel axes owns its accumulator (of an
//!   explicit type) and runs all its reduction axes itself, so results never depend on how
//!   the parallel axes are split between threads or thread blocks.
//! - a **matrix product** done by a library (gemm on the CPU, cuBLAS on the GPU) through
//!   strided views of its operands, optionally followed by an epilogue loop nest over its
//!   output (bias, activation) while the output is still in cache, and by a follower: the
//!   next loop nest, where it reads the output a band of rows at a time (conv's col2im).
//!
//! What is computed is fixed here; how (loop order, vector width, threads, grid) is each
//! back end's choice. `fusion` groups a graph's values into kernels, `build` makes a program
//! from them, `passes` rewrite it and `validate` checks it; `print` gives the canonical
//! text (`--emit kernels`), `eval` is a reference evaluator used to test the passes.

pub mod build;
pub mod eval;
pub mod fusion;
pub mod passes;
pub mod print;
pub mod validate;
pub mod view;

use hoyer_ir::semantics::ElemOp;
pub use hoyer_ir::Fill;
use hoyer_ir::{ReduceOp, Shape};

pub use hoyer_ir::Dtype;
use hoyer_ir::Role;

/// Where a buffer lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A tensor the runtime binds by its role; it outlives the program.
    Bound(Role),
    /// Elements `offset..offset + numel` of the program's scratch arena.
    Temp { offset: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Buffer {
    /// For messages and `--emit kernels`: the role's name, or `t3` for a temporary.
    pub name: String,
    pub shape: Shape,
    pub dtype: Dtype,
    pub storage: Storage,
}

impl Buffer {
    pub fn numel(&self) -> usize {
        hoyer_ir::numel(&self.shape)
    }
    /// The role of a bound buffer.
    pub fn role(&self) -> Option<&Role> {
        match &self.storage {
            Storage::Bound(role) => Some(role),
            Storage::Temp { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferId(pub u32);

impl BufferId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How a kernel uses an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    /// Read, then written in place at the same elements (a parameter update).
    ReadWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub buffer: BufferId,
    pub access: Access,
}

/// A map from the kernel's domain to elements of a buffer: element
/// `offset + Σ strides[d] · i[d]`, plus each guard's part. Strides may be zero (a broadcast)
/// and, for sliding windows, two domain axes may step through one buffer dimension.
///
/// Guards are coordinates that plain strides cannot express: a window's coordinate that
/// may fall in the padding, or the window position `(h + p − j·d) / s` of a window's
/// adjoint, which exists only where the division is exact. A view with guards is only
/// loaded from; where a guard fails the load gives that guard's fill instead (the first
/// failing guard's), and reads nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct View {
    pub offset: i64,
    pub strides: Vec<i64>,
    pub guards: Vec<Guard>,
}

/// `e = constant + Σ coeffs[d] · i[d]` must be a multiple of `divisor` with
/// `0 ≤ e / divisor < extent`; the element index then adds `(e / divisor) · stride`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Guard {
    pub coeffs: Vec<i64>,
    pub constant: i64,
    pub divisor: i64,
    pub extent: i64,
    pub stride: i64,
    pub fill: Fill,
}

impl Guard {
    /// The guard's coordinate at a point, if it holds there.
    pub fn at(&self, point: &[i64]) -> Option<i64> {
        let e = self.constant + self.coeffs.iter().zip(point).map(|(c, i)| c * i).sum::<i64>();
        (e >= 0 && e % self.divisor == 0 && e / self.divisor < self.extent).then_some(e / self.divisor)
    }
    /// The innermost domain axis the guard depends on (+1), or 0.
    pub fn depth(&self) -> usize {
        self.coeffs.iter().rposition(|&c| c != 0).map_or(0, |d| d + 1)
    }
}

impl View {
    pub fn strided(offset: i64, strides: Vec<i64>) -> View {
        View { offset, strides, guards: vec![] }
    }
    /// The row-major view of a buffer of `shape` over a domain of the same axes.
    pub fn contiguous(shape: &[usize]) -> View {
        View::strided(0, hoyer_ir::interp::strides(shape).into_iter().map(|s| s as i64).collect())
    }
    /// The innermost domain axis this view moves along or is guarded by (+1), or 0.
    pub fn depth(&self) -> usize {
        let plain = self.strides.iter().rposition(|&s| s != 0).map_or(0, |d| d + 1);
        self.guards.iter().map(Guard::depth).fold(plain, usize::max)
    }
    /// The element at a point of the domain, or the fill where a guard fails.
    pub fn element(&self, point: &[i64]) -> Result<i64, Fill> {
        let mut e = self.offset + self.strides.iter().zip(point).map(|(s, i)| s * i).sum::<i64>();
        for g in &self.guards {
            e += g.at(point).ok_or(g.fill)? * g.stride;
        }
        Ok(e)
    }
}

/// A register: the result of instruction `Reg(i)` of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u32);

impl Reg {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inst {
    /// The element of argument `arg` at `view`.
    Load {
        arg: u32,
        view: View,
    },
    /// The element of argument `arg` at `view` plus `row · row_stride`, where `row` holds a
    /// whole number (a data row picked by a shuffled index list).
    Gather {
        arg: u32,
        row: Reg,
        row_stride: i64,
        view: View,
    },
    Const(f32),
    /// The coordinate along a domain axis, as a float.
    Index(usize),
    /// An element-wise op (`ir::semantics` defines each).
    Op(ElemOp, Vec<Reg>),
    /// The finished reduction `k` (of `Loop::reductions`), at a point of the parallel axes,
    /// after the reduction axes.
    Acc(usize),
}

impl Inst {
    pub fn operands(&self) -> Vec<Reg> {
        match self {
            Inst::Gather { row, .. } => vec![*row],
            Inst::Op(_, args) => args.clone(),
            _ => vec![],
        }
    }
}

/// The accumulator of a reduction. Sums accumulate in f64 (their results then do not depend
/// on the order chosen by a back end beyond float32 rounding); maxima are exact in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccType {
    F32,
    F64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduction {
    pub op: ReduceOp,
    pub acc: AccType,
    /// The register reduced over the reduction axes.
    pub value: Reg,
}

/// A loop nest's write of a register through a view of one of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreInst {
    pub arg: u32,
    pub view: View,
    pub value: Reg,
}

/// A loop nest: parallel axes, then reduction axes. Several reductions over the same axes
/// (‖W‖₁ and ‖W‖₂² of one weight) share one pass over their inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Loop {
    pub parallel: Vec<usize>,
    pub reduce: Vec<usize>,
    pub body: Vec<Inst>,
    pub reductions: Vec<Reduction>,
    pub stores: Vec<StoreInst>,
}

impl Loop {
    pub fn rank(&self) -> usize {
        self.parallel.len() + self.reduce.len()
    }
    /// Extents of the whole domain, parallel axes first.
    pub fn extents(&self) -> Vec<usize> {
        self.parallel.iter().chain(&self.reduce).copied().collect()
    }
    pub fn points(&self) -> usize {
        self.parallel.iter().chain(&self.reduce).product()
    }
    /// Registers computed after the reduction (those that read `Acc`, and what follows from
    /// them): they run once per point of the parallel axes.
    pub fn after_reduction(&self) -> Vec<bool> {
        let mut after = vec![false; self.body.len()];
        for (i, inst) in self.body.iter().enumerate() {
            after[i] = matches!(inst, Inst::Acc(_)) || inst.operands().iter().any(|r| after[r.index()]);
        }
        after
    }
}

/// A 2-D strided view of a matrix operand: element (i, j) of matrix q of a batch at
/// `offset + q·batch + i·rows + j·cols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatView {
    pub arg: u32,
    pub offset: i64,
    pub rows: i64,
    pub cols: i64,
    /// The stride from one matrix of a batch to the next (0 where `batch` is 1).
    pub batch: i64,
}

/// `out[q][m×n] = a[q][m×k] · b[q][k×n]` for each q of `batch` (operands as views), `out`
/// row-major, matrix after matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatMul {
    /// Products of one shape (1 for a plain product; attention's batch × heads).
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: MatView,
    pub b: MatView,
    pub out: u32,
}

/// A loop nest that runs on a product's output a band of rows at a time, right after the
/// band is computed and while it is in cache (conv's col2im after its input-gradient
/// product): index i of its first axis reads only rows `i·rows .. (i+1)·rows` of the output.
/// It computes what it would as the next kernel; only when is the back end's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Follower {
    pub rows: usize,
    pub nest: Loop,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Loop(Loop),
    /// A library matrix product, then an optional loop nest over its [m, n] output, then an
    /// optional follower.
    MatMul(MatMul, Option<Loop>, Option<Box<Follower>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub args: Vec<Arg>,
    pub body: Body,
}

impl Kernel {
    /// The kernel's loop nests in the order they first run: its loop, or a product's
    /// epilogue and follower.
    pub fn loop_nests(&self) -> Vec<&Loop> {
        match &self.body {
            Body::Loop(l) => vec![l],
            Body::MatMul(_, epilogue, follower) => epilogue.iter().chain(follower.iter().map(|f| &f.nest)).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Program {
    pub buffers: Vec<Buffer>,
    pub kernels: Vec<Kernel>,
    /// Elements of scratch memory the temporaries need.
    pub arena: usize,
}

impl Program {
    pub fn buffer(&self, id: BufferId) -> &Buffer {
        &self.buffers[id.index()]
    }
    pub fn find(&self, role: &Role) -> Option<BufferId> {
        self.buffers.iter().position(|b| b.role() == Some(role)).map(|i| BufferId(i as u32))
    }
    /// The bound buffers (what the runtime provides), with whether a kernel writes them.
    pub fn bound(&self) -> Vec<(BufferId, bool)> {
        let mut written = vec![false; self.buffers.len()];
        for k in &self.kernels {
            for a in &k.args {
                if a.access != Access::Read {
                    written[a.buffer.index()] = true;
                }
            }
        }
        self.buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.role().is_some())
            .map(|(i, _)| (BufferId(i as u32), written[i]))
            .collect()
    }
}

//! From a fused graph (`fusion::Schedule`) to a kernel `Program`.
//!
//! - Every graph input a kernel reads, and every output, is a bound buffer with its role in
//!   the graph. An output named like an input is written over it (a parameter's update), where
//!   `fusion` could order the kernels for that and the writing kernel reads the old value
//!   only at the element it writes; otherwise it is computed aside and copied over at the end.
//! - Every other value a kernel writes is a temporary in the arena; temporaries whose
//!   lifetimes (first to last kernel that touches them) do not overlap share memory.
//! - Reads through broadcasts, permutes, reshapes and windows become views of the buffer
//!   underneath (`view`); constants become instructions.
//! - The adjoint of windows is a sum over the window's own axes, a reduction whose input is
//!   read through a guarded view.

use super::view::{source, unwindow_view, Source};
use super::{
    AccType, Access, Arg, Body, Buffer, BufferId, Inst, Kernel, Loop, MatMul, MatView, Program, Reduction, Reg,
    Storage, StoreInst, View,
};
use crate::error::CompileError;
use crate::kernel::fusion::{root, KernelKind, Schedule};
use hoyer_ir::semantics::ElemOp;
use hoyer_ir::{numel, Graph, Op, ReduceOp, Role, ValueId};
use std::collections::HashMap;

fn internal(message: impl Into<String>) -> CompileError {
    CompileError::internal("kernel construction", message)
}

fn view_of(g: &Graph, v: ValueId) -> Result<Source, CompileError> {
    source(g, v).map_err(internal)
}

/// Whether the kernel writing `output` can write it over `input`: it reads `input` only as a
/// direct operand of element-wise ops (the element it writes), and `output` is not the
/// product a library writes.
fn in_place_ok(g: &Graph, kernel: &crate::kernel::fusion::Fused, output: ValueId, input: ValueId) -> bool {
    if matches!(g.value(output).op, Op::MatMul { .. } | Op::Reduce { .. } | Op::Unwindow { .. }) {
        return false;
    }
    // The old value is read only where the new one is written: by element-wise ops over the
    // output's own shape (the whole iteration shape, or after a reduction the reduced one).
    let shape = g.shape(output);
    kernel.values.iter().all(|v| {
        let op = &g.value(*v).op;
        op.operands().iter().all(|&o| {
            root(g, o) != input
                || (o == input
                    && g.shape(*v) == shape
                    && !matches!(op, Op::MatMul { .. } | Op::Gather { .. } | Op::OneHot { .. } | Op::Reduce { .. }))
        })
    })
}

struct Builder<'g> {
    g: &'g Graph,
    program: Program,
    /// The buffer holding each value in memory (inputs, written values).
    buffer_of: HashMap<ValueId, BufferId>,
    /// Further buffers a written value is stored to (outputs).
    also: HashMap<ValueId, Vec<BufferId>>,
    temps: usize,
}

impl Builder<'_> {
    fn add_buffer(&mut self, name: String, v: ValueId, storage: Storage) -> BufferId {
        let (shape, dtype) = (self.g.shape(v).to_vec(), self.g.dtype(v));
        self.program.buffers.push(Buffer { name, shape, dtype, storage });
        BufferId(self.program.buffers.len() as u32 - 1)
    }

    fn bound(&mut self, role: &Role, v: ValueId) -> BufferId {
        self.add_buffer(role.to_string(), v, Storage::Bound(role.clone()))
    }

    fn temp(&mut self, v: ValueId) -> BufferId {
        let name = format!("t{}", self.temps);
        self.temps += 1;
        self.add_buffer(name, v, Storage::Temp { offset: 0 })
    }

    /// The buffer of `v` in memory: an input's bound buffer, created on first use.
    fn buffer(&mut self, v: ValueId) -> Result<BufferId, CompileError> {
        if let Some(&b) = self.buffer_of.get(&v) {
            return Ok(b);
        }
        match &self.g.value(v).op {
            Op::Input(role) => {
                let b = self.bound(role, v);
                self.buffer_of.insert(v, b);
                Ok(b)
            }
            _ => Err(internal(format!("%{} is read but no kernel writes it", v.0))),
        }
    }
}

/// One kernel's arguments and body while it is built.
struct KernelBuilder<'g> {
    g: &'g Graph,
    args: Vec<Arg>,
    /// Each buffer's position in `args` (a kernel summing thousands of penalties has
    /// thousands of arguments).
    arg_of: HashMap<BufferId, u32>,
    body: Vec<Inst>,
    reg_of: HashMap<ValueId, Reg>,
    /// Loads, constants and indices already in the body.
    known: HashMap<String, Reg>,
    /// Domain position of each axis of the iteration shape.
    axis_of: Vec<usize>,
    rank: usize,
    /// The iteration axes the value being computed has (all of them, or the parallel ones
    /// for an op after the reduction).
    value_dims: Option<Vec<usize>>,
}

impl<'g> KernelBuilder<'g> {
    fn new(g: &'g Graph, axis_of: Vec<usize>) -> Self {
        let rank = axis_of.len();
        KernelBuilder {
            g,
            args: vec![],
            arg_of: HashMap::new(),
            body: vec![],
            reg_of: HashMap::new(),
            known: HashMap::new(),
            axis_of,
            rank,
            value_dims: None,
        }
    }

    fn arg(&mut self, buffer: BufferId, access: Access) -> u32 {
        if let Some(&i) = self.arg_of.get(&buffer) {
            let a = &mut self.args[i as usize];
            if a.access != access {
                a.access = Access::ReadWrite;
            }
            return i;
        }
        self.args.push(Arg { buffer, access });
        let i = self.args.len() as u32 - 1;
        self.arg_of.insert(buffer, i);
        i
    }

    fn push(&mut self, inst: Inst) -> Reg {
        self.body.push(inst);
        Reg(self.body.len() as u32 - 1)
    }

    /// An instruction that depends on nothing but its own fields, shared within the kernel.
    fn shared(&mut self, inst: Inst) -> Reg {
        let key = format!("{inst:?}");
        if let Some(&r) = self.known.get(&key) {
            return r;
        }
        let r = self.push(inst);
        self.known.insert(key, r);
        r
    }

    fn constant(&mut self, c: f64) -> Reg {
        self.shared(Inst::Const(c as f32))
    }

    /// A view whose axis `i` is iteration axis `dims[i]`, on the domain.
    fn domain_view(&self, view: &View, dims: &[usize]) -> View {
        view.map_axes(self.rank, |i| Some(self.axis_of[dims[i]]))
    }

    /// A register holding operand `o`, whose axis `i` is iteration axis `dims[i]`.
    fn operand_at(&mut self, b: &mut Builder, o: ValueId, dims: &[usize]) -> Result<Reg, CompileError> {
        if let Some(&r) = self.reg_of.get(&o) {
            return Ok(r);
        }
        match view_of(self.g, o)? {
            Source::Const(c) => Ok(self.constant(c)),
            Source::View { root, view } => {
                if self.reg_of.contains_key(&root) {
                    return Err(internal(format!("%{} is read through a view in the kernel that computes it", root.0)));
                }
                let buffer = b.buffer(root)?;
                let arg = self.arg(buffer, Access::Read);
                let view = self.domain_view(&view, dims);
                Ok(self.shared(Inst::Load { arg, view }))
            }
        }
    }

    /// The domain axis of axis `a` of the value being computed: an op after the reduction
    /// has only the parallel axes.
    fn domain_axis(&self, a: usize) -> usize {
        self.axis_of[self.value_dims.as_ref().map_or(a, |d| d[a])]
    }

    /// A register holding `o`, an operand of the value being computed.
    fn operand(&mut self, b: &mut Builder, o: ValueId) -> Result<Reg, CompileError> {
        let dims: Vec<usize> = match &self.value_dims {
            Some(d) => d.clone(),
            None => (0..self.g.shape(o).len()).collect(),
        };
        self.operand_at(b, o, &dims)
    }

    /// The instruction computing `v` (not a reduction or a product).
    fn compute(&mut self, b: &mut Builder, v: ValueId) -> Result<Reg, CompileError> {
        let g = self.g;
        let reg = match &g.value(v).op {
            Op::Unary(u, x) => {
                let x = self.operand(b, *x)?;
                self.push(Inst::Op(ElemOp::Unary(*u), vec![x]))
            }
            Op::PowConst(x, c) => {
                let x = self.operand(b, *x)?;
                self.push(Inst::Op(ElemOp::Pow(*c), vec![x]))
            }
            Op::Binary(op, x, y) => {
                let (x, y) = (self.operand(b, *x)?, self.operand(b, *y)?);
                self.push(Inst::Op(ElemOp::Binary(*op), vec![x, y]))
            }
            Op::Select { cond, on_true, on_false } => {
                let args = vec![self.operand(b, *cond)?, self.operand(b, *on_true)?, self.operand(b, *on_false)?];
                self.push(Inst::Op(ElemOp::Select, args))
            }
            Op::OneHot { labels } => {
                // [b, c]: 1 where labels[b] == c.
                let label = self.operand_at(b, *labels, &[0])?;
                let class = self.shared(Inst::Index(self.domain_axis(1)));
                self.push(Inst::Op(ElemOp::Binary(hoyer_ir::Binary::Eq), vec![label, class]))
            }
            Op::Iota { axis } => self.shared(Inst::Index(self.domain_axis(*axis))),
            Op::Gather { table, indices } => {
                let row = if g.shape(*indices) == g.shape(v) {
                    self.operand(b, *indices)?
                } else {
                    self.operand_at(b, *indices, &[0])?
                };
                let Source::View { root, view } = view_of(g, *table)? else {
                    return Err(internal("a gather from a constant table"));
                };
                if !view.guards.is_empty() {
                    return Err(internal("a gather from a guarded view"));
                }
                let buffer = b.buffer(root)?;
                let arg = self.arg(buffer, Access::Read);
                let dims: Vec<usize> = (1..view.strides.len()).collect();
                let row_stride = view.strides[0];
                let rest = View::strided(view.offset, view.strides[1..].to_vec());
                let view = self.domain_view(&rest, &dims);
                self.push(Inst::Gather { arg, row, row_stride, view })
            }
            other => return Err(internal(format!("{} inside a fused kernel", hoyer_ir::print::op_name(other)))),
        };
        self.reg_of.insert(v, reg);
        Ok(reg)
    }

    /// Stores of `v` (of the iteration shape, or `dims` of it) to every buffer it goes to.
    fn store(&mut self, b: &Builder, v: ValueId, value: Reg, dims: &[usize], stores: &mut Vec<StoreInst>) {
        let view = self.domain_view(&View::contiguous(self.g.shape(v)), dims);
        let targets =
            b.buffer_of.get(&v).into_iter().chain(b.also.get(&v).into_iter().flatten()).copied().collect::<Vec<_>>();
        for t in targets {
            let arg = self.arg(t, Access::Write);
            stores.push(StoreInst { arg, view: view.clone(), value });
        }
    }
}

/// Builds the program of `g` from its fused schedule.
pub fn build(g: &Graph, schedule: &Schedule) -> Result<Program, CompileError> {
    let mut b = Builder { g, program: Program::default(), buffer_of: HashMap::new(), also: HashMap::new(), temps: 0 };
    let writer: HashMap<ValueId, usize> = schedule
        .kernels
        .iter()
        .enumerate()
        .flat_map(|(k, kernel)| kernel.values.iter().map(move |v| (*v, k)))
        .collect();

    // Outputs: written in place over the input of the same name, or to their own buffer; an
    // output that is not computed by a kernel (a view, a constant, an input) is copied.
    let mut copies: Vec<(ValueId, BufferId)> = Vec::new();
    let inputs = g.input_map();
    let in_place: std::collections::HashSet<(ValueId, ValueId)> = schedule.in_place.iter().copied().collect();
    for (role, v) in &g.outputs {
        let input = inputs.get(role).copied();
        if input == Some(*v) {
            continue; // unchanged
        }
        let dst = match input {
            Some(i) => b.buffer(i)?,
            None => b.bound(role, *v),
        };
        let computed = writer.contains_key(v);
        let in_place_ok = match input {
            Some(i) => computed && in_place.contains(&(*v, i)) && in_place_ok(g, &schedule.kernels[writer[v]], *v, i),
            None => computed,
        };
        if in_place_ok {
            if let std::collections::hash_map::Entry::Vacant(e) = b.buffer_of.entry(*v) {
                e.insert(dst);
            } else {
                b.also.entry(*v).or_default().push(dst);
            }
        } else {
            copies.push((*v, dst));
        }
    }
    // Temporaries for the other values kernels write (and products, which need memory).
    for k in &schedule.kernels {
        let product = k.matmul(g);
        for &v in k.writes.iter().chain(product.iter()) {
            if !b.buffer_of.contains_key(&v) {
                let t = b.temp(v);
                b.buffer_of.insert(v, t);
            }
        }
    }
    for (v, _) in &copies {
        let r = root(g, *v);
        if writer.contains_key(&r) && !b.buffer_of.contains_key(&r) {
            return Err(internal(format!("output %{} is not written", r.0)));
        }
    }

    for k in &schedule.kernels {
        let name = format!("k{}", b.program.kernels.len());
        let kernel = match k.kind {
            KernelKind::MatMul => matmul_kernel(&mut b, k, name)?,
            _ => loop_kernel(&mut b, k, name)?,
        };
        if let Some(product) = b.program.kernels.last_mut() {
            if crate::kernel::passes::attach_follower(product, &kernel) {
                continue;
            }
        }
        b.program.kernels.push(kernel);
    }
    for (v, dst) in copies {
        let name = format!("k{}", b.program.kernels.len());
        let kernel = copy_kernel(&mut b, v, dst, name)?;
        b.program.kernels.push(kernel);
    }
    let mut program = b.program;
    program.arena = place_temporaries(&mut program);
    Ok(program)
}

fn loop_kernel(b: &mut Builder, k: &crate::kernel::fusion::Fused, name: String) -> Result<Kernel, CompileError> {
    let g = b.g;
    let axes: Vec<usize> = k
        .values
        .iter()
        .find_map(|&v| crate::kernel::fusion::reduction_domain(g, v))
        .map(|(_, axes)| axes)
        .unwrap_or_default();
    let parallel: Vec<usize> = (0..k.shape.len()).filter(|a| !axes.contains(a)).collect();
    let order: Vec<usize> = parallel.iter().chain(&axes).copied().collect();
    let mut axis_of = vec![0; k.shape.len()];
    for (pos, &a) in order.iter().enumerate() {
        axis_of[a] = pos;
    }
    let mut kb = KernelBuilder::new(g, axis_of);
    let mut stores = Vec::new();
    let mut reductions = Vec::new();
    let all: Vec<usize> = (0..k.shape.len()).collect();
    let writes: std::collections::HashSet<ValueId> = k.writes.iter().copied().collect();
    for &v in &k.values {
        if let Op::Reduce { op, input, axes: these } = &g.value(v).op {
            if *these != axes {
                return Err(internal("reductions over different axes in one kernel"));
            }
            kb.value_dims = None;
            let value = kb.operand(b, *input)?;
            // Which maximum gets the gradient does not change the value.
            let (op, acc) = match op {
                ReduceOp::Sum => (ReduceOp::Sum, AccType::F64),
                ReduceOp::Max | ReduceOp::MaxFirst => (ReduceOp::Max, AccType::F32),
            };
            reductions.push(Reduction { op, acc, value });
            let r = kb.push(Inst::Acc(reductions.len() - 1));
            kb.reg_of.insert(v, r);
            kb.store(b, v, r, &parallel, &mut stores);
            continue;
        }
        if let Op::Unwindow { input, axes: window_axes, slides } = &g.value(v).op {
            // A sum over the window's axes of the windows that read each element.
            if crate::kernel::fusion::reduction_domain(g, v).map(|d| d.1) != Some(axes.clone()) {
                return Err(internal("reductions over different axes in one kernel"));
            }
            let Source::View { root, view } = view_of(g, *input)? else {
                return Err(internal("the adjoint of constant windows"));
            };
            let view = unwindow_view(&view, g.shape(*input), window_axes, slides).map_err(internal)?;
            let arg = kb.arg(b.buffer(root)?, Access::Read);
            let view = kb.domain_view(&view, &all);
            let value = kb.shared(Inst::Load { arg, view });
            // Each element sums the few windows over it (25 for a 5×5 kernel, stride 1): in
            // float32, as PyTorch's col2im (a short sum; float64 buys nothing here).
            reductions.push(Reduction { op: ReduceOp::Sum, acc: AccType::F32, value });
            let r = kb.push(Inst::Acc(reductions.len() - 1));
            kb.reg_of.insert(v, r);
            kb.store(b, v, r, &parallel, &mut stores);
            continue;
        }
        // An op over the reduced shape runs after the reduction, at each parallel point.
        let after = !axes.is_empty() && g.shape(v).len() == parallel.len() && g.shape(v) != k.shape.as_slice();
        let dims = if after { &parallel } else { &all };
        kb.value_dims = Some(dims.clone());
        let r = kb.compute(b, v)?;
        if writes.contains(&v) {
            kb.store(b, v, r, dims, &mut stores);
        }
    }
    let body = Loop {
        parallel: parallel.iter().map(|&a| k.shape[a]).collect(),
        reduce: axes.iter().map(|&a| k.shape[a]).collect(),
        body: kb.body,
        reductions,
        stores,
    };
    Ok(Kernel { name, args: kb.args, body: Body::Loop(body) })
}

fn matmul_kernel(b: &mut Builder, k: &crate::kernel::fusion::Fused, name: String) -> Result<Kernel, CompileError> {
    let g = b.g;
    let mm = k.matmul(g).ok_or_else(|| internal("a product kernel without a product"))?;
    let Op::MatMul { a, b: bb, ta, tb } = g.value(mm).op else { unreachable!("found as a product") };
    // A batched product's domain is [batch, m, n]; a plain one's [m, n].
    let shape = g.shape(mm).to_vec();
    let batched = shape.len() == 3;
    let (batch, m, n) = if batched { (shape[0], shape[1], shape[2]) } else { (1, shape[0], shape[1]) };
    let sa = g.shape(a);
    let kdim = if ta { sa[sa.len() - 2] } else { sa[sa.len() - 1] };
    let dims: Vec<usize> = (0..shape.len()).collect();
    let mut kb = KernelBuilder::new(g, dims.clone());
    let mut operand = |kb: &mut KernelBuilder, x: ValueId, transposed: bool| -> Result<MatView, CompileError> {
        let Source::View { root, view } = view_of(g, x)? else {
            return Err(internal("a matrix product of a constant"));
        };
        if !view.guards.is_empty() {
            return Err(internal("a matrix product of a guarded view"));
        }
        let arg = kb.arg(b.buffer(root)?, Access::Read);
        let (batch, s) = if batched { (view.strides[0], &view.strides[1..]) } else { (0, &view.strides[..]) };
        let (rows, cols) = if transposed { (s[1], s[0]) } else { (s[0], s[1]) };
        Ok(MatView { arg, offset: view.offset, rows, cols, batch })
    };
    let av = operand(&mut kb, a, ta)?;
    let bv = operand(&mut kb, bb, tb)?;
    let out_buffer = b.buffer_of[&mm];
    let out = kb.arg(out_buffer, Access::Write);
    let product = MatMul { batch, m, n, k: kdim, a: av, b: bv, out };
    let mut stores = Vec::new();
    // Further outputs the product itself goes to.
    if let Some(extra) = b.also.get(&mm).cloned() {
        let r = kb.operand(b, mm)?;
        for t in extra {
            let arg = kb.arg(t, Access::Write);
            stores.push(StoreInst { arg, view: View::contiguous(&shape), value: r });
        }
    }
    for &v in k.values.iter().filter(|&&v| v != mm) {
        let r = kb.compute(b, v)?;
        if k.writes.contains(&v) {
            kb.store(b, v, r, &dims, &mut stores);
        }
    }
    let epilogue = (!kb.body.is_empty()).then(|| Loop {
        parallel: shape.clone(),
        reduce: vec![],
        body: std::mem::take(&mut kb.body),
        reductions: vec![],
        stores,
    });
    Ok(Kernel { name, args: kb.args, body: Body::MatMul(product, epilogue, None) })
}

/// A kernel that writes `v` (a view, constant or input) contiguously to `dst`.
fn copy_kernel(b: &mut Builder, v: ValueId, dst: BufferId, name: String) -> Result<Kernel, CompileError> {
    let g = b.g;
    let shape = g.shape(v).to_vec();
    let mut kb = KernelBuilder::new(g, (0..shape.len()).collect());
    let r = match view_of(g, v)? {
        Source::Const(c) => kb.constant(c),
        Source::View { root, view } => {
            let arg = kb.arg(b.buffer(root)?, Access::Read);
            let dims: Vec<usize> = (0..shape.len()).collect();
            let view = kb.domain_view(&view, &dims);
            kb.push(Inst::Load { arg, view })
        }
    };
    let arg = kb.arg(dst, Access::Write);
    let stores = vec![StoreInst { arg, view: View::contiguous(&shape), value: r }];
    let body = Loop { parallel: shape, reduce: vec![], body: kb.body, reductions: vec![], stores };
    Ok(Kernel { name, args: kb.args, body: Body::Loop(body) })
}

/// Gives each temporary an arena offset; temporaries live from the first to the last kernel
/// that touches them, and ones that are never alive together share memory. Returns the
/// arena's size in elements.
fn place_temporaries(p: &mut Program) -> usize {
    const ALIGN: usize = 16; // 64 bytes: a cache line, and aligned vector loads
    let mut life: Vec<Option<(usize, usize)>> = vec![None; p.buffers.len()];
    for (k, kernel) in p.kernels.iter().enumerate() {
        for a in &kernel.args {
            let l = &mut life[a.buffer.index()];
            *l = Some(l.map_or((k, k), |(s, _)| (s, k)));
        }
    }
    let mut temps: Vec<usize> = (0..p.buffers.len())
        .filter(|&i| matches!(p.buffers[i].storage, Storage::Temp { .. }) && life[i].is_some())
        .collect();
    temps.sort_by_key(|&i| (life[i].map(|l| l.0), i));
    // Temporaries are placed in the order they come alive, so those already placed that are
    // still alive at this one's first kernel are exactly the ones it overlaps: kept apart,
    // by offset, as (offset, end, last kernel). Linear in the program for bounded liveness.
    let mut alive: Vec<(usize, usize, usize)> = Vec::new();
    let mut arena = 0;
    for i in temps {
        let (first, last) = life[i].unwrap_or((0, 0));
        let size = numel(&p.buffers[i].shape).div_ceil(ALIGN) * ALIGN;
        alive.retain(|t| t.2 >= first);
        let mut offset = 0;
        for &(s, e, _) in &alive {
            if offset + size <= s {
                break;
            }
            offset = offset.max(e);
        }
        p.buffers[i].storage = Storage::Temp { offset };
        let at = alive.partition_point(|t| (t.0, t.1) <= (offset, offset + size));
        alive.insert(at, (offset, offset + size, last));
        arena = arena.max(offset + size);
    }
    arena
}

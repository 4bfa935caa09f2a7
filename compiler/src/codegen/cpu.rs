//! Cranelift IR for kernel loop nests. Each loop nest becomes one function
//!
//! ```text
//! kernel(args: *const *mut f32, lo: *const i64, hi: *const i64)
//! ```
//!
//! that runs the points `lo[d]..hi[d]` of each parallel axis `d` (a task: the runtime splits
//! the parallel axes between threads; reductions are never split, so results do not depend
//! on the split). `args` holds the base address of each kernel argument.
//!
//! How the nest is emitted:
//! - Loops follow the domain: parallel axes outside, reduction axes inside. Every
//!   instruction is emitted at the depth of the innermost axis it depends on, so a
//!   per-row load or a constant is computed once per row, not once per element.
//! - One axis is vectorized four lanes wide (F32X4; Cranelift 0.135 has no wider vectors on
//!   x86-64): the innermost one, or for a reduction whose elements are strided, the innermost
//!   parallel axis, so that four outputs accumulate side by side. A view that does not move
//!   along that axis is a scalar load and a splat; one that moves by one element a vector
//!   load; any other stride four loads. The remaining points run the same instructions one
//!   lane wide, so vector and scalar paths give the same bits for every element.
//! - Every element-wise op is rendered primitive by primitive from `ir::semantics`.
//! - Sums accumulate in float64 (two F64X2 halves per vector), maxima in float32. A
//!   vectorized reduction axis keeps four partial sums, combined in a fixed order, then adds
//!   the scalar tail: the order depends only on the shapes.

use crate::error::CompileError;
use crate::kernel::{AccType, Body, Dtype, Fill, Guard, Inst, Loop, Program, Reduction, Reg, View};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I32, I32X4, I64, I8, I8X16};
use cranelift_codegen::ir::{
    AbiParam, ConstantData, Endianness, ExtFuncData, ExternalName, FuncRef, Function, InstBuilder, MemFlagsData,
    Signature, UserExternalName, UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use hoyer_ir::semantics::{self, Cmp, ElemOp, Prim};
use hoyer_ir::ReduceOp;
use std::collections::HashMap;
use target_lexicon::PointerWidth;

/// The C math functions a kernel may call, as indices of imported user functions in
/// namespace 0 (the JIT maps them to its declared imports).
#[derive(Debug, Clone, Copy)]
pub struct MathImports {
    pub expf: u32,
    pub logf: u32,
    pub powf: u32,
    pub tanhf: u32,
    pub erff: u32,
}

/// What the generated code may assume about the machine.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub call_conv: CallConv,
    pub math: MathImports,
}

impl Target {
    /// The x86-64 System V target `--emit clif` shows.
    pub fn listing() -> Target {
        Target { call_conv: CallConv::SystemV, math: MathImports { expf: 0, logf: 1, powf: 2, tanhf: 3, erff: 4 } }
    }
}

const LANES: usize = 4;

fn internal(message: impl Into<String>) -> CompileError {
    CompileError::internal("Cranelift code generation", message)
}

/// The depth (number of enclosing loops) each instruction needs, and whether it comes after
/// the reduction.
fn levels(l: &Loop) -> Vec<usize> {
    let np = l.parallel.len();
    let after = l.after_reduction();
    let mut level = vec![0; l.body.len()];
    for (i, inst) in l.body.iter().enumerate() {
        let operands = inst.operands().iter().map(|r| level[r.index()]).max().unwrap_or(0);
        level[i] = match inst {
            Inst::Load { view, .. } => view.depth(),
            Inst::Gather { view, .. } => view.depth().max(operands),
            Inst::Const(_) => 0,
            Inst::Index(a) => a + 1,
            Inst::Op(..) => operands,
            Inst::Acc(_) => np,
        };
        if after[i] {
            level[i] = np;
        }
    }
    level
}

/// The axis the nest vectorizes, if any: the innermost axis, or the innermost parallel axis
/// when that keeps more accesses contiguous (a reduction over strided elements).
pub fn vector_axis(l: &Loop) -> Option<usize> {
    let rank = l.rank();
    if rank == 0 {
        return None;
    }
    let extents = l.extents();
    let level = levels(l);
    let mut candidates = vec![rank - 1];
    if !l.reduce.is_empty() && !l.parallel.is_empty() {
        candidates.push(l.parallel.len() - 1);
    }
    let cost = |v: usize| -> usize {
        let mut c = 0;
        for (i, inst) in l.body.iter().enumerate() {
            match inst {
                // Lanes that each check their own guards are four scalar loads with branches.
                Inst::Load { view, .. } if level[i] > v && view.guards.iter().any(|g| g.coeffs[v] != 0) => c += 4,
                Inst::Load { view, .. } if level[i] > v && !matches!(view.strides[v], 0 | 1) => c += 1,
                Inst::Gather { row, view, .. }
                    if level[i] > v && (level[row.index()] > v || !matches!(view.strides[v], 0 | 1)) =>
                {
                    c += 1
                }
                _ => {}
            }
        }
        c + l.stores.iter().filter(|s| s.view.depth() > v && !matches!(s.view.strides[v], 0 | 1)).count()
    };
    candidates.into_iter().filter(|&v| extents[v] >= LANES).min_by_key(|&v| cost(v))
}

/// Padding as loop bounds. A sum whose every term is one guarded load (filled with zero
/// where a guard fails) skips nothing by running each reduction axis only where the guards
/// along it hold: `0 ≤ c + Σ outer + i ≤ n − 1` is a range of `i`. That is the gradient of
/// a padded or overlapping window (col2im), which otherwise branches on every element. The
/// skipped terms are exact zeros and the order of the others is kept, so the sum has the
/// same bits. Returns the guards per reduction axis and the load's view without them.
fn narrowing(l: &Loop) -> (Vec<Vec<Guard>>, HashMap<usize, View>) {
    let none = (vec![vec![]; l.rank()], HashMap::new());
    let np = l.parallel.len();
    let after = l.after_reduction();
    // Stores inside the reduction loops would miss the skipped points.
    if l.reductions.is_empty() || l.stores.iter().any(|s| !after[s.value.index()] && s.view.depth() > np) {
        return none;
    }
    // Lanes of a vector axis would each need their own bounds; a vectorized reduction axis
    // would regroup its partial sums.
    let vaxis = vector_axis(l);
    if vaxis.is_some_and(|v| v >= np) {
        return none;
    }
    // Every reduction (the copies of a jammed nest) must skip the same points.
    let mut found: Option<Vec<Vec<Guard>>> = None;
    let mut narrowed = HashMap::new();
    for red in &l.reductions {
        let i = red.value.index();
        let Inst::Load { view, .. } = &l.body[i] else { return none };
        if red.op != ReduceOp::Sum {
            return none;
        }
        let mut bounds = vec![vec![]; l.rank()];
        let mut rest = view.clone();
        rest.guards.clear();
        for g in &view.guards {
            let d = g.depth().saturating_sub(1);
            let lanes_agree = vaxis.is_none_or(|v| g.coeffs[v] == 0);
            if g.depth() > np && g.divisor == 1 && g.fill == Fill::Zero && g.coeffs[d].abs() == 1 && lanes_agree {
                // Where it holds, the guard's coordinate is a plain strided term of the element.
                rest.offset += g.constant * g.stride;
                for (s, c) in rest.strides.iter_mut().zip(&g.coeffs) {
                    *s += c * g.stride;
                }
                bounds[d].push(g.clone());
            } else {
                rest.guards.push(g.clone());
            }
        }
        if found.as_ref().is_some_and(|f| *f != bounds) {
            return none;
        }
        found = Some(bounds);
        narrowed.insert(i, rest);
    }
    // (Some: there is at least one reduction.)
    let Some(bounds) = found.filter(|b| b.iter().any(|axis| !axis.is_empty())) else { return none };
    (bounds, narrowed)
}

/// The axis a reduction's nest is jammed along (`kernel::passes::jam`) and into how many
/// copies: the vectorized innermost parallel axis of a reduction over strided elements, when
/// it is 8 to 32 wide and its accumulators fit in registers. The runtime never cuts that
/// axis between tasks.
pub fn jam_axis(l: &Loop) -> Option<(usize, usize)> {
    let np = l.parallel.len();
    if l.reduce.is_empty() || np == 0 || vector_axis(l) != Some(np - 1) {
        return None;
    }
    let extent = l.parallel[np - 1];
    let copies = extent / LANES;
    let registers: usize =
        l.reductions.iter().map(|r| if r.op == ReduceOp::Sum && r.acc == AccType::F64 { 2 } else { 1 }).sum();
    (extent.is_multiple_of(LANES) && (2..=8).contains(&copies) && copies * registers <= 8).then_some((np - 1, copies))
}

#[derive(Clone, Copy)]
struct Val {
    v: Value,
    vector: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Scalar,
    Vector,
}

struct Imports {
    exp: FuncRef,
    log: FuncRef,
    pow: FuncRef,
    tanh: FuncRef,
    erf: FuncRef,
}

struct Emitter<'a, 'b> {
    l: &'a Loop,
    b: FunctionBuilder<'b>,
    level: Vec<usize>,
    after: Vec<bool>,
    vaxis: Option<usize>,
    /// Base address of each argument.
    base: HashMap<u32, Value>,
    /// The type of each argument's elements: an integer one is converted to and from float32
    /// where it is loaded and stored.
    dtypes: Vec<Dtype>,
    /// Loop index per domain axis.
    vars: Vec<Variable>,
    /// Bounds of the parallel axes.
    lo: Vec<Value>,
    hi: Vec<Value>,
    regs: Vec<Option<Val>>,
    imports: Imports,
    accs: Vec<Accumulator>,
    /// Guards that became bounds of a reduction loop, per axis, and the loads left to
    /// check only the rest (see `narrowing`).
    bounds: Vec<Vec<Guard>>,
    narrowed: HashMap<usize, View>,
    /// Address streams: each distinct strides of a load or store, with the depth it is used
    /// at; `partials[d][k]` is stream k's element over the axes outside depth d, computed
    /// once per iteration of loop d − 1 (one multiply-add per loop level, not a whole sum per
    /// element). Views that differ only in offset (a jammed nest's copies, neighbouring
    /// window taps) share a stream: the offset goes into the instruction.
    streams: HashMap<Vec<i64>, (usize, usize)>,
    partials: Vec<Vec<Option<Value>>>,
    depth: usize,
    /// The outermost depth from which the loops are unrolled (`rank` for none), and whether
    /// the emitter is inside the unrolled copy.
    unroll_from: usize,
    unrolling: bool,
}

/// Inner loops of at most this many points in all are unrolled: a 5×5 window's im2col copy or
/// a 2×2 pooling window costs more in loop control than in work.
const UNROLL_POINTS: usize = 32;

/// The outermost depth whose loops and the loops inside it cover at most `UNROLL_POINTS`
/// points and have fixed bounds (no guards turned into bounds), or the rank for none.
fn unroll_from(l: &Loop, bounds: &[Vec<Guard>]) -> usize {
    let domain = l.extents();
    let mut from = l.rank();
    let mut points = 1;
    while from > 0 && bounds[from - 1].is_empty() && points * domain[from - 1] <= UNROLL_POINTS {
        points *= domain[from - 1];
        from -= 1;
    }
    from
}

/// The variables of one reduction's accumulator: scalar, and vector (for f64 sums two F64X2
/// halves, lanes 0-1 and 2-3; otherwise one F32X4).
struct Accumulator {
    red: Reduction,
    s: Variable,
    lo: Variable,
    hi: Variable,
    v: Variable,
}

impl Accumulator {
    fn sum_f64(&self) -> bool {
        self.red.op == ReduceOp::Sum && self.red.acc == AccType::F64
    }
}

/// Builds the function of loop nest `l`, whose arguments hold elements of `dtypes`.
pub fn loop_function(l: &Loop, dtypes: &[Dtype], name: u32, target: &Target) -> Result<Function, CompileError> {
    let jammed;
    let (l, jam) = match jam_axis(l) {
        Some((p, copies)) => {
            jammed = crate::kernel::passes::jam(l, p, copies);
            (&jammed, Some(p))
        }
        None => (l, None),
    };
    let mut sig = Signature::new(target.call_conv);
    for _ in 0..3 {
        sig.params.push(AbiParam::new(I64));
    }
    let mut func = Function::with_name_signature(UserFuncName::user(1, name), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (args, lo_ptr, hi_ptr) = (params[0], params[1], params[2]);
        let mem = access();
        let mut used: Vec<u32> = l
            .body
            .iter()
            .filter_map(|i| match i {
                Inst::Load { arg, .. } | Inst::Gather { arg, .. } => Some(*arg),
                _ => None,
            })
            .chain(l.stores.iter().map(|s| s.arg))
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut base = HashMap::new();
        for a in used {
            base.insert(a, b.ins().load(I64, mem, args, (a as i32) * 8));
        }
        let np = l.parallel.len();
        let (mut lo, mut hi) = (Vec::with_capacity(np), Vec::with_capacity(np));
        for d in 0..np {
            if jam == Some(d) {
                // Tasks hold a jammed axis whole; its copies cover it.
                lo.push(b.ins().iconst(I64, 0));
                hi.push(b.ins().iconst(I64, l.parallel[d] as i64));
                continue;
            }
            lo.push(b.ins().load(I64, mem, lo_ptr, (d as i32) * 8));
            hi.push(b.ins().load(I64, mem, hi_ptr, (d as i32) * 8));
        }
        let vars = (0..l.rank()).map(|_| b.declare_var(I64)).collect();
        let imports = imports(&mut b, target);
        let accs = l
            .reductions
            .iter()
            .map(|&red| {
                let scalar = if red.op == ReduceOp::Sum && red.acc == AccType::F64 { F64 } else { F32 };
                Accumulator {
                    red,
                    s: b.declare_var(scalar),
                    lo: b.declare_var(F64X2),
                    hi: b.declare_var(F64X2),
                    v: b.declare_var(F32X4),
                }
            })
            .collect();
        let mut e = Emitter {
            l,
            b,
            level: levels(l),
            after: l.after_reduction(),
            vaxis: vector_axis(l),
            base,
            dtypes: dtypes.to_vec(),
            vars,
            lo,
            hi,
            regs: vec![None; l.body.len()],
            imports,
            accs,
            bounds: vec![],
            narrowed: HashMap::new(),
            streams: HashMap::new(),
            partials: vec![],
            depth: 0,
            unroll_from: l.rank(),
            unrolling: false,
        };
        (e.bounds, e.narrowed) = narrowing(l);
        e.unroll_from = unroll_from(l, &e.bounds);
        e.find_streams();
        e.nest(0, Mode::Scalar)?;
        e.b.ins().return_(&[]);
        e.b.seal_all_blocks();
        e.b.finalize(TargetFrontendConfig {
            default_call_conv: target.call_conv,
            pointer_width: PointerWidth::U64,
            page_size_align_log2: 12,
        });
    }
    Ok(func)
}

fn imports(b: &mut FunctionBuilder, target: &Target) -> Imports {
    let mut import = |index: u32, arity: usize| {
        let mut sig = Signature::new(target.call_conv);
        for _ in 0..arity {
            sig.params.push(AbiParam::new(F32));
        }
        sig.returns.push(AbiParam::new(F32));
        let signature = b.func.import_signature(sig);
        let name = b.func.declare_imported_user_function(UserExternalName::new(0, index));
        b.func.import_function(ExtFuncData {
            name: ExternalName::user(name),
            signature,
            colocated: false,
            patchable: false,
        })
    };
    Imports {
        exp: import(target.math.expf, 1),
        log: import(target.math.logf, 1),
        pow: import(target.math.powf, 2),
        tanh: import(target.math.tanhf, 1),
        erf: import(target.math.erff, 1),
    }
}

fn float_cc(c: Cmp) -> FloatCC {
    match c {
        Cmp::Lt => FloatCC::LessThan,
        Cmp::Le => FloatCC::LessThanOrEqual,
        Cmp::Gt => FloatCC::GreaterThan,
        Cmp::Ge => FloatCC::GreaterThanOrEqual,
        Cmp::Eq => FloatCC::Equal,
        // Unordered or not equal: true for NaN, as C's `!=`.
        Cmp::Ne => FloatCC::NotEqual,
    }
}

/// Flags of a kernel's loads and stores: in bounds (the validator checked the views), not
/// necessarily aligned.
/// An element index: a value computed by the loops and a constant part.
#[derive(Clone, Copy)]
struct Element {
    v: Value,
    offset: i64,
}

fn access() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

fn lanes() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl Emitter<'_, '_> {
    fn np(&self) -> usize {
        self.l.parallel.len()
    }

    fn store_level(&self, s: &crate::kernel::StoreInst) -> usize {
        if self.after[s.value.index()] {
            self.np()
        } else {
            self.level[s.value.index()].max(s.view.depth())
        }
    }

    /// Emits depth `d` of the nest: its instructions and stores, its loop, and at the depth of
    /// the parallel axes the reduction around the inner loops.
    fn nest(&mut self, d: usize, mode: Mode) -> Result<(), CompileError> {
        let l = self.l;
        let np = self.np();
        self.enter(d);
        for i in 0..l.body.len() {
            if self.level[i] == d && !self.after[i] {
                self.inst(i, mode)?;
            }
        }
        for s in &l.stores {
            if !self.after[s.value.index()] && self.store_level(s) == d {
                self.store(s, mode)?;
            }
        }
        let reducing = !l.reductions.is_empty();
        if d == np && reducing {
            self.acc_init();
        }
        if d < l.rank() {
            let var = self.vars[d];
            let (start, end) = if d < np {
                (self.lo[d], self.hi[d])
            } else {
                let mut start = self.b.ins().iconst(I64, 0);
                let mut end = self.b.ins().iconst(I64, l.reduce[d - np] as i64);
                for g in self.bounds[d].clone() {
                    // 0 ≤ base ± i < extent, with base from the outer axes.
                    let mut outer = g.clone();
                    outer.coeffs[d] = 0;
                    let base = self.guard_coordinate(&outer);
                    let (lo, hi) = if g.coeffs[d] == 1 {
                        let lo = self.b.ins().ineg(base);
                        (lo, self.b.ins().iadd_imm_s(lo, g.extent))
                    } else {
                        (self.b.ins().iadd_imm_s(base, 1 - g.extent), self.b.ins().iadd_imm_s(base, 1))
                    };
                    start = self.b.ins().smax(start, lo);
                    end = self.b.ins().smin(end, hi);
                }
                (start, end)
            };
            if self.unrolling {
                self.unrolled(d, mode)?;
            } else if d == self.unroll_from {
                // Unrolled where the task holds these axes whole (nearly always: tasks cut
                // outer axes), looped otherwise.
                let mut whole = self.b.ins().iconst(I8, 1);
                for e in d..np {
                    let lo0 = self.b.ins().icmp_imm_s(IntCC::Equal, self.lo[e], 0);
                    let hi_all = self.b.ins().icmp_imm_s(IntCC::Equal, self.hi[e], l.parallel[e] as i64);
                    let both = self.b.ins().band(lo0, hi_all);
                    whole = self.b.ins().band(whole, both);
                }
                let (fast, slow, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
                self.b.ins().brif(whole, fast, &[], slow, &[]);
                self.b.switch_to_block(fast);
                self.unrolling = true;
                self.unrolled(d, mode)?;
                self.unrolling = false;
                self.b.ins().jump(join, &[]);
                self.b.switch_to_block(slow);
                self.looped(d, var, start, end, mode)?;
                self.b.ins().jump(join, &[]);
                self.b.switch_to_block(join);
            } else {
                self.looped(d, var, start, end, mode)?;
            }
        } else if reducing {
            self.accumulate(mode)?;
        }
        if d == np && reducing {
            self.depth = d;
            {
                let finished: Vec<Val> = (0..self.accs.len()).map(|k| self.acc_finish(mode, k)).collect();
                for i in 0..l.body.len() {
                    if !self.after[i] {
                        continue;
                    }
                    if let Inst::Acc(k) = l.body[i] {
                        self.regs[i] = Some(finished[k]);
                    } else {
                        for r in l.body[i].operands() {
                            if !self.after[r.index()] && self.level[r.index()] > np {
                                return Err(internal("a value of the reduction loop is used after it"));
                            }
                        }
                        self.inst(i, mode)?;
                    }
                }
                for s in &l.stores {
                    if self.after[s.value.index()] {
                        self.store(s, mode)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Loop `d` from `start` to `end`: four lanes at a time on the vector axis, then one.
    fn looped(&mut self, d: usize, var: Variable, start: Value, end: Value, mode: Mode) -> Result<(), CompileError> {
        self.b.def_var(var, start);
        if self.vaxis == Some(d) && mode == Mode::Scalar {
            self.counted_loop(var, end, LANES as i64, |e| e.nest(d + 1, Mode::Vector))?;
        }
        self.counted_loop(var, end, 1, |e| e.nest(d + 1, mode))
    }

    /// Loop `d` over its whole extent, unrolled: the same points in the same order and
    /// modes as `looped`, so the same bits.
    fn unrolled(&mut self, d: usize, mode: Mode) -> Result<(), CompileError> {
        let extent = self.l.extents()[d] as i64;
        let var = self.vars[d];
        let mut i = 0;
        if self.vaxis == Some(d) && mode == Mode::Scalar {
            while i + LANES as i64 <= extent {
                let at = self.b.ins().iconst(I64, i);
                self.b.def_var(var, at);
                self.nest(d + 1, Mode::Vector)?;
                i += LANES as i64;
            }
        }
        while i < extent {
            let at = self.b.ins().iconst(I64, i);
            self.b.def_var(var, at);
            self.nest(d + 1, mode)?;
            i += 1;
        }
        Ok(())
    }

    /// `while var + step <= end { body; var += step }`, continuing from `var`'s value.
    fn counted_loop(
        &mut self,
        var: Variable,
        end: Value,
        step: i64,
        body: impl FnOnce(&mut Self) -> Result<(), CompileError>,
    ) -> Result<(), CompileError> {
        let (head, inner, exit) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let i = self.b.use_var(var);
        let next = self.b.ins().iadd_imm_s(i, step);
        let fits = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, next, end);
        self.b.ins().brif(fits, inner, &[], exit, &[]);
        self.b.switch_to_block(inner);
        body(self)?;
        let i = self.b.use_var(var);
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.def_var(var, next);
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// Every view the nest reads or writes through, as an address stream.
    fn find_streams(&mut self) {
        let l = self.l;
        let add = |view: &View, level: usize, streams: &mut HashMap<Vec<i64>, (usize, usize)>| {
            let n = streams.len();
            let entry = streams.entry(view.strides.clone()).or_insert((n, level));
            entry.1 = entry.1.max(level);
        };
        let mut streams = HashMap::new();
        for (i, inst) in l.body.iter().enumerate() {
            match inst {
                Inst::Load { view, .. } => add(self.narrowed.get(&i).unwrap_or(view), self.level[i], &mut streams),
                Inst::Gather { view, .. } => add(view, self.level[i], &mut streams),
                _ => {}
            }
        }
        for st in &l.stores {
            add(&st.view, self.store_level(st), &mut streams);
        }
        self.partials = vec![vec![None; streams.len()]; l.rank() + 1];
        self.streams = streams;
    }

    /// At depth `d` (inside loop d − 1): each stream used at `d` or deeper moves on by the
    /// stride of axis d − 1.
    fn enter(&mut self, d: usize) {
        self.depth = d;
        let mut streams: Vec<(usize, usize, Vec<i64>)> =
            self.streams.iter().map(|(strides, &(k, level))| (k, level, strides.clone())).collect();
        streams.sort_by_key(|s| s.0);
        for (k, level, strides) in streams {
            if level < d {
                continue;
            }
            let e = if d == 0 {
                self.b.ins().iconst(I64, 0)
            } else {
                let outer = self.partials[d - 1][k].expect("outer partial address");
                match strides[d - 1] {
                    0 => outer,
                    s => {
                        let i = self.b.use_var(self.vars[d - 1]);
                        let part = if s == 1 { i } else { self.b.ins().imul_imm_s(i, s) };
                        self.b.ins().iadd(outer, part)
                    }
                }
            };
            self.partials[d][k] = Some(e);
        }
    }

    /// The element index of `view` at the current point (outer axes first, so that the
    /// invariant part is hoisted out of inner loops), its constant offset apart.
    fn element(&mut self, view: &View) -> Element {
        if let Some(&(k, _)) = self.streams.get(&view.strides) {
            if let Some(v) = self.partials.get(self.depth).and_then(|p| p[k]) {
                return Element { v, offset: view.offset };
            }
        }
        let mut e: Option<Value> = None;
        for (d, &s) in view.strides.iter().enumerate() {
            if s != 0 {
                let i = self.b.use_var(self.vars[d]);
                let part = if s == 1 { i } else { self.b.ins().imul_imm_s(i, s) };
                e = Some(match e {
                    Some(e) => self.b.ins().iadd(e, part),
                    None => part,
                });
            }
        }
        let v = e.unwrap_or_else(|| self.b.ins().iconst(I64, 0));
        Element { v, offset: view.offset }
    }

    /// The address of `element` in `arg` as a pointer and a byte offset for the instruction,
    /// with lanes `lane_stride` elements apart.
    fn address(&mut self, arg: u32, element: Element) -> (Value, i64) {
        let off = self.b.ins().ishl_imm_u(element.v, 2);
        let ptr = self.b.ins().iadd(self.base[&arg], off);
        (ptr, element.offset * 4)
    }

    /// A load `bytes` past `ptr`, the offset in the instruction where it fits one.
    fn load_imm(&mut self, ty: cranelift_codegen::ir::Type, ptr: Value, bytes: i64) -> Value {
        let (ptr, bytes) = self.fold_offset(ptr, bytes);
        self.b.ins().load(ty, access(), ptr, bytes)
    }

    fn store_imm(&mut self, x: Value, ptr: Value, bytes: i64) {
        let (ptr, bytes) = self.fold_offset(ptr, bytes);
        self.b.ins().store(access(), x, ptr, bytes);
    }

    /// One element (or four adjacent ones) of `arg` as float32.
    fn load_elem(&mut self, arg: u32, vector: bool, ptr: Value, bytes: i64) -> Value {
        match (self.dtypes[arg as usize], vector) {
            (Dtype::F32, false) => self.load_imm(F32, ptr, bytes),
            (Dtype::F32, true) => self.load_imm(F32X4, ptr, bytes),
            (Dtype::I32, false) => {
                let x = self.load_imm(I32, ptr, bytes);
                self.b.ins().fcvt_from_sint(F32, x)
            }
            (Dtype::I32, true) => {
                let x = self.load_imm(I32X4, ptr, bytes);
                self.b.ins().fcvt_from_sint(F32X4, x)
            }
        }
    }

    /// Stores float32 `x` (one element, or four adjacent) into `arg`, converted to its type
    /// (an integer one drops the fraction).
    fn store_elem(&mut self, arg: u32, x: Value, vector: bool, ptr: Value, bytes: i64) {
        let x = match (self.dtypes[arg as usize], vector) {
            (Dtype::F32, _) => x,
            (Dtype::I32, false) => self.b.ins().fcvt_to_sint_sat(I32, x),
            (Dtype::I32, true) => self.b.ins().fcvt_to_sint_sat(I32X4, x),
        };
        self.store_imm(x, ptr, bytes);
    }

    fn fold_offset(&mut self, ptr: Value, bytes: i64) -> (Value, i32) {
        match i32::try_from(bytes) {
            Ok(b) => (ptr, b),
            Err(_) => (self.b.ins().iadd_imm_s(ptr, bytes), 0),
        }
    }

    fn stride_v(&self, view: &View) -> i64 {
        self.vaxis.map_or(0, |v| view.strides[v])
    }

    /// Loads at `element` (the first lane's) of `arg`, lanes `stride` apart.
    fn load_at(&mut self, arg: u32, element: Element, stride: i64, mode: Mode) -> Val {
        let (addr, at) = self.address(arg, element);
        if mode == Mode::Scalar || stride == 0 {
            return Val { v: self.load_elem(arg, false, addr, at), vector: false };
        }
        if stride == 1 {
            return Val { v: self.load_elem(arg, true, addr, at), vector: true };
        }
        let first = self.load_elem(arg, false, addr, at);
        let mut v = self.b.ins().scalar_to_vector(F32X4, first);
        for k in 1..LANES {
            let x = self.load_elem(arg, false, addr, at + k as i64 * stride * 4);
            v = self.b.ins().insertlane(v, x, k as u8);
        }
        Val { v, vector: true }
    }

    /// `constant + Σ coeffs[d]·i[d]` of a guard at the current point (lane 0).
    fn guard_coordinate(&mut self, g: &crate::kernel::Guard) -> Value {
        let mut e = self.b.ins().iconst(I64, g.constant);
        for (d, &c) in g.coeffs.iter().enumerate() {
            if c != 0 {
                let i = self.b.use_var(self.vars[d]);
                let part = if c == 1 { i } else { self.b.ins().imul_imm_s(i, c) };
                e = self.b.ins().iadd(e, part);
            }
        }
        e
    }

    /// A load through a guarded view. Where every guard holds, the element; where one fails,
    /// the first failing guard's fill, and nothing is read. In vector mode, guards that do
    /// not depend on the vector axis hold for all four lanes alike (one check, one vector
    /// load); others are checked lane by lane.
    fn guarded_load(&mut self, arg: u32, view: &View, mode: Mode) -> Val {
        let plain = self.element(view);
        let coordinates: Vec<Value> = view.guards.iter().map(|g| self.guard_coordinate(g)).collect();
        let stride = self.stride_v(view);
        let uniform = self.vaxis.is_none_or(|v| view.guards.iter().all(|g| g.coeffs[v] == 0));
        if mode == Mode::Scalar || uniform {
            return self.guarded_lane(arg, view, plain, &coordinates, mode, stride);
        }
        let v = self.vaxis.expect("vector mode has an axis");
        let mut out = None;
        for k in 0..LANES as i64 {
            let e = Element { v: plain.v, offset: plain.offset + k * view.strides[v] };
            let cs: Vec<Value> = coordinates
                .iter()
                .zip(&view.guards)
                .map(|(&c, g)| self.b.ins().iadd_imm_s(c, k * g.coeffs[v]))
                .collect();
            let x = self.guarded_lane(arg, view, e, &cs, Mode::Scalar, 0).v;
            out = Some(match out {
                None => self.b.ins().scalar_to_vector(F32X4, x),
                Some(acc) => self.b.ins().insertlane(acc, x, k as u8),
            });
        }
        Val { v: out.expect("four lanes"), vector: true }
    }

    /// One guarded load (of four lanes `stride` apart in vector mode) at element `plain` plus
    /// the guards' parts, given their coordinates.
    fn guarded_lane(
        &mut self,
        arg: u32,
        view: &View,
        plain: Element,
        coordinates: &[Value],
        mode: Mode,
        stride: i64,
    ) -> Val {
        let mut element = plain;
        let mut oks = Vec::with_capacity(view.guards.len());
        for (g, &e) in view.guards.iter().zip(coordinates) {
            let mut ok = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, e, 0);
            let q = if g.divisor == 1 {
                e
            } else {
                let rem = self.b.ins().srem_imm_s(e, g.divisor);
                let exact = self.b.ins().icmp_imm_s(IntCC::Equal, rem, 0);
                ok = self.b.ins().band(ok, exact);
                self.b.ins().sdiv_imm_s(e, g.divisor)
            };
            let below = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, q, g.extent);
            ok = self.b.ins().band(ok, below);
            if g.stride != 0 {
                let part = self.b.ins().imul_imm_s(q, g.stride);
                element.v = self.b.ins().iadd(element.v, part);
            }
            oks.push(ok);
        }
        let all = oks.iter().skip(1).fold(oks[0], |acc, &ok| self.b.ins().band(acc, ok));
        let ty = if mode == Mode::Vector { F32X4 } else { F32 };
        let (read, skip, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.append_block_param(join, ty);
        self.b.ins().brif(all, read, &[], skip, &[]);
        self.b.switch_to_block(read);
        let x = self.load_at(arg, element, stride, mode);
        let x = if mode == Mode::Vector { self.splat(x) } else { x.v };
        self.b.ins().jump(join, &[x.into()]);
        self.b.switch_to_block(skip);
        // The first guard that fails gives the fill.
        let fill = |e: &mut Self, g: &crate::kernel::Guard| {
            let f = e.b.ins().f32const(Ieee32::with_float(g.fill.value() as f32));
            if mode == Mode::Vector {
                e.b.ins().splat(F32X4, f)
            } else {
                f
            }
        };
        let last = view.guards.len() - 1;
        let mut value = fill(self, &view.guards[last]);
        for k in (0..last).rev() {
            let f = fill(self, &view.guards[k]);
            value = self.b.ins().select(oks[k], value, f);
        }
        self.b.ins().jump(join, &[value.into()]);
        self.b.switch_to_block(join);
        Val { v: self.b.block_params(join)[0], vector: mode == Mode::Vector }
    }

    fn splat(&mut self, x: Val) -> Value {
        if x.vector {
            x.v
        } else {
            self.b.ins().splat(F32X4, x.v)
        }
    }

    fn reg(&self, r: Reg) -> Result<Val, CompileError> {
        self.regs[r.index()].ok_or_else(|| internal(format!("%{} used before it is emitted", r.0)))
    }

    fn inst(&mut self, i: usize, mode: Mode) -> Result<(), CompileError> {
        let l = self.l;
        let val = match &l.body[i] {
            Inst::Load { arg, view } if self.narrowed.contains_key(&i) => {
                let view = self.narrowed[&i].clone();
                if view.guards.is_empty() {
                    let (e, s) = (self.element(&view), self.stride_v(&view));
                    self.load_at(*arg, e, s, mode)
                } else {
                    self.guarded_load(*arg, &view, mode)
                }
            }
            Inst::Load { arg, view } if !view.guards.is_empty() => self.guarded_load(*arg, view, mode),
            Inst::Load { arg, view } => {
                let e = self.element(view);
                let s = self.stride_v(view);
                self.load_at(*arg, e, s, mode)
            }
            Inst::Gather { arg, row, row_stride, view } => {
                let row = self.reg(*row)?;
                let e = self.element(view);
                let s = self.stride_v(view);
                if mode == Mode::Vector && row.vector {
                    let mut v = None;
                    for k in 0..LANES {
                        let r = self.b.ins().extractlane(row.v, k as u8);
                        let r = self.b.ins().fcvt_to_sint_sat(I64, r);
                        let r = self.b.ins().imul_imm_s(r, *row_stride);
                        let ek = Element { v: self.b.ins().iadd(e.v, r), offset: e.offset + k as i64 * s };
                        let (addr, at) = self.address(*arg, ek);
                        let x = self.load_elem(*arg, false, addr, at);
                        v = Some(match v {
                            None => self.b.ins().scalar_to_vector(F32X4, x),
                            Some(v) => self.b.ins().insertlane(v, x, k as u8),
                        });
                    }
                    Val { v: v.expect("four lanes"), vector: true }
                } else {
                    let r = self.b.ins().fcvt_to_sint_sat(I64, row.v);
                    let r = self.b.ins().imul_imm_s(r, *row_stride);
                    let e = Element { v: self.b.ins().iadd(e.v, r), offset: e.offset };
                    self.load_at(*arg, e, s, mode)
                }
            }
            Inst::Const(c) => Val { v: self.b.ins().f32const(Ieee32::with_float(*c)), vector: false },
            Inst::Index(a) => {
                let i = self.b.use_var(self.vars[*a]);
                let x = self.b.ins().fcvt_from_sint(F32, i);
                if mode == Mode::Vector && self.vaxis == Some(*a) {
                    let base = self.b.ins().splat(F32X4, x);
                    let iota: Vec<u8> = [0.0f32, 1.0, 2.0, 3.0].iter().flat_map(|f| f.to_le_bytes()).collect();
                    let c = self.b.func.dfg.constants.insert(ConstantData::from(iota));
                    let steps = self.b.ins().vconst(F32X4, c);
                    Val { v: self.b.ins().fadd(base, steps), vector: true }
                } else {
                    Val { v: x, vector: false }
                }
            }
            Inst::Op(op, args) => {
                let vals: Vec<Val> = args.iter().map(|r| self.reg(*r)).collect::<Result<_, _>>()?;
                let vector = vals.iter().any(|v| v.vector);
                let args: Vec<Value> = if vector {
                    vals.iter().map(|v| self.splat(*v)).collect()
                } else {
                    vals.iter().map(|v| v.v).collect()
                };
                Val { v: self.op(*op, &args, vector), vector }
            }
            Inst::Acc(_) => return Err(internal("`acc` before the reduction ends")),
        };
        self.regs[i] = Some(val);
        Ok(())
    }

    fn store(&mut self, s: &crate::kernel::StoreInst, mode: Mode) -> Result<(), CompileError> {
        let val = self.reg(s.value)?;
        let e = self.element(&s.view);
        let (addr, at) = self.address(s.arg, e);
        let stride = self.stride_v(&s.view);
        if mode == Mode::Scalar || (!val.vector && stride == 0) {
            if val.vector {
                return Err(internal("a vector stored as a scalar"));
            }
            self.store_elem(s.arg, val.v, false, addr, at);
        } else if stride == 1 {
            let v = self.splat(val);
            self.store_elem(s.arg, v, true, addr, at);
        } else if stride == 0 {
            return Err(internal("four lanes stored to one element"));
        } else {
            let v = self.splat(val);
            for k in 0..LANES {
                let x = self.b.ins().extractlane(v, k as u8);
                self.store_elem(s.arg, x, false, addr, at + k as i64 * stride * 4);
            }
        }
        Ok(())
    }

    /// `op` on scalars or on F32X4 vectors, from its primitive program.
    fn op(&mut self, op: ElemOp, args: &[Value], vector: bool) -> Value {
        if op == ElemOp::Fma {
            return self.b.ins().fma(args[0], args[1], args[2]);
        }
        let prog = semantics::program(op);
        let mut slots: Vec<Value> = Vec::with_capacity(prog.len());
        for p in prog {
            let b = &mut self.b;
            let v = match p {
                Prim::Arg(k) => args[k],
                Prim::Const(c) => {
                    let x = b.ins().f32const(Ieee32::with_float(c as f32));
                    if vector {
                        b.ins().splat(F32X4, x)
                    } else {
                        x
                    }
                }
                Prim::Add(x, y) => b.ins().fadd(slots[x], slots[y]),
                Prim::Sub(x, y) => b.ins().fsub(slots[x], slots[y]),
                Prim::Mul(x, y) => b.ins().fmul(slots[x], slots[y]),
                Prim::Div(x, y) => b.ins().fdiv(slots[x], slots[y]),
                Prim::Neg(x) => b.ins().fneg(slots[x]),
                Prim::Abs(x) => b.ins().fabs(slots[x]),
                Prim::Sqrt(x) => b.ins().sqrt(slots[x]),
                Prim::Cmp(c, x, y) => b.ins().fcmp(float_cc(c), slots[x], slots[y]),
                Prim::Select(c, x, y) => {
                    if vector {
                        let mask = b.ins().bitcast(F32X4, lanes(), slots[c]);
                        b.ins().bitselect(mask, slots[x], slots[y])
                    } else {
                        b.ins().select(slots[c], slots[x], slots[y])
                    }
                }
                Prim::Exp(x) => self.call(self.imports.exp, &[slots[x]], vector),
                Prim::Log(x) => self.call(self.imports.log, &[slots[x]], vector),
                Prim::Tanh(x) => self.call(self.imports.tanh, &[slots[x]], vector),
                Prim::Erf(x) => self.call(self.imports.erf, &[slots[x]], vector),
                Prim::Random(x, y) => self.random(slots[x], slots[y], vector),
                Prim::Pow(x, c) => {
                    let e = self.b.ins().f32const(Ieee32::with_float(c as f32));
                    let e = if vector { self.b.ins().splat(F32X4, e) } else { e };
                    self.call(self.imports.pow, &[slots[x], e], vector)
                }
            };
            slots.push(v);
        }
        *slots.last().expect("a program has a result")
    }

    /// `semantics::random` in integer instructions, lane by lane for vectors.
    fn random(&mut self, a: Value, key: Value, vector: bool) -> Value {
        if vector {
            let mut out = None;
            for k in 0..LANES as u8 {
                let (ak, bk) = (self.b.ins().extractlane(a, k), self.b.ins().extractlane(key, k));
                let x = self.random(ak, bk, false);
                out = Some(match out {
                    None => self.b.ins().scalar_to_vector(F32X4, x),
                    Some(v) => self.b.ins().insertlane(v, x, k),
                });
            }
            return out.expect("four lanes");
        }
        let lowbias32 = |b: &mut FunctionBuilder, mut x: Value| {
            for (shift, multiplier) in [(16, Some(0x7feb_352d_i64)), (15, Some(0x846c_a68b)), (16, None)] {
                let s = b.ins().ushr_imm_u(x, shift);
                x = b.ins().bxor(x, s);
                if let Some(m) = multiplier {
                    x = b.ins().imul_imm_u(x, m);
                }
            }
            x
        };
        let b = &mut self.b;
        let (ai, bi) = (b.ins().fcvt_to_uint_sat(I32, a), b.ins().fcvt_to_uint_sat(I32, key));
        let hb = lowbias32(b, bi);
        let x = b.ins().bxor(ai, hb);
        let x = lowbias32(b, x);
        let bits = b.ins().ushr_imm_u(x, 8);
        let f = b.ins().fcvt_from_uint(F32, bits);
        let scale = b.ins().f32const(Ieee32::with_float(1.0 / 16_777_216.0));
        b.ins().fmul(f, scale)
    }

    /// Calls a math function, lane by lane for vectors.
    fn call(&mut self, f: FuncRef, args: &[Value], vector: bool) -> Value {
        if !vector {
            let inst = self.b.ins().call(f, args);
            return self.b.inst_results(inst)[0];
        }
        let mut out = None;
        for k in 0..LANES {
            let lane: Vec<Value> = args.iter().map(|&a| self.b.ins().extractlane(a, k as u8)).collect();
            let inst = self.b.ins().call(f, &lane);
            let x = self.b.inst_results(inst)[0];
            out = Some(match out {
                None => self.b.ins().scalar_to_vector(F32X4, x),
                Some(v) => self.b.ins().insertlane(v, x, k as u8),
            });
        }
        out.expect("four lanes")
    }

    fn acc_init(&mut self) {
        for k in 0..self.accs.len() {
            let a = &self.accs[k];
            let (s, lo, hi, v) = (a.s, a.lo, a.hi, a.v);
            if a.sum_f64() {
                let z = self.b.ins().f64const(Ieee64::with_float(0.0));
                let zv = self.b.ins().splat(F64X2, z);
                self.b.def_var(s, z);
                self.b.def_var(lo, zv);
                self.b.def_var(hi, zv);
            } else {
                let init = if a.red.op == ReduceOp::Sum { 0.0 } else { f32::NEG_INFINITY };
                let z = self.b.ins().f32const(Ieee32::with_float(init));
                let zv = self.b.ins().splat(F32X4, z);
                self.b.def_var(s, z);
                self.b.def_var(v, zv);
            }
        }
    }

    /// The upper two lanes of an F32X4 moved to the lower two.
    fn high_half(&mut self, x: Value) -> Value {
        let bytes = self.b.ins().bitcast(I8X16, lanes(), x);
        let mask: Vec<u8> = (8..16).chain(8..16).collect();
        let imm = self.b.func.dfg.immediates.push(ConstantData::from(mask));
        let moved = self.b.ins().shuffle(bytes, bytes, imm);
        self.b.ins().bitcast(F32X4, lanes(), moved)
    }

    fn max(&mut self, a: Value, b: Value, vector: bool) -> Value {
        self.op(ElemOp::Binary(hoyer_ir::Binary::Max), &[a, b], vector)
    }

    fn accumulate(&mut self, mode: Mode) -> Result<(), CompileError> {
        for k in 0..self.accs.len() {
            let (red, sum64) = (self.accs[k].red, self.accs[k].sum_f64());
            let (s, lo_var, hi_var, v) = (self.accs[k].s, self.accs[k].lo, self.accs[k].hi, self.accs[k].v);
            let x = self.reg(red.value)?;
            if mode == Mode::Vector {
                let x = self.splat(x);
                if sum64 {
                    let lo = self.b.ins().fvpromote_low(x);
                    let h = self.high_half(x);
                    let hi = self.b.ins().fvpromote_low(h);
                    let (alo, ahi) = (self.b.use_var(lo_var), self.b.use_var(hi_var));
                    let (nlo, nhi) = (self.b.ins().fadd(alo, lo), self.b.ins().fadd(ahi, hi));
                    self.b.def_var(lo_var, nlo);
                    self.b.def_var(hi_var, nhi);
                } else {
                    let a = self.b.use_var(v);
                    let n = if red.op == ReduceOp::Sum { self.b.ins().fadd(a, x) } else { self.max(a, x, true) };
                    self.b.def_var(v, n);
                }
            } else {
                if x.vector {
                    return Err(internal("a vector accumulated as a scalar"));
                }
                let a = self.b.use_var(s);
                let n = if sum64 {
                    let x = self.b.ins().fpromote(F64, x.v);
                    self.b.ins().fadd(a, x)
                } else if red.op == ReduceOp::Sum {
                    self.b.ins().fadd(a, x.v)
                } else {
                    self.max(a, x.v, false)
                };
                self.b.def_var(s, n);
            }
        }
        Ok(())
    }

    /// Reduction `k` finished at the current parallel point(s).
    fn acc_finish(&mut self, mode: Mode, k: usize) -> Val {
        let (op, sum64) = (self.accs[k].red.op, self.accs[k].sum_f64());
        let (s_var, lo_var, hi_var, v_var) = (self.accs[k].s, self.accs[k].lo, self.accs[k].hi, self.accs[k].v);
        if mode == Mode::Vector {
            // Four outputs side by side.
            if sum64 {
                let (lo, hi) = (self.b.use_var(lo_var), self.b.use_var(hi_var));
                let (lo, hi) = (self.b.ins().fvdemote(lo), self.b.ins().fvdemote(hi));
                let (lo, hi) = (self.b.ins().bitcast(I8X16, lanes(), lo), self.b.ins().bitcast(I8X16, lanes(), hi));
                let mask: Vec<u8> = (0..8).chain(16..24).collect();
                let imm = self.b.func.dfg.immediates.push(ConstantData::from(mask));
                let v = self.b.ins().shuffle(lo, hi, imm);
                return Val { v: self.b.ins().bitcast(F32X4, lanes(), v), vector: true };
            }
            return Val { v: self.b.use_var(v_var), vector: true };
        }
        let vectorized_reduction = self.vaxis.is_some_and(|v| v >= self.np());
        let total = if sum64 {
            let mut s = self.b.use_var(s_var);
            if vectorized_reduction {
                let (lo, hi) = (self.b.use_var(lo_var), self.b.use_var(hi_var));
                let pair = self.b.ins().fadd(lo, hi);
                let (a, b) = (self.b.ins().extractlane(pair, 0), self.b.ins().extractlane(pair, 1));
                let lanes = self.b.ins().fadd(a, b);
                s = self.b.ins().fadd(lanes, s);
            }
            self.b.ins().fdemote(F32, s)
        } else {
            let mut s = self.b.use_var(s_var);
            if vectorized_reduction {
                let v = self.b.use_var(v_var);
                let mut lanes = self.b.ins().extractlane(v, 0);
                for k in 1..LANES {
                    let x = self.b.ins().extractlane(v, k as u8);
                    lanes = if op == ReduceOp::Sum { self.b.ins().fadd(lanes, x) } else { self.max(lanes, x, false) };
                }
                s = if op == ReduceOp::Sum { self.b.ins().fadd(lanes, s) } else { self.max(lanes, s, false) };
            }
            s
        };
        Val { v: total, vector: false }
    }
}

/// The Cranelift IR text of every loop nest of a program (`--emit clif`); products are
/// library calls, their epilogues and followers loop nests.
pub fn clif_text(p: &Program) -> Result<String, CompileError> {
    let target = Target::listing();
    let mut out = String::new();
    for (i, k) in p.kernels.iter().enumerate() {
        if let Body::MatMul(m, ..) = &k.body {
            let batch = if m.batch > 1 { format!("{} × ", m.batch) } else { String::new() };
            out += &format!("; {}: matrix product {batch}[{}, {}] · [{}, {}] (library)\n", k.name, m.m, m.k, m.k, m.n);
        }
        let nests = k.loop_nests();
        if nests.is_empty() {
            out += "\n";
        }
        let dtypes: Vec<Dtype> = k.args.iter().map(|a| p.buffer(a.buffer).dtype).collect();
        for l in nests {
            let f = loop_function(l, &dtypes, i as u32, &target)?;
            let v = match vector_axis(l) {
                Some(a) => format!(", axis {a} four lanes wide"),
                None => String::new(),
            };
            out += &format!("; {}{v}\n{}\n", k.name, f.display());
        }
    }
    Ok(out)
}

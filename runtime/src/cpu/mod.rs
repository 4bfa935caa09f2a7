//! The CPU back end: loop nests compiled by Cranelift (`jit`), matrix products through the
//! `gemm` crate, all on a pool of worker threads.
//!
//! Work is cut into tasks by shape alone: a loop nest into blocks of its outermost parallel
//! axes, a product into fixed tiles of its output (each tile's epilogue runs right after its
//! product, while the tile is in cache). A reduction is never cut. So the same program gives
//! the same bits on 1 thread or 64: threads only choose which tasks they run.
//!
//! The pool (`pool`) lets the calling thread run tasks itself and never wait for a worker to
//! wake; idle workers sleep soon, so two runs side by side on a busy machine each keep their
//! share.

pub mod jit;
pub mod pool;

use crate::backend::{bind_all, Backend, Bindings, Executable, KernelTime};
use crate::error::RunError;
use crate::store::{Store, TensorId};
use hoyer_compiler::kernel::{Access, Body, Follower, Loop, MatMul, Storage};
use hoyer_compiler::pipeline::{Options, Planned};
use hoyer_front::codes::Code;
use hoyer_ir::{Dtype, Role};
use jit::{Jit, KernelFn};
use pool::Pool;
use std::collections::HashMap;
use std::sync::Arc;

/// Loop nests with fewer points than this run as one task.
const TASK_POINTS: usize = 1 << 14;
/// Products with fewer multiply-adds than this per tile are not cut further.
const TILE_MACS: usize = 1 << 20;
const MAX_TASKS: usize = 64;
/// Output elements of a product's tile that a follower reads back: 256 KB, well inside a
/// core's L2.
const FOLLOW_TILE: usize = 1 << 16;

pub struct Cpu {
    pool: Arc<Pool>,
}

impl Cpu {
    /// A back end on `threads` threads (at least one).
    pub fn new(threads: usize) -> Result<Cpu, RunError> {
        let pool = Pool::new(threads)
            .map_err(|e| RunError::new(Code::RunFailed, format!("cannot start {threads} worker threads: {e}")))?;
        Ok(Cpu { pool: Arc::new(pool) })
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

/// Every core this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn describe(&self) -> String {
        let n = self.threads();
        format!("cpu, {n} thread{}", if n == 1 { "" } else { "s" })
    }

    fn options(&self) -> Options {
        Options { fma: jit::has_fma(), ..Options::default() }
    }

    fn compile(&self, planned: &Planned, store: &mut Store, bind: &Bindings) -> Result<Box<dyn Executable>, RunError> {
        let p = &planned.program;
        let bound: Vec<(Role, Vec<usize>, Dtype)> =
            p.buffers.iter().filter_map(|b| Some((b.role()?.clone(), b.shape.clone(), b.dtype))).collect();
        let tensors = bind_all(store, &bound, bind)?;
        // Scratch memory, 64-byte aligned.
        let chunks = p.arena.div_ceil(16);
        let mut arena: Vec<Chunk> = Vec::new();
        arena.try_reserve_exact(chunks).map_err(|_| {
            RunError::new(
                Code::OutOfMemory,
                format!("out of memory for the step's scratch memory ({} MB)", (p.arena * 4) >> 20),
            )
            .help("use a smaller batch")
        })?;
        arena.resize(chunks, Chunk([0.0; 16]));
        let arena_base = arena.as_mut_ptr() as *mut f32;
        let address = |store: &mut Store, b: usize| -> Result<*mut f32, RunError> {
            let buffer = &p.buffers[b];
            match &buffer.storage {
                Storage::Bound(role) => store.address(tensors[role]),
                // SAFETY: the validator checked that every temporary lies inside the arena.
                Storage::Temp { offset } => Ok(unsafe { arena_base.add(*offset) }),
            }
        };
        let mut jit = Jit::new()?;
        let loops: Vec<(String, &Loop, Vec<Dtype>)> = p
            .kernels
            .iter()
            .flat_map(|k| {
                let dtypes: Vec<Dtype> = k.args.iter().map(|a| p.buffer(a.buffer).dtype).collect();
                let named = move |name: String, l| (name, l, dtypes.clone());
                match &k.body {
                    Body::Loop(l) => vec![named(k.name.clone(), l)],
                    Body::MatMul(_, epilogue, follower) => epilogue
                        .iter()
                        .map(|l| named(format!("{}_epilogue", k.name), l))
                        .chain(follower.iter().map(|f| named(format!("{}_then", k.name), &f.nest)))
                        .collect(),
                }
            })
            .collect();
        let mut code = jit.compile(&loops)?.into_iter();
        let mut next_fn = || code.next().ok_or_else(|| RunError::new(Code::Internal, "a loop nest was not compiled"));
        let mut steps = Vec::with_capacity(p.kernels.len());
        let mut labels = Vec::with_capacity(p.kernels.len());
        for k in &p.kernels {
            let args = Pointers(k.args.iter().map(|a| address(store, a.buffer.index())).collect::<Result<_, _>>()?);
            match &k.body {
                Body::Loop(l) => {
                    labels.push((k.name.clone(), describe(&k.body)));
                    steps.push(Step::Loop { f: next_fn()?, args, tasks: loop_tasks(l) });
                }
                Body::MatMul(m, epilogue, follower) => {
                    // Whether the epilogue updates weights in place.
                    let in_place = epilogue.as_ref().is_some_and(|l| {
                        l.stores.iter().any(|s| s.arg != m.out && k.args[s.arg as usize].access == Access::ReadWrite)
                    });
                    let epilogue = epilogue.as_ref().map(|_| next_fn()).transpose()?;
                    let follow = match follower {
                        Some(f) => Some((Follow::new(next_fn()?, f), f)),
                        None => None,
                    };
                    // A follower runs tile by tile where the product is cut into row tiles
                    // anyway; otherwise after the whole product, as a step of its own.
                    let (per_tile, after) = match follow {
                        Some((follow, _)) if !follow.whole && by_rows(m, in_place) => (Some(follow), None),
                        Some((follow, f)) => (None, Some((follow.f, &f.nest))),
                        None => (None, None),
                    };
                    let tiles = tiles(m, in_place, per_tile.as_ref().map(|f| f.rows));
                    let label = match (&per_tile, follower) {
                        (None, Some(_)) => Body::MatMul(m.clone(), None, None),
                        _ => k.body.clone(),
                    };
                    labels.push((k.name.clone(), describe(&label)));
                    let pointers = Pointers(args.0.clone());
                    steps.push(Step::MatMul { m: m.clone(), args, tiles, epilogue, follower: per_tile });
                    if let Some((f, nest)) = after {
                        labels.push((format!("{}_then", k.name), describe(&Body::Loop(nest.clone()))));
                        steps.push(Step::Loop { f, args: pointers, tasks: loop_tasks(nest) });
                    }
                }
            }
        }
        Ok(Box::new(CpuExecutable {
            store: store.id(),
            _arena: arena,
            steps,
            pool: self.pool.clone(),
            tensors,
            _jit: jit,
            labels,
            times: None,
        }))
    }
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Chunk([f32; 16]);

/// Argument addresses of a kernel. They point into the store's tensors and the executable's
/// arena, which outlive the executable's runs; kernels write disjoint elements per task.
struct Pointers(Vec<*mut f32>);
// SAFETY: see above; the executable runs only with the store borrowed mutably.
unsafe impl Send for Pointers {}
unsafe impl Sync for Pointers {}

/// A task: the box `lo..hi` of the parallel axes.
struct Task {
    lo: Vec<i64>,
    hi: Vec<i64>,
}

enum Step {
    Loop { f: KernelFn, args: Pointers, tasks: Vec<Task> },
    MatMul { m: MatMul, args: Pointers, tiles: Vec<Task>, epilogue: Option<KernelFn>, follower: Option<Follow> },
}

/// A product's follower, run on each tile's bands of rows right after the tile.
struct Follow {
    f: KernelFn,
    rows: usize,
    /// The nest's parallel extents (all but the first run whole in every tile).
    extents: Vec<i64>,
    /// Whether the code generator jams the first axis, which then must run whole.
    whole: bool,
}

impl Follow {
    fn new(f: KernelFn, follower: &Follower) -> Follow {
        let jammed_first = hoyer_compiler::codegen::cpu::jam_axis(&follower.nest).is_some_and(|(p, _)| p == 0);
        Follow {
            f,
            rows: follower.rows,
            extents: follower.nest.parallel.iter().map(|&e| e as i64).collect(),
            whole: jammed_first,
        }
    }
}

struct CpuExecutable {
    store: u64,
    _arena: Vec<Chunk>,
    steps: Vec<Step>,
    pool: Arc<Pool>,
    tensors: HashMap<Role, TensorId>,
    /// Owns the machine code.
    _jit: Jit,
    /// Each kernel's name and shape, and its time so far where kernels are timed.
    labels: Vec<(String, String)>,
    times: Option<Vec<std::time::Duration>>,
}

/// A kernel's shape, for a profile.
fn describe(body: &Body) -> String {
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    match body {
        Body::Loop(l) if l.reduce.is_empty() => format!("loop [{}]", list(&l.parallel)),
        Body::Loop(l) => format!("loop [{}] reduce [{}]", list(&l.parallel), list(&l.reduce)),
        Body::MatMul(m, epilogue, follower) => {
            let epilogue = if epilogue.is_some() { " + epilogue" } else { "" };
            let follower = match follower {
                Some(f) => format!(" + {}", describe(&Body::Loop(f.nest.clone()))),
                None => String::new(),
            };
            let batch = if m.batch > 1 { format!(" × {}", m.batch) } else { String::new() };
            format!("matmul {}×{}×{}{batch}{epilogue}{follower}", m.m, m.n, m.k)
        }
    }
}

/// Cuts a loop nest's parallel axes into blocks of the outermost axis that can be cut, by
/// shape alone.
fn loop_tasks(l: &Loop) -> Vec<Task> {
    let whole = Task { lo: vec![0; l.parallel.len()], hi: l.parallel.iter().map(|&e| e as i64).collect() };
    let points = l.points();
    let wanted = (points / TASK_POINTS).min(MAX_TASKS);
    if wanted < 2 {
        return vec![whole];
    }
    // The axis the code generator jams (if any) runs whole in every task.
    let jammed = hoyer_compiler::codegen::cpu::jam_axis(l).map(|(p, _)| p);
    let cuttable = |a: &usize| Some(*a) != jammed;
    let Some(axis) = (0..l.parallel.len()).filter(cuttable).find(|&a| l.parallel[a] >= wanted).or_else(|| {
        (0..l.parallel.len()).filter(cuttable).max_by_key(|&a| l.parallel[a]).filter(|&a| l.parallel[a] >= 2)
    }) else {
        return vec![whole];
    };
    let extent = l.parallel[axis];
    // Blocks of whole vector strips.
    let block = extent.div_ceil(wanted.min(extent)).next_multiple_of(4).min(extent);
    (0..extent)
        .step_by(block)
        .map(|start| {
            let mut t = Task { lo: whole.lo.clone(), hi: whole.hi.clone() };
            t.lo[axis] = start as i64;
            t.hi[axis] = (start + block).min(extent) as i64;
            t
        })
        .collect()
}

/// Whether `tiles` cuts a product into blocks of rows.
fn by_rows(m: &MatMul, updates_in_place: bool) -> bool {
    if updates_in_place {
        m.m >= 64
    } else {
        m.m > m.n
    }
}

/// Cuts a product's output into tiles, by shape alone: blocks of columns, so that the
/// smaller operand is the one each tile packs again; blocks of rows where the epilogue updates
/// weights in place, so that it streams whole rows of the weight and its optimizer state.
/// With a follower, blocks of its bands of `follow_rows` rows, each small enough to stay in
/// a core's cache until the follower reads it.
fn tiles(m: &MatMul, updates_in_place: bool, follow_rows: Option<usize>) -> Vec<Task> {
    if m.batch > 1 {
        return batch_tiles(m);
    }
    let macs = m.m * m.n * m.k;
    let wanted = (macs / TILE_MACS).clamp(1, MAX_TASKS / 4);
    let by_columns = follow_rows.is_none() && !by_rows(m, updates_in_place);
    let extent = if by_columns { m.n } else { m.m };
    let block = match follow_rows {
        Some(rows) => {
            let bands = (FOLLOW_TILE / (rows * m.n)).max(1).max(m.m / rows / MAX_TASKS);
            bands * rows
        }
        None => extent.div_ceil(wanted).next_multiple_of(16).min(extent),
    };
    (0..extent)
        .step_by(block)
        .map(|start| {
            let end = (start + block).min(extent) as i64;
            if by_columns {
                Task { lo: vec![0, start as i64], hi: vec![m.m as i64, end] }
            } else {
                Task { lo: vec![start as i64, 0], hi: vec![end, m.n as i64] }
            }
        })
        .collect()
}

/// A batch of products as tasks over [batch, m, n]: runs of whole products where each is
/// small (attention's per-head products), or each product cut into blocks of rows.
fn batch_tiles(m: &MatMul) -> Vec<Task> {
    let macs = (m.m * m.n * m.k).max(1);
    let task = |z0: usize, z1: usize, r0: usize, r1: usize| Task {
        lo: vec![z0 as i64, r0 as i64, 0],
        hi: vec![z1 as i64, r1 as i64, m.n as i64],
    };
    if macs >= TILE_MACS {
        let per = (macs / TILE_MACS).clamp(1, MAX_TASKS / 4);
        let block = m.m.div_ceil(per).next_multiple_of(16).min(m.m);
        return (0..m.batch)
            .flat_map(|z| (0..m.m).step_by(block).map(move |r| (z, r)))
            .map(|(z, r)| task(z, z + 1, r, (r + block).min(m.m)))
            .collect();
    }
    let run = (TILE_MACS / macs).max(1).min(m.batch.div_ceil(4)).max(1);
    (0..m.batch).step_by(run).map(|z| task(z, (z + run).min(m.batch), 0, m.m)).collect()
}

impl Step {
    fn tasks(&self) -> usize {
        match self {
            Step::Loop { tasks, .. } => tasks.len(),
            Step::MatMul { tiles, .. } => tiles.len(),
        }
    }

    /// Runs task `t`.
    ///
    /// # Safety
    /// The arguments must point at live buffers of the sizes the program declares, and no
    /// other thread may touch what task `t` writes.
    unsafe fn run(&self, t: usize) {
        match self {
            Step::Loop { f, args, tasks } => {
                let task = &tasks[t];
                unsafe { f(args.0.as_ptr(), task.lo.as_ptr(), task.hi.as_ptr()) }
            }
            Step::MatMul { m, args, tiles, epilogue, follower } => {
                let tile = &tiles[t];
                // A batch's tiles are [batch, rows, columns]; a product's [rows, columns].
                let (zs, at) = if m.batch > 1 { (tile.lo[0] as usize..tile.hi[0] as usize, 1) } else { (0..1, 0) };
                let (r0, c0) = (tile.lo[at] as usize, tile.lo[at + 1] as usize);
                let (rows, cols) = (tile.hi[at] as usize - r0, tile.hi[at + 1] as usize - c0);
                let a = args.0[m.a.arg as usize].cast_const();
                let b = args.0[m.b.arg as usize].cast_const();
                let out = args.0[m.out as usize];
                // SAFETY: offsets stay inside the operands (the validator checked the views).
                unsafe {
                    for z in zs {
                        let (za, zb) = (z as isize * m.a.batch as isize, z as isize * m.b.batch as isize);
                        gemm::gemm(
                            rows,
                            cols,
                            m.k,
                            out.add(z * m.m * m.n + r0 * m.n + c0),
                            1,
                            m.n as isize,
                            false,
                            a.offset(m.a.offset as isize + za + r0 as isize * m.a.rows as isize),
                            m.a.cols as isize,
                            m.a.rows as isize,
                            b.offset(m.b.offset as isize + zb + c0 as isize * m.b.cols as isize),
                            m.b.cols as isize,
                            m.b.rows as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    if let Some(f) = epilogue {
                        f(args.0.as_ptr(), tile.lo.as_ptr(), tile.hi.as_ptr());
                    }
                    if let Some(follow) = follower {
                        // Tiles are whole bands (see `tiles`).
                        let mut lo = vec![0; follow.extents.len()];
                        let mut hi = follow.extents.clone();
                        lo[0] = (r0 / follow.rows) as i64;
                        hi[0] = ((r0 + rows) / follow.rows) as i64;
                        (follow.f)(args.0.as_ptr(), lo.as_ptr(), hi.as_ptr());
                    }
                }
            }
        }
    }
}

/// Runs every step in order, each step's tasks spread over the pool; adds each step's wall
/// time to `times` where given.
fn run_steps(steps: &[Step], pool: &Pool, mut times: Option<&mut Vec<std::time::Duration>>) {
    for (i, step) in steps.iter().enumerate() {
        let started = times.is_some().then(std::time::Instant::now);
        // SAFETY: tasks of one step write disjoint elements; steps run one after another.
        pool.run(step.tasks(), &|t| unsafe { step.run(t) });
        if let (Some(times), Some(started)) = (times.as_deref_mut(), started) {
            times[i] += started.elapsed();
        }
    }
}

impl Executable for CpuExecutable {
    fn run(&mut self, store: &mut Store) -> Result<(), RunError> {
        if store.id() != self.store {
            return Err(RunError::new(Code::Internal, "a program ran on another store than it was compiled for"));
        }
        run_steps(&self.steps, &self.pool, self.times.as_mut());
        Ok(())
    }

    fn tensor(&self, role: &Role) -> Option<TensorId> {
        self.tensors.get(role).copied()
    }

    fn time_kernels(&mut self) -> bool {
        self.times = Some(vec![std::time::Duration::ZERO; self.steps.len()]);
        true
    }

    fn kernel_times(&self) -> Vec<KernelTime> {
        let Some(times) = &self.times else { return Vec::new() };
        self.labels
            .iter()
            .zip(times)
            .map(|((name, what), &time)| KernelTime { name: name.clone(), what: what.clone(), time })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_depend_on_the_shape_only_and_cover_it() {
        let l = Loop { parallel: vec![300, 784], reduce: vec![], body: vec![], reductions: vec![], stores: vec![] };
        let tasks = loop_tasks(&l);
        assert!(tasks.len() > 1);
        let covered: i64 = tasks.iter().map(|t| (t.hi[0] - t.lo[0]) * (t.hi[1] - t.lo[1])).sum();
        assert_eq!(covered, 300 * 784);
        let m = MatMul {
            batch: 1,
            m: 100,
            n: 300,
            k: 784,
            a: hoyer_compiler::kernel::MatView { arg: 0, offset: 0, rows: 784, cols: 1, batch: 0 },
            b: hoyer_compiler::kernel::MatView { arg: 1, offset: 0, rows: 1, cols: 784, batch: 0 },
            out: 2,
        };
        let t = tiles(&m, false, None);
        assert!(t.len() > 1 && t.iter().all(|t| (t.hi[1] - t.lo[1]) % 16 == 0 || t.hi[1] == 300));
        // With a follower reading bands of 64 rows (conv2's col2im): whole bands, in order.
        let m = MatMul { m: 6400, n: 500, k: 50, ..m };
        let t = tiles(&m, false, Some(64));
        assert!(t.len() > 1 && t.iter().all(|t| t.lo[0] % 64 == 0 && t.hi[0] % 64 == 0 && t.hi[1] == 500));
        assert!(t.windows(2).all(|w| w[0].hi[0] == w[1].lo[0]) && t.last().unwrap().hi[0] == 6400);
    }

    /// A sum over strided elements is jammed along its 20 outputs (`codegen::cpu::jam_axis`):
    /// tasks cut the other axis, however small, and never that one.
    #[test]
    fn tasks_hold_a_jammed_axis_whole() {
        use hoyer_compiler::kernel::{AccType, Inst, Reduction, Reg, StoreInst, View};
        use hoyer_ir::ReduceOp;
        let l = Loop {
            parallel: vec![16, 20],
            reduce: vec![5000],
            body: vec![Inst::Load { arg: 0, view: View::strided(0, vec![100_000, 1, 20]) }, Inst::Acc(0)],
            reductions: vec![Reduction { op: ReduceOp::Sum, acc: AccType::F32, value: Reg(0) }],
            stores: vec![StoreInst { arg: 1, view: View::strided(0, vec![20, 1, 0]), value: Reg(1) }],
        };
        assert_eq!(hoyer_compiler::codegen::cpu::jam_axis(&l), Some((1, 5)));
        let tasks = loop_tasks(&l);
        assert_eq!(tasks.len(), 4);
        assert!(tasks.iter().all(|t| t.lo[1] == 0 && t.hi[1] == 20));
    }

    /// A nest whose inner 2×5 block is unrolled (see `codegen::cpu`): run whole, and cut
    /// inside the unrolled axes (the looped path), each point is written once and right.
    #[test]
    fn unrolled_inner_axes_give_the_same_points_whole_or_cut() {
        use hoyer_compiler::kernel::{Inst, Reg, StoreInst, View};
        use hoyer_ir::semantics::ElemOp;
        use hoyer_ir::Unary;
        let l = Loop {
            parallel: vec![3, 2, 5],
            reduce: vec![],
            body: vec![
                Inst::Load { arg: 0, view: View::strided(0, vec![10, 5, 1]) },
                Inst::Op(ElemOp::Unary(Unary::Neg), vec![Reg(0)]),
            ],
            reductions: vec![],
            stores: vec![StoreInst { arg: 1, view: View::strided(0, vec![10, 5, 1]), value: Reg(1) }],
        };
        let mut jit = Jit::new().unwrap();
        let f = jit.compile(&[("k0".into(), &l, vec![Dtype::F32; 2])]).unwrap()[0];
        let x: Vec<f32> = (0..30).map(|i| i as f32).collect();
        for (lo, hi) in [([0i64, 0, 0], [3i64, 2, 5]), ([1, 0, 1], [2, 2, 4]), ([0, 1, 0], [3, 2, 5])] {
            let mut y = vec![7.0f32; 30];
            let args = [x.as_ptr() as *mut f32, y.as_mut_ptr()];
            // SAFETY: both buffers hold the 30 elements the views reach.
            unsafe { f(args.as_ptr(), lo.as_ptr(), hi.as_ptr()) };
            for (i, v) in y.iter().enumerate() {
                let c = [i as i64 / 10, i as i64 / 5 % 2, i as i64 % 5];
                let inside = (0..3).all(|d| lo[d] <= c[d] && c[d] < hi[d]);
                assert_eq!(*v, if inside { -(i as f32) } else { 7.0 }, "point {c:?} of task {lo:?}..{hi:?}");
            }
        }
    }
}

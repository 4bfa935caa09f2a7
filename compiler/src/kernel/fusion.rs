//! Fusion decides kernels. A kernel is one of:
//!
//! - a maximal group of element-wise ops over one iteration shape, ending in at most one
//!   reduction;
//! - a matrix product with the element-wise ops over its output that follow it (bias,
//!   activation, the activation's derivative): its epilogue.
//!
//! Movement ops (broadcast, reshape, permute) are not kernels: whoever reads their result
//! reads their operand through a strided view (`kernel::build` composes it). Their operand
//! must therefore be in memory, and a group never reads one of its own values through a view.
//! Inputs and constants are not kernels either; every kernel that uses a constant inlines it.
//!
//! `order` then puts the kernels in a sequence that respects their dependencies and lets
//! parameters be updated in place: the kernel that writes a parameter's new value runs after
//! every other kernel that reads the old one.

use crate::error::CompileError;
use hoyer_ir::{Graph, Op, ValueId};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// Element-wise ops over `shape`.
    Elementwise,
    /// Element-wise ops over `shape`, ending in a reduction of some of its axes.
    Reduce,
    /// A matrix product with output `shape`, and its element-wise epilogue.
    MatMul,
}

/// One kernel to be: the ops fused into it, the values it reads and those it writes to memory.
#[derive(Debug, Clone)]
pub struct Fused {
    pub kind: KernelKind,
    /// The iteration shape (for a reduction, its input's shape).
    pub shape: Vec<usize>,
    /// The ops computed here, in graph order.
    pub values: Vec<ValueId>,
    /// Values in memory that it reads (through views included); constants excluded.
    pub reads: Vec<ValueId>,
    /// Values other kernels, views or the graph's outputs need in memory.
    pub writes: Vec<ValueId>,
}

impl Fused {
    pub fn reduction(&self, g: &Graph) -> Option<ValueId> {
        self.values.iter().copied().find(|&v| reduction_domain(g, v).is_some())
    }
    pub fn matmul(&self, g: &Graph) -> Option<ValueId> {
        self.values.iter().copied().find(|v| matches!(g.value(*v).op, Op::MatMul { .. }))
    }
}

/// A graph's kernels, in an order that respects their dependencies.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub kernels: Vec<Fused>,
    /// The (input, output) pairs updated in place: the output's kernel runs after every
    /// other reader of the input.
    pub in_place: Vec<(ValueId, ValueId)>,
}

fn is_free(op: &Op) -> bool {
    matches!(op, Op::Input(_) | Op::Const(_)) || op.is_movement()
}

/// The value in memory that `v` is a view of (itself unless it is a movement op).
pub fn root(g: &Graph, mut v: ValueId) -> ValueId {
    while g.value(v).op.is_movement() {
        v = g.value(v).op.operands()[0];
    }
    v
}

/// For a value a reduction computes (a reduce, or the adjoint of windows: a sum over the
/// window's own axes), the shape it iterates over and the axes it sums away.
pub fn reduction_domain(g: &Graph, v: ValueId) -> Option<(Vec<usize>, Vec<usize>)> {
    match &g.value(v).op {
        Op::Reduce { input, axes, .. } => Some((g.shape(*input).to_vec(), axes.clone())),
        Op::Unwindow { slides, .. } => {
            let shape = g.shape(v);
            let domain = shape.iter().copied().chain(slides.iter().map(|s| s.size)).collect();
            Some((domain, (shape.len()..shape.len() + slides.len()).collect()))
        }
        _ => None,
    }
}

/// Per group while fusing.
struct Group {
    kind: KernelKind,
    shape: Vec<usize>,
    values: Vec<ValueId>,
    closed: bool,
    /// Groups it reads from.
    deps: BTreeSet<usize>,
    /// Groups it reads through views (or as matrix operands): never merged with it.
    view_deps: BTreeSet<usize>,
    /// For a matrix product: its operands' roots.
    matmul_operands: Vec<ValueId>,
    /// For a reduction: its axes, and how many reductions share the pass. Element-wise ops
    /// over the reduced shape that use a reduction's result may still join (its epilogue).
    axes: Vec<usize>,
    reductions: usize,
    /// Values in memory it reads (inputs included).
    reads: BTreeSet<ValueId>,
    /// Groups that read from it (whose `deps` hold it): a merge rewrites only those, so
    /// fusing stays linear in the graph.
    users: BTreeSet<usize>,
    merged_into: Option<usize>,
}

struct Fuser {
    groups: Vec<Group>,
    group_of: Vec<Option<usize>>,
}

impl Fuser {
    /// Follows merges to the group that holds a merged group's values now.
    fn resolve(&self, mut k: usize) -> usize {
        while let Some(m) = self.groups[k].merged_into {
            k = m;
        }
        k
    }

    fn group_of_value(&self, v: ValueId) -> Option<usize> {
        self.group_of[v.index()].map(|k| self.resolve(k))
    }

    /// Whether group `from` depends on group `to`, directly or not (`skip_direct`: only
    /// through at least one other group).
    fn reaches(&self, from: usize, to: usize, skip_direct: bool) -> bool {
        // What nothing reads is reached from nowhere (the group of the value just added):
        // no walk over the whole graph behind `from`.
        if self.groups[to].users.is_empty() {
            return false;
        }
        let mut stack: Vec<usize> =
            self.groups[from].deps.iter().copied().filter(|&d| !(skip_direct && d == to)).collect();
        let mut seen = BTreeSet::new();
        while let Some(k) = stack.pop() {
            if k == to {
                return true;
            }
            if seen.insert(k) {
                stack.extend(self.groups[k].deps.iter().copied());
            }
        }
        false
    }

    /// Whether group `x` feeds the matrix product of group `m`.
    fn feeds_matmul(&self, m: usize, x: usize) -> bool {
        self.groups[m]
            .matmul_operands
            .iter()
            .filter_map(|&o| self.group_of_value(o))
            .any(|o| o == x || self.reaches(o, x, false))
    }

    fn can_merge(&self, a: usize, b: usize) -> bool {
        let (ga, gb) = (&self.groups[a], &self.groups[b]);
        if a == b || ga.closed || gb.closed || ga.shape != gb.shape {
            return false;
        }
        if ga.kind == KernelKind::MatMul && gb.kind == KernelKind::MatMul {
            return false; // one product per kernel
        }
        if ga.view_deps.contains(&b) || gb.view_deps.contains(&a) {
            return false;
        }
        if (ga.kind == KernelKind::MatMul && self.feeds_matmul(a, b))
            || (gb.kind == KernelKind::MatMul && self.feeds_matmul(b, a))
        {
            return false;
        }
        !self.reaches(a, b, true) && !self.reaches(b, a, true)
    }

    /// A closed reduction group that reduction group `b` can share its pass with: same
    /// iteration shape and axes, a value in memory or a producing kernel in common, and no
    /// path between them.
    fn sibling_reduction(&self, b: usize) -> Option<usize> {
        const MAX_REDUCTIONS: usize = 8;
        let gb = &self.groups[b];
        (0..self.groups.len()).find(|&a| {
            let ga = &self.groups[a];
            a != b
                && ga.merged_into.is_none()
                && ga.kind == KernelKind::Reduce
                && ga.shape == gb.shape
                && ga.axes == gb.axes
                && ga.reductions + gb.reductions <= MAX_REDUCTIONS
                && (!ga.reads.is_disjoint(&gb.reads) || !ga.deps.is_disjoint(&gb.deps))
                && !ga.view_deps.contains(&b)
                && !gb.view_deps.contains(&a)
                && !self.reaches(a, b, false)
                && !self.reaches(b, a, false)
        })
    }

    /// The closed reduction group among `direct` whose epilogue the element-wise op in group
    /// `current` (of shape `shape`) can join: the op reads a result of that group directly,
    /// and joining makes no cycle.
    fn epilogue_of(&self, current: usize, shape: &[usize], direct: &BTreeSet<usize>) -> Option<usize> {
        direct.iter().map(|&h| self.resolve(h)).find(|&h| {
            let gh = &self.groups[h];
            let reduced: Vec<usize> =
                gh.shape.iter().enumerate().filter(|(a, _)| !gh.axes.contains(a)).map(|(_, &d)| d).collect();
            h != current
                && gh.kind == KernelKind::Reduce
                && gh.closed
                && reduced == shape
                && !gh.view_deps.contains(&current)
                && !self.groups[current].view_deps.contains(&h)
                && !self.reaches(current, h, true)
                && !self.reaches(h, current, true)
        })
    }

    /// Moves group `b` into group `a`.
    fn merge(&mut self, a: usize, b: usize) {
        let values = std::mem::take(&mut self.groups[b].values);
        for v in &values {
            self.group_of[v.index()] = Some(a);
        }
        self.groups[a].values.extend(values);
        let deps = std::mem::take(&mut self.groups[b].deps);
        let view_deps = std::mem::take(&mut self.groups[b].view_deps);
        let operands = std::mem::take(&mut self.groups[b].matmul_operands);
        let reads = std::mem::take(&mut self.groups[b].reads);
        let reductions = self.groups[b].reductions;
        if self.groups[a].axes.is_empty() {
            self.groups[a].axes = self.groups[b].axes.clone();
        }
        if self.groups[b].kind == KernelKind::MatMul {
            self.groups[a].kind = KernelKind::MatMul;
        }
        let closed = self.groups[b].closed;
        let ga = &mut self.groups[a];
        ga.deps.extend(deps);
        ga.view_deps.extend(view_deps);
        ga.matmul_operands.extend(operands);
        ga.reads.extend(reads);
        ga.reductions += reductions;
        ga.closed |= closed;
        self.groups[b].merged_into = Some(a);
        // Who read b reads a now; what b read, a reads.
        for u in std::mem::take(&mut self.groups[b].users) {
            let g = &mut self.groups[u];
            if g.deps.remove(&b) {
                g.deps.insert(a);
            }
            if g.view_deps.remove(&b) {
                g.view_deps.insert(a);
            }
            self.groups[a].users.insert(u);
        }
        let read: Vec<usize> = self.groups[a].deps.iter().copied().collect();
        for d in read {
            let users = &mut self.groups[d].users;
            users.remove(&b);
            users.insert(a);
        }
        let ga = &mut self.groups[a];
        ga.deps.remove(&a);
        ga.view_deps.remove(&a);
        ga.users.remove(&a);
    }
}

/// Groups the live values of `g` into kernels, and orders them so that each output named in
/// `in_place` (output value, input value) can be written over its input.
pub fn fuse(g: &Graph, in_place: &[(ValueId, ValueId)]) -> Result<Schedule, CompileError> {
    let live = hoyer_ir::print::live(g);
    let n = g.values.len();
    let mut f = Fuser { groups: Vec::new(), group_of: vec![None; n] };

    for (i, value) in g.values.iter().enumerate() {
        let op = &value.op;
        if !live[i] || is_free(op) {
            continue;
        }
        let v = ValueId(i as u32);
        // Operands computed by a group: directly, or through a view.
        let (mut direct, mut viewed) = (BTreeSet::new(), BTreeSet::new());
        for o in op.operands() {
            let r = root(g, o);
            if let Some(k) = f.group_of_value(r) {
                if r == o && !matches!(op, Op::MatMul { .. } | Op::Gather { .. } | Op::Unwindow { .. }) {
                    direct.insert(k);
                } else {
                    viewed.insert(k);
                }
            }
        }
        // A gathered table is read at rows the kernel picks: like a view.
        if let Op::Gather { indices, .. } = op {
            if root(g, *indices) == *indices {
                if let Some(k) = f.group_of_value(*indices) {
                    viewed.remove(&k);
                    direct.insert(k);
                }
            }
        }
        let reduction = reduction_domain(g, v);
        let (kind, shape) = match (op, &reduction) {
            (Op::MatMul { .. }, _) => (KernelKind::MatMul, value.shape.clone()),
            (_, Some((domain, _))) => (KernelKind::Reduce, domain.clone()),
            _ => (KernelKind::Elementwise, value.shape.clone()),
        };
        let matmul_operands = match op {
            Op::MatMul { a, b, .. } => vec![root(g, *a), root(g, *b)],
            _ => vec![],
        };
        let (axes, reductions) = match reduction {
            Some((_, axes)) => (axes, 1),
            None => (vec![], 0),
        };
        let reads =
            op.operands().iter().map(|&o| root(g, o)).filter(|r| !matches!(g.value(*r).op, Op::Const(_))).collect();
        let deps: BTreeSet<usize> = direct.union(&viewed).copied().collect();
        let id = f.groups.len();
        for &d in &deps {
            f.groups[d].users.insert(id);
        }
        f.groups.push(Group {
            kind,
            shape,
            values: vec![v],
            closed: false,
            deps,
            view_deps: viewed,
            matmul_operands,
            axes,
            reductions,
            reads,
            users: BTreeSet::new(),
            merged_into: None,
        });
        let mut current = id;
        f.group_of[i] = Some(current);
        let epilogue_op = matches!(op, Op::Unary(..) | Op::Binary(..) | Op::PowConst(..) | Op::Select { .. });
        if kind == KernelKind::Elementwise && epilogue_op {
            if let Some(h) = f.epilogue_of(current, &value.shape, &direct) {
                // After a reduction, in the same kernel (the log of a softmax's sum), with the
                // element-wise ops over the reduced shape that feed it (an optimizer update's
                // decay of its state, next to the reduced gradient).
                f.merge(h, current);
                for other in direct {
                    let other = f.resolve(other);
                    let go = &f.groups[other];
                    let fits = other != h
                        && go.kind == KernelKind::Elementwise
                        && !go.closed
                        && go.shape == value.shape
                        && !go.view_deps.contains(&h)
                        && !f.groups[h].view_deps.contains(&other)
                        && !f.reaches(h, other, true)
                        && !f.reaches(other, h, true);
                    if fits {
                        f.merge(h, other);
                    }
                }
                continue;
            }
        }
        if kind != KernelKind::MatMul {
            // Join every operand group over the same shape that is still open (producers and,
            // through them, siblings; a product's epilogue), unless that would make the
            // kernel graph cyclic. A reduction does not join a product.
            for h in direct {
                let h = f.resolve(h);
                let product = f.groups[h].kind == KernelKind::MatMul;
                if (kind == KernelKind::Reduce && product) || !f.can_merge(h, current) {
                    continue;
                }
                let reduce = f.groups[current].kind == KernelKind::Reduce;
                f.merge(h, current);
                if reduce {
                    f.groups[h].kind = KernelKind::Reduce;
                }
                current = h;
            }
        }
        if kind == KernelKind::Reduce {
            f.groups[current].closed = true;
            // Reductions of the same data over the same axes share one pass.
            if let Some(sibling) = f.sibling_reduction(current) {
                f.merge(sibling, current);
            }
        }
    }

    let Fuser { groups: all, group_of, .. } = f;
    // The surviving groups, renumbered, with their values in graph order.
    let alive: Vec<usize> = (0..all.len()).filter(|&k| all[k].merged_into.is_none()).collect();
    let renumber: HashMap<usize, usize> = alive.iter().enumerate().map(|(new, &old)| (old, new)).collect();
    let resolve = |mut k: usize| {
        while let Some(m) = all[k].merged_into {
            k = m;
        }
        renumber[&k]
    };
    let group: Vec<Option<usize>> = group_of.iter().map(|gk| gk.map(resolve)).collect();
    let mut kernels: Vec<Fused> = alive
        .iter()
        .map(|&k| {
            let mut values = all[k].values.clone();
            values.sort();
            Fused { kind: all[k].kind, shape: all[k].shape.clone(), values, reads: vec![], writes: vec![] }
        })
        .collect();

    // Who reads what. A value is needed in memory if another kernel reads it, anything reads
    // it through a view, or it is an output.
    let mut needed = vec![false; n];
    for (_, o) in &g.outputs {
        needed[root(g, *o).index()] = true;
    }
    let mut reads: Vec<BTreeSet<ValueId>> = vec![BTreeSet::new(); kernels.len()];
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); kernels.len()];
    for (k, kernel) in kernels.iter().enumerate() {
        for v in &kernel.values {
            for o in g.value(*v).op.operands() {
                let r = root(g, o);
                if matches!(g.value(r).op, Op::Const(_)) {
                    continue;
                }
                let through_view =
                    r != o || matches!(g.value(*v).op, Op::MatMul { .. } | Op::Gather { .. } | Op::Unwindow { .. });
                if group[r.index()] != Some(k) || through_view {
                    reads[k].insert(r);
                    needed[r.index()] = true;
                }
                if let Some(d) = group[r.index()] {
                    if d != k {
                        deps[k].insert(d);
                    }
                }
            }
        }
    }
    for (k, kernel) in kernels.iter_mut().enumerate() {
        kernel.reads = reads[k].iter().copied().collect();
        kernel.writes = kernel.values.iter().copied().filter(|v| needed[v.index()]).collect();
    }
    let (order, in_place) = order(&kernels, &deps, &group, in_place)?;
    let mut slots: Vec<Option<Fused>> = kernels.into_iter().map(Some).collect();
    Ok(Schedule { kernels: order.into_iter().filter_map(|k| slots[k].take()).collect(), in_place })
}

/// Kernel indices in order, and the in-place pairs kept.
type Ordered = (Vec<usize>, Vec<(ValueId, ValueId)>);

/// A topological order of the kernels (earliest first among the ready ones), in which the
/// writer of each in-place output runs after every other reader of its input. A pair that
/// cannot be ordered so is left out of the returned list (its output then gets its own
/// buffer and is copied over the input at the end).
fn order(
    kernels: &[Fused],
    deps: &[BTreeSet<usize>],
    group: &[Option<usize>],
    in_place: &[(ValueId, ValueId)],
) -> Result<Ordered, CompileError> {
    let mut pairs: Vec<(ValueId, ValueId)> = in_place.to_vec();
    loop {
        let mut deps = deps.to_vec();
        for &(output, input) in &pairs {
            if let Some(w) = group[output.index()] {
                for (k, kernel) in kernels.iter().enumerate() {
                    if k != w && kernel.reads.contains(&input) {
                        deps[w].insert(k);
                    }
                }
            }
        }
        let mut remaining: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
        let mut users: Vec<Vec<usize>> = vec![vec![]; kernels.len()];
        for (k, d) in deps.iter().enumerate() {
            for &p in d {
                users[p].push(k);
            }
        }
        let mut ready: BTreeSet<usize> = (0..kernels.len()).filter(|&k| remaining[k] == 0).collect();
        let mut order = Vec::with_capacity(kernels.len());
        let mut next = None;
        while let Some(k) = next.take().or_else(|| ready.pop_first()) {
            order.push(k);
            for &u in &users[k] {
                remaining[u] -= 1;
                if remaining[u] == 0 {
                    ready.insert(u);
                }
            }
            // A loop nest that reads a product's output runs right after it, where it can
            // follow the product band by band (`kernel::build::attach_follower`).
            if kernels[k].kind == KernelKind::MatMul {
                next = users[k]
                    .iter()
                    .copied()
                    .filter(|u| ready.contains(u) && kernels[*u].kind != KernelKind::MatMul)
                    .find(|&u| kernels[u].reads.iter().any(|r| kernels[k].writes.contains(r)));
                if let Some(u) = next {
                    ready.remove(&u);
                }
            }
        }
        if order.len() == kernels.len() {
            return Ok((order, pairs));
        }
        // A cycle: give up the in-place update of a kernel left unscheduled.
        let stuck = |k: usize| !order.contains(&k);
        let drop = pairs.iter().position(|(o, _)| group[o.index()].is_some_and(stuck));
        match drop {
            Some(i) => {
                pairs.remove(i);
            }
            // Without in-place pairs the fused graph is acyclic by construction.
            None => return Err(CompileError::internal("fusion", "kernel dependencies form a cycle")),
        }
    }
}

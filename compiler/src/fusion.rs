//! Fusion decides kernels: a kernel is a maximal group of element-wise ops over one iteration
//! shape, ending in at most one reduction; matrix products (and the rare permute) are kernels
//! of their own. Constants are not kernels: every kernel that uses one inlines it.
//!
//! The kernel list is the contract between the compiler and every back end: the CPU back end
//! and the CUDA back end run the same kernels.

use crate::ir::{Graph, Op, ValueId};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// Element-wise ops over `shape`, possibly ending in one reduction.
    Fused,
    MatMul,
    Permute,
}

#[derive(Debug, Clone)]
pub struct Kernel {
    pub kind: KernelKind,
    /// The iteration shape (for a reduction, its input's shape).
    pub shape: Vec<usize>,
    /// The ops computed here, in graph order.
    pub values: Vec<ValueId>,
    /// Values read from outside (inputs, other kernels' results); constants excluded.
    pub reads: Vec<ValueId>,
    /// Values other kernels or the graph's outputs need.
    pub writes: Vec<ValueId>,
}

impl Kernel {
    pub fn reduction(&self, g: &Graph) -> Option<ValueId> {
        self.values.iter().copied().find(|v| matches!(g.value(*v).op, Op::Reduce { .. }))
    }
}

/// A graph's kernels, in an order that respects their dependencies.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub kernels: Vec<Kernel>,
}

fn is_free(op: &Op) -> bool {
    matches!(op, Op::Input { .. } | Op::Const(_))
}

/// Per group while fusing: kind, iteration shape, values, whether it ended in a reduction,
/// the groups it reads from directly (kept acyclic), and whether it was merged away.
struct Group {
    kind: KernelKind,
    shape: Vec<usize>,
    values: Vec<ValueId>,
    closed: bool,
    deps: BTreeSet<usize>,
    merged_into: Option<usize>,
}

/// Follows merges to the group that holds a merged group's values now.
fn group_of_group(groups: &[Group], mut k: usize) -> usize {
    while let Some(m) = groups[k].merged_into {
        k = m;
    }
    k
}

/// Whether group `from` reaches group `to` through at least one other group.
fn reaches_indirectly(groups: &[Group], from: usize, to: usize) -> bool {
    let mut stack: Vec<usize> = groups[from].deps.iter().copied().filter(|&d| d != to).collect();
    let mut seen = BTreeSet::new();
    while let Some(k) = stack.pop() {
        if k == to {
            return true;
        }
        if seen.insert(k) {
            stack.extend(groups[k].deps.iter().copied());
        }
    }
    false
}

/// Moves group `b` into group `a`.
fn merge(groups: &mut [Group], group_of: &mut [Option<usize>], a: usize, b: usize) {
    let values = std::mem::take(&mut groups[b].values);
    for v in &values {
        group_of[v.index()] = Some(a);
    }
    groups[a].values.extend(values);
    let deps: Vec<usize> = std::mem::take(&mut groups[b].deps).into_iter().filter(|&d| d != a).collect();
    groups[a].deps.extend(deps);
    groups[a].deps.remove(&b);
    groups[a].closed |= groups[b].closed;
    groups[b].merged_into = Some(a);
    for g in groups.iter_mut() {
        if g.deps.remove(&b) {
            g.deps.insert(a);
        }
    }
    groups[a].deps.remove(&a);
}

/// Groups the live values of `g` into kernels.
pub fn fuse(g: &Graph) -> Schedule {
    let live = crate::ir::print::live(g);
    let n = g.values.len();
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    let mut all: Vec<Group> = Vec::new();

    for i in 0..n {
        if !live[i] || is_free(&g.values[i].op) {
            continue;
        }
        let v = ValueId(i as u32);
        let op = &g.values[i].op;
        let (kind, shape) = match op {
            Op::MatMul { .. } => (KernelKind::MatMul, g.values[i].shape.clone()),
            Op::Permute { .. } => (KernelKind::Permute, g.values[i].shape.clone()),
            Op::Reduce { input, .. } => (KernelKind::Fused, g.shape(*input).to_vec()),
            _ => (KernelKind::Fused, g.values[i].shape.clone()),
        };
        let operand_groups: BTreeSet<usize> = op.operands().iter().filter_map(|o| group_of[o.index()]).collect();
        all.push(Group {
            kind,
            shape,
            values: vec![v],
            closed: kind != KernelKind::Fused,
            deps: operand_groups.clone(),
            merged_into: None,
        });
        let mut current = all.len() - 1;
        group_of[i] = Some(current);
        if kind == KernelKind::Fused {
            // Join every operand group over the same shape that is still open (producers and,
            // through them, siblings), unless that would make the kernel graph cyclic.
            for h in operand_groups {
                let h = group_of_group(&all, h);
                let gh = &all[h];
                let fits = h != current && gh.kind == KernelKind::Fused && !gh.closed && gh.shape == all[current].shape;
                if fits && !reaches_indirectly(&all, current, h) && !reaches_indirectly(&all, h, current) {
                    merge(&mut all, &mut group_of, h, current);
                    current = h;
                }
            }
        }
        if matches!(op, Op::Reduce { .. }) {
            all[current].closed = true;
        }
    }

    // The surviving groups, renumbered, with their values in graph order.
    let alive: Vec<usize> = (0..all.len()).filter(|&k| all[k].merged_into.is_none()).collect();
    let renumber: HashMap<usize, usize> = alive.iter().enumerate().map(|(new, &old)| (old, new)).collect();
    let groups: Vec<Group> = alive
        .iter()
        .map(|&k| {
            let mut values = all[k].values.clone();
            values.sort();
            Group {
                kind: all[k].kind,
                shape: all[k].shape.clone(),
                values,
                closed: all[k].closed,
                deps: all[k].deps.iter().map(|d| renumber[d]).collect(),
                merged_into: None,
            }
        })
        .collect();
    let group: Vec<Option<usize>> = group_of.iter().map(|g| g.map(|k| renumber[&k])).collect();

    // Who reads what.
    let mut needed_outside: Vec<bool> = vec![false; n];
    for (_, o) in &g.outputs {
        needed_outside[o.index()] = true;
    }
    let mut reads: Vec<BTreeSet<ValueId>> = vec![BTreeSet::new(); groups.len()];
    for (k, gr) in groups.iter().enumerate() {
        for v in &gr.values {
            for o in g.value(*v).op.operands() {
                if group[o.index()] != Some(k) && !matches!(g.value(o).op, Op::Const(_)) {
                    reads[k].insert(o);
                    needed_outside[o.index()] = true;
                }
            }
        }
    }

    // Order kernels so that each runs after those it reads from (Kahn, earliest group first).
    let mut remaining: Vec<usize> = groups.iter().map(|gr| gr.deps.len()).collect();
    let mut users: Vec<Vec<usize>> = vec![vec![]; groups.len()];
    for (k, gr) in groups.iter().enumerate() {
        for &d in &gr.deps {
            users[d].push(k);
        }
    }
    let mut ready: BTreeSet<usize> = (0..groups.len()).filter(|&k| remaining[k] == 0).collect();
    let mut order = Vec::with_capacity(groups.len());
    while let Some(k) = ready.pop_first() {
        order.push(k);
        for &u in &users[k] {
            remaining[u] -= 1;
            if remaining[u] == 0 {
                ready.insert(u);
            }
        }
    }
    assert_eq!(order.len(), groups.len(), "kernel dependencies form a cycle");
    let kernels = order
        .into_iter()
        .map(|k| {
            let gr = &groups[k];
            Kernel {
                kind: gr.kind,
                shape: gr.shape.clone(),
                values: gr.values.clone(),
                reads: reads[k].iter().copied().collect(),
                writes: gr.values.iter().copied().filter(|v| needed_outside[v.index()]).collect(),
            }
        })
        .collect();
    Schedule { kernels }
}

/// `--emit kernels`: each kernel, its iteration shape, what it reads and writes, and its ops
/// (numbered as in the canonical IR text).
pub fn print(g: &Graph, s: &Schedule) -> String {
    let live = crate::ir::print::live(g);
    let mut number: HashMap<ValueId, usize> = HashMap::new();
    for (i, &l) in live.iter().enumerate() {
        if l {
            number.insert(ValueId(i as u32), number.len());
        }
    }
    let list = |vs: &[ValueId]| vs.iter().map(|v| format!("%{}", number[v])).collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for (i, k) in s.kernels.iter().enumerate() {
        let kind = match k.kind {
            KernelKind::Fused if k.reduction(g).is_some() => "reduce",
            KernelKind::Fused => "elementwise",
            KernelKind::MatMul => "matmul",
            KernelKind::Permute => "permute",
        };
        let shape = k.shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
        let _ = writeln!(out, "  kernel k{i} {kind} [{shape}]: reads {} writes {}", list(&k.reads), list(&k.writes));
        let _ = writeln!(out, "    ops {}", list(&k.values));
    }
    let _ = writeln!(out, "  {} kernels", s.kernels.len());
    out
}

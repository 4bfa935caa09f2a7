//! Simplification of a graph before fusion: constant folding, algebraic identities
//! (x·1, x+0, x−0, x/1, −(−x)) and common-subexpression elimination. Dead values vanish
//! later, since printing and fusion only see what reaches an output.

use crate::ir::{Binary, Graph, Op, Unary, ValueId};
use std::collections::HashMap;

/// A hashable key for an op and its (already simplified) operands.
fn key(op: &Op, shape: &[usize]) -> Option<String> {
    match op {
        // Inputs are distinct by name; constants by value and shape.
        Op::Input { .. } => None,
        _ => Some(format!("{op:?}{shape:?}")),
    }
}

/// Returns a simplified copy of `g` computing the same outputs.
pub fn simplify(g: &Graph) -> Graph {
    let mut out = Graph::default();
    let mut map: Vec<ValueId> = Vec::with_capacity(g.values.len());
    let mut seen: HashMap<String, ValueId> = HashMap::new();
    for v in &g.values {
        let m = |id: &ValueId| map[id.index()];
        let mut op = remap(&v.op, &m);
        let constant = |id: ValueId| match out.value(id).op {
            Op::Const(c) => Some(c),
            _ => None,
        };
        // Folding and identities: either a constant, or an existing value.
        let mut replaced: Option<ValueId> = None;
        match op {
            Op::Unary(u, x) => {
                if let Some(c) = constant(x) {
                    op = Op::Const(u.apply(c));
                } else if u == Unary::Detach {
                    replaced = Some(x); // gradients are derived by now
                } else if u == Unary::Neg {
                    if let Op::Unary(Unary::Neg, inner) = out.value(x).op {
                        replaced = Some(inner);
                    }
                }
            }
            Op::PowConst(x, c) => {
                if let Some(a) = constant(x) {
                    op = Op::Const(crate::ir::interp::pow(a, c));
                } else if c == 1.0 {
                    replaced = Some(x);
                }
            }
            Op::Binary(b, x, y) => match (constant(x), constant(y)) {
                (Some(a), Some(c)) => op = Op::Const(b.apply(a, c)),
                (_, Some(1.0)) if matches!(b, Binary::Mul | Binary::Div) => replaced = Some(x),
                (Some(1.0), _) if b == Binary::Mul => replaced = Some(y),
                (_, Some(0.0)) if matches!(b, Binary::Add | Binary::Sub) => replaced = Some(x),
                (Some(0.0), _) if b == Binary::Add => replaced = Some(y),
                _ => {}
            },
            Op::Broadcast { input, .. } | Op::Reshape(input) => {
                if let Some(c) = constant(input) {
                    op = Op::Const(c);
                }
            }
            _ => {}
        }
        let id = match replaced {
            Some(r) => r,
            None => match key(&op, &v.shape) {
                Some(k) => *seen.entry(k).or_insert_with(|| push(&mut out, op, v.shape.clone())),
                None => push(&mut out, op, v.shape.clone()),
            },
        };
        map.push(id);
    }
    out.outputs = g.outputs.iter().map(|(n, o)| (n.clone(), map[o.index()])).collect();
    out
}

/// Splits each large reduction of a whole tensor into a reduction of its rows, then of the
/// row results: the first is parallel over rows, so a back end can spread it over threads
/// or blocks while every result still comes from a fixed order of additions.
pub fn split_reductions(g: &Graph, min_elements: usize) -> Graph {
    let mut out = Graph::default();
    let mut map: Vec<ValueId> = Vec::with_capacity(g.values.len());
    for v in &g.values {
        let m = |id: &ValueId| map[id.index()];
        let id = match &v.op {
            Op::Reduce { op, input, axes }
                if axes.len() >= 2
                    && axes.len() == g.shape(*input).len()
                    && crate::ir::numel(g.shape(*input)) >= min_elements =>
            {
                let rows = out.reduce(*op, m(input), axes[1..].to_vec());
                out.reduce(*op, rows, vec![0])
            }
            op => {
                let op = remap(op, &m);
                push(&mut out, op, v.shape.clone())
            }
        };
        map.push(id);
    }
    out.outputs = g.outputs.iter().map(|(n, o)| (n.clone(), map[o.index()])).collect();
    out
}

/// Writes to memory (a `copy`) each operand that the op reading it cannot read through one
/// view: a reshape of windows (a convolution's columns) or of a transposed value, a matrix
/// operand or gather table that would need guards, the adjoint of windows of a guarded view.
pub fn materialize(g: &Graph) -> Graph {
    use crate::kernel::view::{source, unwindow_view, Source};
    let guarded = |out: &Graph, x: ValueId| matches!(source(out, x), Ok(Source::View { ref view, .. }) if !view.guards.is_empty());
    let mut out = Graph::default();
    let mut map: Vec<ValueId> = Vec::with_capacity(g.values.len());
    for v in &g.values {
        let m = |id: &ValueId| map[id.index()];
        let op = remap(&v.op, &m);
        // The operands to copy first.
        let copy: Vec<ValueId> = match &op {
            o if o.is_movement() => {
                let id = push(&mut out, op.clone(), v.shape.clone());
                let ok = source(&out, id).is_ok();
                out.values.pop();
                if ok {
                    vec![]
                } else {
                    o.operands()
                }
            }
            Op::MatMul { a, b, .. } => [*a, *b].into_iter().filter(|&x| guarded(&out, x)).collect(),
            Op::Gather { table, .. } => [*table].into_iter().filter(|&x| guarded(&out, x)).collect(),
            Op::Unwindow { input, axes, slides } => match source(&out, *input) {
                Ok(Source::View { view, .. }) if unwindow_view(&view, out.shape(*input), axes, slides).is_err() => {
                    vec![*input]
                }
                _ => vec![],
            },
            _ => vec![],
        };
        let mut copies = HashMap::new();
        for x in copy {
            let s = out.shape(x).to_vec();
            copies.insert(x, push(&mut out, Op::Unary(Unary::Copy, x), s));
        }
        let op = remap(&op, &|id: &ValueId| copies.get(id).copied().unwrap_or(*id));
        map.push(push(&mut out, op, v.shape.clone()));
    }
    out.outputs = g.outputs.iter().map(|(n, o)| (n.clone(), map[o.index()])).collect();
    out
}

/// `op` with its operands renamed by `m`.
fn remap(op: &Op, m: &impl Fn(&ValueId) -> ValueId) -> Op {
    match op {
        Op::Input { .. } | Op::Const(_) | Op::Iota { .. } => op.clone(),
        Op::Unary(u, x) => Op::Unary(*u, m(x)),
        Op::PowConst(x, c) => Op::PowConst(m(x), *c),
        Op::Binary(b, x, y) => Op::Binary(*b, m(x), m(y)),
        Op::Reduce { op, input, axes } => Op::Reduce { op: *op, input: m(input), axes: axes.clone() },
        Op::Broadcast { input, dims } => Op::Broadcast { input: m(input), dims: dims.clone() },
        Op::Reshape(x) => Op::Reshape(m(x)),
        Op::Permute { input, perm } => Op::Permute { input: m(input), perm: perm.clone() },
        Op::MatMul { a, b, ta, tb } => Op::MatMul { a: m(a), b: m(b), ta: *ta, tb: *tb },
        Op::OneHot { labels } => Op::OneHot { labels: m(labels) },
        Op::Select { cond, on_true, on_false } => {
            Op::Select { cond: m(cond), on_true: m(on_true), on_false: m(on_false) }
        }
        Op::Gather { table, indices } => Op::Gather { table: m(table), indices: m(indices) },
        Op::Window { input, axes, slides, fill } => {
            Op::Window { input: m(input), axes: axes.clone(), slides: slides.clone(), fill: *fill }
        }
        Op::Unwindow { input, axes, slides } => {
            Op::Unwindow { input: m(input), axes: axes.clone(), slides: slides.clone() }
        }
    }
}

fn push(g: &mut Graph, op: Op, shape: Vec<usize>) -> ValueId {
    g.values.push(crate::ir::Value { op, shape });
    ValueId(g.values.len() as u32 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::interp::{outputs, Precision};
    use crate::ir::InputKind;

    #[test]
    fn folds_and_shares() {
        let mut g = Graph::default();
        let x = g.input_value("x", InputKind::Data, vec![3]);
        let one = g.constant(1.0, vec![3]);
        let two = g.scalar(2.0);
        let three = g.scalar(3.0);
        let six = g.binary(Binary::Mul, two, three);
        let six_b = g.broadcast(six, &[3], vec![]);
        let a = g.binary(Binary::Mul, x, one); // x
        let b = g.binary(Binary::Mul, a, six_b); // 6x
        let c = g.binary(Binary::Mul, x, six_b); // 6x again
        let d = g.binary(Binary::Add, b, c);
        let n = g.unary(Unary::Neg, d);
        let nn = g.unary(Unary::Neg, n);
        g.outputs = vec![("y".into(), nn)];
        let s = simplify(&g);
        s.validate().unwrap();
        let inputs = [("x".to_string(), vec![1.0, 2.0, -3.0])].into_iter().collect();
        assert_eq!(outputs(&g, &inputs, Precision::F64).unwrap(), outputs(&s, &inputs, Precision::F64).unwrap());
        // x, the folded 6, one multiply (shared), the add: nothing else is live.
        let live = crate::ir::print::live(&s).iter().filter(|l| **l).count();
        assert_eq!(live, 4, "{}", crate::ir::print::print(&s));
    }
}

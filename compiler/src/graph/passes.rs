//! Graph passes before fusion: simplification (constant folding, algebraic identities
//! (x·1, x+(−0), x−0, x/1, −(−x)) and common-subexpression elimination), the split of large
//! reductions, copies where no view can read an operand, and the recomputation of cheap values
//! that would otherwise be written to memory only to be read back. Dead values vanish later,
//! since printing and fusion only see what reaches an output.

use hoyer_ir::{Binary, Dtype, Graph, Op, Role, Unary, ValueId};
use std::collections::HashMap;

/// A hashable key for an op and its (already simplified) operands.
fn key(op: &Op, shape: &[usize]) -> Option<String> {
    match op {
        // Inputs are distinct by name; constants by value and shape.
        Op::Input(_) => None,
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
                    op = Op::Const(hoyer_ir::interp::pow(a, c));
                } else if c == 1.0 {
                    replaced = Some(x);
                }
            }
            Op::Binary(b, x, y) => match (constant(x), constant(y)) {
                (Some(a), Some(c)) => op = Op::Const(b.apply(a, c)),
                (_, Some(1.0)) if matches!(b, Binary::Mul | Binary::Div) => replaced = Some(x),
                (Some(1.0), _) if b == Binary::Mul => replaced = Some(y),
                // x + (−0) and x − (+0) are x for every x; x + (+0) is not (−0 + 0 = +0, in
                // IEEE arithmetic and in PyTorch), so it stays.
                (_, Some(c)) if c == 0.0 && c.is_sign_negative() && b == Binary::Add => replaced = Some(x),
                (Some(c), _) if c == 0.0 && c.is_sign_negative() && b == Binary::Add => replaced = Some(y),
                (_, Some(c)) if c == 0.0 && c.is_sign_positive() && b == Binary::Sub => replaced = Some(x),
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
                Some(k) => *seen.entry(k).or_insert_with(|| push_as(&mut out, op, v.shape.clone(), v.dtype)),
                None => push_as(&mut out, op, v.shape.clone(), v.dtype),
            },
        };
        map.push(id);
    }
    out.outputs = outputs_through(g, &map);
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
                    && hoyer_ir::numel(g.shape(*input)) >= min_elements =>
            {
                let rows = out.reduce(*op, m(input), axes[1..].to_vec());
                out.reduce(*op, rows, vec![0])
            }
            op => {
                let op = remap(op, &m);
                push_as(&mut out, op, v.shape.clone(), v.dtype)
            }
        };
        map.push(id);
    }
    out.outputs = outputs_through(g, &map);
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
        map.push(push_as(&mut out, op, v.shape.clone(), v.dtype));
    }
    out.outputs = outputs_through(g, &map);
    out
}

/// Moves a cheap unary op below the reshapes and permutes of its result: `reshape(relu(x))`
/// becomes `relu(reshape(x))`, the same elements. A pooling then reads the convolution's
/// output through its view and applies the relu itself, instead of a kernel writing the
/// relu's result only for the pooling to read it back.
pub fn sink_unary(g: &Graph) -> Graph {
    let mut out = Graph::default();
    let mut map: Vec<ValueId> = Vec::with_capacity(g.values.len());
    for v in &g.values {
        let m = |id: &ValueId| map[id.index()];
        let op = remap(&v.op, &m);
        let sunk = match &op {
            Op::Reshape(x) | Op::Permute { input: x, .. } => match out.value(*x).op {
                Op::Unary(u @ (Unary::Relu | Unary::Neg | Unary::Abs | Unary::Step | Unary::Sign), inner) => {
                    Some((u, inner))
                }
                _ => None,
            },
            _ => None,
        };
        let id = match sunk {
            Some((u, inner)) => {
                let moved = remap(&op, &|_| inner);
                let moved = push(&mut out, moved, v.shape.clone());
                push(&mut out, Op::Unary(u, moved), v.shape.clone())
            }
            None => push_as(&mut out, op, v.shape.clone(), v.dtype),
        };
        map.push(id);
    }
    out.outputs = outputs_through(g, &map);
    out
}

/// Moves a reshape of an element-wise binary op's operand below the op:
/// `mul(reshape(x), y)` becomes `reshape(mul(x, reshape(y)))`, the same elements in the same
/// order. The op then runs over the iteration shape of `x`'s kernel and fuses into it: max
/// pooling's gradient, computed over the windows' shape, takes the relu's derivative of the
/// convolution below it into the same kernel instead of a kernel of its own. Only where `x`
/// and the other operand are element-wise results (reshaping them is always a view), so
/// that nothing new is materialized.
pub fn sink_reshapes(g: &Graph) -> Graph {
    let elementwise = |op: &Op| matches!(op, Op::Unary(..) | Op::Binary(..) | Op::PowConst(..) | Op::Select { .. });
    let mut out = Graph::default();
    let mut map: Vec<ValueId> = Vec::with_capacity(g.values.len());
    for v in &g.values {
        let op = remap(&v.op, &|id: &ValueId| map[id.index()]);
        let id = match op {
            Op::Binary(b, x, y) => {
                let unshaped = |o: ValueId, out: &Graph| match out.value(o).op {
                    Op::Reshape(inner) if elementwise(&out.value(inner).op) => Some(inner),
                    _ => None,
                };
                let anchor = unshaped(x, &out).or_else(|| unshaped(y, &out)).map(|a| out.shape(a).to_vec());
                let plain = |o: ValueId, out: &Graph| elementwise(&out.value(o).op) || unshaped(o, out).is_some();
                match anchor {
                    Some(shape) if plain(x, &out) && plain(y, &out) => {
                        let under = |o: ValueId, out: &mut Graph| match unshaped(o, out) {
                            Some(inner) if out.shape(inner) == shape.as_slice() => inner,
                            _ => push(out, Op::Reshape(o), shape.clone()),
                        };
                        let (x, y) = (under(x, &mut out), under(y, &mut out));
                        let z = push(&mut out, Op::Binary(b, x, y), shape.clone());
                        push(&mut out, Op::Reshape(z), v.shape.clone())
                    }
                    _ => push_as(&mut out, op, v.shape.clone(), v.dtype),
                }
            }
            op => push_as(&mut out, op, v.shape.clone(), v.dtype),
        };
        map.push(id);
    }
    out.outputs = outputs_through(g, &map);
    out
}

/// Ops cheaper to compute again than to write and read back: a few instructions each.
fn is_cheap(op: &Op) -> bool {
    match op {
        Op::Unary(u, _) => matches!(u, Unary::Neg | Unary::Abs | Unary::Relu | Unary::Step | Unary::Sign),
        Op::Binary(b, _, _) => matches!(b, Binary::Add | Binary::Sub | Binary::Mul | Binary::Max | Binary::Eq),
        Op::Select { .. } | Op::Iota { .. } => true,
        _ => false,
    }
}

/// Cheap element-wise values computed on the way into a reduction and read again, over the
/// same shape, by an element-wise op outside it (max pooling's mask and scores, which its
/// gradient reads again) are computed a second time for that reader. The reduction's kernel
/// then writes only its result, and the reader loads the chain's inputs instead of its
/// values: a few instructions more, two passes over memory fewer.
pub fn recompute_cheap(g: &Graph) -> Graph {
    let live = hoyer_ir::print::live(g);
    // Inputs the step updates in place (parameters, optimizer state): a second reader of
    // one would have to run before its update, which may not be possible.
    let updated: std::collections::HashSet<ValueId> = g.updated_inputs().into_iter().map(|(_, i)| i).collect();
    // Values that can be computed a second time from what is in memory anyway: cheap ops
    // whose operands are such values too, or inputs, constants, views (whose operands are in
    // memory) and reduction results. Not what reads a product (its epilogue computes that)
    // or an input updated in place.
    let mut again_ok = vec![false; g.values.len()];
    for (i, value) in g.values.iter().enumerate() {
        let in_memory = |o: &ValueId| {
            let op = &g.value(*o).op;
            again_ok[o.index()] || matches!(op, Op::Input(_) | Op::Const(_) | Op::Reduce { .. }) || op.is_movement()
        };
        let operands = value.op.operands();
        again_ok[i] = is_cheap(&value.op)
            && operands.iter().all(in_memory)
            && !operands.iter().any(|o| matches!(g.value(*o).op, Op::MatMul { .. }))
            && !operands.iter().any(|o| updated.contains(&crate::kernel::fusion::root(g, *o)));
    }
    // chain[v] = the reduction whose input chain v is on (the first one in graph order: a
    // later reduction that reads it, as a gradient reads the forward pass, recomputes it).
    let mut chain: Vec<Option<ValueId>> = vec![None; g.values.len()];
    for (i, v) in g.values.iter().enumerate() {
        let Op::Reduce { input, .. } = v.op else { continue };
        if !live[i] {
            continue;
        }
        let mut stack = vec![input];
        while let Some(u) = stack.pop() {
            if chain[u.index()].is_some() || !again_ok[u.index()] {
                continue;
            }
            chain[u.index()] = Some(ValueId(i as u32));
            stack.extend(g.value(u).op.operands());
        }
    }
    let mut out = Graph::default();
    let mut map: Vec<ValueId> = Vec::with_capacity(g.values.len());
    for (i, v) in g.values.iter().enumerate() {
        // The copies this reader gets (its own: a copy shared by two readers in different
        // kernels would have to be written to memory after all).
        let mut again: HashMap<ValueId, ValueId> = HashMap::new();
        let elementwise = matches!(v.op, Op::Unary(..) | Op::Binary(..) | Op::PowConst(..) | Op::Select { .. });
        let mut renamed: HashMap<ValueId, ValueId> = HashMap::new();
        for o in v.op.operands() {
            let on_chain = chain[o.index()];
            let outside = elementwise && live[i] && on_chain.is_some() && on_chain != chain[i] && g.shape(o) == v.shape;
            let new = if outside { copy_chain(g, o, &again_ok, &map, &mut again, &mut out) } else { map[o.index()] };
            renamed.insert(o, new);
        }
        let op = remap(&v.op, &|id: &ValueId| renamed[id]);
        map.push(push_as(&mut out, op, v.shape.clone(), v.dtype));
    }
    out.outputs = outputs_through(g, &map);
    out
}

/// A second copy in `out` of value `v` of `g`: its operands that can be computed again are
/// copied too, the others (in memory anyway) are shared.
fn copy_chain(
    g: &Graph,
    v: ValueId,
    again_ok: &[bool],
    map: &[ValueId],
    again: &mut HashMap<ValueId, ValueId>,
    out: &mut Graph,
) -> ValueId {
    if let Some(&c) = again.get(&v) {
        return c;
    }
    let value = g.value(v);
    let mut renamed: HashMap<ValueId, ValueId> = HashMap::new();
    for o in value.op.operands() {
        let new = if again_ok[o.index()] { copy_chain(g, o, again_ok, map, again, out) } else { map[o.index()] };
        renamed.insert(o, new);
    }
    let op = remap(&value.op, &|id: &ValueId| renamed[id]);
    let c = push(out, op, value.shape.clone());
    again.insert(v, c);
    c
}

/// The outputs of `g`, renamed by `map` (each old value's new one): how every pass that
/// rebuilds a graph ends.
fn outputs_through(g: &Graph, map: &[ValueId]) -> Vec<(Role, ValueId)> {
    g.outputs.iter().map(|(r, o)| (r.clone(), map[o.index()])).collect()
}

/// `op` with its operands renamed by `m`.
fn remap(op: &Op, m: &impl Fn(&ValueId) -> ValueId) -> Op {
    match op {
        Op::Input(_) | Op::Const(_) | Op::Iota { .. } => op.clone(),
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
        Op::Slice { input, axis, start } => Op::Slice { input: m(input), axis: *axis, start: *start },
    }
}

/// Adds `op` to `g`, of the type its operands give it (an input keeps `like`'s: the value it
/// copies).
fn push_as(g: &mut Graph, op: Op, shape: Vec<usize>, like: Dtype) -> ValueId {
    let dtype = g.result_dtype(&op).unwrap_or(like);
    g.push_value(hoyer_ir::Value { op, shape, dtype })
}

fn push(g: &mut Graph, op: Op, shape: Vec<usize>) -> ValueId {
    push_as(g, op, shape, Dtype::F32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoyer_ir::interp::{outputs, Precision};
    use hoyer_ir::Role;

    #[test]
    fn folds_and_shares() {
        let mut g = Graph::default();
        let x = g.input_value(Role::param("x"), vec![3]);
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
        g.outputs = vec![(Role::param("y"), nn)];
        let s = simplify(&g);
        s.validate().unwrap();
        let inputs = [(Role::param("x"), vec![1.0, 2.0, -3.0])].into_iter().collect();
        assert_eq!(outputs(&g, &inputs, Precision::F64).unwrap(), outputs(&s, &inputs, Precision::F64).unwrap());
        // x, the folded 6, one multiply (shared), the add: nothing else is live.
        let live = hoyer_ir::print::live(&s).iter().filter(|l| **l).count();
        assert_eq!(live, 4, "{}", hoyer_ir::print::print(&s));
    }

    /// −0 + 0 is +0 (IEEE, PyTorch): `x + 0` is not `x`. `x + (−0)` and `x − 0` are, and go.
    #[test]
    fn adding_zero_keeps_the_sign_of_zero() {
        let mut g = Graph::default();
        let x = g.input_value(Role::param("x"), vec![3]);
        let plus_zero = g.constant(0.0, vec![3]);
        let minus_zero = g.constant(-0.0, vec![3]);
        let a = g.binary(Binary::Add, x, plus_zero);
        let b = g.binary(Binary::Add, plus_zero, x);
        let c = g.binary(Binary::Add, x, minus_zero);
        let d = g.binary(Binary::Sub, x, plus_zero);
        g.outputs = vec![(Role::param("a"), a), (Role::param("b"), b), (Role::param("c"), c), (Role::param("d"), d)];
        let s = simplify(&g);
        let inputs = [(Role::param("x"), vec![-0.0, 0.0, -1.5])].into_iter().collect();
        let bits = |g: &Graph| {
            let out = outputs(g, &inputs, Precision::F32).unwrap();
            ["a", "b", "c", "d"].map(|n| out[&Role::param(n)].iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        assert_eq!(bits(&g), bits(&s), "{}", hoyer_ir::print::print(&s));
        assert_eq!(outputs(&s, &inputs, Precision::F32).unwrap()[&Role::param("a")][0].to_bits(), 0.0f64.to_bits());
        assert_eq!(s.output(&Role::param("c")), s.input(&Role::param("x")), "x + (−0) is x");
        assert_eq!(s.output(&Role::param("d")), s.input(&Role::param("x")), "x − 0 is x");
    }

    /// A square summed over rows and read again by an add: the add computes the square again,
    /// so the reduction's kernel writes only the sums; the outputs do not change.
    #[test]
    fn recomputes_a_reductions_cheap_input_for_its_other_reader() {
        use hoyer_ir::ReduceOp;
        let mut g = Graph::default();
        let x = g.input_value(Role::param("x"), vec![2, 3]);
        let sq = g.binary(Binary::Mul, x, x);
        let sums = g.reduce(ReduceOp::Sum, sq, vec![1]);
        let y = g.binary(Binary::Add, sq, x);
        g.outputs = vec![(Role::param("sums"), sums), (Role::param("y"), y)];
        let r = recompute_cheap(&g);
        r.validate().unwrap();
        let inputs = [(Role::param("x"), vec![1.0, -2.0, 3.0, 0.5, 4.0, -1.5])].into_iter().collect();
        assert_eq!(outputs(&g, &inputs, Precision::F64).unwrap(), outputs(&r, &inputs, Precision::F64).unwrap());
        let writes = |g: &Graph| -> Vec<usize> {
            crate::kernel::fusion::fuse(g, &[]).unwrap().kernels.iter().map(|k| k.writes.len()).collect()
        };
        // Before: the reduction's kernel writes the square too. After: each kernel writes
        // only its output.
        assert_eq!(writes(&g).iter().sum::<usize>(), 3);
        assert_eq!(writes(&r), vec![1, 1]);
    }

    /// A pooling gradient's shape: `mul(reshape(scatter), step(x))` with the scatter over
    /// [2, 2, 3] and the step over [4, 3]. The multiply moves into the scatter's shape, and
    /// with it the step (below its reshape): one kernel instead of two, the same outputs.
    #[test]
    fn an_elementwise_op_moves_above_a_reshape_of_its_operand() {
        let mut g = Graph::default();
        let a = g.input_value(Role::param("a"), vec![2, 2, 3]);
        let b = g.input_value(Role::param("b"), vec![2, 2, 3]);
        let x = g.input_value(Role::param("x"), vec![4, 3]);
        let scatter = g.binary(Binary::Mul, a, b);
        let flat = g.reshape(scatter, vec![4, 3]);
        let step = g.unary(Unary::Step, x);
        let y = g.binary(Binary::Mul, flat, step);
        g.outputs = vec![(Role::param("y"), y)];
        let s = simplify(&sink_unary(&sink_reshapes(&g)));
        s.validate().unwrap();
        let inputs = [
            (Role::param("a"), (0..12).map(|i| i as f64 * 0.5 - 2.0).collect()),
            (Role::param("b"), (0..12).map(|i| 3.0 - i as f64).collect()),
            (Role::param("x"), (0..12).map(|i| if i % 3 == 0 { -1.0 } else { i as f64 }).collect()),
        ]
        .into_iter()
        .collect();
        assert_eq!(outputs(&g, &inputs, Precision::F64).unwrap(), outputs(&s, &inputs, Precision::F64).unwrap());
        let kernels = |g: &Graph| crate::kernel::fusion::fuse(g, &[]).unwrap().kernels.len();
        assert_eq!((kernels(&g), kernels(&s)), (2, 1));
    }
}

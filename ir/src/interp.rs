//! The reference interpreter: the oracle every back end is tested against.
//!
//! Values are row-major `f64` buffers. In `Precision::F32` every result is rounded to `f32`,
//! which is what a float32 back end computes up to summation order.

use super::semantics::{self, ElemOp};
use super::{numel, window_shape, Binary, Dtype, Graph, Op, ReduceOp, Role, Slide, ValueId};
use std::collections::HashMap;

/// Why the interpreter stopped: the inputs it was given do not fit the graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterpError {
    #[error("input `{0}` was not given")]
    MissingInput(String),
    #[error("input `{name}` has {got} values, expected {want}")]
    WrongSize { name: String, got: usize, want: usize },
    #[error("label {label} is not a class index below {classes}")]
    BadLabel { label: f64, classes: usize },
    #[error("gather index {index} is not a row below {rows}")]
    BadRow { index: f64, rows: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Calls `f(out_flat, in_flat)` for every element of `out_shape`, where the input index
/// follows `in_strides_per_out_axis` (0 for axes the input does not have).
fn walk(out_shape: &[usize], in_strides: &[usize], mut f: impl FnMut(usize, usize)) {
    let n = numel(out_shape);
    let rank = out_shape.len();
    let mut idx = vec![0usize; rank];
    let mut src = 0usize;
    for flat in 0..n {
        f(flat, src);
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            src += in_strides[ax];
            if idx[ax] < out_shape[ax] {
                break;
            }
            src -= in_strides[ax] * out_shape[ax];
            idx[ax] = 0;
        }
    }
}

/// For each element of the windows of a value of `shape` (row-major), the element of the
/// value it reads, or `None` where it reads the padding.
pub fn window_sources(shape: &[usize], axes: &[usize], slides: &[Slide]) -> Vec<Option<usize>> {
    let out_shape = window_shape(shape, axes, slides);
    let in_strides = strides(shape);
    let rank = shape.len();
    let mut idx = vec![0usize; out_shape.len()];
    let mut out = Vec::with_capacity(numel(&out_shape));
    for _ in 0..numel(&out_shape) {
        let mut flat = 0i64;
        let mut inside = true;
        for a in 0..rank {
            let c = match axes.iter().position(|&x| x == a) {
                Some(k) => slides[k].coordinate(idx[a], idx[rank + k]),
                None => idx[a] as i64,
            };
            inside &= c >= 0 && c < shape[a] as i64;
            flat += c * in_strides[a] as i64;
        }
        out.push(inside.then_some(flat as usize));
        for ax in (0..out_shape.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < out_shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    out
}

/// The values of a graph's inputs (or outputs), by role.
pub type Values = HashMap<Role, Vec<f64>>;

/// Evaluates every value of `graph`. `inputs` holds a buffer for each input's role (whole
/// numbers for integer inputs).
pub fn run(graph: &Graph, inputs: &Values, precision: Precision) -> Result<Vec<Vec<f64>>, InterpError> {
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(graph.values.len());
    for (i, v) in graph.values.iter().enumerate() {
        let get = |id: &ValueId| -> &Vec<f64> { &vals[id.index()] };
        let n = numel(&v.shape);
        let mut out: Vec<f64> = match &v.op {
            Op::Input(role) => {
                let buf = inputs.get(role).ok_or_else(|| InterpError::MissingInput(role.to_string()))?;
                if buf.len() != n {
                    return Err(InterpError::WrongSize { name: role.to_string(), got: buf.len(), want: n });
                }
                buf.clone()
            }
            Op::Const(c) => vec![*c; n],
            Op::Unary(op, x) => get(x).iter().map(|&a| op.apply(a)).collect(),
            Op::PowConst(x, c) => get(x).iter().map(|&a| pow(a, *c)).collect(),
            Op::Select { cond, on_true, on_false } => {
                let (c, t, f) = (get(cond), get(on_true), get(on_false));
                (0..n).map(|k| semantics::eval(ElemOp::Select, &[c[k], t[k], f[k]])).collect()
            }
            Op::Gather { table, indices } => {
                let rows = graph.shape(*table)[0];
                let row = n / v.shape[0].max(1);
                let t = get(table);
                let mut out = Vec::with_capacity(n);
                for &ix in get(indices) {
                    if ix < 0.0 || ix.fract() != 0.0 || ix as usize >= rows {
                        return Err(InterpError::BadRow { index: ix, rows });
                    }
                    let at = ix as usize * row;
                    out.extend_from_slice(&t[at..at + row]);
                }
                out
            }
            Op::Iota { axis } => {
                let st = strides(&v.shape);
                (0..n).map(|k| ((k / st[*axis]) % v.shape[*axis]) as f64).collect()
            }
            Op::Binary(op, a, b) => get(a).iter().zip(get(b)).map(|(&x, &y)| op.apply(x, y)).collect(),
            Op::Reduce { op, input, axes } => {
                let in_shape = graph.shape(*input);
                let out_strides = strides(&v.shape);
                // Input axis → stride in the output (0 for reduced axes).
                let mut per_axis = Vec::with_capacity(in_shape.len());
                let mut k = 0;
                for ax in 0..in_shape.len() {
                    if axes.contains(&ax) {
                        per_axis.push(0);
                    } else {
                        per_axis.push(out_strides[k]);
                        k += 1;
                    }
                }
                let init = if *op == ReduceOp::Sum { 0.0 } else { f64::NEG_INFINITY };
                let mut out = vec![init; n];
                let src = get(input);
                // Max as the `max` op: NaN propagates, the first of equal values stays.
                walk(in_shape, &per_axis, |flat, o| match op {
                    ReduceOp::Sum => out[o] += src[flat],
                    ReduceOp::Max | ReduceOp::MaxFirst => out[o] = Binary::Max.apply(out[o], src[flat]),
                });
                out
            }
            Op::Broadcast { input, dims } => {
                let in_strides = strides(graph.shape(*input));
                let mut per_axis = vec![0; v.shape.len()];
                for (i, &d) in dims.iter().enumerate() {
                    per_axis[d] = in_strides[i];
                }
                let src = get(input);
                let mut out = vec![0.0; n];
                walk(&v.shape, &per_axis, |o, s| out[o] = src[s]);
                out
            }
            Op::Reshape(x) => get(x).clone(),
            Op::Permute { input, perm } => {
                let in_strides = strides(graph.shape(*input));
                let per_axis: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
                let src = get(input);
                let mut out = vec![0.0; n];
                walk(&v.shape, &per_axis, |o, s| out[o] = src[s]);
                out
            }
            Op::MatMul { a, b, ta, tb } => {
                let (sa, sb) = (graph.shape(*a), graph.shape(*b));
                // The matrices' own shapes, and how many of them.
                let (sa, sb, batch) = if sa.len() == 3 { (&sa[1..], &sb[1..], sa[0]) } else { (sa, sb, 1) };
                let (m, nn) = (v.shape[v.shape.len() - 2], v.shape[v.shape.len() - 1]);
                let k = if *ta { sa[0] } else { sa[1] };
                let (av, bv) = (get(a), get(b));
                let mut out = vec![0.0; batch * m * nn];
                for q in 0..batch {
                    let (av, bv) = (&av[q * sa[0] * sa[1]..], &bv[q * sb[0] * sb[1]..]);
                    let at = |i: usize, p: usize| if *ta { av[p * sa[1] + i] } else { av[i * sa[1] + p] };
                    let bt = |p: usize, j: usize| if *tb { bv[j * sb[1] + p] } else { bv[p * sb[1] + j] };
                    for i in 0..m {
                        for j in 0..nn {
                            out[(q * m + i) * nn + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                        }
                    }
                }
                out
            }
            Op::Window { input, axes, slides, fill } => {
                let src = get(input);
                window_sources(graph.shape(*input), axes, slides)
                    .into_iter()
                    .map(|from| from.map_or(fill.value(), |k| src[k]))
                    .collect()
            }
            Op::Unwindow { input, axes, slides } => {
                let src = get(input);
                let mut out = vec![0.0; n];
                for (k, to) in window_sources(&v.shape, axes, slides).into_iter().enumerate() {
                    if let Some(to) = to {
                        out[to] += src[k];
                    }
                }
                out
            }
            Op::Slice { input, axis, start } => {
                let (src, ins) = (get(input), graph.shape(*input));
                let (inner, len, extent) = (ins[axis + 1..].iter().product::<usize>(), v.shape[*axis], ins[*axis]);
                let mut out = vec![0.0; n];
                for (k, o) in out.iter_mut().enumerate() {
                    let (outer, i, rest) = (k / (inner * len), (k / inner) % len, k % inner);
                    let from = i as i64 + start;
                    if (0..extent as i64).contains(&from) {
                        *o = src[(outer * extent + from as usize) * inner + rest];
                    }
                }
                out
            }
            Op::OneHot { labels } => {
                let classes = v.shape[1];
                let mut out = vec![0.0; n];
                for (row, &l) in get(labels).iter().enumerate() {
                    let c = l as usize;
                    if l < 0.0 || l.fract() != 0.0 || c >= classes {
                        return Err(InterpError::BadLabel { label: l, classes });
                    }
                    out[row * classes + c] = 1.0;
                }
                out
            }
        };
        // Whole numbers stay whole: only float32 values round.
        if precision == Precision::F32 && v.dtype == Dtype::F32 {
            out.iter_mut().for_each(|x| *x = *x as f32 as f64);
        }
        debug_assert_eq!(out.len(), n, "value %{i}");
        vals.push(out);
    }
    Ok(vals)
}

/// `x^c`, exact for the small integer powers regularizers use.
pub fn pow(x: f64, c: f64) -> f64 {
    semantics::eval(ElemOp::Pow(c), &[x])
}

/// The outputs of `graph`, by role.
pub fn outputs(graph: &Graph, inputs: &Values, precision: Precision) -> Result<Values, InterpError> {
    let vals = run(graph, inputs, precision)?;
    Ok(graph.outputs.iter().map(|(role, id)| (role.clone(), vals[id.index()].clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Unary;

    fn eval(g: &Graph, inputs: &[(Role, Vec<f64>)]) -> Vec<Vec<f64>> {
        let map = inputs.iter().cloned().collect();
        run(g, &map, Precision::F64).unwrap()
    }

    #[test]
    fn reduce_broadcast_permute_matmul() {
        let mut g = Graph::default();
        let x = g.input_value(Role::Data, vec![2, 3]);
        let rows = g.reduce(ReduceOp::Sum, x, vec![1]);
        let cols = g.reduce(ReduceOp::Max, x, vec![0]);
        let back = g.broadcast(rows, &[2, 3], vec![0]);
        let t = g.permute(x, vec![1, 0]);
        let mm = g.matmul(x, x, false, true); // x · xᵀ
        let r = g.unary(Unary::Relu, x);
        let v = eval(&g, &[(Role::Data, vec![1.0, -2.0, 3.0, 4.0, 5.0, -6.0])]);
        assert_eq!(v[rows.index()], vec![2.0, 3.0]);
        assert_eq!(v[cols.index()], vec![4.0, 5.0, 3.0]);
        assert_eq!(v[back.index()], vec![2.0, 2.0, 2.0, 3.0, 3.0, 3.0]);
        assert_eq!(v[t.index()], vec![1.0, 4.0, -2.0, 5.0, 3.0, -6.0]);
        assert_eq!(v[mm.index()], vec![14.0, -24.0, -24.0, 77.0]);
        assert_eq!(v[r.index()], vec![1.0, 0.0, 3.0, 4.0, 5.0, 0.0]);
    }

    #[test]
    fn f32_rounds_every_result() {
        let mut g = Graph::default();
        let x = g.input_value(Role::Data, vec![1]);
        let y = g.unary(Unary::Recip, x);
        let map = [(Role::Data, vec![3.0])].into_iter().collect();
        let v = run(&g, &map, Precision::F32).unwrap();
        assert_eq!(v[y.index()][0], (1.0f32 / 3.0) as f64);
    }

    #[test]
    fn bad_labels_and_missing_inputs_are_errors() {
        let mut g = Graph::default();
        let l = g.input_typed(Role::Labels, Dtype::I32, vec![2]);
        g.one_hot(l, 3);
        let bad = [(Role::Labels, vec![0.0, 3.0])].into_iter().collect();
        assert!(run(&g, &bad, Precision::F64).is_err());
        assert!(run(&g, &HashMap::new(), Precision::F64).is_err());
    }

    #[test]
    fn slices_pads_and_concatenation() {
        // [2, 3]: columns 1..3, a pad of one zero column on each side, and the two side by side
        // with a [2, 1] column.
        let mut g = Graph::default();
        let x = g.input_value(Role::Data, vec![2, 3]);
        let c = g.input_value(Role::Labels, vec![2, 1]);
        let cut = g.slice(x, 1, 1, 2);
        let padded = g.slice(x, 1, -1, 5);
        let joined = g.concat(&[x, c], 1);
        let rows = g.slice(x, 0, 1, 1);
        let v = eval(&g, &[(Role::Data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), (Role::Labels, vec![7.0, 8.0])]);
        assert_eq!(v[cut.index()], vec![2.0, 3.0, 5.0, 6.0]);
        assert_eq!(v[padded.index()], vec![0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 4.0, 5.0, 6.0, 0.0]);
        assert_eq!(g.shape(joined), [2, 4]);
        assert_eq!(v[joined.index()], vec![1.0, 2.0, 3.0, 7.0, 4.0, 5.0, 6.0, 8.0]);
        assert_eq!(v[rows.index()], vec![4.0, 5.0, 6.0]);
        assert!(g.validate().is_ok());
    }

    #[test]
    fn windows_and_their_adjoint() {
        // A 1×4 row, windows of 3 with stride 1 and padding 1: [0 a b] [a b c] [b c d] [c d 0].
        let mut g = Graph::default();
        let x = g.input_value(Role::Data, vec![1, 4]);
        let slide = Slide { size: 3, stride: 1, padding: 1, dilation: 1 };
        let w = g.window(x, vec![1], vec![slide], crate::Fill::Zero);
        let back = g.unwindow(w, vec![1], vec![slide], vec![1, 4]);
        let m = g.window(x, vec![1], vec![Slide { size: 2, stride: 2, padding: 1, dilation: 1 }], crate::Fill::NegInf);
        let v = eval(&g, &[(Role::Data, vec![1.0, 2.0, 3.0, 4.0])]);
        assert_eq!(g.shape(w), [1, 4, 3]);
        assert_eq!(v[w.index()], vec![0.0, 1.0, 2.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0, 3.0, 4.0, 0.0]);
        // Each element is read by three windows, the ends by two.
        assert_eq!(v[back.index()], vec![2.0, 6.0, 9.0, 8.0]);
        assert_eq!(g.shape(m), [1, 3, 2]);
        assert_eq!(v[m.index()], vec![f64::NEG_INFINITY, 1.0, 2.0, 3.0, 4.0, f64::NEG_INFINITY]);
    }

    #[test]
    fn binary_ops() {
        assert_eq!(Binary::Eq.apply(2.0, 2.0), 1.0);
        assert_eq!(Binary::Max.apply(-1.0, 2.0), 2.0);
    }
}

//! Reverse-mode automatic differentiation as a pass over the IR: one vector-Jacobian rule
//! per primitive. The gradient values are appended to the same graph, so that later passes
//! (fusion, codegen) see forward and backward together.
//!
//! Every rule is checked against central finite differences in `tests` below.

use hoyer_ir::{Binary, Graph, Op, ReduceOp, Unary, ValueId};
use std::collections::HashMap;

/// Appends the gradient of the scalar `loss` with respect to each of `wrt` and returns the
/// gradient values in the same order. A value that does not influence `loss` gets zeros.
pub fn grad(g: &mut Graph, loss: ValueId, wrt: &[ValueId]) -> Vec<ValueId> {
    assert!(g.shape(loss).is_empty(), "the loss must be a scalar");
    // Only values that depend on something in `wrt` need an adjoint.
    let n = loss.index() + 1;
    let mut needed = vec![false; n];
    for w in wrt {
        if w.index() < n {
            needed[w.index()] = true;
        }
    }
    for i in 0..n {
        if !needed[i] {
            needed[i] = g.values[i].op.operands().iter().any(|o| needed[o.index()]);
        }
    }

    let mut adj: HashMap<ValueId, ValueId> = HashMap::new();
    let one = g.scalar(1.0);
    adj.insert(loss, one);
    for i in (0..n).rev() {
        let y = ValueId(i as u32);
        let Some(&gy) = adj.get(&y) else { continue };
        if !needed[i] {
            continue;
        }
        let op = g.values[i].op.clone();
        for (x, gx) in vjp(g, &op, y, gy) {
            if !needed[x.index()] {
                continue;
            }
            let total = match adj.get(&x) {
                Some(&prev) => g.binary(Binary::Add, prev, gx),
                None => gx,
            };
            adj.insert(x, total);
        }
    }
    wrt.iter()
        .map(|w| match adj.get(w) {
            Some(&gw) => gw,
            None => {
                let s = g.shape(*w).to_vec();
                g.constant(0.0, s)
            }
        })
        .collect()
}

/// The contributions of `y = op(...)` with adjoint `gy` to its operands.
fn vjp(g: &mut Graph, op: &Op, y: ValueId, gy: ValueId) -> Vec<(ValueId, ValueId)> {
    match *op {
        // Data, labels and index arithmetic carry no gradient.
        Op::Input(_) | Op::Const(_) | Op::OneHot { .. } | Op::Iota { .. } => vec![],
        // Each gathered row's gradient goes back to the row it came from, summed where a row
        // was read more than once: onehot(indices)ᵀ · gy, as a matrix product (exact, and one
        // library call; a scatter-add would spend less on a large table). The indices get none.
        Op::Gather { table, indices } => {
            let shape = g.shape(table).to_vec();
            let rows = shape[0];
            let width: usize = shape[1..].iter().product();
            let n = g.shape(indices)[0];
            let onehot = g.one_hot(indices, rows);
            let gy2 = g.reshape(gy, vec![n, width]);
            let gt = g.matmul(onehot, gy2, true, false);
            vec![(table, g.reshape(gt, shape))]
        }
        Op::Select { cond, on_true, on_false } => {
            // The gradient goes to the side that was taken; the other gets exact zeros.
            let s = g.shape(y).to_vec();
            let zero = g.constant(0.0, s);
            let gt = g.select(cond, gy, zero);
            let gf = g.select(cond, zero, gy);
            vec![(on_true, gt), (on_false, gf)]
        }
        Op::Unary(u, x) => {
            let gx = match u {
                Unary::Neg => g.unary(Unary::Neg, gy),
                Unary::Abs => {
                    let s = g.unary(Unary::Sign, x);
                    g.binary(Binary::Mul, gy, s)
                }
                // d sqrt(x) = 1 / (2 sqrt(x)), and 0 at 0 (a subgradient: the norm of a group
                // that is entirely zero then passes no gradient, instead of 0 · ∞ = NaN).
                Unary::Sqrt => {
                    let s = g.shape(y).to_vec();
                    let (one, zero) = (g.constant(1.0, s.clone()), g.constant(0.0, s));
                    let safe = g.select(y, y, one);
                    let two_y = g.binary(Binary::Add, safe, safe);
                    let d = g.binary(Binary::Div, gy, two_y);
                    g.select(y, d, zero)
                }
                Unary::Exp => g.binary(Binary::Mul, gy, y),
                Unary::Log => g.binary(Binary::Div, gy, x),
                Unary::Relu => {
                    let s = g.unary(Unary::Step, x);
                    g.binary(Binary::Mul, gy, s)
                }
                // d (1/x) = -1/x² = -y²
                Unary::Recip => {
                    let y2 = g.binary(Binary::Mul, y, y);
                    let t = g.binary(Binary::Mul, gy, y2);
                    g.unary(Unary::Neg, t)
                }
                Unary::Copy => gy,
                // d tanh = 1 - y², d sigmoid = y (1 - y)
                Unary::Tanh | Unary::Sigmoid => {
                    let s = g.shape(y).to_vec();
                    let one = g.constant(1.0, s);
                    let d = if u == Unary::Tanh {
                        let y2 = g.binary(Binary::Mul, y, y);
                        g.binary(Binary::Sub, one, y2)
                    } else {
                        let rest = g.binary(Binary::Sub, one, y);
                        g.binary(Binary::Mul, y, rest)
                    };
                    g.binary(Binary::Mul, gy, d)
                }
                // d erf = 2/√π · exp(-x²)
                Unary::Erf => {
                    let s = g.shape(x).to_vec();
                    let x2 = g.binary(Binary::Mul, x, x);
                    let nx2 = g.unary(Unary::Neg, x2);
                    let e = g.unary(Unary::Exp, nx2);
                    let k = g.constant(std::f64::consts::FRAC_2_SQRT_PI, s);
                    let d = g.binary(Binary::Mul, k, e);
                    g.binary(Binary::Mul, gy, d)
                }
                Unary::Sign | Unary::Step | Unary::Detach => return vec![],
            };
            vec![(x, gx)]
        }
        Op::PowConst(x, c) => {
            // d x^c = c x^(c-1)
            let d = if c == 2.0 {
                let s = g.shape(x).to_vec();
                let two = g.constant(2.0, s);
                g.binary(Binary::Mul, two, x)
            } else {
                let p = g.pow_const(x, c - 1.0);
                let s = g.shape(x).to_vec();
                let k = g.constant(c, s);
                g.binary(Binary::Mul, k, p)
            };
            vec![(x, g.binary(Binary::Mul, gy, d))]
        }
        Op::Binary(b, l, r) => match b {
            Binary::Add => vec![(l, gy), (r, gy)],
            Binary::Sub => {
                let nr = g.unary(Unary::Neg, gy);
                vec![(l, gy), (r, nr)]
            }
            Binary::Mul => {
                let gl = g.binary(Binary::Mul, gy, r);
                let gr = g.binary(Binary::Mul, gy, l);
                vec![(l, gl), (r, gr)]
            }
            Binary::Div => {
                // y = l / r: dl = g / r, dr = -g y / r
                let gl = g.binary(Binary::Div, gy, r);
                let t = g.binary(Binary::Mul, gl, y);
                let gr = g.unary(Unary::Neg, t);
                vec![(l, gl), (r, gr)]
            }
            Binary::Max => {
                // Ties share the gradient evenly, as PyTorch's maximum does.
                let ml = g.binary(Binary::Eq, l, y);
                let mr = g.binary(Binary::Eq, r, y);
                let share = g.binary(Binary::Add, ml, mr);
                let gs = g.binary(Binary::Div, gy, share);
                let gl = g.binary(Binary::Mul, gs, ml);
                let gr = g.binary(Binary::Mul, gs, mr);
                vec![(l, gl), (r, gr)]
            }
            Binary::Eq | Binary::Random => vec![],
        },
        Op::Reduce { op: rop, input, ref axes } => {
            let in_shape = g.shape(input).to_vec();
            let kept: Vec<usize> = (0..in_shape.len()).filter(|a| !axes.contains(a)).collect();
            let gb = g.broadcast(gy, &in_shape, kept.clone());
            let gx = match rop {
                ReduceOp::Sum => gb,
                ReduceOp::Max => {
                    // The maxima share the gradient evenly (as PyTorch's amax).
                    let yb = g.broadcast(y, &in_shape, kept.clone());
                    let mask = g.binary(Binary::Eq, input, yb);
                    let count = g.reduce(ReduceOp::Sum, mask, axes.clone());
                    let count_b = g.broadcast(count, &in_shape, kept);
                    let share = g.binary(Binary::Div, mask, count_b);
                    g.binary(Binary::Mul, gb, share)
                }
                ReduceOp::MaxFirst => {
                    // Number the reduced elements so that earlier ones score higher; among
                    // the maxima, the highest score is the first.
                    let yb = g.broadcast(y, &in_shape, kept.clone());
                    let mask = g.binary(Binary::Eq, input, yb);
                    let mut score =
                        g.constant(axes.iter().map(|&a| in_shape[a]).product::<usize>() as f64, in_shape.clone());
                    let mut step = 1.0;
                    for &a in axes.iter().rev() {
                        let i = g.iota(in_shape.clone(), a);
                        let k = g.constant(step, in_shape.clone());
                        let ik = g.binary(Binary::Mul, i, k);
                        score = g.binary(Binary::Sub, score, ik);
                        step *= in_shape[a] as f64;
                    }
                    let zero = g.constant(0.0, in_shape.clone());
                    let scored = g.select(mask, score, zero);
                    let best = g.reduce(ReduceOp::Max, scored, axes.clone());
                    let best_b = g.broadcast(best, &in_shape, kept);
                    let first = g.binary(Binary::Eq, scored, best_b);
                    let first = g.binary(Binary::Mul, first, mask);
                    g.binary(Binary::Mul, gb, first)
                }
            };
            vec![(input, gx)]
        }
        Op::Broadcast { input, ref dims } => {
            let out_rank = g.shape(y).len();
            let summed: Vec<usize> = (0..out_rank).filter(|a| !dims.contains(a)).collect();
            let r = g.reduce(ReduceOp::Sum, gy, summed);
            // `r` holds the kept axes in increasing output order; put them in input order.
            let mut order: Vec<usize> = dims.clone();
            order.sort_unstable();
            let perm: Vec<usize> = dims.iter().map(|d| order.iter().position(|o| o == d).unwrap_or(0)).collect();
            let gx = if perm.iter().enumerate().all(|(i, &p)| i == p) { r } else { g.permute(r, perm) };
            vec![(input, gx)]
        }
        Op::Reshape(x) => {
            let s = g.shape(x).to_vec();
            vec![(x, g.reshape(gy, s))]
        }
        Op::Permute { input, ref perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            vec![(input, g.permute(gy, inverse))]
        }
        Op::Window { input, ref axes, ref slides, .. } => {
            // What the padding reads has no source; each element gets the sum over the
            // windows that read it.
            let s = g.shape(input).to_vec();
            vec![(input, g.unwindow(gy, axes.clone(), slides.clone(), s))]
        }
        Op::Unwindow { input, ref axes, ref slides } => {
            vec![(input, g.window(gy, axes.clone(), slides.clone(), hoyer_ir::Fill::Zero))]
        }
        // Input coordinate j went to output coordinate j − start (where that exists).
        Op::Slice { input, axis, start } => {
            let n = g.shape(input)[axis];
            vec![(input, g.slice(gy, axis, -start, n))]
        }
        Op::MatMul { a, b, ta, tb } => {
            let (ga, gb) = match (ta, tb) {
                (false, false) => (g.matmul(gy, b, false, true), g.matmul(a, gy, true, false)),
                (false, true) => (g.matmul(gy, b, false, false), g.matmul(gy, a, true, false)),
                (true, false) => (g.matmul(b, gy, false, true), g.matmul(a, gy, false, false)),
                (true, true) => (g.matmul(b, gy, true, true), g.matmul(gy, a, true, true)),
            };
            vec![(a, ga), (b, gb)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoyer_ir::interp::{run, Precision};
    use hoyer_ir::{Dtype, Role};

    /// Deterministic pseudo-random numbers in [lo, hi), kept away from zero by `gap`.
    fn numbers(n: usize, seed: u64, gap: f64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                u.signum() * (gap + u.abs())
            })
            .collect()
    }

    /// Builds `loss = sum(weights ⊙ f(x))` with `f` given, and compares the gradient the pass
    /// derives with central finite differences, in float64.
    fn check(name: &str, shape: Vec<usize>, x0: Vec<f64>, f: impl Fn(&mut Graph, ValueId) -> ValueId) {
        let mut g = Graph::default();
        let x = g.input_value(Role::param("x"), shape);
        let y = f(&mut g, x);
        let ys = g.shape(y).to_vec();
        let w = g.input_value(Role::param("w"), ys.clone());
        let prod = g.binary(Binary::Mul, y, w);
        let loss = g.sum_all(prod);
        let dx = grad(&mut g, loss, &[x])[0];
        g.validate().unwrap();
        let weights = numbers(hoyer_ir::numel(&ys), 99, 0.1);
        let eval = |xv: &[f64]| -> Vec<Vec<f64>> {
            let inputs = [(Role::param("x"), xv.to_vec()), (Role::param("w"), weights.clone())].into_iter().collect();
            run(&g, &inputs, Precision::F64).unwrap()
        };
        let analytic = eval(&x0)[dx.index()].clone();
        let h = 1e-6;
        for i in 0..x0.len() {
            let (mut xp, mut xm) = (x0.clone(), x0.clone());
            xp[i] += h;
            xm[i] -= h;
            let numeric = (eval(&xp)[loss.index()][0] - eval(&xm)[loss.index()][0]) / (2.0 * h);
            let err = (numeric - analytic[i]).abs() / numeric.abs().max(1.0);
            assert!(err < 1e-6, "{name}: d/dx[{i}] analytic {} numeric {numeric}", analytic[i]);
        }
    }

    fn positive(n: usize, seed: u64) -> Vec<f64> {
        numbers(n, seed, 0.2).into_iter().map(f64::abs).collect()
    }

    #[test]
    fn unary_rules() {
        for u in [
            Unary::Neg,
            Unary::Abs,
            Unary::Exp,
            Unary::Relu,
            Unary::Sign,
            Unary::Step,
            Unary::Tanh,
            Unary::Sigmoid,
            Unary::Erf,
        ] {
            check(u.name(), vec![2, 3], numbers(6, 1, 0.1), |g, x| g.unary(u, x));
        }
        for u in [Unary::Sqrt, Unary::Log, Unary::Recip] {
            check(u.name(), vec![5], positive(5, 2), |g, x| g.unary(u, x));
        }
    }

    #[test]
    fn power_rules() {
        for c in [2.0, 3.0, 0.5, -1.5] {
            check("pow", vec![4], positive(4, 3), move |g, x| g.pow_const(x, c));
        }
    }

    #[test]
    fn binary_rules() {
        // Each binary op against a second, fixed operand on either side, and with itself.
        for b in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max] {
            check(b.name(), vec![3, 2], positive(6, 4), move |g, x| {
                let other = g.constant(0.7, vec![3, 2]);
                let l = g.binary(b, x, other);
                let r = g.binary(b, other, x);
                g.binary(Binary::Add, l, r)
            });
        }
        check("mul self", vec![3], numbers(3, 5, 0.1), |g, x| g.binary(Binary::Mul, x, x));
        check("eq", vec![3], numbers(3, 6, 0.1), |g, x| g.binary(Binary::Eq, x, x));
    }

    #[test]
    fn reduce_rules() {
        let x0 = numbers(24, 7, 0.1);
        for axes in [vec![0], vec![1], vec![2], vec![0, 2], vec![0, 1, 2]] {
            let a = axes.clone();
            check("reduce_sum", vec![2, 3, 4], x0.clone(), move |g, x| g.reduce(ReduceOp::Sum, x, a.clone()));
            let a = axes.clone();
            check("reduce_max", vec![2, 3, 4], x0.clone(), move |g, x| g.reduce(ReduceOp::Max, x, a.clone()));
            check("reduce_max_first", vec![2, 3, 4], x0.clone(), move |g, x| {
                g.reduce(ReduceOp::MaxFirst, x, axes.clone())
            });
        }
    }

    #[test]
    fn equal_maxima_share_or_go_to_the_first() {
        // Rows [1, 3, 3, 2] and [5, 5, 5, 5]: amax shares, max pooling picks the first.
        for (op, want) in [
            (ReduceOp::Max, vec![0.0, 0.5, 0.5, 0.0, 0.25, 0.25, 0.25, 0.25]),
            (ReduceOp::MaxFirst, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
        ] {
            let mut g = Graph::default();
            let x = g.input_value(Role::param("x"), vec![2, 4]);
            let m = g.reduce(op, x, vec![1]);
            let loss = g.sum_all(m);
            let gx = grad(&mut g, loss, &[x])[0];
            let inputs = [(Role::param("x"), vec![1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, 5.0])].into_iter().collect();
            assert_eq!(run(&g, &inputs, Precision::F64).unwrap()[gx.index()], want, "{op:?}");
        }
    }

    #[test]
    fn movement_rules() {
        let x0 = numbers(6, 8, 0.1);
        check("broadcast", vec![2, 3], x0.clone(), |g, x| g.broadcast(x, &[4, 2, 3], vec![1, 2]));
        check("broadcast transposed", vec![2, 3], x0.clone(), |g, x| g.broadcast(x, &[3, 5, 2], vec![2, 0]));
        check("reshape", vec![2, 3], x0.clone(), |g, x| g.reshape(x, vec![3, 2]));
        check("permute", vec![2, 3], x0.clone(), |g, x| g.permute(x, vec![1, 0]));
        check("permute 3d", vec![2, 3, 1], x0.clone(), |g, x| g.permute(x, vec![2, 0, 1]));
        // Slices inside, pads past both ends, and a concatenation with a second use of x.
        check("slice", vec![2, 3], x0.clone(), |g, x| g.slice(x, 1, 1, 2));
        check("pad", vec![2, 3], x0.clone(), |g, x| g.slice(x, 1, -2, 6));
        check("slice rows", vec![2, 3], x0.clone(), |g, x| g.slice(x, 0, 1, 1));
        check("concat", vec![2, 3], x0, |g, x| {
            let sq = g.pow_const(x, 2.0);
            let col = g.slice(sq, 1, 2, 1);
            g.concat(&[x, col, x], 1)
        });
    }

    #[test]
    fn window_rules() {
        use hoyer_ir::{Fill, Slide};
        let slide = |size, stride, padding, dilation| Slide { size, stride, padding, dilation };
        // Overlapping, strided, padded and dilated windows over the last two axes of [2, 5, 4],
        // and over one axis; max pooling's −∞ padding has no gradient.
        for (axes, slides, fill) in [
            (vec![1, 2], vec![slide(3, 1, 1, 1), slide(2, 1, 0, 1)], Fill::Zero),
            (vec![1, 2], vec![slide(3, 2, 1, 1), slide(3, 2, 1, 1)], Fill::Zero),
            (vec![1], vec![slide(2, 1, 0, 2)], Fill::Zero),
            (vec![2, 1], vec![slide(2, 2, 0, 1), slide(2, 2, 1, 1)], Fill::NegInf),
        ] {
            let (a, s) = (axes.clone(), slides.clone());
            check("window", vec![2, 5, 4], numbers(40, 13, 0.1), move |g, x| {
                let w = g.window(x, a.clone(), s.clone(), fill);
                // Finite values only: −∞ times a weight would make the sum −∞ or NaN.
                let big = g.constant(-1e3, g.shape(w).to_vec());
                g.binary(Binary::Max, w, big)
            });
            check(
                "unwindow",
                hoyer_ir::window_shape(&[2, 5, 4], &axes, &slides),
                {
                    let n = hoyer_ir::numel(&hoyer_ir::window_shape(&[2, 5, 4], &axes, &slides));
                    numbers(n, 14, 0.1)
                },
                move |g, x| g.unwindow(x, axes.clone(), slides.clone(), vec![2, 5, 4]),
            );
        }
        check("copy", vec![3], numbers(3, 15, 0.1), |g, x| g.unary(Unary::Copy, x));
    }

    #[test]
    fn matmul_rules() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            // x is the left operand…
            let sa = if ta { vec![3, 2] } else { vec![2, 3] };
            check("matmul lhs", sa, numbers(6, 9, 0.1), move |g, x| {
                let sb = if tb { vec![4, 3] } else { vec![3, 4] };
                let b = g.constant(0.3, sb);
                let b = g.unary(Unary::Exp, b);
                g.matmul(x, b, ta, tb)
            });
            // …and the right one.
            let sb = if tb { vec![4, 3] } else { vec![3, 4] };
            check("matmul rhs", sb, numbers(12, 10, 0.1), move |g, x| {
                let sa = if ta { vec![3, 2] } else { vec![2, 3] };
                let a = g.constant(0.5, sa);
                g.matmul(a, x, ta, tb)
            });
        }
    }

    /// Batched products [batch, …] (attention's), both operands activations.
    #[test]
    fn batched_matmul_rules() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let sa = if ta { vec![2, 3, 2] } else { vec![2, 2, 3] };
            let sb = if tb { vec![2, 4, 3] } else { vec![2, 3, 4] };
            let other = sb.clone();
            check("batched matmul lhs", sa.clone(), numbers(12, 11, 0.1), move |g, x| {
                let b = g.iota(other.clone(), 2);
                let b = g.unary(Unary::Tanh, b);
                g.matmul(x, b, ta, tb)
            });
            check("batched matmul rhs", sb, numbers(24, 13, 0.1), move |g, x| {
                let a = g.iota(sa.clone(), 1);
                let a = g.unary(Unary::Sigmoid, a);
                g.matmul(a, x, ta, tb)
            });
            // Both operands from x: a product of two activations (q·kᵀ of one input).
            check("batched matmul of itself", vec![2, 3, 3], numbers(18, 12, 0.1), move |g, x| {
                let y = g.unary(Unary::Tanh, x);
                g.matmul(x, y, ta, tb)
            });
        }
    }

    #[test]
    fn select_rules() {
        // x on either side of a select whose condition mixes 0, 1 and other nonzero values.
        let cond = |g: &mut Graph| {
            let c = g.iota(vec![2, 3], 1);
            let one = g.constant(1.0, vec![2, 3]);
            g.binary(Binary::Sub, c, one) // -1, 0, 1 per row
        };
        check("select true side", vec![2, 3], numbers(6, 11, 0.1), move |g, x| {
            let c = cond(g);
            let other = g.constant(0.25, vec![2, 3]);
            g.select(c, x, other)
        });
        check("select false side", vec![2, 3], numbers(6, 12, 0.1), move |g, x| {
            let c = cond(g);
            let other = g.constant(0.25, vec![2, 3]);
            g.select(c, other, x)
        });
    }

    #[test]
    fn detach_passes_the_value_and_stops_the_gradient() {
        // loss = sum(x · detach(x)): the gradient is detach(x) = x, not 2x.
        let mut g = Graph::default();
        let x = g.input_value(Role::param("x"), vec![3]);
        let d = g.unary(Unary::Detach, x);
        let p = g.binary(Binary::Mul, x, d);
        let loss = g.sum_all(p);
        let gx = grad(&mut g, loss, &[x])[0];
        let inputs = [(Role::param("x"), vec![1.0, -2.0, 3.0])].into_iter().collect();
        let v = run(&g, &inputs, Precision::F64).unwrap();
        assert_eq!(v[d.index()], vec![1.0, -2.0, 3.0]);
        assert_eq!(v[gx.index()], vec![1.0, -2.0, 3.0]);
    }

    #[test]
    fn gathered_rows_carry_no_gradient_to_the_indices() {
        let mut g = Graph::default();
        let t = g.input_value(Role::param("t"), vec![4, 2]);
        let i = g.input_value(Role::param("i"), vec![3]);
        let rows = g.gather(t, i);
        let loss = g.sum_all(rows);
        let gi = grad(&mut g, loss, &[i])[0];
        let inputs = [(Role::param("t"), (0..8).map(f64::from).collect()), (Role::param("i"), vec![3.0, 0.0, 3.0])]
            .into_iter()
            .collect();
        let v = run(&g, &inputs, Precision::F64).unwrap();
        assert_eq!(v[rows.index()], vec![6.0, 7.0, 0.0, 1.0, 6.0, 7.0]);
        assert_eq!(v[gi.index()], vec![0.0; 3]);
    }

    #[test]
    fn a_row_read_twice_gets_both_gradients_and_an_unread_row_none() {
        // loss = Σ rows · c with row 3 read at positions 0 and 2: its gradient is c₀ + c₂.
        let mut g = Graph::default();
        let t = g.input_value(Role::param("t"), vec![4, 2]);
        let i = g.input_typed(Role::Data, Dtype::I32, vec![3]);
        let rows = g.gather(t, i);
        let c = g.input_value(Role::param("c"), vec![3, 2]);
        let weighted = g.binary(Binary::Mul, rows, c);
        let loss = g.sum_all(weighted);
        let gt = grad(&mut g, loss, &[t])[0];
        let inputs = [
            (Role::param("t"), (0..8).map(f64::from).collect()),
            (Role::Data, vec![3.0, 0.0, 3.0]),
            (Role::param("c"), vec![1.0, 2.0, 10.0, 20.0, 100.0, 200.0]),
        ]
        .into_iter()
        .collect();
        let v = run(&g, &inputs, Precision::F64).unwrap();
        assert_eq!(v[gt.index()], vec![10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 101.0, 202.0]);
    }

    #[test]
    fn unrelated_inputs_get_zero_gradients() {
        let mut g = Graph::default();
        let x = g.input_value(Role::param("x"), vec![2]);
        let z = g.input_value(Role::param("z"), vec![3]);
        let loss = g.sum_all(x);
        let grads = grad(&mut g, loss, &[x, z]);
        let inputs = [(Role::param("x"), vec![1.0, 2.0]), (Role::param("z"), vec![0.0; 3])].into_iter().collect();
        let v = run(&g, &inputs, Precision::F64).unwrap();
        assert_eq!(v[grads[0].index()], vec![1.0, 1.0]);
        assert_eq!(v[grads[1].index()], vec![0.0; 3]);
    }
}

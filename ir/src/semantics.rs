//! The semantics of every element-wise op, written once.
//!
//! Each op is a short program over a handful of machine-level primitives (`Prim`) whose
//! IEEE-754 behaviour every target has: add, compare, select, square root, and the libm
//! calls. The reference interpreter evaluates these programs; the Cranelift and CUDA emitters
//! render them primitive by primitive. So NaN, ±0 and ±inf behave the same everywhere, and
//! as in PyTorch 2.x (checked against it):
//!
//! | op | NaN | −0 | note |
//! | --- | --- | --- | --- |
//! | relu | NaN | −0 | `x < 0 ? 0 : x` |
//! | step (relu′) | 1 | 0 | `x <= 0 ? 0 : 1`, as `threshold_backward` |
//! | sign | 0 | 0 | |
//! | max | NaN if either is | first on ties | `torch.maximum`, `amax` |
//! | eq | 0 | −0 == 0 | |
//! | select | a NaN condition selects | | `cond != 0 ? a : b`; a masked weight stays exactly 0 |

use super::{Binary, Unary};

/// A comparison; false whenever an operand is NaN except `Ne`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
    /// The C operator.
    pub fn c_op(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
        }
    }
}

/// A machine-level primitive. Operands are indices of earlier entries of the same program;
/// `Arg(k)` is the op's k-th operand. `Cmp` gives a condition, which only `Select` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prim {
    Arg(usize),
    Const(f64),
    Add(usize, usize),
    Sub(usize, usize),
    Mul(usize, usize),
    Div(usize, usize),
    Neg(usize),
    Abs(usize),
    Sqrt(usize),
    /// libm `expf`.
    Exp(usize),
    /// libm `logf`.
    Log(usize),
    /// libm `powf` with a constant exponent.
    Pow(usize, f64),
    /// libm `tanhf`.
    Tanh(usize),
    /// libm `erff`.
    Erf(usize),
    /// `random(a, b)`: see `random`.
    Random(usize, usize),
    Cmp(Cmp, usize, usize),
    /// `cond ? a : b`.
    Select(usize, usize, usize),
}

/// Chris Wellons' `lowbias32` integer hash.
pub fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// A uniform number in [0, 1), 24 random bits, from counter `a` and key `b`, converted to
/// unsigned integers with saturation (NaN and negatives to 0) as every target does:
/// `lowbias32(a ^ lowbias32(b)) >> 8`, times 2^-24.
pub fn random(a: f32, b: f32) -> f32 {
    let x = lowbias32((a as u32) ^ lowbias32(b as u32));
    (x >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// An element-wise op of the IR (and of the kernel IR).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ElemOp {
    Unary(Unary),
    Binary(Binary),
    /// `x^c` for a constant `c`.
    Pow(f64),
    /// `cond != 0 ? a : b`.
    Select,
    /// `a * b + c`, rounded once (kernel IR only: contracted from a multiply and an add).
    Fma,
}

impl ElemOp {
    pub fn arity(self) -> usize {
        match self {
            ElemOp::Unary(_) | ElemOp::Pow(_) => 1,
            ElemOp::Binary(_) => 2,
            ElemOp::Select | ElemOp::Fma => 3,
        }
    }
}

use Prim::*;

/// The program of `op`. The result is the last entry.
pub fn program(op: ElemOp) -> Vec<Prim> {
    match op {
        ElemOp::Unary(u) => match u {
            Unary::Neg => vec![Arg(0), Neg(0)],
            Unary::Abs => vec![Arg(0), Abs(0)],
            Unary::Sqrt => vec![Arg(0), Sqrt(0)],
            Unary::Exp => vec![Arg(0), Exp(0)],
            Unary::Log => vec![Arg(0), Log(0)],
            Unary::Recip => vec![Arg(0), Const(1.0), Div(1, 0)],
            Unary::Tanh => vec![Arg(0), Tanh(0)],
            Unary::Erf => vec![Arg(0), Erf(0)],
            // 1 / (1 + exp(-x)): 0 at -inf, 1 at +inf, NaN passes.
            Unary::Sigmoid => vec![Arg(0), Neg(0), Exp(1), Const(1.0), Add(3, 2), Div(3, 4)],
            Unary::Detach | Unary::Copy => vec![Arg(0)],
            // x < 0 ? 0 : x — NaN and −0 pass through.
            Unary::Relu => vec![Arg(0), Const(0.0), Cmp(Cmp::Lt, 0, 1), Select(2, 1, 0)],
            // x <= 0 ? 0 : 1 — NaN gives 1, as PyTorch's threshold_backward.
            Unary::Step => vec![Arg(0), Const(0.0), Const(1.0), Cmp(Cmp::Le, 0, 1), Select(3, 1, 2)],
            // x > 0 ? 1 : (x < 0 ? -1 : 0) — NaN gives 0.
            Unary::Sign => vec![
                Arg(0),
                Const(0.0),
                Const(1.0),
                Const(-1.0),
                Cmp(Cmp::Lt, 0, 1),
                Select(4, 3, 1),
                Cmp(Cmp::Gt, 0, 1),
                Select(6, 2, 5),
            ],
        },
        ElemOp::Binary(b) => match b {
            Binary::Add => vec![Arg(0), Arg(1), Add(0, 1)],
            Binary::Sub => vec![Arg(0), Arg(1), Sub(0, 1)],
            Binary::Mul => vec![Arg(0), Arg(1), Mul(0, 1)],
            Binary::Div => vec![Arg(0), Arg(1), Div(0, 1)],
            // a != a ? a : (a >= b ? a : b) — NaN from either side, the first on ties.
            Binary::Max => {
                vec![Arg(0), Arg(1), Cmp(Cmp::Ge, 0, 1), Select(2, 0, 1), Cmp(Cmp::Ne, 0, 0), Select(4, 0, 3)]
            }
            Binary::Eq => vec![Arg(0), Arg(1), Const(0.0), Const(1.0), Cmp(Cmp::Eq, 0, 1), Select(4, 3, 2)],
            Binary::Random => vec![Arg(0), Arg(1), Random(0, 1)],
        },
        ElemOp::Pow(c) => {
            if c == 2.0 {
                vec![Arg(0), Mul(0, 0)]
            } else if c == 1.0 {
                vec![Arg(0)]
            } else if c == 0.0 {
                vec![Const(1.0)]
            } else {
                vec![Arg(0), Pow(0, c)]
            }
        }
        ElemOp::Select => vec![Arg(0), Arg(1), Arg(2), Const(0.0), Cmp(Cmp::Ne, 0, 3), Select(4, 1, 2)],
        // Not a primitive program: every target has a fused multiply-add instruction; the
        // reference computes it exactly in f64 and rounds once.
        ElemOp::Fma => vec![Arg(0), Arg(1), Mul(0, 1), Arg(2), Add(2, 3)],
    }
}

/// A value while evaluating a program: a number or a condition.
#[derive(Clone, Copy)]
enum Slot {
    Num(f64),
    Cond(bool),
}

fn num(s: Slot) -> f64 {
    match s {
        Slot::Num(x) => x,
        Slot::Cond(_) => f64::NAN,
    }
}

/// Evaluates `op` on `args` in f64 (the interpreter rounds the result to f32 where asked).
pub fn eval(op: ElemOp, args: &[f64]) -> f64 {
    eval_program(&program(op), args)
}

/// Evaluates a primitive program in f64.
pub fn eval_program(prog: &[Prim], args: &[f64]) -> f64 {
    let mut slots: Vec<Slot> = Vec::with_capacity(prog.len());
    for p in prog {
        let n = |i: usize| num(slots[i]);
        let s = match *p {
            Arg(k) => Slot::Num(args[k]),
            Const(c) => Slot::Num(c),
            Add(a, b) => Slot::Num(n(a) + n(b)),
            Sub(a, b) => Slot::Num(n(a) - n(b)),
            Mul(a, b) => Slot::Num(n(a) * n(b)),
            Div(a, b) => Slot::Num(n(a) / n(b)),
            Neg(a) => Slot::Num(-n(a)),
            Abs(a) => Slot::Num(n(a).abs()),
            Sqrt(a) => Slot::Num(n(a).sqrt()),
            Exp(a) => Slot::Num(n(a).exp()),
            Log(a) => Slot::Num(n(a).ln()),
            Pow(a, c) => Slot::Num(n(a).powf(c)),
            Tanh(a) => Slot::Num(n(a).tanh()),
            Erf(a) => Slot::Num(libm::erf(n(a))),
            Random(a, b) => Slot::Num(random(n(a) as f32, n(b) as f32) as f64),
            Cmp(c, a, b) => Slot::Cond(c.apply(n(a), n(b))),
            Select(c, a, b) => {
                let take = matches!(slots[c], Slot::Cond(true));
                slots[if take { a } else { b }]
            }
        };
        slots.push(s);
    }
    slots.last().map_or(f64::NAN, |s| num(*s))
}

/// Evaluates a primitive program in f32, one rounding per primitive, as a float32 target
/// computes it (libm calls through Rust's f32 functions).
pub fn eval_program_f32(prog: &[Prim], args: &[f32]) -> f32 {
    #[derive(Clone, Copy)]
    enum S {
        N(f32),
        C(bool),
    }
    let mut slots: Vec<S> = Vec::with_capacity(prog.len());
    for p in prog {
        let n = |i: usize| match slots[i] {
            S::N(x) => x,
            S::C(_) => f32::NAN,
        };
        let s = match *p {
            Arg(k) => S::N(args[k]),
            Const(c) => S::N(c as f32),
            Add(a, b) => S::N(n(a) + n(b)),
            Sub(a, b) => S::N(n(a) - n(b)),
            Mul(a, b) => S::N(n(a) * n(b)),
            Div(a, b) => S::N(n(a) / n(b)),
            Neg(a) => S::N(-n(a)),
            Abs(a) => S::N(n(a).abs()),
            Sqrt(a) => S::N(n(a).sqrt()),
            Exp(a) => S::N(n(a).exp()),
            Log(a) => S::N(n(a).ln()),
            Pow(a, c) => S::N(n(a).powf(c as f32)),
            Tanh(a) => S::N(libm::tanhf(n(a))),
            Erf(a) => S::N(libm::erff(n(a))),
            Random(a, b) => S::N(random(n(a), n(b))),
            Cmp(c, a, b) => S::C(c.apply(n(a) as f64, n(b) as f64)),
            Select(c, a, b) => slots[if matches!(slots[c], S::C(true)) { a } else { b }],
        };
        slots.push(s);
    }
    match slots.last() {
        Some(S::N(x)) => *x,
        _ => f32::NAN,
    }
}

/// Evaluates `op` in f32; `Fma` rounds once.
pub fn eval_f32(op: ElemOp, args: &[f32]) -> f32 {
    match op {
        ElemOp::Fma => args[0].mul_add(args[1], args[2]),
        _ => eval_program_f32(&program(op), args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(x: f64) -> u64 {
        if x.is_nan() {
            u64::MAX
        } else {
            x.to_bits()
        }
    }

    /// Dropout's numbers: uniform (mean, quarters), different for neighbouring counters and
    /// keys, and whole-number inputs only (fractions truncate, NaN and negatives are 0).
    #[test]
    fn random_numbers_are_uniform_and_keyed() {
        let n = 1 << 16;
        let v: Vec<f32> = (0..n).map(|i| random(i as f32, 7.0)).collect();
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        for q in 0..4 {
            let share = v.iter().filter(|&&x| (x * 4.0) as usize == q).count() as f64 / n as f64;
            assert!((share - 0.25).abs() < 0.01, "quarter {q}: {share}");
        }
        assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
        let same = (0..1000).filter(|&i| random(i as f32, 7.0) == random(i as f32, 8.0)).count();
        assert!(same < 5, "keys 7 and 8 agree on {same} of 1000");
        assert_eq!(random(3.7, 1.0), random(3.0, 1.0));
        assert_eq!(random(f32::NAN, 1.0), random(-5.0, 1.0));
    }

    /// The values PyTorch 2.15 gives (torch.relu, torch.sign, torch.maximum, threshold_backward).
    #[test]
    fn special_values_as_pytorch() {
        let nan = f64::NAN;
        let u = |u: Unary, x: f64| eval(ElemOp::Unary(u), &[x]);
        assert!(u(Unary::Relu, nan).is_nan());
        assert_eq!(bits(u(Unary::Relu, -0.0)), bits(-0.0));
        assert_eq!(u(Unary::Relu, f64::NEG_INFINITY), 0.0);
        assert_eq!(u(Unary::Step, nan), 1.0);
        assert_eq!(u(Unary::Step, 0.0), 0.0);
        assert_eq!(u(Unary::Sign, nan), 0.0);
        assert_eq!(bits(u(Unary::Sign, -0.0)), bits(0.0));
        assert_eq!(u(Unary::Sign, -3.0), -1.0);
        assert_eq!(bits(u(Unary::Recip, -0.0)), bits(f64::NEG_INFINITY));
        // torch.tanh, torch.sigmoid, torch.erf
        for f in [Unary::Tanh, Unary::Sigmoid, Unary::Erf] {
            assert!(u(f, nan).is_nan(), "{f:?}");
            assert_eq!(u(f, f64::INFINITY), 1.0, "{f:?}");
        }
        assert_eq!(u(Unary::Tanh, f64::NEG_INFINITY), -1.0);
        assert_eq!(u(Unary::Erf, f64::NEG_INFINITY), -1.0);
        assert_eq!(u(Unary::Sigmoid, f64::NEG_INFINITY), 0.0);
        assert_eq!(bits(u(Unary::Tanh, -0.0)), bits(-0.0));
        assert_eq!(bits(u(Unary::Erf, -0.0)), bits(-0.0));
        assert_eq!(u(Unary::Sigmoid, -0.0), 0.5);
        let m = |a: f64, b: f64| eval(ElemOp::Binary(Binary::Max), &[a, b]);
        assert!(m(nan, 1.0).is_nan() && m(1.0, nan).is_nan());
        assert_eq!(bits(m(-0.0, 0.0)), bits(-0.0));
        assert_eq!(bits(m(0.0, -0.0)), bits(0.0));
        assert_eq!(eval(ElemOp::Binary(Binary::Eq), &[nan, nan]), 0.0);
        assert_eq!(eval(ElemOp::Binary(Binary::Eq), &[-0.0, 0.0]), 1.0);
        // A zero mask selects exactly zero, whatever the other side holds.
        assert_eq!(bits(eval(ElemOp::Select, &[0.0, nan, 0.0])), bits(0.0));
        assert!(eval(ElemOp::Select, &[nan, nan, 0.0]).is_nan());
    }

    #[test]
    fn f32_and_f64_programs_agree_on_exact_ops() {
        let xs = [f32::NAN, -0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY, -1.5, 2.0, 1e-30];
        let ops = [
            ElemOp::Unary(Unary::Relu),
            ElemOp::Unary(Unary::Step),
            ElemOp::Unary(Unary::Sign),
            ElemOp::Unary(Unary::Abs),
            ElemOp::Unary(Unary::Neg),
            ElemOp::Binary(Binary::Max),
            ElemOp::Binary(Binary::Eq),
            ElemOp::Select,
        ];
        for op in ops {
            for &a in &xs {
                for &b in &xs {
                    for &c in &xs {
                        let args = [a, b, c];
                        let want = eval(op, &args.map(|x| x as f64)) as f32;
                        let got = eval_f32(op, &args[..op.arity()]);
                        assert_eq!(want.is_nan(), got.is_nan(), "{op:?} {args:?}");
                        if !want.is_nan() {
                            assert_eq!(want.to_bits(), got.to_bits(), "{op:?} {args:?}");
                        }
                    }
                }
            }
        }
    }
}

//! The canonical text of a kernel program (`hoyerc compile --emit kernels`).
//!
//! ```text
//! kernel k1(t0: read, fc1.bias: read, t1: write)
//!   loop parallel [50, 64]
//!     %0 = load t0[64, 1]
//!     %1 = load fc1.bias[0, 1]
//!     %2 = add %0, %1
//!     %3 = relu %2
//!     store t1[64, 1] = %3
//! ```
//!
//! Views print as `buffer[strides]` (one stride per domain axis) and `+offset` when there is
//! one; a product prints its operands' (row, column) strides.

use super::{AccType, Access, Body, Dtype, Inst, Kernel, Loop, MatView, Program, Storage, View};
use hoyer_ir::semantics::ElemOp;
use hoyer_ir::ReduceOp;
use std::fmt::Write;

fn list(xs: &[usize]) -> String {
    format!("[{}]", xs.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
}

fn view(name: &str, v: &View) -> String {
    let strides = v.strides.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let offset = if v.offset != 0 { format!("{:+}", v.offset) } else { String::new() };
    let mut out = format!("{name}[{strides}]{offset}");
    for g in &v.guards {
        out += &format!(" {}", guard(g));
    }
    out
}

/// `if 0 <= (2·i1 + i4 − 1) / 2 < 12 then ·64 else 0`: the guard's coordinate, its range,
/// its stride, and the fill where it fails.
fn guard(g: &super::Guard) -> String {
    let mut e = String::new();
    for (d, &c) in g.coeffs.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let term = if c.abs() == 1 { format!("i{d}") } else { format!("{}·i{d}", c.abs()) };
        e += &match (e.is_empty(), c < 0) {
            (true, false) => term,
            (true, true) => format!("−{term}"),
            (false, false) => format!(" + {term}"),
            (false, true) => format!(" − {term}"),
        };
    }
    if g.constant != 0 || e.is_empty() {
        e += &match (e.is_empty(), g.constant < 0) {
            (true, _) => g.constant.to_string(),
            (false, false) => format!(" + {}", g.constant),
            (false, true) => format!(" − {}", -g.constant),
        };
    }
    let coordinate = if g.divisor == 1 { e } else { format!("({e}) / {}", g.divisor) };
    let fill = match g.fill {
        super::Fill::Zero => "0",
        super::Fill::NegInf => "-inf",
    };
    format!("if 0 <= {coordinate} < {} then ·{} else {fill}", g.extent, g.stride)
}

fn matview(name: &str, v: &MatView, batched: bool) -> String {
    let strides = if batched { vec![v.batch, v.rows, v.cols] } else { vec![v.rows, v.cols] };
    view(name, &View::strided(v.offset, strides))
}

pub fn op_name(op: &ElemOp) -> String {
    match op {
        ElemOp::Unary(u) => u.name().to_string(),
        ElemOp::Binary(b) => b.name().to_string(),
        ElemOp::Pow(c) => format!("pow{}", hoyer_ir::print::fmt_f64(*c)),
        ElemOp::Select => "select".into(),
        ElemOp::Fma => "fma".into(),
    }
}

fn access(r: Access) -> &'static str {
    match r {
        Access::Read => "read",
        Access::Write => "write",
        Access::ReadWrite => "read write",
    }
}

/// The text of one kernel; `names` gives each argument's buffer name.
pub fn kernel(p: &Program, k: &Kernel) -> String {
    let names: Vec<&str> = k.args.iter().map(|a| p.buffer(a.buffer).name.as_str()).collect();
    let mut out = String::new();
    let args = k.args.iter().zip(&names).map(|(a, n)| format!("{n}: {}", access(a.access))).collect::<Vec<_>>();
    let _ = writeln!(out, "kernel {}({})", k.name, args.join(", "));
    match &k.body {
        Body::Loop(l) => loop_nest(&mut out, l, &names, "loop"),
        Body::MatMul(m, epilogue, follower) => {
            let batched = m.batch > 1;
            let batch = if batched { format!("{}, ", m.batch) } else { String::new() };
            let _ = writeln!(
                out,
                "  matmul {}[{batch}{}, {}] = {} · {}, k {}",
                names[m.out as usize],
                m.m,
                m.n,
                matview(names[m.a.arg as usize], &m.a, batched),
                matview(names[m.b.arg as usize], &m.b, batched),
                m.k
            );
            if let Some(l) = epilogue {
                loop_nest(&mut out, l, &names, "epilogue");
            }
            if let Some(f) = follower {
                loop_nest(&mut out, &f.nest, &names, &format!("then per {} rows", f.rows));
            }
        }
    }
    out
}

fn loop_nest(out: &mut String, l: &Loop, names: &[&str], what: &str) {
    let mut head = format!("  {what} parallel {}", list(&l.parallel));
    if !l.reduce.is_empty() {
        head += &format!(" reduce {}", list(&l.reduce));
    }
    let _ = writeln!(out, "{head}");
    for (i, inst) in l.body.iter().enumerate() {
        let r = |x: &super::Reg| format!("%{}", x.0);
        let text = match inst {
            Inst::Load { arg, view: v } => format!("load {}", view(names[*arg as usize], v)),
            Inst::Gather { arg, row, row_stride, view: v } => {
                format!("gather {} row {} * {row_stride}", view(names[*arg as usize], v), r(row))
            }
            Inst::Const(c) => format!("const {c}"),
            Inst::Index(axis) => format!("index {axis}"),
            Inst::Op(op, args) => format!("{} {}", op_name(op), args.iter().map(r).collect::<Vec<_>>().join(", ")),
            Inst::Acc(k) => match l.reductions.get(*k) {
                Some(red) => format!(
                    "{} {} : {}",
                    if red.op == ReduceOp::Sum { "sum" } else { "max" },
                    r(&red.value),
                    if red.acc == AccType::F64 { "f64" } else { "f32" }
                ),
                None => format!("acc {k} (no such reduction)"),
            },
        };
        let _ = writeln!(out, "    %{i} = {text}");
    }
    for s in &l.stores {
        let _ = writeln!(out, "    store {} = %{}", view(names[s.arg as usize], &s.view), s.value.0);
    }
}

/// The whole program: its buffers, then each kernel.
pub fn print(p: &Program) -> String {
    let mut out = String::new();
    for b in &p.buffers {
        let place = match b.storage {
            Storage::Bound(_) => "bound".to_string(),
            Storage::Temp { offset } => format!("temp @{offset}"),
        };
        // Float32 goes without saying.
        let dtype = if b.dtype == Dtype::F32 { "" } else { b.dtype.name() };
        let _ = writeln!(out, "buffer {} {dtype}{} {place}", b.name, list(&b.shape));
    }
    let _ = writeln!(out, "arena {} floats", p.arena);
    for k in &p.kernels {
        out += &kernel(p, k);
    }
    let _ = writeln!(out, "{} kernels", p.kernels.len());
    out
}

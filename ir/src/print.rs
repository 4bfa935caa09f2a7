//! The canonical text form of a graph: only values that reach an output, numbered densely
//! in definition order, inputs and outputs named by their roles, so that golden files change only when the computation does.

use super::{Dtype, Graph, Op, ValueId};
use std::collections::HashMap;
use std::fmt::Write;

/// Which values reach an output.
pub fn live(graph: &Graph) -> Vec<bool> {
    let mut live = vec![false; graph.values.len()];
    for (_, o) in &graph.outputs {
        live[o.index()] = true;
    }
    for i in (0..graph.values.len()).rev() {
        if live[i] {
            for o in graph.values[i].op.operands() {
                live[o.index()] = true;
            }
        }
    }
    live
}

pub fn fmt_f64(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:e}")
    }
}

fn shape(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
}

/// The op's name as the text form writes it.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Input(_) => "input",
        Op::Const(_) => "const",
        Op::Unary(u, _) => u.name(),
        Op::PowConst(..) => "pow",
        Op::Binary(b, ..) => b.name(),
        Op::Reduce { op: super::ReduceOp::Sum, .. } => "reduce_sum",
        Op::Reduce { op: super::ReduceOp::Max, .. } => "reduce_max",
        Op::Reduce { .. } => "reduce_max_first",
        Op::Broadcast { .. } => "broadcast",
        Op::Reshape(_) => "reshape",
        Op::Permute { .. } => "permute",
        Op::MatMul { .. } => "matmul",
        Op::OneHot { .. } => "one_hot",
        Op::Select { .. } => "select",
        Op::Gather { .. } => "gather",
        Op::Iota { .. } => "iota",
        Op::Window { .. } => "window",
        Op::Unwindow { .. } => "unwindow",
        Op::Slice { .. } => "slice",
    }
}

/// `size (5, 5), stride (1, 1), padding (0, 0)`, and the dilation where it is not 1.
fn slides_text(slides: &[super::Slide]) -> String {
    let list = |f: &dyn Fn(&super::Slide) -> usize| shape(&slides.iter().map(f).collect::<Vec<_>>());
    let mut t = format!("size {}, stride {}, padding {}", list(&|s| s.size), list(&|s| s.stride), list(&|s| s.padding));
    if slides.iter().any(|s| s.dilation != 1) {
        t += &format!(", dilation {}", list(&|s| s.dilation));
    }
    t
}

pub fn print(graph: &Graph) -> String {
    let live = live(graph);
    let mut number: HashMap<ValueId, usize> = HashMap::new();
    let mut out = String::new();
    for (i, v) in graph.values.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let id = ValueId(i as u32);
        let n = number.len();
        number.insert(id, n);
        let r = |x: &ValueId| format!("%{}", number[x]);
        let body = match &v.op {
            Op::Input(role) => format!("input {} {:?}", role.kind(), role.to_string()),
            Op::Const(c) => format!("const {}", fmt_f64(*c)),
            Op::Unary(op, x) => format!("{} {}", op.name(), r(x)),
            Op::PowConst(x, c) => format!("pow {}, {}", r(x), fmt_f64(*c)),
            Op::Binary(op, a, b) => format!("{} {}, {}", op.name(), r(a), r(b)),
            Op::Reduce { op, input, axes } => {
                format!(
                    "reduce_{} {}, axes {}",
                    match op {
                        super::ReduceOp::Sum => "sum",
                        super::ReduceOp::Max => "max",
                        super::ReduceOp::MaxFirst => "max_first",
                    },
                    r(input),
                    shape(axes)
                )
            }
            Op::Broadcast { input, dims } => format!("broadcast {}, dims {}", r(input), shape(dims)),
            Op::Reshape(x) => format!("reshape {}", r(x)),
            Op::Permute { input, perm } => format!("permute {}, {}", r(input), shape(perm)),
            Op::MatMul { a, b, ta, tb } => {
                format!("matmul {}{}, {}{}", r(a), if *ta { "ᵀ" } else { "" }, r(b), if *tb { "ᵀ" } else { "" })
            }
            Op::OneHot { labels } => format!("one_hot {}", r(labels)),
            Op::Select { cond, on_true, on_false } => {
                format!("select {}, {}, {}", r(cond), r(on_true), r(on_false))
            }
            Op::Gather { table, indices } => format!("gather {}, {}", r(table), r(indices)),
            Op::Iota { axis } => format!("iota {axis}"),
            Op::Window { input, axes, slides, fill } => {
                let fill = if *fill == super::Fill::NegInf { ", fill -inf" } else { "" };
                format!("window {}, axes {}, {}{fill}", r(input), shape(axes), slides_text(slides))
            }
            Op::Unwindow { input, axes, slides } => {
                format!("unwindow {}, axes {}, {}", r(input), shape(axes), slides_text(slides))
            }
            Op::Slice { input, axis, start } => format!("slice {}, axis {axis}, from {start}", r(input)),
        };
        // Float32 goes without saying; other types are written before the shape.
        let dtype = if v.dtype == Dtype::F32 { "" } else { v.dtype.name() };
        let _ = writeln!(out, "  %{n} = {body} : {dtype}{}", shape(&v.shape));
    }
    for (role, o) in &graph.outputs {
        let _ = writeln!(out, "  output {role} = %{}", number[o]);
    }
    out
}

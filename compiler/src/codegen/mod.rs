//! Code generation. A fused kernel (`fusion`) becomes a `KernelProgram`: a list of
//! per-element instructions, each writing its own register, over the kernel's iteration
//! space. Back ends share it: the CPU back end evaluates it chunk by chunk or compiles it with
//! Cranelift (`cpu`).

pub mod cpu;

use crate::fusion::Kernel;
use crate::ir::interp::strides;
use crate::ir::{numel, Binary, Graph, Op, ReduceOp, Unary, ValueId};
use std::collections::HashMap;

/// How element `e` of a kernel's iteration space finds its element in another buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexMap {
    Same,
    Scalar,
    /// The buffer repeats along leading axes: index `e % n`.
    Modulo(usize),
    /// The buffer repeats along trailing axes: index `e / n`.
    Divide(usize),
    /// Anything else: per output axis, the buffer's stride (0 where it repeats).
    General {
        out_shape: Vec<usize>,
        per_axis: Vec<usize>,
    },
}

impl IndexMap {
    /// For a buffer of `in_shape` whose axis `i` is iteration axis `dims[i]`.
    pub fn broadcast(out_shape: &[usize], in_shape: &[usize], dims: &[usize]) -> IndexMap {
        let rank = out_shape.len();
        if numel(in_shape) == 1 {
            return IndexMap::Scalar;
        }
        if dims.iter().enumerate().all(|(i, &d)| d == rank - dims.len() + i) {
            return IndexMap::Modulo(numel(in_shape));
        }
        if dims.iter().enumerate().all(|(i, &d)| d == i) {
            return IndexMap::Divide(numel(&out_shape[dims.len()..]));
        }
        let in_strides = strides(in_shape);
        let mut per_axis = vec![0; rank];
        for (i, &d) in dims.iter().enumerate() {
            per_axis[d] = in_strides[i];
        }
        IndexMap::General { out_shape: out_shape.to_vec(), per_axis }
    }

    /// For a reduction of `in_shape` over `axes`: where element `e` accumulates.
    pub fn reduction(in_shape: &[usize], axes: &[usize]) -> IndexMap {
        let kept: Vec<usize> = (0..in_shape.len()).filter(|a| !axes.contains(a)).collect();
        let out_shape: Vec<usize> = kept.iter().map(|&a| in_shape[a]).collect();
        // The output is the input with `axes` removed: a broadcast seen backwards.
        IndexMap::broadcast(in_shape, &out_shape, &kept)
    }

    #[inline]
    pub fn index(&self, e: usize) -> usize {
        match self {
            IndexMap::Same => e,
            IndexMap::Scalar => 0,
            IndexMap::Modulo(n) => e % n,
            IndexMap::Divide(n) => e / n,
            IndexMap::General { out_shape, per_axis } => {
                let (mut rest, mut idx) = (e, 0);
                for ax in (0..out_shape.len()).rev() {
                    idx += (rest % out_shape[ax]) * per_axis[ax];
                    rest /= out_shape[ax];
                }
                idx
            }
        }
    }
}

/// One instruction of a fused kernel; each writes its own register.
#[derive(Debug, Clone, PartialEq)]
pub enum KOp {
    Load(ValueId, IndexMap),
    Const(f32),
    Unary(Unary, usize),
    Pow(usize, f32),
    Binary(Binary, usize, usize),
    OneHot { labels: ValueId, classes: usize },
}

/// A fused kernel as per-element instructions.
#[derive(Debug, Clone)]
pub struct KernelProgram {
    /// Elements in the iteration space.
    pub n: usize,
    pub ops: Vec<KOp>,
    /// (register, value) pairs stored to the value's buffer at each element.
    pub stores: Vec<(usize, ValueId)>,
    /// The reduction that ends the kernel: op, source register, output value, and where each
    /// element accumulates.
    pub reduce: Option<(ReduceOp, usize, ValueId, IndexMap)>,
}

impl KernelProgram {
    pub fn new(g: &Graph, k: &Kernel) -> Result<KernelProgram, String> {
        let shape = k.shape.clone();
        let mut ops: Vec<KOp> = Vec::new();
        let mut reg: HashMap<ValueId, usize> = HashMap::new();
        let mut reduce = None;
        // A register for `o` read as an operand of the same shape as the iteration space.
        // Each outside value is loaded once, however often it is used.
        let operand = |ops: &mut Vec<KOp>, reg: &mut HashMap<ValueId, usize>, o: ValueId| -> usize {
            if let Some(&r) = reg.get(&o) {
                return r;
            }
            ops.push(match g.value(o).op {
                Op::Const(c) => KOp::Const(c as f32),
                _ => KOp::Load(o, if numel(g.shape(o)) == 1 { IndexMap::Scalar } else { IndexMap::Same }),
            });
            reg.insert(o, ops.len() - 1);
            ops.len() - 1
        };
        for &v in &k.values {
            let op = match &g.value(v).op {
                Op::Unary(u, x) => KOp::Unary(*u, operand(&mut ops, &mut reg, *x)),
                Op::PowConst(x, c) => KOp::Pow(operand(&mut ops, &mut reg, *x), *c as f32),
                Op::Binary(b, x, y) => {
                    let (rx, ry) = (operand(&mut ops, &mut reg, *x), operand(&mut ops, &mut reg, *y));
                    KOp::Binary(*b, rx, ry)
                }
                Op::Broadcast { input, dims } => match g.value(*input).op {
                    Op::Const(c) => KOp::Const(c as f32),
                    _ => KOp::Load(*input, IndexMap::broadcast(&shape, g.shape(*input), dims)),
                },
                Op::Reshape(x) => match g.value(*x).op {
                    Op::Const(c) => KOp::Const(c as f32),
                    _ => KOp::Load(*x, IndexMap::Same),
                },
                Op::OneHot { labels } => KOp::OneHot { labels: *labels, classes: shape[1] },
                Op::Reduce { op, input, axes } => {
                    let r = operand(&mut ops, &mut reg, *input);
                    reduce = Some((*op, r, v, IndexMap::reduction(&shape, axes)));
                    continue;
                }
                other => return Err(format!("{other:?} in a fused kernel")),
            };
            ops.push(op);
            reg.insert(v, ops.len() - 1);
        }
        let stores = k.writes.iter().filter_map(|w| reg.get(w).map(|&r| (r, *w))).collect();
        Ok(KernelProgram { n: numel(&shape), ops, stores, reduce })
    }
}

//! The tensor IR: static shapes, SSA values, a small primitive op set.
//!
//! A `Graph` is a list of values in definition order; each value is one op applied to earlier
//! values. Binary ops take operands of one shape: broadcasting is explicit (`Broadcast`), so
//! that autodiff, fusion and the back ends never guess. The batch axis is an ordinary axis.
//!
//! `print` gives the canonical text form, `interp` the reference interpreter, `semantics` the
//! one definition of every element-wise op that the interpreter and all emitters share.

pub mod interp;
pub mod print;
pub mod role;
pub mod semantics;

pub use role::{Augment, Dtype, Output, Role, Scalar, Sum};

use std::fmt;

/// Index of a value in its graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

pub type Shape = Vec<usize>;

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unary {
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    /// -1, 0 or 1.
    Sign,
    Relu,
    /// 1 where x > 0, else 0: the derivative of relu.
    Step,
    Recip,
    /// The value itself, with no gradient flowing through it (PyTorch's `detach`): the
    /// maximum subtracted inside log-softmax. Removed by simplification after autodiff.
    Detach,
    /// The value itself, written to memory: inserted where a view of a view cannot be one
    /// strided view (the columns of a convolution's windows, a transposed gradient).
    Copy,
    Tanh,
    /// 1 / (1 + exp(-x)).
    Sigmoid,
    /// The error function (GELU is x/2 · (1 + erf(x/√2))).
    Erf,
}

impl Unary {
    pub fn name(self) -> &'static str {
        match self {
            Unary::Neg => "neg",
            Unary::Abs => "abs",
            Unary::Sqrt => "sqrt",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Sign => "sign",
            Unary::Relu => "relu",
            Unary::Step => "step",
            Unary::Recip => "recip",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Erf => "erf",
            Unary::Detach => "detach",
            Unary::Copy => "copy",
        }
    }
    /// The op's value in f64 (`semantics` defines it).
    pub fn apply(self, x: f64) -> f64 {
        semantics::eval(semantics::ElemOp::Unary(self), &[x])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    /// 1 where a == b, else 0 (for the gradient of max).
    Eq,
    /// A uniform number in [0, 1) hashed from a counter `a` and a key `b` (whole numbers
    /// below 2^24): dropout's masks, the same on every back end; no gradient.
    Random,
}

impl Binary {
    pub fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Max => "max",
            Binary::Eq => "eq",
            Binary::Random => "random",
        }
    }
    /// The op's value in f64 (`semantics` defines it).
    pub fn apply(self, a: f64, b: f64) -> f64 {
        semantics::eval(semantics::ElemOp::Binary(self), &[a, b])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    /// The maximum; equal maxima share the gradient (PyTorch's `amax`).
    Max,
    /// The maximum; the gradient goes to the first maximal element in row-major order of the
    /// reduced axes (max pooling, as PyTorch's `max_pool2d`). Kernels compute it as `Max`.
    MaxFirst,
}

/// How a window slides along one axis, as PyTorch's `kernel_size`, `stride`, `padding` and
/// `dilation` say: position `o`, element `j` reads coordinate `o·stride + j·dilation −
/// padding`, which may lie in the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slide {
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Slide {
    /// The window positions along an axis of `n` elements (0 if even one does not fit).
    pub fn positions(&self, n: usize) -> usize {
        let span = self.dilation * (self.size.max(1) - 1) + 1;
        let padded = n + 2 * self.padding;
        if padded < span || self.stride == 0 {
            0
        } else {
            (padded - span) / self.stride + 1
        }
    }
    /// The coordinate element `j` of window `o` reads.
    pub fn coordinate(&self, o: usize, j: usize) -> i64 {
        (o * self.stride + j * self.dilation) as i64 - self.padding as i64
    }
}

/// What a window reads in the padding: 0 (convolution, average pooling) or −∞ (max pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fill {
    Zero,
    NegInf,
}

impl Fill {
    pub fn value(self) -> f64 {
        match self {
            Fill::Zero => 0.0,
            Fill::NegInf => f64::NEG_INFINITY,
        }
    }
}

/// The shape of `op(a) · op(b)` (`Op::MatMul`): [m, n], or [batch, m, n] for operands with
/// one leading batch axis of the same extent; `None` where the operands do not fit.
pub fn matmul_shape(a: &[usize], b: &[usize], ta: bool, tb: bool) -> Option<Shape> {
    let (batch, a, b) = match (a.len(), b.len()) {
        (2, 2) => (None, a, b),
        (3, 3) if a[0] == b[0] => (Some(a[0]), &a[1..], &b[1..]),
        _ => return None,
    };
    let (m, k1) = if ta { (a[1], a[0]) } else { (a[0], a[1]) };
    let (k2, n) = if tb { (b[1], b[0]) } else { (b[0], b[1]) };
    (k1 == k2).then(|| batch.into_iter().chain([m, n]).collect())
}

/// The shape of the windows of a value of `shape`: each axis of `axes` becomes the window
/// positions along it, and the window's own axes follow at the end, in the order of `axes`.
pub fn window_shape(shape: &[usize], axes: &[usize], slides: &[Slide]) -> Shape {
    let mut out = shape.to_vec();
    for (&a, s) in axes.iter().zip(slides) {
        out[a] = s.positions(shape[a]);
    }
    out.extend(slides.iter().map(|s| s.size));
    out
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A tensor the runtime provides, by its role.
    Input(Role),
    /// A constant filling the value's shape.
    Const(f64),
    Unary(Unary, ValueId),
    /// `x^c` for a constant `c`.
    PowConst(ValueId, f64),
    Binary(Binary, ValueId, ValueId),
    /// Reduces `axes` (sorted, unique) away.
    Reduce {
        op: ReduceOp,
        input: ValueId,
        axes: Vec<usize>,
    },
    /// Input axis `i` becomes output axis `dims[i]`; other output axes repeat.
    Broadcast {
        input: ValueId,
        dims: Vec<usize>,
    },
    Reshape(ValueId),
    /// Output axis `i` is input axis `perm[i]`.
    Permute {
        input: ValueId,
        perm: Vec<usize>,
    },
    /// `op(a) · op(b)` for 2-D operands, `op` transposing where the flag is set; for 3-D
    /// operands [batch, …], one product per index of the leading batch axis (both operands
    /// have it; the flags transpose each matrix, not the batch).
    MatMul {
        a: ValueId,
        b: ValueId,
        ta: bool,
        tb: bool,
    },
    /// Rows of 0/1 from class indices: [batch] → [batch, classes].
    OneHot {
        labels: ValueId,
    },
    /// `cond != 0 ? on_true : on_false`, element by element (operands of one shape).
    Select {
        cond: ValueId,
        on_true: ValueId,
        on_false: ValueId,
    },
    /// Rows of `table` picked by `indices` (whole numbers): [n, rest…] with [b] → [b, rest…].
    Gather {
        table: ValueId,
        indices: ValueId,
    },
    /// Each element's coordinate along `axis`.
    Iota {
        axis: usize,
    },
    /// The sliding windows of `input` over `axes` (see `window_shape`): what a convolution
    /// multiplies and a pooling reduces. A view: no kernel computes it.
    Window {
        input: ValueId,
        axes: Vec<usize>,
        slides: Vec<Slide>,
        fill: Fill,
    },
    /// The adjoint of `Window`: each element of the result is the sum of the window elements
    /// that read it (a convolution's input gradient, PyTorch's `col2im`/`fold`).
    Unwindow {
        input: ValueId,
        axes: Vec<usize>,
        slides: Vec<Slide>,
    },
    /// Along `axis`, output coordinate `i` reads input coordinate `start + i`, and 0 where
    /// that falls outside: a slice, or a zero pad where it runs past either end (`start`
    /// below 0, or past the input's extent). Its own adjoint is again one (`slice` of the
    /// gradient from `-start`). A view: no kernel computes it.
    Slice {
        input: ValueId,
        axis: usize,
        start: i64,
    },
}

impl Op {
    /// The values this op reads.
    pub fn operands(&self) -> Vec<ValueId> {
        match self {
            Op::Input(_) | Op::Const(_) | Op::Iota { .. } => vec![],
            Op::Unary(_, x) | Op::PowConst(x, _) | Op::Reshape(x) => vec![*x],
            Op::Binary(_, a, b) | Op::MatMul { a, b, .. } => vec![*a, *b],
            Op::Reduce { input, .. }
            | Op::Broadcast { input, .. }
            | Op::Permute { input, .. }
            | Op::Window { input, .. }
            | Op::Unwindow { input, .. }
            | Op::Slice { input, .. } => vec![*input],
            Op::OneHot { labels } => vec![*labels],
            Op::Select { cond, on_true, on_false } => vec![*cond, *on_true, *on_false],
            Op::Gather { table, indices } => vec![*table, *indices],
        }
    }

    /// Ops that only move elements: they become views of their operand, never kernels.
    pub fn is_movement(&self) -> bool {
        matches!(
            self,
            Op::Broadcast { .. } | Op::Reshape(_) | Op::Permute { .. } | Op::Window { .. } | Op::Slice { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub op: Op,
    pub shape: Shape,
    /// Inputs have the type they are given; gathers and movement ops keep their operand's;
    /// everything computed is float32.
    pub dtype: Dtype,
}

/// A graph of values with outputs by role. An output with the role of an input is that
/// input's new value (a parameter's update, a running sum).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub values: Vec<Value>,
    pub outputs: Vec<(Role, ValueId)>,
}

impl Graph {
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.index()]
    }
    pub fn shape(&self, id: ValueId) -> &[usize] {
        &self.values[id.index()].shape
    }
    pub fn dtype(&self, id: ValueId) -> Dtype {
        self.values[id.index()].dtype
    }
    pub fn output(&self, role: &Role) -> Option<ValueId> {
        self.outputs.iter().find(|(r, _)| r == role).map(|o| o.1)
    }
    pub fn inputs(&self) -> impl Iterator<Item = (ValueId, &Role)> {
        self.values.iter().enumerate().filter_map(|(i, v)| match &v.op {
            Op::Input(role) => Some((ValueId(i as u32), role)),
            _ => None,
        })
    }
    pub fn input(&self, role: &Role) -> Option<ValueId> {
        self.inputs().find(|(_, r)| *r == role).map(|i| i.0)
    }
    /// Every input by its role: for asking of many roles (each `input` call walks the graph).
    pub fn input_map(&self) -> std::collections::HashMap<&Role, ValueId> {
        self.inputs().map(|(v, r)| (r, v)).collect()
    }
    /// The input each output updates in place (same role), for every output that has one.
    pub fn updated_inputs(&self) -> Vec<(ValueId, ValueId)> {
        let inputs = self.input_map();
        self.outputs.iter().filter_map(|(role, v)| Some((*v, *inputs.get(role)?))).collect()
    }

    fn push(&mut self, op: Op, shape: Shape) -> ValueId {
        self.push_typed(op, shape, Dtype::F32)
    }

    fn push_typed(&mut self, op: Op, shape: Shape, dtype: Dtype) -> ValueId {
        self.values.push(Value { op, shape, dtype });
        ValueId(self.values.len() as u32 - 1)
    }

    /// Adds a value of `op` whose shape and type are already known (graph passes that copy
    /// values from another graph).
    pub fn push_value(&mut self, value: Value) -> ValueId {
        self.values.push(value);
        ValueId(self.values.len() as u32 - 1)
    }

    /// The type of what `op` computes from operands in this graph (an input's is its own).
    pub fn result_dtype(&self, op: &Op) -> Option<Dtype> {
        Some(match op {
            Op::Input(_) => return None,
            Op::Gather { table, .. } => self.dtype(*table),
            op if op.is_movement() => self.dtype(op.operands()[0]),
            _ => Dtype::F32,
        })
    }

    // ---- builders; each checks shapes, so a malformed graph cannot be built.

    /// A float32 input.
    pub fn input_value(&mut self, role: Role, shape: Shape) -> ValueId {
        self.push(Op::Input(role), shape)
    }
    pub fn input_typed(&mut self, role: Role, dtype: Dtype, shape: Shape) -> ValueId {
        self.push_typed(Op::Input(role), shape, dtype)
    }
    pub fn constant(&mut self, v: f64, shape: Shape) -> ValueId {
        self.push(Op::Const(v), shape)
    }
    pub fn scalar(&mut self, v: f64) -> ValueId {
        self.constant(v, vec![])
    }
    pub fn unary(&mut self, op: Unary, x: ValueId) -> ValueId {
        let s = self.shape(x).to_vec();
        self.push(Op::Unary(op, x), s)
    }
    pub fn pow_const(&mut self, x: ValueId, c: f64) -> ValueId {
        let s = self.shape(x).to_vec();
        self.push(Op::PowConst(x, c), s)
    }
    pub fn binary(&mut self, op: Binary, a: ValueId, b: ValueId) -> ValueId {
        assert_eq!(self.shape(a), self.shape(b), "{} of different shapes", op.name());
        let s = self.shape(a).to_vec();
        self.push(Op::Binary(op, a, b), s)
    }
    /// `a op b` where one side may be a scalar: the scalar is broadcast first.
    pub fn binary_bcast(&mut self, op: Binary, a: ValueId, b: ValueId) -> ValueId {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        if sa == sb {
            return self.binary(op, a, b);
        }
        if sa.is_empty() {
            let a = self.broadcast(a, &sb, vec![]);
            return self.binary(op, a, b);
        }
        assert!(sb.is_empty(), "{} of {:?} and {:?}", op.name(), sa, sb);
        let b = self.broadcast(b, &sa, vec![]);
        self.binary(op, a, b)
    }
    pub fn reduce(&mut self, op: ReduceOp, input: ValueId, axes: Vec<usize>) -> ValueId {
        let shape = self.shape(input).to_vec();
        assert!(axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&a| a < shape.len()), "bad axes {axes:?}");
        if axes.is_empty() {
            return input;
        }
        let out = shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| *d).collect();
        self.push(Op::Reduce { op, input, axes }, out)
    }
    pub fn sum_all(&mut self, x: ValueId) -> ValueId {
        let axes = (0..self.shape(x).len()).collect();
        self.reduce(ReduceOp::Sum, x, axes)
    }
    pub fn broadcast(&mut self, input: ValueId, shape: &[usize], dims: Vec<usize>) -> ValueId {
        let ins = self.shape(input).to_vec();
        assert_eq!(ins.len(), dims.len(), "broadcast dims");
        assert!(
            dims.iter().zip(&ins).all(|(&d, &n)| d < shape.len() && shape[d] == n),
            "broadcast {ins:?} to {shape:?} via {dims:?}"
        );
        if ins == shape {
            return input;
        }
        let dtype = self.dtype(input);
        self.push_typed(Op::Broadcast { input, dims }, shape.to_vec(), dtype)
    }
    pub fn reshape(&mut self, input: ValueId, shape: Shape) -> ValueId {
        assert_eq!(numel(self.shape(input)), numel(&shape), "reshape");
        if self.shape(input) == shape.as_slice() {
            return input;
        }
        let dtype = self.dtype(input);
        self.push_typed(Op::Reshape(input), shape, dtype)
    }
    pub fn permute(&mut self, input: ValueId, perm: Vec<usize>) -> ValueId {
        let s = self.shape(input).to_vec();
        let out = perm.iter().map(|&p| s[p]).collect();
        let dtype = self.dtype(input);
        self.push_typed(Op::Permute { input, perm }, out, dtype)
    }
    pub fn matmul(&mut self, a: ValueId, b: ValueId, ta: bool, tb: bool) -> ValueId {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        let shape = matmul_shape(&sa, &sb, ta, tb).unwrap_or_else(|| panic!("matmul of {sa:?} and {sb:?}"));
        self.push(Op::MatMul { a, b, ta, tb }, shape)
    }
    pub fn select(&mut self, cond: ValueId, on_true: ValueId, on_false: ValueId) -> ValueId {
        let s = self.shape(cond).to_vec();
        assert!(self.shape(on_true) == s.as_slice() && self.shape(on_false) == s.as_slice(), "select shapes");
        self.push(Op::Select { cond, on_true, on_false }, s)
    }
    pub fn gather(&mut self, table: ValueId, indices: ValueId) -> ValueId {
        let (t, i) = (self.shape(table).to_vec(), self.shape(indices).to_vec());
        assert!(!t.is_empty() && i.len() == 1, "gather of {t:?} by {i:?}");
        let shape = std::iter::once(i[0]).chain(t[1..].iter().copied()).collect();
        let dtype = self.dtype(table);
        self.push_typed(Op::Gather { table, indices }, shape, dtype)
    }
    pub fn iota(&mut self, shape: Shape, axis: usize) -> ValueId {
        assert!(axis < shape.len(), "iota axis");
        self.push(Op::Iota { axis }, shape)
    }
    /// Windows of `input` along `axes`. Windows that tile their axes exactly (stride = size,
    /// no padding, no remainder: a 2×2 max pool) are a reshape and a permute instead, whose
    /// gradient is again a view, not a sum over overlapping windows.
    pub fn window(&mut self, input: ValueId, axes: Vec<usize>, slides: Vec<Slide>, fill: Fill) -> ValueId {
        let s = self.shape(input).to_vec();
        assert!(axes.len() == slides.len() && axes.iter().all(|&a| a < s.len()), "window axes {axes:?} of {s:?}");
        let out = window_shape(&s, &axes, &slides);
        assert!(out.iter().all(|&d| d > 0), "windows of {s:?} that do not fit");
        let tiles = |(&a, w): (&usize, &Slide)| {
            w.stride == w.size && w.padding == 0 && w.dilation == 1 && s[a].is_multiple_of(w.size)
        };
        if !axes.iter().zip(&slides).all(tiles) {
            let dtype = self.dtype(input);
            return self.push_typed(Op::Window { input, axes, slides, fill }, out, dtype);
        }
        // Split each windowed axis into (position, offset), then move the offsets last.
        let mut split = Vec::new();
        let (mut positions, mut offsets) = (Vec::new(), Vec::new());
        for (d, &n) in s.iter().enumerate() {
            match axes.iter().position(|&a| a == d) {
                Some(k) => {
                    positions.push(split.len());
                    split.extend([n / slides[k].size, slides[k].size]);
                    offsets.push((k, split.len() - 1));
                }
                None => {
                    positions.push(split.len());
                    split.push(n);
                }
            }
        }
        offsets.sort_unstable();
        let order: Vec<usize> = positions.into_iter().chain(offsets.into_iter().map(|(_, o)| o)).collect();
        let r = self.reshape(input, split);
        self.permute(r, order)
    }
    /// The adjoint of `window`, back to a value of `shape`.
    pub fn unwindow(&mut self, input: ValueId, axes: Vec<usize>, slides: Vec<Slide>, shape: Shape) -> ValueId {
        assert_eq!(self.shape(input), window_shape(&shape, &axes, &slides).as_slice(), "unwindow shapes");
        self.push(Op::Unwindow { input, axes, slides }, shape)
    }
    /// `len` coordinates of `input` along `axis` from `start` on, zero outside (`Op::Slice`).
    pub fn slice(&mut self, input: ValueId, axis: usize, start: i64, len: usize) -> ValueId {
        let mut shape = self.shape(input).to_vec();
        assert!(axis < shape.len() && len > 0, "slice of axis {axis} of {shape:?}");
        if start == 0 && shape[axis] == len {
            return input;
        }
        shape[axis] = len;
        let dtype = self.dtype(input);
        self.push_typed(Op::Slice { input, axis, start }, shape, dtype)
    }
    /// `parts` side by side along `axis` (their other axes equal): each padded to the whole
    /// width at its place, and the pads added (a sum of views, fused into its reader).
    pub fn concat(&mut self, parts: &[ValueId], axis: usize) -> ValueId {
        let width: usize = parts.iter().map(|&p| self.shape(p)[axis]).sum();
        let mut at = 0usize;
        let mut sum = None;
        for &p in parts {
            let n = self.shape(p)[axis];
            let placed = self.slice(p, axis, -(at as i64), width);
            at += n;
            sum = Some(match sum {
                Some(s) => self.binary(Binary::Add, s, placed),
                None => placed,
            });
        }
        sum.expect("concat of no parts")
    }
    pub fn one_hot(&mut self, labels: ValueId, classes: usize) -> ValueId {
        let b = self.shape(labels).to_vec();
        assert_eq!(b.len(), 1);
        self.push(Op::OneHot { labels }, vec![b[0], classes])
    }

    /// Checks every value against its op: operands defined before use, shapes, axes,
    /// permutations, matrix dimensions. A graph built by the builders always passes; this
    /// guards graphs rewritten by passes or made by hand.
    pub fn validate(&self) -> Result<(), String> {
        for (i, v) in self.values.iter().enumerate() {
            for o in v.op.operands() {
                if o.index() >= i {
                    return Err(format!("%{i} uses %{} before it is defined", o.0));
                }
            }
            let bad = |what: String| Err(format!("%{i} ({}): {what}", print::op_name(&v.op)));
            let s = |x: &ValueId| self.shape(*x);
            // Whole numbers are read (gathered, moved, compared as labels), not computed with.
            let dtype = match &v.op {
                Op::Input(_) => v.dtype,
                Op::Gather { table, .. } => self.dtype(*table),
                op if op.is_movement() => self.dtype(op.operands()[0]),
                op => {
                    let reads_numbers = !matches!(op, Op::OneHot { .. });
                    if reads_numbers && op.operands().iter().any(|o| self.dtype(*o) != Dtype::F32) {
                        return bad(format!("computes with {} operands", Dtype::I32));
                    }
                    Dtype::F32
                }
            };
            if dtype != v.dtype {
                return bad(format!("is {}, its operands make it {dtype}", v.dtype));
            }
            match &v.op {
                Op::Input(_) | Op::Const(_) => {}
                Op::Unary(_, x) | Op::PowConst(x, _) => {
                    if s(x) != v.shape.as_slice() {
                        return bad(format!("shape {:?}, operand {:?}", v.shape, s(x)));
                    }
                }
                Op::Binary(_, a, b) => {
                    if s(a) != s(b) || s(a) != v.shape.as_slice() {
                        return bad(format!("shape {:?}, operands {:?} and {:?}", v.shape, s(a), s(b)));
                    }
                }
                Op::Select { cond, on_true, on_false } => {
                    if [cond, on_true, on_false].iter().any(|x| s(x) != v.shape.as_slice()) {
                        return bad("operands of different shapes".into());
                    }
                }
                Op::Reduce { input, axes, .. } => {
                    let ins = s(input);
                    if !axes.windows(2).all(|w| w[0] < w[1]) || axes.iter().any(|&a| a >= ins.len()) {
                        return bad(format!("axes {axes:?} of a rank-{} value", ins.len()));
                    }
                    let kept: Shape =
                        ins.iter().enumerate().filter(|(a, _)| !axes.contains(a)).map(|(_, &d)| d).collect();
                    if kept != v.shape {
                        return bad(format!("shape {:?}, expected {kept:?}", v.shape));
                    }
                }
                Op::Broadcast { input, dims } => {
                    let ins = s(input);
                    let ok = dims.len() == ins.len()
                        && dims.iter().zip(ins).all(|(&d, &n)| d < v.shape.len() && v.shape[d] == n)
                        && dims.iter().enumerate().all(|(k, d)| !dims[..k].contains(d));
                    if !ok {
                        return bad(format!("{ins:?} to {:?} via {dims:?}", v.shape));
                    }
                }
                Op::Reshape(x) => {
                    if numel(s(x)) != numel(&v.shape) {
                        return bad("reshape changes the element count".into());
                    }
                }
                Op::Permute { input, perm } => {
                    let ins = s(input);
                    let mut sorted = perm.clone();
                    sorted.sort_unstable();
                    let out: Shape = perm.iter().map(|&p| ins.get(p).copied().unwrap_or(0)).collect();
                    if sorted != (0..ins.len()).collect::<Vec<_>>() || out != v.shape {
                        return bad(format!("permutation {perm:?} of {ins:?} to {:?}", v.shape));
                    }
                }
                Op::MatMul { a, b, ta, tb } => {
                    let (sa, sb) = (s(a), s(b));
                    if matmul_shape(sa, sb, *ta, *tb).as_ref() != Some(&v.shape) {
                        return bad(format!("{sa:?} · {sb:?} to {:?}", v.shape));
                    }
                }
                Op::OneHot { labels } => {
                    if s(labels).len() != 1 || v.shape.len() != 2 || v.shape[0] != s(labels)[0] {
                        return bad(format!("labels {:?} to {:?}", s(labels), v.shape));
                    }
                }
                Op::Gather { table, indices } => {
                    let (t, ix) = (s(table), s(indices));
                    let ok = !t.is_empty()
                        && ix.len() == 1
                        && v.shape.len() == t.len()
                        && v.shape[0] == ix[0]
                        && v.shape[1..] == t[1..];
                    if !ok {
                        return bad(format!("{t:?} by {ix:?} to {:?}", v.shape));
                    }
                }
                Op::Iota { axis } => {
                    if *axis >= v.shape.len() {
                        return bad(format!("axis {axis} of {:?}", v.shape));
                    }
                }
                Op::Window { input, axes, slides, .. } => {
                    let ins = s(input);
                    if axes.len() != slides.len()
                        || axes.iter().any(|&a| a >= ins.len())
                        || window_shape(ins, axes, slides) != v.shape
                    {
                        return bad(format!("windows {slides:?} over axes {axes:?} of {ins:?} to {:?}", v.shape));
                    }
                }
                Op::Unwindow { input, axes, slides } => {
                    if axes.len() != slides.len()
                        || axes.iter().any(|&a| a >= v.shape.len())
                        || window_shape(&v.shape, axes, slides) != s(input)
                    {
                        return bad(format!("windows {:?} over axes {axes:?} back to {:?}", s(input), v.shape));
                    }
                }
                Op::Slice { input, axis, .. } => {
                    let ins = s(input);
                    let others_equal = ins.len() == v.shape.len()
                        && ins.iter().zip(&v.shape).enumerate().all(|(a, (x, y))| a == *axis || x == y);
                    if *axis >= ins.len() || !others_equal || v.shape[*axis] == 0 {
                        return bad(format!("slice of axis {axis} of {ins:?} to {:?}", v.shape));
                    }
                }
            }
        }
        let inputs = self.input_map();
        for (role, o) in &self.outputs {
            if o.index() >= self.values.len() {
                return Err(format!("output {role} is not a value"));
            }
            if let Some(&i) = inputs.get(role) {
                if self.dtype(i) != self.dtype(*o) || self.shape(i) != self.shape(*o) {
                    return Err(format!("output {role} does not have its input's type and shape"));
                }
            }
        }
        Ok(())
    }
}

//! Cranelift IR for fused kernels. Each kernel becomes one function
//!
//! ```text
//! kernel(buffers: *const *mut f32, from: u64, to: u64, acc: *mut f64)
//! ```
//!
//! that runs elements `from..to` of its iteration space: a loop over four elements at a
//! time in F32X4 registers where every instruction has a vector form, then a scalar loop for
//! the rest (and for kernels with gathers, one-hot rows, partial reductions or calls).
//! A reduction accumulates in float64: into a register for a full reduction, into `acc`
//! otherwise (the caller initialises `acc` and stores it).
//!
//! Only 128-bit vectors are emitted: Cranelift 0.135 on x86-64 has no wider ones.

use super::{IndexMap, KOp, KernelProgram};
use crate::ir::{Binary, ReduceOp, Unary, ValueId};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::types::{F32, F32X4, F64, I64};
use cranelift_codegen::ir::{
    AbiParam, ExtFuncData, ExternalName, FuncRef, Function, InstBuilder, MemFlagsData, Signature, UserExternalName,
    UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use target_lexicon::PointerWidth;

/// The C math functions a kernel may call, as indices of imported user functions in
/// namespace 0 (the JIT maps them to its declared imports).
#[derive(Debug, Clone, Copy)]
pub struct MathImports {
    pub expf: u32,
    pub logf: u32,
    pub powf: u32,
}

/// Whether the kernel's main loop can run four elements at a time.
pub fn vectorizable(p: &KernelProgram) -> bool {
    let ops_ok = p.ops.iter().all(|op| match op {
        KOp::Load(_, IndexMap::Same | IndexMap::Scalar) | KOp::Const(_) | KOp::Binary(..) => true,
        KOp::Unary(u, _) => !matches!(u, Unary::Exp | Unary::Log),
        KOp::Pow(_, c) => *c == 2.0,
        _ => false,
    });
    let reduce_ok = matches!(&p.reduce, None | Some((ReduceOp::Sum, _, _, IndexMap::Scalar)));
    ops_ok && reduce_ok
}

/// Builds the kernel function for `p`.
pub fn kernel_function(p: &KernelProgram, name: u32, call_conv: CallConv, math: MathImports) -> Function {
    let mut sig = Signature::new(call_conv);
    for _ in 0..4 {
        sig.params.push(AbiParam::new(I64));
    }
    let mut func = Function::with_name_signature(UserFuncName::user(1, name), sig);
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (bufs, from, to, acc) = (params[0], params[1], params[2], params[3]);
    let mem = MemFlagsData::new();

    // Loop-invariant values: buffer addresses, scalar loads, constants, math imports.
    let mut used: BTreeSet<ValueId> = p.stores.iter().map(|s| s.1).collect();
    for op in &p.ops {
        match op {
            KOp::Load(v, _) => used.insert(*v),
            KOp::OneHot { labels, .. } => used.insert(*labels),
            _ => false,
        };
    }
    let mut addr: HashMap<ValueId, Value> = HashMap::new();
    for v in used {
        let a = b.ins().load(I64, mem, bufs, (v.index() * 8) as i32);
        addr.insert(v, a);
    }
    let mut scalar_loads: BTreeMap<usize, Value> = BTreeMap::new();
    for (i, op) in p.ops.iter().enumerate() {
        match op {
            KOp::Load(v, IndexMap::Scalar) => {
                let x = b.ins().load(F32, mem, addr[v], 0);
                scalar_loads.insert(i, x);
            }
            KOp::Const(c) => {
                let x = b.ins().f32const(Ieee32::with_float(*c));
                scalar_loads.insert(i, x);
            }
            _ => {}
        }
    }
    let imports = Imports::new(&mut b, call_conv, math);
    let e_var = b.declare_var(I64);
    b.def_var(e_var, from);
    let sum_var = b.declare_var(F64);
    let zero64 = b.ins().f64const(Ieee64::with_float(0.0));
    b.def_var(sum_var, zero64);

    let scalar_head = b.create_block();
    let scalar_body = b.create_block();
    let exit = b.create_block();

    if vectorizable(p) {
        let vhead = b.create_block();
        let vbody = b.create_block();
        let splats: BTreeMap<usize, Value> = scalar_loads.iter().map(|(&i, &x)| (i, b.ins().splat(F32X4, x))).collect();
        b.ins().jump(vhead, &[]);
        b.switch_to_block(vhead);
        let e = b.use_var(e_var);
        let e4 = b.ins().iadd_imm_u(e, 4);
        let fits = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, e4, to);
        b.ins().brif(fits, vbody, &[], scalar_head, &[]);
        b.switch_to_block(vbody);
        let e = b.use_var(e_var);
        let regs = emit_vector(&mut b, p, &addr, &splats, e);
        let offset = b.ins().ishl_imm_u(e, 2);
        for (r, v) in &p.stores {
            let at = b.ins().iadd(addr[v], offset);
            b.ins().store(mem, regs[*r], at, 0);
        }
        if let Some((_, r, _, _)) = &p.reduce {
            let mut sum = b.use_var(sum_var);
            for lane in 0..4u8 {
                let x = b.ins().extractlane(regs[*r], lane);
                let x = b.ins().fpromote(F64, x);
                sum = b.ins().fadd(sum, x);
            }
            b.def_var(sum_var, sum);
        }
        let next = b.ins().iadd_imm_u(e, 4);
        b.def_var(e_var, next);
        b.ins().jump(vhead, &[]);
    } else {
        b.ins().jump(scalar_head, &[]);
    }

    b.switch_to_block(scalar_head);
    let e = b.use_var(e_var);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, e, to);
    b.ins().brif(more, scalar_body, &[], exit, &[]);
    b.switch_to_block(scalar_body);
    let e = b.use_var(e_var);
    let regs = emit_scalar(&mut b, p, &addr, &scalar_loads, &imports, e);
    let offset = b.ins().ishl_imm_u(e, 2);
    for (r, v) in &p.stores {
        let at = b.ins().iadd(addr[v], offset);
        b.ins().store(mem, regs[*r], at, 0);
    }
    if let Some((op, r, _, map)) = &p.reduce {
        let x = b.ins().fpromote(F64, regs[*r]);
        match (op, map) {
            (ReduceOp::Sum, IndexMap::Scalar) => {
                let sum = b.use_var(sum_var);
                let sum = b.ins().fadd(sum, x);
                b.def_var(sum_var, sum);
            }
            (op, map) => {
                let idx = index(&mut b, map, e);
                let off = b.ins().ishl_imm_u(idx, 3);
                let at = b.ins().iadd(acc, off);
                let old = b.ins().load(F64, mem, at, 0);
                let new = match op {
                    ReduceOp::Sum => b.ins().fadd(old, x),
                    ReduceOp::Max => b.ins().fmax(old, x),
                };
                b.ins().store(mem, new, at, 0);
            }
        }
    }
    let next = b.ins().iadd_imm_u(e, 1);
    b.def_var(e_var, next);
    b.ins().jump(scalar_head, &[]);

    b.switch_to_block(exit);
    if matches!(&p.reduce, Some((ReduceOp::Sum, _, _, IndexMap::Scalar))) {
        let old = b.ins().load(F64, mem, acc, 0);
        let sum = b.use_var(sum_var);
        let new = b.ins().fadd(old, sum);
        b.ins().store(mem, new, acc, 0);
    }
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(TargetFrontendConfig {
        default_call_conv: call_conv,
        pointer_width: PointerWidth::U64,
        page_size_align_log2: 12,
    });
    func
}

struct Imports {
    exp: FuncRef,
    log: FuncRef,
    pow: FuncRef,
}

impl Imports {
    fn new(b: &mut FunctionBuilder, call_conv: CallConv, math: MathImports) -> Imports {
        let mut import = |index: u32, arity: usize| {
            let mut sig = Signature::new(call_conv);
            for _ in 0..arity {
                sig.params.push(AbiParam::new(F32));
            }
            sig.returns.push(AbiParam::new(F32));
            let signature = b.func.import_signature(sig);
            let name = b.func.declare_imported_user_function(UserExternalName::new(0, index));
            b.func.import_function(ExtFuncData {
                name: ExternalName::user(name),
                signature,
                colocated: false,
                patchable: false,
            })
        };
        Imports { exp: import(math.expf, 1), log: import(math.logf, 1), pow: import(math.powf, 2) }
    }
}

/// The buffer index element `e` reads through `map` (not `Same` or `Scalar`).
fn index(b: &mut FunctionBuilder, map: &IndexMap, e: Value) -> Value {
    match map {
        IndexMap::Same => e,
        IndexMap::Scalar => b.ins().iconst(I64, 0),
        IndexMap::Modulo(n) => b.ins().urem_imm_u(e, *n as i64),
        IndexMap::Divide(n) => b.ins().udiv_imm_u(e, *n as i64),
        IndexMap::General { out_shape, per_axis } => {
            let mut rest = e;
            let mut idx = b.ins().iconst(I64, 0);
            for ax in (0..out_shape.len()).rev() {
                if per_axis[ax] != 0 {
                    let coord = b.ins().urem_imm_u(rest, out_shape[ax] as i64);
                    let part = b.ins().imul_imm_u(coord, per_axis[ax] as i64);
                    idx = b.ins().iadd(idx, part);
                }
                rest = b.ins().udiv_imm_u(rest, out_shape[ax] as i64);
            }
            idx
        }
    }
}

fn emit_scalar(
    b: &mut FunctionBuilder,
    p: &KernelProgram,
    addr: &HashMap<ValueId, Value>,
    invariant: &BTreeMap<usize, Value>,
    imports: &Imports,
    e: Value,
) -> Vec<Value> {
    let mem = MemFlagsData::new();
    let mut regs: Vec<Value> = Vec::with_capacity(p.ops.len());
    let one = b.ins().f32const(Ieee32::with_float(1.0));
    let zero = b.ins().f32const(Ieee32::with_float(0.0));
    for (i, op) in p.ops.iter().enumerate() {
        let v = match op {
            KOp::Load(_, IndexMap::Scalar) | KOp::Const(_) => invariant[&i],
            KOp::Load(v, map) => {
                let idx = index(b, map, e);
                let off = b.ins().ishl_imm_u(idx, 2);
                let at = b.ins().iadd(addr[v], off);
                b.ins().load(F32, mem, at, 0)
            }
            KOp::OneHot { labels, classes } => {
                let row = b.ins().udiv_imm_u(e, *classes as i64);
                let col = b.ins().urem_imm_u(e, *classes as i64);
                let off = b.ins().ishl_imm_u(row, 2);
                let at = b.ins().iadd(addr[labels], off);
                let label = b.ins().load(F32, mem, at, 0);
                let label = b.ins().fcvt_to_uint_sat(I64, label);
                let hit = b.ins().icmp(IntCC::Equal, label, col);
                b.ins().select(hit, one, zero)
            }
            KOp::Unary(u, x) => {
                let x = regs[*x];
                if let Some(v) = single_instruction(b, *u, x, one) {
                    regs.push(v);
                    continue;
                }
                match u {
                    Unary::Neg | Unary::Abs | Unary::Sqrt | Unary::Recip => unreachable!("single instructions, above"),
                    Unary::Exp => call(b, imports.exp, &[x]),
                    Unary::Log => call(b, imports.log, &[x]),
                    Unary::Relu => {
                        let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        b.ins().select(pos, x, zero)
                    }
                    Unary::Step => {
                        let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        b.ins().select(pos, one, zero)
                    }
                    Unary::Sign => {
                        let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
                        let minus = b.ins().fneg(one);
                        let lower = b.ins().select(neg, minus, zero);
                        b.ins().select(pos, one, lower)
                    }
                }
            }
            KOp::Pow(x, c) => {
                let x = regs[*x];
                if *c == 2.0 {
                    b.ins().fmul(x, x)
                } else {
                    let c = b.ins().f32const(Ieee32::with_float(*c));
                    call(b, imports.pow, &[x, c])
                }
            }
            KOp::Binary(op, x, y) => {
                let (x, y) = (regs[*x], regs[*y]);
                arithmetic(b, *op, x, y).unwrap_or_else(|| {
                    let eq = b.ins().fcmp(FloatCC::Equal, x, y);
                    b.ins().select(eq, one, zero)
                })
            }
        };
        regs.push(v);
    }
    regs
}

/// The unary ops that are one instruction for scalars and F32X4 alike (`one` of the same
/// type); `None` for the others, which each path builds its own way.
fn single_instruction(b: &mut FunctionBuilder, u: Unary, x: Value, one: Value) -> Option<Value> {
    Some(match u {
        Unary::Neg => b.ins().fneg(x),
        Unary::Abs => b.ins().fabs(x),
        Unary::Sqrt => b.ins().sqrt(x),
        Unary::Recip => b.ins().fdiv(one, x),
        _ => return None,
    })
}

/// The binary ops that are one instruction for scalars and F32X4 alike; `None` for `eq`,
/// whose 0/1 result each path builds its own way.
fn arithmetic(b: &mut FunctionBuilder, op: Binary, x: Value, y: Value) -> Option<Value> {
    Some(match op {
        Binary::Add => b.ins().fadd(x, y),
        Binary::Sub => b.ins().fsub(x, y),
        Binary::Mul => b.ins().fmul(x, y),
        Binary::Div => b.ins().fdiv(x, y),
        Binary::Max => b.ins().fmax(x, y),
        Binary::Eq => return None,
    })
}

fn call(b: &mut FunctionBuilder, f: FuncRef, args: &[Value]) -> Value {
    let inst = b.ins().call(f, args);
    b.inst_results(inst)[0]
}

fn emit_vector(
    b: &mut FunctionBuilder,
    p: &KernelProgram,
    addr: &HashMap<ValueId, Value>,
    splats: &BTreeMap<usize, Value>,
    e: Value,
) -> Vec<Value> {
    let mem = MemFlagsData::new();
    let one_s = b.ins().f32const(Ieee32::with_float(1.0));
    let one = b.ins().splat(F32X4, one_s);
    let zero_s = b.ins().f32const(Ieee32::with_float(0.0));
    let zero = b.ins().splat(F32X4, zero_s);
    // A comparison gives all-ones lanes; masking 1.0 with it gives 1.0 or 0.0.
    let ones_where = |b: &mut FunctionBuilder, mask: Value| {
        let mask = b.ins().bitcast(F32X4, MemFlagsData::new(), mask);
        b.ins().band(mask, one)
    };
    let mut regs: Vec<Value> = Vec::with_capacity(p.ops.len());
    for (i, op) in p.ops.iter().enumerate() {
        let v = match op {
            KOp::Load(_, IndexMap::Scalar) | KOp::Const(_) => splats[&i],
            KOp::Load(v, _) => {
                let off = b.ins().ishl_imm_u(e, 2);
                let at = b.ins().iadd(addr[v], off);
                b.ins().load(F32X4, mem, at, 0)
            }
            KOp::Unary(u, x) => {
                let x = regs[*x];
                if let Some(v) = single_instruction(b, *u, x, one) {
                    regs.push(v);
                    continue;
                }
                match u {
                    Unary::Neg | Unary::Abs | Unary::Sqrt | Unary::Recip => unreachable!("single instructions, above"),
                    Unary::Relu => b.ins().fmax(x, zero),
                    Unary::Step => {
                        let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        ones_where(b, pos)
                    }
                    Unary::Sign => {
                        let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                        let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
                        let (p1, n1) = (ones_where(b, pos), ones_where(b, neg));
                        b.ins().fsub(p1, n1)
                    }
                    Unary::Exp | Unary::Log => unreachable!("not vectorizable"),
                }
            }
            KOp::Pow(x, _) => {
                let x = regs[*x];
                b.ins().fmul(x, x)
            }
            KOp::Binary(op, x, y) => {
                let (x, y) = (regs[*x], regs[*y]);
                arithmetic(b, *op, x, y).unwrap_or_else(|| {
                    let eq = b.ins().fcmp(FloatCC::Equal, x, y);
                    ones_where(b, eq)
                })
            }
            KOp::OneHot { .. } => unreachable!("not vectorizable"),
        };
        regs.push(v);
    }
    regs
}

/// The Cranelift IR text of every fused kernel of a schedule (`--emit clif`).
pub fn clif_text(g: &crate::ir::Graph, s: &crate::fusion::Schedule) -> Result<String, String> {
    let mut out = String::new();
    let math = MathImports { expf: 0, logf: 1, powf: 2 };
    for (i, k) in s.kernels.iter().enumerate() {
        if k.kind != crate::fusion::KernelKind::Fused {
            out += &format!("; k{i}: {:?}, a library call\n\n", k.kind);
            continue;
        }
        let p = KernelProgram::new(g, k)?;
        let f = kernel_function(&p, i as u32, CallConv::SystemV, math);
        out += &format!("; k{i}{}\n{}\n", if vectorizable(&p) { ", F32X4 main loop" } else { "" }, f.display());
    }
    Ok(out)
}

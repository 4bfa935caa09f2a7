//! A reference evaluator of kernel programs: what a loop nest means, written plainly.
//!
//! For each point of the parallel axes, the accumulator starts empty; for each point of the
//! reduction axes (row-major) the instructions before the reduction run, their stores land,
//! and the reduced value joins the accumulator; then `Acc` holds the result (rounded to
//! float32) and the instructions after it run and store. Every access is bounds-checked, so
//! the evaluator also checks the views a pass produced. It is slow, and for tests.
//! Buffers hold float32 numbers; an integer buffer holds whole ones (a store to it drops the
//! fraction, as the back ends' conversions do).

use super::{AccType, Body, Dtype, Inst, Loop, Program, Storage};
use hoyer_ir::semantics;
use hoyer_ir::{ReduceOp, Role};
use std::collections::HashMap;

/// Runs `p` on the bound buffers in `bound` (by role), which it updates.
pub fn run(p: &Program, bound: &mut HashMap<Role, Vec<f32>>) -> Result<(), String> {
    let mut arena = vec![f32::NAN; p.arena];
    for b in &p.buffers {
        if let Storage::Bound(role) = &b.storage {
            let have = bound.get(role).map(Vec::len);
            if have != Some(b.numel()) {
                return Err(format!("bound buffer `{}` has {have:?} elements, expected {}", b.name, b.numel()));
            }
        }
    }
    for k in &p.kernels {
        // Take each argument's storage out, run, put back (an argument appears once).
        let mut mem: Vec<Vec<f32>> = Vec::with_capacity(k.args.len());
        for a in &k.args {
            let b = p.buffer(a.buffer);
            mem.push(match &b.storage {
                Storage::Bound(role) => std::mem::take(bound.get_mut(role).expect("checked above")),
                Storage::Temp { offset } => arena[*offset..offset + b.numel()].to_vec(),
            });
        }
        let result = match &k.body {
            Body::Loop(l) => run_loop(l, &mut mem),
            Body::MatMul(m, epilogue, follower) => {
                let mut out = vec![0.0f32; m.batch * m.m * m.n];
                for z in 0..m.batch {
                    let (ao, bo) = (m.a.offset + z as i64 * m.a.batch, m.b.offset + z as i64 * m.b.batch);
                    for i in 0..m.m {
                        for j in 0..m.n {
                            let mut s = 0.0f64;
                            for q in 0..m.k {
                                let x = at(&mem[m.a.arg as usize], ao + i as i64 * m.a.rows + q as i64 * m.a.cols)?;
                                let y = at(&mem[m.b.arg as usize], bo + q as i64 * m.b.rows + j as i64 * m.b.cols)?;
                                s += x as f64 * y as f64;
                            }
                            out[(z * m.m + i) * m.n + j] = s as f32;
                        }
                    }
                }
                mem[m.out as usize] = out;
                epilogue.iter().chain(follower.iter().map(|f| &f.nest)).try_for_each(|l| run_loop(l, &mut mem))
            }
        };
        for (a, mut data) in k.args.iter().zip(mem) {
            let b = p.buffer(a.buffer);
            if b.dtype == Dtype::I32 {
                data.iter_mut().for_each(|x| *x = x.trunc());
            }
            match &b.storage {
                Storage::Bound(role) => *bound.get_mut(role).expect("checked above") = data,
                Storage::Temp { offset } => arena[*offset..offset + b.numel()].copy_from_slice(&data),
            }
        }
        result.map_err(|e| format!("{}: {e}", k.name))?;
    }
    Ok(())
}

fn at(buf: &[f32], i: i64) -> Result<f32, String> {
    usize::try_from(i)
        .ok()
        .and_then(|i| buf.get(i).copied())
        .ok_or_else(|| format!("element {i} outside a buffer of {}", buf.len()))
}

fn put(buf: &mut [f32], i: i64, x: f32) -> Result<(), String> {
    let len = buf.len();
    let slot = usize::try_from(i).ok().and_then(|i| buf.get_mut(i));
    *slot.ok_or_else(|| format!("store to element {i} of a buffer of {len}"))? = x;
    Ok(())
}

/// Runs one loop nest on its arguments' buffers (`mem[arg]`), which it updates.
pub fn run_loop(l: &Loop, mem: &mut [Vec<f32>]) -> Result<(), String> {
    let extents = l.extents();
    let np = l.parallel.len();
    let after = l.after_reduction();
    let parallel_points: usize = l.parallel.iter().product();
    let reduce_points: usize = l.reduce.iter().product();
    let mut regs = vec![0.0f32; l.body.len()];
    let mut idx = vec![0usize; extents.len()];
    let offset =
        |v: &super::View, idx: &[usize]| v.offset + v.strides.iter().zip(idx).map(|(&s, &i)| s * i as i64).sum::<i64>();
    for p in 0..parallel_points {
        unflatten(p, &l.parallel, &mut idx[..np]);
        let mut acc_sum = vec![0.0f64; l.reductions.len()];
        let mut acc_max = vec![f32::NEG_INFINITY; l.reductions.len()];
        for r in 0..reduce_points {
            unflatten(r, &l.reduce, &mut idx[np..]);
            for (i, inst) in l.body.iter().enumerate() {
                if after[i] {
                    continue;
                }
                regs[i] = match inst {
                    Inst::Load { arg, view } if view.guards.is_empty() => at(&mem[*arg as usize], offset(view, &idx))?,
                    Inst::Load { arg, view } => {
                        let point: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
                        match view.element(&point) {
                            Ok(e) => at(&mem[*arg as usize], e)?,
                            Err(fill) => fill.value() as f32,
                        }
                    }
                    Inst::Gather { arg, row, row_stride, view } => {
                        let row = regs[row.index()];
                        if row < 0.0 || row.fract() != 0.0 {
                            return Err(format!("gather row {row} is not a whole number"));
                        }
                        at(&mem[*arg as usize], offset(view, &idx) + row as i64 * row_stride)?
                    }
                    Inst::Const(c) => *c,
                    Inst::Index(axis) => idx[*axis] as f32,
                    Inst::Op(op, args) => {
                        let a: Vec<f32> = args.iter().map(|r| regs[r.index()]).collect();
                        semantics::eval_f32(*op, &a)
                    }
                    Inst::Acc(_) => unreachable!("after the reduction"),
                };
            }
            for s in l.stores.iter().filter(|s| !after[s.value.index()]) {
                put(&mut mem[s.arg as usize], offset(&s.view, &idx), regs[s.value.index()])?;
            }
            for (k, red) in l.reductions.iter().enumerate() {
                let x = regs[red.value.index()];
                match red.op {
                    ReduceOp::Sum if l.reductions[k].acc == AccType::F32 => acc_sum[k] = (acc_sum[k] as f32 + x) as f64,
                    ReduceOp::Sum => acc_sum[k] += x as f64,
                    ReduceOp::Max | ReduceOp::MaxFirst => {
                        acc_max[k] =
                            semantics::eval_f32(semantics::ElemOp::Binary(hoyer_ir::Binary::Max), &[acc_max[k], x])
                    }
                }
            }
        }
        if !l.reductions.is_empty() {
            let total = |k: usize| match (l.reductions[k].op, l.reductions[k].acc) {
                (ReduceOp::Sum, AccType::F64 | AccType::F32) => acc_sum[k] as f32,
                (ReduceOp::Max | ReduceOp::MaxFirst, _) => acc_max[k],
            };
            idx[np..].iter_mut().for_each(|i| *i = 0);
            for (i, inst) in l.body.iter().enumerate() {
                if !after[i] {
                    continue;
                }
                regs[i] = match inst {
                    Inst::Acc(k) => total(*k),
                    Inst::Op(op, args) => {
                        let a: Vec<f32> = args.iter().map(|r| regs[r.index()]).collect();
                        semantics::eval_f32(*op, &a)
                    }
                    _ => return Err("a load after the reduction".into()),
                };
            }
            for s in l.stores.iter().filter(|s| after[s.value.index()]) {
                put(&mut mem[s.arg as usize], offset(&s.view, &idx), regs[s.value.index()])?;
            }
        }
    }
    Ok(())
}

/// Row-major coordinates of flat index `i` in `extents`.
fn unflatten(mut i: usize, extents: &[usize], out: &mut [usize]) {
    for d in (0..extents.len()).rev() {
        out[d] = i % extents[d];
        i /= extents[d];
    }
}

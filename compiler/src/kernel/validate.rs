//! The kernel IR's validator: what every pass's output must satisfy. Registers defined before
//! use, views of the domain's rank inside their buffers, roles that match loads and stores,
//! temporaries inside the arena.

use super::passes::band_rows;
use super::{Access, Body, Inst, Loop, Program, Storage, View};
use crate::error::CompileError;

fn invalid(kernel: &str, message: String) -> CompileError {
    CompileError::internal("kernel validation", format!("{kernel}: {message}"))
}

/// Smallest and largest element a view addresses over `extents` (a guard adds its
/// coordinate's range, which is all it can reach where it holds).
pub(crate) fn span(v: &View, extents: &[usize]) -> (i64, i64) {
    let (mut lo, mut hi) = (v.offset, v.offset);
    let reaches = v.strides.iter().zip(extents).map(|(&s, &e)| s * (e as i64 - 1));
    for reach in reaches.chain(v.guards.iter().map(|g| g.stride * (g.extent - 1))) {
        if reach < 0 {
            lo += reach;
        } else {
            hi += reach;
        }
    }
    (lo, hi)
}

/// Checks a whole program.
pub fn validate(p: &Program) -> Result<(), CompileError> {
    for b in &p.buffers {
        if let Storage::Temp { offset } = b.storage {
            if offset + b.numel() > p.arena {
                return Err(invalid("program", format!("temporary {} lies outside the arena", b.name)));
            }
        }
    }
    for k in &p.kernels {
        let name = k.name.as_str();
        for a in &k.args {
            if a.buffer.index() >= p.buffers.len() {
                return Err(invalid(name, "an argument names no buffer".into()));
            }
        }
        let size = |arg: u32| -> Result<usize, CompileError> {
            k.args
                .get(arg as usize)
                .map(|a| p.buffer(a.buffer).numel())
                .ok_or_else(|| invalid(name, format!("argument {arg} does not exist")))
        };
        let access = |arg: u32| k.args[arg as usize].access;
        let check_view = |arg: u32, v: &View, extents: &[usize], write: bool| -> Result<(), CompileError> {
            let n = size(arg)?;
            if v.strides.len() != extents.len() || v.guards.iter().any(|g| g.coeffs.len() != extents.len()) {
                return Err(invalid(
                    name,
                    format!("a view of rank {} in a domain of rank {}", v.strides.len(), extents.len()),
                ));
            }
            if v.guards.iter().any(|g| g.divisor < 1 || g.extent < 1) || (write && !v.guards.is_empty()) {
                return Err(invalid(name, "a guard with no valid coordinate, or a guarded store".into()));
            }
            let (lo, hi) = span(v, extents);
            if lo < 0 || hi >= n as i64 {
                return Err(invalid(name, format!("a view reaches elements {lo}..={hi} of a buffer of {n}")));
            }
            let ok = if write { access(arg) != Access::Read } else { access(arg) != Access::Write };
            if !ok {
                return Err(invalid(name, format!("argument {arg} is accessed against its use")));
            }
            Ok(())
        };
        let check_loop = |l: &Loop| -> Result<(), CompileError> {
            let extents = l.extents();
            if extents.contains(&0) {
                return Err(invalid(name, "an axis of extent 0".into()));
            }
            let after = l.after_reduction();
            let np = l.parallel.len();
            let mut accs = vec![0usize; l.reductions.len()];
            for (i, inst) in l.body.iter().enumerate() {
                if inst.operands().iter().any(|r| r.index() >= i) {
                    return Err(invalid(name, format!("%{i} reads a register defined later")));
                }
                match inst {
                    Inst::Load { arg, view } => {
                        check_view(*arg, view, &extents, false)?;
                        if after[i] {
                            return Err(invalid(name, format!("%{i} loads after the reduction")));
                        }
                    }
                    Inst::Gather { arg, view, .. } => {
                        size(*arg)?;
                        if view.strides.len() != extents.len() {
                            return Err(invalid(name, "a gather view of the wrong rank".into()));
                        }
                    }
                    Inst::Index(a) if *a >= extents.len() => return Err(invalid(name, format!("index of axis {a}"))),
                    Inst::Op(op, args) if args.len() != op.arity() => {
                        return Err(invalid(name, format!("%{i}: {} operands for {op:?}", args.len())))
                    }
                    Inst::Acc(k) if *k < accs.len() => accs[*k] += 1,
                    Inst::Acc(k) => {
                        return Err(invalid(name, format!("%{i}: acc of reduction {k}, which does not exist")))
                    }
                    _ => {}
                }
            }
            for (k, red) in l.reductions.iter().enumerate() {
                if accs[k] != 1 || red.value.index() >= l.body.len() || after[red.value.index()] {
                    return Err(invalid(name, format!("reduction {k} needs one `acc` after its value")));
                }
            }
            if l.reductions.is_empty() && !l.reduce.is_empty() {
                return Err(invalid(name, "reduction axes without a reduction".into()));
            }
            for s in &l.stores {
                if s.value.index() >= l.body.len() {
                    return Err(invalid(name, "a store of an undefined register".into()));
                }
                check_view(s.arg, &s.view, &extents, true)?;
                if after[s.value.index()] && s.view.strides[np..].iter().any(|&x| x != 0) {
                    return Err(invalid(name, "a reduced value stored along a reduction axis".into()));
                }
            }
            Ok(())
        };
        match &k.body {
            Body::Loop(l) => check_loop(l)?,
            Body::MatMul(m, epilogue, follower) => {
                if m.m == 0 || m.n == 0 || m.k == 0 {
                    return Err(invalid(name, "an empty product".into()));
                }
                let a = View::strided(m.a.offset, vec![m.a.batch, m.a.rows, m.a.cols]);
                let b = View::strided(m.b.offset, vec![m.b.batch, m.b.rows, m.b.cols]);
                check_view(m.a.arg, &a, &[m.batch, m.m, m.k], false)?;
                check_view(m.b.arg, &b, &[m.batch, m.k, m.n], false)?;
                check_view(m.out, &View::contiguous(&[m.batch, m.m, m.n]), &[m.batch, m.m, m.n], true)?;
                let domain = if m.batch > 1 { vec![m.batch, m.m, m.n] } else { vec![m.m, m.n] };
                if m.batch == 0 {
                    return Err(invalid(name, "an empty batch of products".into()));
                }
                if let Some(l) = epilogue {
                    if l.parallel != domain || !l.reduce.is_empty() {
                        return Err(invalid(name, "an epilogue over another domain than the product".into()));
                    }
                    check_loop(l)?;
                }
                if let Some(f) = follower {
                    check_loop(&f.nest)?;
                    if m.batch > 1 {
                        return Err(invalid(name, "a follower of a batched product".into()));
                    }
                    if band_rows(&f.nest, m.out, m) != Some(f.rows) {
                        return Err(invalid(name, "a follower that reads outside its bands of the product".into()));
                    }
                }
            }
        }
    }
    Ok(())
}

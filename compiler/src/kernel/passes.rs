//! Passes over kernel programs.
//!
//! - `coalesce`: adjacent axes that every view steps through as one become one axis (an
//!   update over a [300, 784] weight is one loop of 235,200 elements).
//! - `contract_fma`: `a * b + c` where the product has no other use becomes one fused
//!   multiply-add (rounded once), on every target alike.
//! - `jam`: the innermost parallel axis unrolled into the body, each copy with its own
//!   reductions (independent accumulators for a back end that vectorizes that axis).
//! - `attach_follower`: a loop nest that reads a product's output a band of rows per index
//!   of its first axis runs band by band right after the product (`Follower`).
//!
//! `validate` (beside this module) checks what every pass leaves.

use super::validate::span;
use super::{Access, Arg, Body, Follower, Inst, Kernel, Loop, Reduction, Reg, StoreInst, View};
use hoyer_ir::semantics::ElemOp;
use hoyer_ir::Binary;

/// Every view of a loop nest (loads, gathers, stores).
fn views_mut(l: &mut Loop) -> Vec<&mut View> {
    let mut out: Vec<&mut View> = Vec::new();
    for inst in l.body.iter_mut() {
        if let Inst::Load { view, .. } | Inst::Gather { view, .. } = inst {
            out.push(view);
        }
    }
    out.extend(l.stores.iter_mut().map(|s| &mut s.view));
    out
}

/// Merges adjacent axes (both parallel or both reduction) that every view steps through as
/// one, and drops axes of extent 1.
pub fn coalesce(l: &mut Loop) {
    // Extent-1 axes first (not where an index reads them: it reads 0 there anyway).
    let mut d = 0;
    while d < l.rank() {
        let extent = l.extents()[d];
        let indexed = l.body.iter().any(|i| matches!(i, Inst::Index(a) if *a == d));
        if extent == 1 && !indexed && l.rank() > 1 {
            remove_axis(l, d);
        } else {
            d += 1;
        }
    }
    let mut d = 0;
    while d + 1 < l.rank() {
        let np = l.parallel.len();
        let same_kind = (d + 1 < np) || d >= np;
        let extents = l.extents();
        let indexed = l.body.iter().any(|i| matches!(i, Inst::Index(a) if *a == d || *a == d + 1));
        let inner = extents[d + 1] as i64;
        // Strides and guard coefficients are linear forms of the coordinates; each must read
        // the two axes as one.
        let fits = same_kind
            && !indexed
            && views_mut(l).iter().all(|v| {
                v.strides[d] == v.strides[d + 1] * inner
                    && v.guards.iter().all(|g| g.coeffs[d] == g.coeffs[d + 1] * inner)
            });
        if fits {
            let merged = extents[d] * extents[d + 1];
            for v in views_mut(l) {
                v.strides[d] = v.strides[d + 1];
                for g in v.guards.iter_mut() {
                    g.coeffs[d] = g.coeffs[d + 1];
                }
            }
            if d < np {
                l.parallel[d] = merged;
            } else {
                l.reduce[d - np] = merged;
            }
            remove_axis(l, d + 1);
        } else {
            d += 1;
        }
    }
}

/// Removes domain axis `d` (whose coordinate no longer matters) from the loop and its views.
fn remove_axis(l: &mut Loop, d: usize) {
    let np = l.parallel.len();
    if d < np {
        l.parallel.remove(d);
    } else {
        l.reduce.remove(d - np);
    }
    for v in views_mut(l) {
        v.strides.remove(d);
        for g in v.guards.iter_mut() {
            g.coeffs.remove(d);
        }
    }
    for inst in l.body.iter_mut() {
        if let Inst::Index(a) = inst {
            if *a > d {
                *a -= 1;
            }
        }
    }
}

/// Contracts `a * b + c` into `fma(a, b, c)` where the product is used once, then drops
/// instructions nothing uses.
pub fn contract_fma(l: &mut Loop) {
    let uses = use_counts(l);
    for i in 0..l.body.len() {
        let Inst::Op(ElemOp::Binary(Binary::Add), args) = &l.body[i] else { continue };
        let (x, y) = (args[0], args[1]);
        let product = |r: Reg| match &l.body[r.index()] {
            Inst::Op(ElemOp::Binary(Binary::Mul), m) if uses[r.index()] == 1 => Some((m[0], m[1])),
            _ => None,
        };
        let fused = match (product(x), product(y)) {
            (Some((a, b)), _) => Some((a, b, y)),
            (None, Some((a, b))) => Some((a, b, x)),
            _ => None,
        };
        if let Some((a, b, c)) = fused {
            l.body[i] = Inst::Op(ElemOp::Fma, vec![a, b, c]);
        }
    }
    remove_dead(l);
}

fn use_counts(l: &Loop) -> Vec<usize> {
    let mut uses = vec![0; l.body.len()];
    for inst in &l.body {
        for r in inst.operands() {
            uses[r.index()] += 1;
        }
    }
    for s in &l.stores {
        uses[s.value.index()] += 1;
    }
    for red in &l.reductions {
        uses[red.value.index()] += 1;
    }
    uses
}

/// Drops instructions that no store, reduction or live instruction uses, and renumbers.
pub fn remove_dead(l: &mut Loop) {
    let mut live = vec![false; l.body.len()];
    for s in &l.stores {
        live[s.value.index()] = true;
    }
    for red in &l.reductions {
        live[red.value.index()] = true;
    }
    for i in (0..l.body.len()).rev() {
        if live[i] {
            for r in l.body[i].operands() {
                live[r.index()] = true;
            }
        }
    }
    // Each reduction's `acc` stays (it marks where the reduction ends).
    for (i, inst) in l.body.iter().enumerate() {
        if matches!(inst, Inst::Acc(_)) {
            live[i] = true;
        }
    }
    let mut map = vec![Reg(0); l.body.len()];
    let mut body = Vec::with_capacity(l.body.len());
    for (i, inst) in std::mem::take(&mut l.body).into_iter().enumerate() {
        if !live[i] {
            continue;
        }
        map[i] = Reg(body.len() as u32);
        body.push(match inst {
            Inst::Gather { arg, row, row_stride, view } => {
                Inst::Gather { arg, row: map[row.index()], row_stride, view }
            }
            Inst::Op(op, args) => Inst::Op(op, args.iter().map(|r| map[r.index()]).collect()),
            other => other,
        });
    }
    l.body = body;
    for s in l.stores.iter_mut() {
        s.value = map[s.value.index()];
    }
    for red in l.reductions.iter_mut() {
        red.value = map[red.value.index()];
    }
}

/// Unroll-and-jam: parallel axis `p` of extent `4 · copies` becomes an axis of 4 whose body
/// runs `copies` times, shifted by 0, 4, 8, … along `p`, each copy with its own reductions
/// (reduction `k` of copy `b` is `b · reductions + k`) and stores. Every output gets the same
/// terms in the same order, so the same bits; a back end that vectorizes `p` then keeps
/// `copies` accumulators side by side instead of one chain of dependent additions.
pub fn jam(l: &Loop, p: usize, copies: usize) -> Loop {
    let lanes = (l.parallel[p] / copies) as i64;
    let shift_view = |v: &View, by: i64| {
        let mut v = v.clone();
        v.offset += v.strides[p] * by;
        for g in &mut v.guards {
            g.constant += g.coeffs[p] * by;
        }
        v
    };
    let mut out = Loop {
        parallel: l.parallel.clone(),
        reduce: l.reduce.clone(),
        body: vec![],
        reductions: vec![],
        stores: vec![],
    };
    out.parallel[p] = lanes as usize;
    let per_copy = l.reductions.len();
    for b in 0..copies {
        let by = b as i64 * lanes;
        let mut map: Vec<Reg> = Vec::with_capacity(l.body.len());
        for inst in &l.body {
            let m = |r: &Reg| map[r.index()];
            let new = match inst {
                Inst::Load { arg, view } => Inst::Load { arg: *arg, view: shift_view(view, by) },
                Inst::Gather { arg, row, row_stride, view } => {
                    Inst::Gather { arg: *arg, row: m(row), row_stride: *row_stride, view: shift_view(view, by) }
                }
                Inst::Index(d) if *d == p && by != 0 => {
                    out.body.push(Inst::Index(p));
                    out.body.push(Inst::Const(by as f32));
                    let n = out.body.len() as u32;
                    Inst::Op(ElemOp::Binary(Binary::Add), vec![Reg(n - 2), Reg(n - 1)])
                }
                Inst::Op(op, args) => Inst::Op(*op, args.iter().map(m).collect()),
                Inst::Acc(k) => Inst::Acc(b * per_copy + k),
                other => other.clone(),
            };
            out.body.push(new);
            map.push(Reg(out.body.len() as u32 - 1));
        }
        out.reductions.extend(l.reductions.iter().map(|r| Reduction { value: map[r.value.index()], ..*r }));
        out.stores.extend(l.stores.iter().map(|s| StoreInst {
            arg: s.arg,
            view: shift_view(&s.view, by),
            value: map[s.value.index()],
        }));
    }
    out
}

/// Whether `v` reads, at index i of the domain's first axis, only elements
/// `i·band .. (i+1)·band` of its buffer.
fn banded(v: &View, extents: &[usize], band: i64) -> bool {
    let Some((&first, _)) = v.strides.split_first() else { return false };
    let mut rest = v.clone();
    rest.strides[0] = 0;
    let (lo, hi) = span(&rest, extents);
    first == band && lo >= 0 && hi < band
}

/// The rows of `m`'s output per index of `l`'s first axis, where every read `l` makes of
/// argument `out` stays in that band of rows.
pub(crate) fn band_rows(l: &Loop, out: u32, m: &super::MatMul) -> Option<usize> {
    let first = *l.parallel.first()?;
    if !m.m.is_multiple_of(first) {
        return None;
    }
    let rows = m.m / first;
    let band = (rows * m.n) as i64;
    let extents = l.extents();
    let mut reads = false;
    for inst in &l.body {
        match inst {
            Inst::Load { arg, view } if *arg == out => {
                if !banded(view, &extents, band) {
                    return None;
                }
                reads = true;
            }
            Inst::Gather { arg, .. } if *arg == out => return None,
            _ => {}
        }
    }
    (reads && l.stores.iter().all(|s| s.arg != out)).then_some(rows)
}

/// Makes loop kernel `next` the follower of product kernel `product` (run right after it,
/// band by band: see `Follower`) where it reads the product's output in bands, reads nothing
/// else the product writes, and writes nothing the product touches; says whether it did.
/// Run before temporaries are placed: the two then share one kernel's lifetime, so nothing
/// `next` writes can take the memory of the product's operands.
pub fn attach_follower(product: &mut Kernel, next: &Kernel) -> bool {
    let (Body::MatMul(m, _, follower @ None), Body::Loop(l)) = (&mut product.body, &next.body) else {
        return false;
    };
    if m.batch > 1 {
        return false;
    }
    let out_buffer = product.args[m.out as usize].buffer;
    let Some(out) = next.args.iter().position(|a| a.buffer == out_buffer) else { return false };
    let Some(rows) = band_rows(l, out as u32, m) else { return false };
    let touched = |b| product.args.iter().any(|a: &Arg| a.buffer == b);
    let written = |b| product.args.iter().any(|a: &Arg| a.buffer == b && a.access != Access::Read);
    for a in &next.args {
        let conflict = if a.buffer == out_buffer {
            false
        } else if a.access == Access::Read {
            written(a.buffer)
        } else {
            touched(a.buffer)
        };
        if conflict {
            return false;
        }
    }
    // The follower's arguments, appended to the product's (its read of the output shares
    // the output's argument, which becomes read-write).
    let mut index = Vec::with_capacity(next.args.len());
    for a in &next.args {
        if a.buffer == out_buffer {
            product.args[m.out as usize].access = Access::ReadWrite;
            index.push(m.out);
        } else {
            index.push(product.args.len() as u32);
            product.args.push(*a);
        }
    }
    let mut nest = l.clone();
    for inst in nest.body.iter_mut() {
        if let Inst::Load { arg, .. } | Inst::Gather { arg, .. } = inst {
            *arg = index[*arg as usize];
        }
    }
    for st in nest.stores.iter_mut() {
        st.arg = index[st.arg as usize];
    }
    *follower = Some(Box::new(Follower { rows, nest }));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::validate::validate;
    use crate::kernel::{AccType, Arg, Buffer, BufferId, Dtype, Kernel, Program, Reduction, Storage, StoreInst};
    use hoyer_ir::Role;
    use hoyer_ir::{ReduceOp, Unary};

    fn load(arg: u32, strides: Vec<i64>) -> Inst {
        Inst::Load { arg, view: View::strided(0, strides) }
    }

    /// y[i, j] = relu(x[i, j] + b[j]) over [4, 6].
    fn bias_relu() -> Loop {
        Loop {
            parallel: vec![4, 6],
            reduce: vec![],
            body: vec![
                load(0, vec![6, 1]),
                load(1, vec![0, 1]),
                Inst::Op(ElemOp::Binary(Binary::Add), vec![Reg(0), Reg(1)]),
                Inst::Op(ElemOp::Unary(Unary::Relu), vec![Reg(2)]),
            ],
            reductions: vec![],
            stores: vec![StoreInst { arg: 2, view: View::strided(0, vec![6, 1]), value: Reg(3) }],
        }
    }

    #[test]
    fn coalesce_merges_only_axes_every_view_walks_as_one() {
        // The bias is a broadcast along rows: the axes stay apart.
        let mut l = bias_relu();
        coalesce(&mut l);
        assert_eq!(l.parallel, vec![4, 6]);
        // Without the bias every view is contiguous: one axis of 24.
        let mut l = bias_relu();
        l.body[1] = load(1, vec![6, 1]);
        coalesce(&mut l);
        assert_eq!(l.parallel, vec![24]);
        assert!(l.stores[0].view.strides == vec![1]);
        // A full reduction of a [3, 5] tensor: one reduction axis of 15; extent-1 axes go.
        let mut r = Loop {
            parallel: vec![1],
            reduce: vec![3, 5],
            body: vec![load(0, vec![0, 5, 1]), Inst::Acc(0)],
            reductions: vec![Reduction { op: ReduceOp::Sum, acc: AccType::F64, value: Reg(0) }],
            stores: vec![StoreInst { arg: 1, view: View::strided(0, vec![0, 0, 0]), value: Reg(1) }],
        };
        coalesce(&mut r);
        assert_eq!((r.parallel.clone(), r.reduce.clone()), (vec![], vec![15]));
    }

    #[test]
    fn multiply_adds_contract_once_and_dead_code_goes() {
        // a * b + c, and a * b used twice (not contracted), and an unused instruction.
        let mut l = Loop {
            parallel: vec![8],
            reduce: vec![],
            body: vec![
                load(0, vec![1]),
                load(1, vec![1]),
                Inst::Op(ElemOp::Binary(Binary::Mul), vec![Reg(0), Reg(1)]),
                Inst::Op(ElemOp::Binary(Binary::Add), vec![Reg(2), Reg(0)]),
                Inst::Op(ElemOp::Binary(Binary::Mul), vec![Reg(1), Reg(1)]),
                Inst::Op(ElemOp::Binary(Binary::Add), vec![Reg(4), Reg(4)]),
                Inst::Op(ElemOp::Unary(Unary::Exp), vec![Reg(0)]),
            ],
            reductions: vec![],
            stores: vec![
                StoreInst { arg: 2, view: View::strided(0, vec![1]), value: Reg(3) },
                StoreInst { arg: 3, view: View::strided(0, vec![1]), value: Reg(5) },
            ],
        };
        contract_fma(&mut l);
        let ops: Vec<String> = l.body.iter().map(|i| format!("{i:?}")).collect();
        assert!(matches!(l.body[2], Inst::Op(ElemOp::Fma, _)), "{ops:?}");
        assert!(!ops.iter().any(|o| o.contains("Exp")), "dead exp kept: {ops:?}");
        assert_eq!(l.body.len(), 5, "{ops:?}");
    }

    fn program(l: Loop, sizes: &[usize], roles: &[Access]) -> Program {
        let buffers = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| Buffer {
                name: format!("b{i}"),
                shape: vec![n],
                dtype: Dtype::F32,
                storage: Storage::Bound(Role::param(&format!("b{i}"))),
            })
            .collect();
        let args =
            roles.iter().enumerate().map(|(i, &role)| Arg { buffer: BufferId(i as u32), access: role }).collect();
        Program { buffers, kernels: vec![Kernel { name: "k0".into(), args, body: Body::Loop(l) }], arena: 0 }
    }

    #[test]
    fn the_validator_catches_what_a_pass_could_break() {
        let roles = [Access::Read, Access::Read, Access::Write];
        assert!(validate(&program(bias_relu(), &[24, 6, 24], &roles)).is_ok());
        // A view past the end of its buffer.
        let e = validate(&program(bias_relu(), &[24, 5, 24], &roles)).unwrap_err();
        assert!(e.to_string().contains("reaches elements"), "{e}");
        // A store to an argument that is only read.
        assert!(validate(&program(bias_relu(), &[24, 6, 24], &[Access::Read, Access::Read, Access::Read])).is_err());
        // A register used before it is defined.
        let mut l = bias_relu();
        l.body.swap(2, 3);
        assert!(validate(&program(l, &[24, 6, 24], &roles)).is_err());
        // A view of the wrong rank.
        let mut l = bias_relu();
        l.body[0] = load(0, vec![1]);
        assert!(validate(&program(l, &[24, 6, 24], &roles)).is_err());
    }

    /// A col2im-like sum (out[y, c] = Σ_k in[y − k, k, c] where 0 ≤ y − k < 3, plus c) jammed
    /// into two copies along c gives the same program output, bit for bit.
    #[test]
    fn jam_keeps_every_output() {
        use crate::kernel::{Fill, Guard};
        let guard = Guard { coeffs: vec![1, 0, -1], constant: 0, divisor: 1, extent: 3, stride: 24, fill: Fill::Zero };
        let l = Loop {
            parallel: vec![5, 8],
            reduce: vec![3],
            body: vec![
                Inst::Load { arg: 0, view: View { offset: 0, strides: vec![0, 1, 8], guards: vec![guard] } },
                Inst::Acc(0),
                Inst::Index(1),
                Inst::Op(ElemOp::Binary(Binary::Add), vec![Reg(1), Reg(2)]),
            ],
            reductions: vec![Reduction { op: ReduceOp::Sum, acc: AccType::F32, value: Reg(0) }],
            stores: vec![StoreInst { arg: 1, view: View::strided(0, vec![8, 1, 0]), value: Reg(3) }],
        };
        let jammed = jam(&l, 1, 2);
        assert_eq!((jammed.parallel.clone(), jammed.reductions.len(), jammed.stores.len()), (vec![5, 4], 2, 2));
        let roles = [Access::Read, Access::Write];
        let input: Vec<f32> = (0..72).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut outputs = vec![];
        for nest in [l, jammed] {
            let p = program(nest, &[72, 40], &roles);
            validate(&p).unwrap();
            let mut bound: std::collections::HashMap<Role, Vec<f32>> =
                [(Role::param("b0"), input.clone()), (Role::param("b1"), vec![f32::NAN; 40])].into_iter().collect();
            crate::kernel::eval::run(&p, &mut bound).unwrap();
            outputs.push(bound.remove(&Role::param("b1")).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<u32>>());
        }
        assert_eq!(outputs[0], outputs[1]);
    }

    /// A product `p[8, 4] = a[8, 3] · b[3, 4]` and a loop that sums its rows in pairs
    /// (`y[i, j] = p[2i, j] + p[2i + 1, j]`): the loop follows the product in bands of two
    /// rows, computes what it computed as a kernel of its own, and the validator holds it to
    /// its bands. A loop that reads across bands, or writes an operand, stays a kernel.
    #[test]
    fn a_reader_of_bands_of_a_products_rows_follows_it() {
        use crate::kernel::{MatMul, MatView};
        let buffer = |name: &str, n: usize| Buffer {
            name: name.into(),
            shape: vec![n],
            dtype: Dtype::F32,
            storage: Storage::Bound(Role::param(name)),
        };
        let arg = |b: u32, access| Arg { buffer: BufferId(b), access };
        let product = Kernel {
            name: "k0".into(),
            args: vec![arg(0, Access::Read), arg(1, Access::Read), arg(2, Access::Write)],
            body: Body::MatMul(
                MatMul {
                    batch: 1,
                    m: 8,
                    n: 4,
                    k: 3,
                    a: MatView { arg: 0, offset: 0, rows: 3, cols: 1, batch: 0 },
                    b: MatView { arg: 1, offset: 0, rows: 4, cols: 1, batch: 0 },
                    out: 2,
                },
                None,
                None,
            ),
        };
        let pairs = |row_stride: i64, out: u32| Kernel {
            name: "k1".into(),
            args: vec![arg(2, Access::Read), arg(out, Access::Write)],
            body: Body::Loop(Loop {
                parallel: vec![4, 4],
                reduce: vec![2],
                body: vec![load(0, vec![row_stride, 1, 4]), Inst::Acc(0)],
                reductions: vec![Reduction { op: ReduceOp::Sum, acc: AccType::F32, value: Reg(0) }],
                stores: vec![StoreInst { arg: 1, view: View::strided(0, vec![4, 1, 0]), value: Reg(1) }],
            }),
        };
        let buffers = vec![buffer("a", 24), buffer("b", 12), buffer("p", 32), buffer("y", 16)];
        let inputs: std::collections::HashMap<Role, Vec<f32>> = [
            (Role::param("a"), (0..24).map(|i| (i as f32 * 0.3).sin()).collect()),
            (Role::param("b"), (0..12).map(|i| (i as f32 * 0.7).cos()).collect()),
            (Role::param("p"), vec![0.0; 32]),
            (Role::param("y"), vec![0.0; 16]),
        ]
        .into_iter()
        .collect();
        let run = |kernels: Vec<Kernel>| {
            let p = Program { buffers: buffers.clone(), kernels, arena: 0 };
            validate(&p).unwrap();
            let mut bound = inputs.clone();
            crate::kernel::eval::run(&p, &mut bound).unwrap();
            bound.remove(&Role::param("y")).unwrap()
        };
        let apart = run(vec![product.clone(), pairs(8, 3)]);
        let mut merged = product.clone();
        assert!(attach_follower(&mut merged, &pairs(8, 3)));
        let Body::MatMul(_, _, Some(f)) = &merged.body else { panic!("no follower") };
        assert_eq!(f.rows, 2);
        assert_eq!(merged.args[2].access, Access::ReadWrite);
        assert_eq!(run(vec![merged.clone()]), apart);

        // Reads rows 0..5 at index 0 of a band of 2: not a follower, and refused as one.
        assert!(!attach_follower(&mut product.clone(), &pairs(4, 3)));
        let Body::MatMul(_, _, Some(f)) = &mut merged.body else { unreachable!() };
        let Inst::Load { view, .. } = &mut f.nest.body[0] else { unreachable!() };
        view.strides[0] = 4;
        let p = Program { buffers: buffers.clone(), kernels: vec![merged], arena: 0 };
        assert!(validate(&p).unwrap_err().to_string().contains("outside its bands"));
        // Writes the product's operand `a`.
        assert!(!attach_follower(&mut product.clone(), &pairs(8, 0)));
    }
}

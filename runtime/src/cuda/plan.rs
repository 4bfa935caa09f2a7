//! What a program does on the device, as a list of operations: kernel launches (the CUDA C
//! of `codegen::cuda`) and cuBLAS products. Pure host logic, tested without a GPU: every
//! product's translation to cuBLAS's column-major call is checked against the kernel IR's
//! own definition by an emulation of cuBLAS's semantics (`tests`).

use crate::error::RunError;
use hoyer_compiler::codegen::cuda::Launch;
use hoyer_compiler::kernel::{MatMul, MatView, Program};
use hoyer_front::codes::Code;

/// One operation of a program on the device, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceOp {
    /// `function<<<grid, block>>>(buffers...)`: the kernel's buffers (program buffer
    /// indices), in its argument order.
    Launch { function: String, grid: u32, block: u32, args: Vec<usize> },
    /// `cublasSgemm` (column-major).
    Gemm(Gemm),
}

/// A matrix operand of `cublasSgemm`: a program buffer, an element offset into it, the
/// leading dimension, and for a batch the stride from one matrix to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operand {
    pub buffer: usize,
    pub offset: usize,
    pub ld: i32,
    pub stride: i64,
}

/// `C[m×n] = op(A)[m×k] · op(B)[k×n]`, all column-major, `op` transposing where asked
/// (cuBLAS's `cublasSgemm` with α = 1, β = 0), `batch` times at the operands' strides
/// (`cublasSgemmStridedBatched` where `batch` is above 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gemm {
    pub batch: i32,
    pub transa: bool,
    pub transb: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
}

fn unsupported(kernel: &str, why: &str) -> RunError {
    RunError::new(Code::Unsupported, format!("kernel {kernel}: {why}, which the CUDA back end cannot run yet"))
        .help("train on the CPU with `--backend cpu`, and report the spec: it needs a layout cuBLAS does not take")
}

fn int(x: usize, kernel: &str) -> Result<i32, RunError> {
    i32::try_from(x).map_err(|_| unsupported(kernel, "a matrix dimension above 2^31"))
}

/// One operand as cuBLAS sees it: the `rows × cols` column-major matrix whose element
/// (r, c) is at `offset + r·r_stride + c·c_stride`; `None` where no leading dimension can
/// describe it.
fn operand(
    buffer: usize,
    offset: i64,
    (rows, cols): (usize, usize),
    (r_stride, c_stride): (i64, i64),
) -> Option<(bool, Operand)> {
    let offset = usize::try_from(offset).ok()?;
    // A single row or column: its other stride is never used, any valid one will do.
    let r_stride = if rows == 1 { 1 } else { r_stride };
    let c_stride = if cols == 1 { rows.max(1) as i64 } else { c_stride };
    let (transposed, ld, needed) = if r_stride == 1 {
        (false, c_stride, rows)
    } else if c_stride == 1 {
        // The transpose of a `cols × rows` column-major matrix.
        (true, r_stride, cols)
    } else {
        return None;
    };
    let ld = i32::try_from(ld).ok()?;
    (ld as usize >= needed.max(1)).then_some((transposed, Operand { buffer, offset, ld, stride: 0 }))
}

/// The cuBLAS call of `out = a · b` (row-major `out[m×n]`, operands as strided views):
/// column-major, `outᵀ[n×m] = bᵀ · aᵀ`.
pub fn gemm(kernel: &str, args: &[usize], m: &MatMul) -> Result<Gemm, RunError> {
    let buffer = |v: &MatView| args[v.arg as usize];
    // bᵀ is n × k: element (j, q) = b[q·rows + j·cols].
    let (transa, a) = operand(buffer(&m.b), m.b.offset, (m.n, m.k), (m.b.cols, m.b.rows))
        .ok_or_else(|| unsupported(kernel, "a product whose right operand has no unit stride"))?;
    // aᵀ is k × m: element (q, i) = a[i·rows + q·cols].
    let (transb, b) = operand(buffer(&m.a), m.a.offset, (m.k, m.m), (m.a.cols, m.a.rows))
        .ok_or_else(|| unsupported(kernel, "a product whose left operand has no unit stride"))?;
    let c =
        Operand { buffer: args[m.out as usize], offset: 0, ld: int(m.n.max(1), kernel)?, stride: (m.m * m.n) as i64 };
    let (a, b) = (Operand { stride: m.b.batch, ..a }, Operand { stride: m.a.batch, ..b });
    if a.stride < 0 || b.stride < 0 {
        return Err(unsupported(kernel, "a batched product stepping backwards through an operand"));
    }
    Ok(Gemm {
        batch: int(m.batch, kernel)?,
        transa,
        transb,
        m: int(m.n, kernel)?,
        n: int(m.m, kernel)?,
        k: int(m.k, kernel)?,
        a,
        b,
        c,
    })
}

/// The device operations of `p`, whose CUDA C `codegen::cuda::render` gave `launches` for.
pub fn plan(p: &Program, launches: &[Launch]) -> Result<Vec<DeviceOp>, RunError> {
    let mut ops = Vec::new();
    let mut kernels = p.kernels.iter();
    let mut current: Option<&hoyer_compiler::kernel::Kernel> = None;
    for launch in launches {
        match launch {
            Launch::Library { product, epilogue } => {
                let k = kernels.next().ok_or_else(|| RunError::new(Code::Internal, "more launches than kernels"))?;
                current = Some(k);
                let args: Vec<usize> = k.args.iter().map(|a| a.buffer.index()).collect();
                ops.push(DeviceOp::Gemm(gemm(&k.name, &args, product)?));
                if let Some((function, grid, block)) = epilogue {
                    ops.push(DeviceOp::Launch { function: function.clone(), grid: *grid, block: *block, args });
                }
            }
            Launch::Kernel { name, grid, block } => {
                // A product's follower launches under its product's name (`k52_then`), with
                // its product's arguments.
                let k = match current {
                    Some(k) if name.strip_prefix(k.name.as_str()).is_some_and(|rest| rest == "_then") => k,
                    _ => {
                        let k = kernels
                            .next()
                            .ok_or_else(|| RunError::new(Code::Internal, "more launches than kernels"))?;
                        current = Some(k);
                        k
                    }
                };
                let args = k.args.iter().map(|a| a.buffer.index()).collect();
                ops.push(DeviceOp::Launch { function: name.clone(), grid: *grid, block: *block, args });
            }
        }
    }
    if kernels.next().is_some() {
        return Err(RunError::new(Code::Internal, "a kernel without a launch"));
    }
    Ok(ops)
}

/// `cublasSgemm` with α = 1, β = 0, by its definition (column-major, `op` per flag), on
/// host buffers: the reference the translation is tested against, and the products of the
/// host test double that runs a whole plan without a GPU.
pub fn emulate(g: &Gemm, buffers: &mut [Vec<f32>]) {
    let at = |o: &Operand, trans: bool, r: usize, c: usize| {
        let (r, c) = if trans { (c, r) } else { (r, c) };
        o.offset + r + c * o.ld as usize
    };
    let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
    let mut c = buffers[g.c.buffer].clone();
    for z in 0..g.batch.max(1) as usize {
        let step = |o: &Operand| Operand { offset: o.offset + z * o.stride as usize, ..*o };
        let (ga, gb, gc) = (step(&g.a), step(&g.b), step(&g.c));
        for j in 0..n {
            for i in 0..m {
                let mut s = 0.0f64;
                for q in 0..k {
                    let x = buffers[ga.buffer][at(&ga, g.transa, i, q)] as f64;
                    let y = buffers[gb.buffer][at(&gb, g.transb, q, j)] as f64;
                    s += x * y;
                }
                c[gc.offset + i + j * gc.ld as usize] = s as f32;
            }
        }
    }
    buffers[g.c.buffer] = c;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each layout of each operand (row-major, column-major, a row of a larger matrix, a
    /// single column), alone and as a batch of three (matrices apart by a stride, or the same
    /// one each time: stride 0): the cuBLAS call gives the product the kernel IR defines.
    #[test]
    fn every_operand_layout_gives_the_same_product() {
        let (m, n, k) = (5usize, 3usize, 4usize);
        let views_a = [(0, k as i64, 1), (0, 1, m as i64), (7, k as i64 + 2, 1)];
        let views_b = [(0, n as i64, 1), (0, 1, k as i64), (3, 1, k as i64 + 1)];
        for (batch, za, zb) in [(1usize, 0i64, 0i64), (3, 41, 0), (3, 0, 53)] {
            for &(oa, ra, ca) in &views_a {
                for &(ob, rb, cb) in &views_b {
                    let mm = MatMul {
                        batch,
                        m,
                        n,
                        k,
                        a: MatView { arg: 0, offset: oa, rows: ra, cols: ca, batch: za },
                        b: MatView { arg: 1, offset: ob, rows: rb, cols: cb, batch: zb },
                        out: 2,
                    };
                    let mut buffers: Vec<Vec<f32>> = vec![
                        (0..192).map(|i| (i as f32 * 0.37).sin()).collect(),
                        (0..192).map(|i| (i as f32 * 0.71).cos()).collect(),
                        vec![f32::NAN; batch * m * n],
                    ];
                    let g = gemm("k0", &[0, 1, 2], &mm).unwrap();
                    emulate(&g, &mut buffers);
                    for z in 0..batch as i64 {
                        for i in 0..m {
                            for j in 0..n {
                                let want: f64 = (0..k)
                                    .map(|q| {
                                        let x = buffers[0][(z * za + oa + i as i64 * ra + q as i64 * ca) as usize];
                                        let y = buffers[1][(z * zb + ob + q as i64 * rb + j as i64 * cb) as usize];
                                        x as f64 * y as f64
                                    })
                                    .sum();
                                let got = buffers[2][(z as usize * m + i) * n + j] as f64;
                                assert!(
                                    (got - want).abs() < 1e-5,
                                    "batch {z} a {:?} b {:?}: ({i}, {j}) {got} vs {want}",
                                    (oa, ra, ca),
                                    (ob, rb, cb)
                                );
                            }
                        }
                    }
                }
            }
        }
        // Neither stride 1: said plainly, not guessed.
        let mm = MatMul {
            batch: 1,
            m,
            n,
            k,
            a: MatView { arg: 0, offset: 0, rows: 8, cols: 2, batch: 0 },
            b: MatView { arg: 1, offset: 0, rows: n as i64, cols: 1, batch: 0 },
            out: 2,
        };
        let e = gemm("k0", &[0, 1, 2], &mm).unwrap_err();
        assert_eq!(e.code, Code::Unsupported);
    }
}

//! The CUDA executor's host side, without a GPU: each program's device plan (kernel launches
//! and cuBLAS products, `cuda::plan`) run by a host test double — launches by the reference
//! evaluator on the loop nest of that name, products by an emulation of `cublasSgemm` —
//! gives what the reference evaluator gives for the program itself. This checks the order of
//! the operations, each launch's arguments and each product's translation to cuBLAS's
//! column-major call; the CUDA C of each launch is checked by NVRTC (`nvrtc.rs`) and on a
//! GPU by `tests/cuda.rs`.

mod common;

use hoyer_compiler::codegen::cuda;
use hoyer_compiler::kernel::{eval, Body, Loop, Program, Storage};
use hoyer_ir::Role;
use hoyer_runtime::cuda::plan::{self, DeviceOp};
use std::collections::HashMap;

/// Each launchable loop nest of `p` by the name its CUDA function has.
fn nests(p: &Program) -> HashMap<String, &Loop> {
    let mut out = HashMap::new();
    for k in &p.kernels {
        match &k.body {
            Body::Loop(l) => {
                out.insert(k.name.clone(), l);
            }
            Body::MatMul(_, epilogue, follower) => {
                if let Some(l) = epilogue {
                    out.insert(format!("{}_epilogue", k.name), l);
                }
                if let Some(f) = follower {
                    out.insert(format!("{}_then", k.name), &f.nest);
                }
            }
        }
    }
    out
}

/// Runs `ops` on host memory laid out as the device's would be: each bound buffer its own
/// allocation, temporaries in one arena.
fn run_on_host(p: &Program, ops: &[DeviceOp], bound: &mut HashMap<Role, Vec<f32>>) {
    let nests = nests(p);
    let mut arena = vec![f32::NAN; p.arena];
    let slice = |b: usize| match p.buffers[b].storage {
        Storage::Temp { offset } => offset..offset + p.buffers[b].numel(),
        Storage::Bound(_) => 0..p.buffers[b].numel(),
    };
    for op in ops {
        let used: Vec<usize> = match op {
            DeviceOp::Launch { args, .. } => args.clone(),
            DeviceOp::Gemm(g) => vec![g.a.buffer, g.b.buffer, g.c.buffer],
        };
        // Copy in, run, copy out: each buffer once (a launch lists a buffer once).
        let mut mem: Vec<Vec<f32>> = used
            .iter()
            .map(|&b| match &p.buffers[b].storage {
                Storage::Bound(role) => bound[role].clone(),
                Storage::Temp { .. } => arena[slice(b)].to_vec(),
            })
            .collect();
        match op {
            DeviceOp::Launch { function, .. } => {
                eval::run_loop(nests[function.as_str()], &mut mem).unwrap_or_else(|e| panic!("{function}: {e}"))
            }
            DeviceOp::Gemm(g) => {
                // The product's operands as indices into `mem`.
                let at = |b: usize| used.iter().position(|&u| u == b).unwrap();
                let mut local = *g;
                local.a.buffer = at(g.a.buffer);
                local.b.buffer = at(g.b.buffer);
                local.c.buffer = at(g.c.buffer);
                plan::emulate(&local, &mut mem);
            }
        }
        for (&b, data) in used.iter().zip(mem) {
            match &p.buffers[b].storage {
                Storage::Bound(role) => *bound.get_mut(role).unwrap() = data,
                Storage::Temp { .. } => arena[slice(b)].copy_from_slice(&data),
            }
        }
    }
}

#[test]
fn every_programs_device_plan_computes_what_the_program_does() {
    let mut products = 0;
    for (name, p) in common::programs_at(Some(3)) {
        let rendered = cuda::render(&p).unwrap();
        let ops = plan::plan(&p, &rendered.launches).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        products += ops.iter().filter(|o| matches!(o, DeviceOp::Gemm(_))).count();
        // Inputs: small whole numbers, which a gather or one-hot can read as indices too.
        let mut inputs: HashMap<Role, Vec<f32>> = HashMap::new();
        for (i, b) in p.buffers.iter().enumerate() {
            if let Some(role) = b.role() {
                let v = (0..b.numel()).map(|j| ((i * 31 + j * 7) % 3) as f32).collect();
                inputs.insert(role.clone(), v);
            }
        }
        let mut want = inputs.clone();
        eval::run(&p, &mut want).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut got = inputs;
        run_on_host(&p, &ops, &mut got);
        for (buffer, w) in &want {
            let g = &got[buffer];
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                let close = a == b || (a - b).abs() <= 1e-5 * b.abs().max(1.0) || (a.is_nan() && b.is_nan());
                assert!(close, "{name}: {buffer}[{i}] is {a} through the device plan, {b} in the program");
            }
        }
    }
    assert!(products > 20, "only {products} products planned");
}

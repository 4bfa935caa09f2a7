//! What several test files share (each uses some of it).
#![allow(dead_code)]

use hoyer_compiler::kernel::Program;
use hoyer_compiler::pipeline::{self, Options, Planned};
use hoyer_front::check_source;
use hoyer_front::program::PlanStep;
use hoyer_ir::{Dtype, Graph, Role, Scalar};
use hoyer_runtime::backend::{Backend, Bindings};
use hoyer_runtime::data::Rng;
use hoyer_runtime::store::Store;
use std::collections::HashMap;

/// Every program of the examples (and of the spec with every layer): each phase's step at its
/// batch and at an odd one, the evaluation, the batch gather.
pub fn programs() -> Vec<(String, Program)> {
    programs_at(None)
}

/// As `programs`, every step at `batch` only where one is given (small programs, for the
/// slow reference evaluator).
pub fn programs_at(batch: Option<usize>) -> Vec<(String, Program)> {
    let mut out = Vec::new();
    let opts = Options::default();
    for name in [
        "quickstart",
        "lenet300_dense",
        "lenet300_hs",
        "lenet300_gradual",
        "lenet300_l1",
        "lenet300_hoyer",
        "lenet5_dense",
        "lenet5_hs",
        "lenet5_group_hs",
        "../tests/valid/every_layer",
        "../tests/valid/batchnorm_residual",
        "../tests/valid/embedding",
        "../tests/valid/transformer_block",
    ] {
        let path = format!("{}/../examples/{name}.hoyer", env!("CARGO_MANIFEST_DIR"));
        let c = check_source(&std::fs::read_to_string(path).unwrap()).unwrap();
        let plan = c.program.train.as_ref().unwrap();
        let model = c.program.model(&plan.model).unwrap();
        let batches = match batch {
            Some(b) => vec![b],
            None => vec![plan.batch as usize, 37],
        };
        for batch in batches {
            for s in &plan.steps {
                let PlanStep::Phase(p) = s else { continue };
                let (_, planned) = pipeline::step(&c.program, model, p, batch, &opts).unwrap();
                out.push((format!("{name}-{}-{batch}", p.name), planned.program));
            }
            out.push((format!("{name}-eval-{batch}"), pipeline::eval(model, batch, &opts).unwrap().program));
        }
    }
    let (rows, batch) = match batch {
        Some(b) => ([300, 200], [b, b]),
        None => ([60000, 50000], [100, 128]),
    };
    out.push((
        "gather".into(),
        pipeline::gather(rows[0], &[784], Dtype::F32, 1, batch[0], None, &opts).unwrap().program,
    ));
    let augment = Some(hoyer_compiler::graph::lower::Augmentation { padding: 4, flip: true });
    let augmented = pipeline::gather(rows[1], &[3, 32, 32], Dtype::F32, 1, batch[1], augment, &opts).unwrap().program;
    out.push(("augmented gather".into(), augmented));
    let tokens = pipeline::gather(rows[0], &[16], Dtype::I32, 16, batch[0], None, &opts).unwrap().program;
    out.push(("token gather".into(), tokens));
    out
}

/// Tensors by role, in float32 (integer ones as whole numbers).
pub type Values = HashMap<Role, Vec<f32>>;

/// Inputs of a training step's graph: labels, token ids, masks, small optimizer state, the
/// rest normal.
pub fn inputs_for(g: &Graph, seed: u64) -> Values {
    let mut rng = Rng::new(seed);
    g.inputs()
        .map(|(id, role)| {
            let n = hoyer_ir::numel(g.shape(id));
            let v: Vec<f32> = match role {
                Role::Labels => (0..n).map(|_| rng.below(3) as f32).collect(),
                // Token ids: the tests' embeddings have at least 6 rows.
                Role::Data if g.value(id).dtype == hoyer_ir::Dtype::I32 => {
                    (0..n).map(|_| rng.below(6) as f32).collect()
                }
                Role::Mask(_) => (0..n).map(|_| if rng.uniform() < 0.3 { 0.0 } else { 1.0 }).collect(),
                Role::State(_, s) if s == "exp_avg_sq" => (0..n).map(|_| (rng.uniform() * 0.1) as f32).collect(),
                Role::Scalar(Scalar::Strength(_) | Scalar::Lr) => {
                    (0..n).map(|_| (rng.uniform() * 0.1) as f32).collect()
                }
                Role::Scalar(Scalar::InvBiasCorrection2Sqrt | Scalar::StepSize) => vec![0.5; n],
                Role::Scalar(Scalar::FirstStep) => vec![0.0; n],
                _ => (0..n).map(|_| rng.normal() as f32 * 0.5).collect(),
            };
            (role.clone(), v)
        })
        .collect()
}

/// Writes `v` into tensor `id` of the store, as its type holds them.
pub fn write(store: &mut Store, id: hoyer_runtime::store::TensorId, v: &[f32]) {
    match store.dtype(id) {
        Dtype::F32 => store.write(id, v).unwrap(),
        Dtype::I32 => store.write_i32(id, &v.iter().map(|&x| x as i32).collect::<Vec<_>>()).unwrap(),
    }
}

/// Tensor `id` of the store, in float32.
pub fn read(store: &mut Store, id: hoyer_runtime::store::TensorId) -> Vec<f32> {
    match store.dtype(id) {
        Dtype::F32 => store.read(id).unwrap().to_vec(),
        Dtype::I32 => store.read_i32(id).unwrap().iter().map(|&x| x as f32).collect(),
    }
}

/// A fresh store holding `inputs` for `g`'s inputs and a tensor for each further output,
/// bound by role.
pub fn store_for(g: &Graph, inputs: &Values) -> (Store, Bindings) {
    let mut store = Store::new();
    let mut bind = Bindings::new();
    for (id, role) in g.inputs() {
        let t = store.alloc(&role.to_string(), g.shape(id), g.dtype(id)).unwrap();
        write(&mut store, t, &inputs[role]);
        bind.insert(role.clone(), t);
    }
    for (role, v) in &g.outputs {
        if !bind.contains_key(role) {
            bind.insert(role.clone(), store.alloc(&role.to_string(), g.shape(*v), g.dtype(*v)).unwrap());
        }
    }
    (store, bind)
}

/// Runs `planned` once on `backend` with `inputs` in a fresh store; every output by role.
pub fn run(backend: &dyn Backend, planned: &Planned, inputs: &Values) -> Values {
    let g = &planned.graph;
    let (mut store, bind) = store_for(g, inputs);
    let mut exe = backend.compile(planned, &mut store, &bind).unwrap();
    exe.run(&mut store).unwrap();
    g.outputs.iter().map(|(r, _)| (r.clone(), read(&mut store, bind[r]))).collect()
}

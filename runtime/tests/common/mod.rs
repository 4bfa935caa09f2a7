//! What several test files share (each uses some of it).
#![allow(dead_code)]

use hoyer_compiler::kernel::Program;
use hoyer_compiler::pipeline::{self, Options, Planned};
use hoyer_front::check_source;
use hoyer_front::program::Step as PlanStep;
use hoyer_ir::{Graph, InputKind};
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
    out.push(("gather".into(), pipeline::gather(rows[0], &[784], batch[0], None, &opts).unwrap().program));
    let augment = Some(hoyer_compiler::graph::lower::Augmentation { padding: 4, flip: true });
    let augmented = pipeline::gather(rows[1], &[3, 32, 32], batch[1], augment, &opts).unwrap().program;
    out.push(("augmented gather".into(), augmented));
    out
}

pub type Values = HashMap<String, Vec<f32>>;

/// Inputs of a training step's graph: labels, masks, small optimizer state, the rest
/// normal.
pub fn inputs_for(g: &Graph, seed: u64) -> Values {
    let mut rng = Rng::new(seed);
    g.inputs()
        .map(|(id, name, kind)| {
            let n = hoyer_ir::numel(g.shape(id));
            let v: Vec<f32> = match kind {
                InputKind::Labels => (0..n).map(|_| rng.below(3) as f32).collect(),
                _ if name.ends_with(".mask") => (0..n).map(|_| if rng.uniform() < 0.3 { 0.0 } else { 1.0 }).collect(),
                _ if name.ends_with("exp_avg_sq") || name.starts_with("strength") || name == "lr" => {
                    (0..n).map(|_| (rng.uniform() * 0.1) as f32).collect()
                }
                _ if name == "inv_bias_correction2_sqrt" || name == "step_size" => vec![0.5; n],
                _ if name == "first_step" => vec![0.0; n],
                _ => (0..n).map(|_| rng.normal() as f32 * 0.5).collect(),
            };
            (name.to_string(), v)
        })
        .collect()
}

/// A fresh store holding `inputs` for `g`'s inputs and a tensor for each further output,
/// bound by name.
pub fn store_for(g: &Graph, inputs: &Values) -> (Store, Bindings) {
    let mut store = Store::new();
    let mut bind = Bindings::new();
    for (id, name, _) in g.inputs() {
        let t = store.alloc(name, g.shape(id)).unwrap();
        store.write(t, &inputs[name]).unwrap();
        bind.insert(name.to_string(), t);
    }
    for (name, v) in &g.outputs {
        if !bind.contains_key(name) {
            bind.insert(name.clone(), store.alloc(name, g.shape(*v)).unwrap());
        }
    }
    (store, bind)
}

/// Runs `planned` once on `backend` with `inputs` in a fresh store; every output by name.
pub fn run(backend: &dyn Backend, planned: &Planned, inputs: &Values) -> Values {
    let g = &planned.graph;
    let (mut store, bind) = store_for(g, inputs);
    let mut exe = backend.compile(planned, &mut store, &bind).unwrap();
    exe.run(&mut store).unwrap();
    g.outputs.iter().map(|(n, _)| (n.clone(), store.read(bind[n]).unwrap().to_vec())).collect()
}

//! The pipeline (graph passes, fusion, kernel construction, kernel passes) against the
//! reference interpreter: every output of every example's training step, evaluation and
//! batch gather, through the kernel IR's reference evaluator.

use hoyer_compiler::check_source;
use hoyer_compiler::ir::interp::{self, Precision};
use hoyer_compiler::ir::{Graph, InputKind};
use hoyer_compiler::kernel;
use hoyer_compiler::pipeline::{self, Options, Planned};
use hoyer_compiler::program::Step as PlanStep;
use std::collections::HashMap;

fn numbers(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// Plausible values for every input of `g`.
fn inputs(g: &Graph, seed: u64) -> HashMap<String, Vec<f32>> {
    g.inputs()
        .map(|(id, name, kind)| {
            let n = hoyer_compiler::ir::numel(g.shape(id));
            let r = numbers(n, seed + name.len() as u64);
            let v: Vec<f32> = match kind {
                InputKind::Labels => r.iter().map(|x| ((x.abs() * 3.0) as u32 % 3) as f32).collect(),
                _ if name.ends_with(".mask") => r.iter().map(|x| if *x < -0.4 { 0.0 } else { 1.0 }).collect(),
                _ if name.ends_with("exp_avg_sq") => r.iter().map(|x| x.abs() * 0.1).collect(),
                _ if name == "first_step" => vec![0.0; n],
                InputKind::Scalar => r.iter().map(|x| 0.05 + x.abs() * 0.1).collect(),
                _ => r.iter().map(|x| x * 0.5).collect(),
            };
            (name.to_string(), v)
        })
        .collect()
}

/// Runs the planned program and the interpreter on the same inputs; every output agrees.
fn agree(what: &str, planned: &Planned, given: HashMap<String, Vec<f32>>) {
    let given = &given;
    let g = &planned.graph;
    let as_f64 = given.iter().map(|(k, v)| (k.clone(), v.iter().map(|&x| x as f64).collect())).collect();
    let want = interp::outputs(g, &as_f64, Precision::F32).unwrap();
    let mut bound: HashMap<String, Vec<f32>> = HashMap::new();
    for b in &planned.program.buffers {
        if b.storage == kernel::Storage::Bound {
            bound.insert(b.name.clone(), given.get(&b.name).cloned().unwrap_or_else(|| vec![f32::NAN; b.numel()]));
        }
    }
    let run = kernel::eval::run(&planned.program, &mut bound);
    run.unwrap_or_else(|e| panic!("{what}: {e}\n{}", kernel::print::print(&planned.program)));
    for (name, w) in &want {
        // An output equal to its input (a penalty sum with no penalty) touches no buffer.
        let got = bound.get(name).or(given.get(name)).unwrap_or_else(|| panic!("{what}: no buffer for output {name}"));
        for (i, (a, b)) in w.iter().zip(got).enumerate() {
            let err = (a - *b as f64).abs() / a.abs().max(1.0);
            assert!(err <= 1e-5, "{what}: {name}[{i}]: interpreter {a}, kernels {b}");
        }
    }
}

fn example(name: &str) -> hoyer_compiler::Checked {
    let path = format!("{}/../examples/{name}.hoyer", env!("CARGO_MANIFEST_DIR"));
    check_source(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn examples_through_the_kernel_ir() {
    for name in ["quickstart", "lenet300_hs", "lenet300_gradual"] {
        let c = example(name);
        let plan = c.program.train.as_ref().unwrap();
        let model = c.program.model(&plan.model).unwrap();
        // A small batch keeps the reference evaluator quick; the shapes are the real ones.
        let batch = 3;
        for s in &plan.steps {
            let PlanStep::Phase(phase) = s else { continue };
            for opts in [Options::default(), Options { fma: false, split_reductions_above: usize::MAX }] {
                let (_, planned) = pipeline::step(&c.program, model, phase, batch, &opts).unwrap();
                agree(&format!("{name} {}", phase.name), &planned, inputs(&planned.graph, 3));
            }
        }
        let planned = pipeline::eval(model, batch, &Options::default()).unwrap();
        agree(&format!("{name} eval"), &planned, inputs(&planned.graph, 4));
    }
}

#[test]
fn batch_gather_picks_the_rows_in_order() {
    let planned = pipeline::gather(5, &[2, 2], 3, &Options::default()).unwrap();
    let mut given = HashMap::new();
    given.insert("table".to_string(), (0..20).map(|x| x as f32).collect::<Vec<_>>());
    given.insert("table_labels".to_string(), vec![10.0, 11.0, 12.0, 13.0, 14.0]);
    given.insert("order".to_string(), vec![4.0, 2.0, 0.0, 1.0, 3.0]);
    given.insert("start".to_string(), vec![1.0]);
    agree("gather", &planned, given.clone());
    let mut bound = given;
    bound.insert("x".into(), vec![0.0; 12]);
    bound.insert("labels".into(), vec![0.0; 3]);
    kernel::eval::run(&planned.program, &mut bound).unwrap();
    assert_eq!(bound["labels"], vec![12.0, 10.0, 11.0]);
    assert_eq!(bound["x"][..4], [8.0, 9.0, 10.0, 11.0]);
    assert_eq!(planned.program.kernels.len(), 2, "{}", kernel::print::print(&planned.program));
}

#[test]
#[ignore]
fn show() {
    let c = example(&std::env::var("EX").unwrap_or("quickstart".into()));
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model(&plan.model).unwrap();
    for s in &plan.steps {
        let PlanStep::Phase(phase) = s else { continue };
        let (_, planned) = pipeline::step(&c.program, model, phase, plan.batch as usize, &Options::default()).unwrap();
        println!("{}", kernel::print::print(&planned.program));
    }
}

//! The CPU back end against the reference interpreter: every output of whole training steps
//! (forward, loss, penalties, gradients, optimizer updates, masks) must agree in float32.

use hoyer_compiler::program::Step as PlanStep;
use hoyer_compiler::{check_source, step};
use hoyer_runtime::backend::{Backend, Interpreter};
use hoyer_runtime::cpu::Cpu;
use hoyer_runtime::data::Rng;
use std::collections::HashMap;

fn inputs_for(g: &hoyer_compiler::ir::Graph, seed: u64) -> HashMap<String, Vec<f32>> {
    let mut rng = Rng::new(seed);
    g.inputs()
        .map(|(id, name, kind)| {
            let n = hoyer_compiler::ir::numel(g.shape(id));
            let v: Vec<f32> = match kind {
                hoyer_compiler::ir::InputKind::Labels => (0..n).map(|_| rng.below(3) as f32).collect(),
                _ if name.ends_with(".mask") => (0..n).map(|_| if rng.uniform() < 0.3 { 0.0 } else { 1.0 }).collect(),
                _ if name.ends_with("exp_avg_sq") || name.starts_with("strength") || name == "lr" => {
                    (0..n).map(|_| (rng.uniform() * 0.1) as f32).collect()
                }
                _ if name == "bias_correction2_sqrt" || name == "step_size" => vec![0.5; n],
                _ if name == "first_step" => vec![0.0; n],
                _ => (0..n).map(|_| rng.normal() as f32 * 0.5).collect(),
            };
            (name.to_string(), v)
        })
        .collect()
}

fn compare(spec: &str, batch: usize) {
    let c = check_source(spec).unwrap_or_else(|d| panic!("{d:#?}"));
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model(&plan.model).unwrap();
    for s in &plan.steps {
        let PlanStep::Phase(phase) = s else { continue };
        let st = step::build(&c.program, model, phase, batch).unwrap();
        let inputs = inputs_for(st.graph(), 17);
        let view: HashMap<&str, &[f32]> = inputs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        let want = Interpreter.compile(st.graph()).unwrap().run(&view).unwrap();
        // One thread and two (large kernels split between the threads); kernel programs
        // evaluated chunk by chunk, and compiled by Cranelift.
        for (threads, jit) in [(1, false), (2, false), (1, true), (2, true)] {
            let got = Cpu { threads, jit }.compile(st.graph()).unwrap().run(&view).unwrap();
            assert_eq!(want.len(), got.len());
            for (name, w) in &want {
                let g = &got[name];
                for (i, (a, b)) in w.iter().zip(g).enumerate() {
                    let err = (a - b).abs() / a.abs().max(1.0);
                    assert!(
                        err <= 1e-5,
                        "phase {}, {threads} threads, jit {jit}: {name}[{i}]: interpreter {a}, cpu {b}",
                        phase.name
                    );
                }
            }
        }
    }
}

const DATA: &str = "data d = synthetic(classes = 3, train = 60, test = 12)\n";

#[test]
fn adam_with_hoyer_square_then_frozen_masks() {
    compare(
        &format!(
            "{DATA}model m(x: f32[20]) {{ fc1 = dense(x, 30) |> relu\n fc2 = dense(fc1, 3)\n return fc2 }}
             train m on d {{
                phase a {{ epochs 1  optimizer adam(lr = 1e-3, weight_decay = 1e-4)  penalty 2e-4 * hoyer_square(*) }}
                prune below std_ratio(0.5) on *
                phase b {{ epochs 1  optimizer adamw(lr = 1e-3)  masks frozen }}
             }}"
        ),
        16,
    );
}

#[test]
fn sgd_with_group_hs_and_every_regularizer() {
    compare(
        &format!(
            "{DATA}model m(x: f32[12]) {{ fc1 = dense(x, 10) |> relu\n fc2 = dense(fc1, 10, bias = false) |> relu\n fc3 = dense(fc1 + fc2, 3)\n return fc3 }}
             train m on d {{
                phase a {{ epochs 1  optimizer sgd(lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 1e-3)
                    penalty 1e-3 * (group_hs(*.weight, 0) + group_hs(*.weight, 1)) + 1e-4 * l1(*) + 1e-4 * hoyer(fc1)
                    penalty 1e-4 * transformed_l1(*.bias) + 1e-4 * group_lasso(fc2.weight, 1) + 1e-5 * l2(*)
                    masks free }}
             }}"
        ),
        7,
    );
}

/// Large enough that matrix products and fused kernels are split between two threads
/// (row and column splits, and reductions merged across halves).
#[test]
fn large_layers_split_across_threads() {
    compare(
        "data d = synthetic(classes = 3, train = 60, test = 12)
         model m(x: f32[256]) { fc1 = dense(x, 128) |> relu\n fc2 = dense(fc1, 3)\n return fc2 }
         train m on d {
            phase a { epochs 1  optimizer adam(lr = 1e-3)  penalty 1e-4 * (group_hs(*.weight, 0) + hoyer_square(*)) }
            prune below std_ratio(0.5) on *
            phase b { epochs 1  optimizer sgd(lr = 0.1, momentum = 0.9)  masks frozen }
         }",
        200,
    );
}

//! Fusion decides the kernels: the numbers are part of the design, so they are asserted.

use hoyer_compiler::kernel::{Access, Body, Program};
use hoyer_compiler::pipeline::{self, Options};
use hoyer_front::check_source;
use hoyer_front::program::PlanStep;

fn programs(name: &str) -> Vec<(String, bool, Program)> {
    let path = format!("{}/../examples/{name}.hoyer", env!("CARGO_MANIFEST_DIR"));
    let c = check_source(&std::fs::read_to_string(path).unwrap()).unwrap();
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model(&plan.model).unwrap();
    plan.steps
        .iter()
        .filter_map(|s| if let PlanStep::Phase(p) = s { Some(p) } else { None })
        .map(|p| {
            let (step, planned) =
                pipeline::step(&c.program, model, p, plan.batch as usize, &Options::default()).unwrap();
            (p.name.clone(), step.masked, planned.program)
        })
        .collect()
}

fn counts(p: &Program) -> (usize, usize) {
    (p.kernels.len(), p.kernels.iter().filter(|k| matches!(k.body, Body::MatMul(..))).count())
}

#[test]
fn quickstart_step_kernels() {
    let counts: Vec<(usize, usize)> = programs("quickstart").iter().map(|(_, _, p)| counts(p)).collect();
    // sparsify (Hoyer-Square on the weights, Adam) and finetune (Adam, frozen masks):
    // 3 forward + 5 backward matrix products (no gradient for the data), each with its
    // epilogue (bias and relu forward, relu's derivative or the weight update backward).
    assert_eq!(counts, vec![(18, 8), (15, 8)]);
}

#[test]
fn lenet300_hs_step_kernels() {
    let counts: Vec<(usize, usize)> = programs("lenet300_hs").iter().map(|(_, _, p)| counts(p)).collect();
    assert_eq!(counts, vec![(23, 8), (15, 8)]);
}

#[test]
fn each_parameter_update_is_one_kernel_in_place() {
    for (phase, masked, p) in programs("quickstart") {
        for param in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"] {
            // The kernel that writes the new parameter also writes both Adam states, all over
            // the old values, and holds the penalty gradient, the update and the mask together.
            let id = p.find(&hoyer_ir::Role::param(param)).unwrap();
            let writers: Vec<_> = p
                .kernels
                .iter()
                .filter(|k| k.args.iter().any(|a| a.buffer == id && a.access != Access::Read))
                .collect();
            assert_eq!(writers.len(), 1, "{phase}: {param} written by {} kernels", writers.len());
            let k = writers[0];
            let role = |name: &str| k.args.iter().find(|a| p.buffer(a.buffer).name == name).map(|a| a.access);
            assert_eq!(role(param), Some(Access::ReadWrite), "{phase}: {param} not updated in place");
            for state in ["exp_avg", "exp_avg_sq"] {
                assert_eq!(role(&format!("{param}.{state}")), Some(Access::ReadWrite), "{phase}: {param} {state}");
            }
            if masked {
                assert_eq!(role(&format!("{param}.mask")), Some(Access::Read), "{phase}: {param} mask");
            }
            // Nothing reads the old value after it is overwritten.
            let at = p.kernels.iter().position(|x| x.name == k.name).unwrap();
            assert!(
                p.kernels[at + 1..].iter().all(|x| x.args.iter().all(|a| a.buffer != id)),
                "{phase}: {param} read after its update"
            );
        }
    }
}

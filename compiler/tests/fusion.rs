//! Fusion decides the kernels: the numbers are part of the design, so they are asserted.

use hoyer_compiler::fusion::{fuse, KernelKind};
use hoyer_compiler::ir::Op;
use hoyer_compiler::program::Step as PlanStep;
use hoyer_compiler::{check_source, step};

fn quickstart() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.hoyer")).unwrap()
}

#[test]
fn quickstart_step_kernels() {
    let c = check_source(&quickstart()).unwrap();
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model(&plan.model).unwrap();
    let phases: Vec<_> =
        plan.steps.iter().filter_map(|s| if let PlanStep::Phase(p) = s { Some(p) } else { None }).collect();
    let counts: Vec<(usize, usize)> = phases
        .iter()
        .map(|p| {
            let s = step::build(&c.program, model, p, plan.batch as usize).unwrap();
            let k = fuse(s.graph());
            (k.kernels.len(), k.kernels.iter().filter(|k| k.kind == KernelKind::MatMul).count())
        })
        .collect();
    // sparsify (Hoyer-Square on the weights, Adam) and finetune (Adam, frozen masks):
    // 3 forward + 5 backward matrix products (no gradient for the data).
    assert_eq!(counts, vec![(35, 8), (28, 8)]);
}

#[test]
fn each_parameter_update_is_one_kernel() {
    let c = check_source(&quickstart()).unwrap();
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model(&plan.model).unwrap();
    for s in &plan.steps {
        let PlanStep::Phase(p) = s else { continue };
        let st = step::build(&c.program, model, p, plan.batch as usize).unwrap();
        let g = st.graph();
        let k = fuse(g);
        for param in &model.params {
            // The kernel that writes the new parameter also writes both Adam states, and
            // holds the penalty gradient, the update and the mask together.
            let new = g.output(&param.name).unwrap();
            let kernel = k.kernels.iter().find(|k| k.values.contains(&new)).unwrap();
            for state in ["exp_avg", "exp_avg_sq"] {
                let out = g.output(&format!("{}.{state}", param.name)).unwrap();
                assert!(kernel.values.contains(&out), "{} {state} in another kernel", param.name);
            }
            if st.masked {
                let mask = g.input(&format!("{}.mask", param.name)).unwrap();
                assert!(kernel.reads.contains(&mask));
            }
            assert!(kernel.values.iter().all(|v| !matches!(g.value(*v).op, Op::MatMul { .. })));
        }
    }
}

//! What several test files share (each uses some of it).
#![allow(dead_code)]

use hoyer_compiler::check_source;
use hoyer_compiler::kernel::Program;
use hoyer_compiler::pipeline::{self, Options};
use hoyer_compiler::program::Step as PlanStep;

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
    let augment = Some(hoyer_compiler::lower::Augmentation { padding: 4, flip: true });
    let augmented = pipeline::gather(rows[1], &[3, 32, 32], batch[1], augment, &opts).unwrap().program;
    out.push(("augmented gather".into(), augmented));
    out
}

//! Every loop nest of every dense example's step, evaluation and gather becomes Cranelift
//! IR that Cranelift's verifier accepts (the JIT's numbers are checked in
//! runtime/tests/backends.rs).

use cranelift_codegen::settings;
use hoyer_compiler::codegen::cpu::{loop_function, Target};
use hoyer_compiler::kernel::Program;
use hoyer_compiler::pipeline::{self, Options};
use hoyer_front::check_source;
use hoyer_front::program::PlanStep;

fn programs() -> Vec<(String, Program)> {
    let mut out = Vec::new();
    for name in ["quickstart", "lenet300_dense", "lenet300_hs", "lenet300_gradual"] {
        let path = format!("{}/../examples/{name}.hoyer", env!("CARGO_MANIFEST_DIR"));
        let c = check_source(&std::fs::read_to_string(path).unwrap()).unwrap();
        let plan = c.program.train.as_ref().unwrap();
        let model = c.program.model(&plan.model).unwrap();
        for batch in [plan.batch as usize, 7] {
            for s in &plan.steps {
                let PlanStep::Phase(p) = s else { continue };
                let (_, planned) = pipeline::step(&c.program, model, p, batch, &Options::default()).unwrap();
                out.push((format!("{name} {} batch {batch}", p.name), planned.program));
            }
            out.push((format!("{name} eval"), pipeline::eval(model, batch, &Options::default()).unwrap().program));
        }
    }
    out.push((
        "gather".into(),
        pipeline::gather(1000, &[28, 28], hoyer_ir::Dtype::F32, 1, 100, None, &Options::default()).unwrap().program,
    ));
    out
}

#[test]
fn every_loop_nest_verifies() {
    let flags = settings::Flags::new(settings::builder());
    let mut nests = 0;
    for (what, p) in programs() {
        for k in &p.kernels {
            let dtypes: Vec<_> = k.args.iter().map(|a| p.buffer(a.buffer).dtype).collect();
            for l in k.loop_nests() {
                let f = loop_function(l, &dtypes, 0, &Target::listing()).unwrap();
                cranelift_codegen::verify_function(&f, &flags)
                    .unwrap_or_else(|e| panic!("{what} {}: {e}\n{}", k.name, f.display()));
                nests += 1;
            }
        }
    }
    assert!(nests > 100, "only {nests} loop nests");
}

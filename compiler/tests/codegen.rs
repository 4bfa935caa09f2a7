//! Every fused kernel of every dense example's training steps becomes Cranelift IR that
//! Cranelift's verifier accepts (the JIT's numbers are checked in runtime/tests/backends.rs).

use cranelift_codegen::isa::CallConv;
use cranelift_codegen::settings;
use hoyer_compiler::codegen::cpu::{kernel_function, MathImports};
use hoyer_compiler::codegen::KernelProgram;
use hoyer_compiler::fusion::{fuse, KernelKind};
use hoyer_compiler::program::Step as PlanStep;
use hoyer_compiler::{check_source, step};

#[test]
fn every_kernel_verifies() {
    let flags = settings::Flags::new(settings::builder());
    let mut kernels = 0;
    for name in ["quickstart", "lenet300_dense", "lenet300_hs", "lenet300_gradual"] {
        let path = format!("{}/../examples/{name}.hoyer", env!("CARGO_MANIFEST_DIR"));
        let c = check_source(&std::fs::read_to_string(path).unwrap()).unwrap();
        let plan = c.program.train.as_ref().unwrap();
        let model = c.program.model(&plan.model).unwrap();
        for s in &plan.steps {
            let PlanStep::Phase(p) = s else { continue };
            let st = step::build(&c.program, model, p, plan.batch as usize).unwrap();
            for k in fuse(st.graph()).kernels.iter().filter(|k| k.kind == KernelKind::Fused) {
                let program = KernelProgram::new(st.graph(), k).unwrap();
                let f = kernel_function(&program, 0, CallConv::SystemV, MathImports { expf: 0, logf: 1, powf: 2 });
                cranelift_codegen::verify_function(&f, &flags)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{}", f.display()));
                kernels += 1;
            }
        }
    }
    assert!(kernels > 100, "only {kernels} kernels");
}

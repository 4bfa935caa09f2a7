//! Masks change in both directions: a pruned weight that regrows trains again, starting from
//! zero with fresh optimizer state, while the weights still pruned stay exactly zero; its
//! mask, weight and Adam moments change together in the store the step reads.

use hoyer_front::check_source;
use hoyer_front::program::PlanStep;
use hoyer_ir::Role;
use hoyer_runtime::cpu::Cpu;
use hoyer_runtime::data::{Rng, Split};
use hoyer_runtime::feed::Resident;
use hoyer_runtime::masks::Masks;
use hoyer_runtime::plans::Plans;
use hoyer_runtime::stepper::Stepper;
use hoyer_runtime::store::Store;
use hoyer_runtime::{backend::Backend, init};

const SPEC: &str = "data d = synthetic(classes = 3, train = 32, test = 8)
model m(x: f32[6]) { fc1 = dense(x, 5) |> relu\n fc2 = dense(fc1, 3)\n return fc2 }
train m on d {
    batch 8
    phase a { epochs 1  optimizer sgd(lr = 1e-2) }
    prune below 1e-9 on fc1.weight
    phase p { epochs 1  optimizer adam(lr = 1e-2)  masks frozen }
}
";

#[test]
fn a_regrown_weight_trains_from_zero_with_fresh_state_and_the_pruned_stay_zero() {
    let c = check_source(SPEC).unwrap();
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model("m").unwrap();
    let PlanStep::Phase(phase) = &plan.steps[2] else { panic!() };
    let cpu = Cpu::new(1).unwrap();
    let plans = Plans::new(cpu.options());
    let mut store = Store::new();
    let mut rng = Rng::new(1);
    let split = Split {
        x: (0..32 * 6).map(|_| rng.normal() as f32).collect(),
        y: (0..32).map(|i| (i % 3) as u32).collect(),
        targets: 1,
    };
    let train = Resident::upload(&mut store, "train", &split, &[6], model.input_dtype).unwrap();
    let params = init::pytorch_default(model, 0);
    let mut masks = Masks::ones(&params);
    for (name, v) in &params {
        let p = model.param(name).unwrap();
        let id = store.shared_f32(&p.role(), &p.dims()).unwrap();
        store.write(id, v).unwrap();
        masks.write(&mut store, model, name).unwrap();
    }
    let mut stepper = Stepper::new(&plans, &cpu, &mut store, &c.program, model, phase, 8, 8, &train).unwrap();
    let read = |store: &mut Store, role: Role| {
        let p = model.param("fc1.weight").unwrap();
        let id = store.shared_f32(&role, &p.dims()).unwrap();
        store.read(id).unwrap().to_vec()
    };
    let (weight, avg, avg_sq) =
        (Role::param("fc1.weight"), Role::state("fc1.weight", "exp_avg"), Role::state("fc1.weight", "exp_avg_sq"));
    stepper.step(&mut store, &train, 0, 8, 1e-2, &[]).unwrap();
    // Prune elements 0, 1 and 2 (as a prune does: mask and weight to zero), step, then regrow 1.
    let mut m = masks.get("fc1.weight").to_vec();
    let mut w = read(&mut store, weight.clone());
    for i in 0..3 {
        m[i] = 0.0;
        w[i] = 0.0;
    }
    masks.replace("fc1.weight", m);
    masks.write(&mut store, model, "fc1.weight").unwrap();
    let id = store.shared_f32(&weight, &[5, 6]).unwrap();
    store.write(id, &w).unwrap();
    stepper.step(&mut store, &train, 8, 8, 1e-2, &[]).unwrap();
    assert!(read(&mut store, avg.clone())[1] != 0.0, "the pruned weight's moments are still there");
    masks.regrow(&mut store, model, &mut stepper, "fc1.weight", &[1]).unwrap();
    assert_eq!(masks.get("fc1.weight")[..3], [0.0, 1.0, 0.0]);
    assert_eq!(read(&mut store, Role::Mask("fc1.weight".into()))[..3], [0.0, 1.0, 0.0]);
    assert_eq!(read(&mut store, weight.clone())[1], 0.0);
    let (a, s) = (read(&mut store, avg.clone()), read(&mut store, avg_sq.clone()));
    assert_eq!((a[1], s[1]), (0.0, 0.0), "fresh optimizer state where it regrew");
    assert!(a[5] != 0.0 && s[5] != 0.0, "the others keep theirs");
    stepper.step(&mut store, &train, 16, 8, 1e-2, &[]).unwrap();
    let w = read(&mut store, weight);
    assert!(w[1] != 0.0, "the regrown weight trains again");
    assert_eq!((w[0], w[2]), (0.0, 0.0), "the pruned ones stay exactly zero");
}

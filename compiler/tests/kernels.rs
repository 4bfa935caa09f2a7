//! The pipeline (graph passes, fusion, kernel construction, kernel passes) against the
//! reference interpreter: every output of every example's training step, evaluation and
//! batch gather, through the kernel IR's reference evaluator.

use hoyer_compiler::kernel::{self, Access};
use hoyer_compiler::pipeline::{self, Options, Planned};
use hoyer_front::check_source;
use hoyer_front::program::PlanStep;
use hoyer_ir::interp::{self, Precision};
use hoyer_ir::{Graph, Role, Scalar};
use std::collections::HashMap;

mod common;

fn numbers(n: usize, seed: u64) -> Vec<f32> {
    common::numbers(n, seed).into_iter().map(|x| x as f32).collect()
}

/// Plausible values for every input of `g`.
fn inputs(g: &Graph, seed: u64) -> HashMap<Role, Vec<f32>> {
    g.inputs()
        .map(|(id, role)| {
            let n = hoyer_ir::numel(g.shape(id));
            let r = numbers(n, seed + role.to_string().len() as u64);
            let v: Vec<f32> = match role {
                Role::Labels => r.iter().map(|x| ((x.abs() * 3.0) as u32 % 3) as f32).collect(),
                Role::Mask(_) => r.iter().map(|x| if *x < -0.4 { 0.0 } else { 1.0 }).collect(),
                Role::State(_, s) if s == "exp_avg_sq" => r.iter().map(|x| x.abs() * 0.1).collect(),
                Role::Scalar(Scalar::FirstStep) => vec![0.0; n],
                Role::Scalar(_) => r.iter().map(|x| 0.05 + x.abs() * 0.1).collect(),
                _ => r.iter().map(|x| x * 0.5).collect(),
            };
            (role.clone(), v)
        })
        .collect()
}

/// Runs the planned program and the interpreter on the same inputs; every output agrees.
fn agree(what: &str, planned: &Planned, given: HashMap<Role, Vec<f32>>) {
    let given = &given;
    let g = &planned.graph;
    let as_f64 = given.iter().map(|(k, v)| (k.clone(), v.iter().map(|&x| x as f64).collect())).collect();
    let want = interp::outputs(g, &as_f64, Precision::F32).unwrap();
    let mut bound: HashMap<Role, Vec<f32>> = HashMap::new();
    for b in &planned.program.buffers {
        if let Some(role) = b.role() {
            bound.insert(role.clone(), given.get(role).cloned().unwrap_or_else(|| vec![f32::NAN; b.numel()]));
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

fn example(name: &str) -> hoyer_front::Checked {
    let path = format!("{}/../examples/{name}.hoyer", env!("CARGO_MANIFEST_DIR"));
    check_source(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn examples_through_the_kernel_ir() {
    for name in ["quickstart", "lenet300_hs", "lenet300_gradual", "lenet5_hs", "lenet5_group_hs"] {
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
    let planned = pipeline::gather(5, &[2, 2], hoyer_ir::Dtype::F32, 1, 3, None, &Options::default()).unwrap();
    let mut given = HashMap::new();
    given.insert(Role::Table, (0..20).map(|x| x as f32).collect::<Vec<_>>());
    given.insert(Role::TableLabels, vec![10.0, 11.0, 12.0, 13.0, 14.0]);
    given.insert(Role::Order, vec![4.0, 2.0, 0.0, 1.0, 3.0]);
    given.insert(Role::Scalar(Scalar::Start), vec![1.0]);
    agree("gather", &planned, given.clone());
    let mut bound = given;
    bound.insert(Role::Data, vec![0.0; 12]);
    bound.insert(Role::Labels, vec![0.0; 3]);
    kernel::eval::run(&planned.program, &mut bound).unwrap();
    assert_eq!(bound[&Role::Labels], vec![12.0, 10.0, 11.0]);
    assert_eq!(bound[&Role::Data][..4], [8.0, 9.0, 10.0, 11.0]);
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

/// Plans a small graph and checks it against the interpreter.
fn planned(g: &Graph) -> Planned {
    let p = pipeline::plan(g, &Options::default()).unwrap();
    agree("graph", &p, inputs(&p.graph, 9));
    p
}

fn loops(p: &Planned) -> Vec<&hoyer_compiler::kernel::Loop> {
    p.program.kernels.iter().flat_map(|k| k.loop_nests()).collect()
}

#[test]
fn movement_ops_are_views_not_kernels() {
    use hoyer_ir::Unary;
    let mut g = Graph::default();
    let x = g.input_value(Role::param("x"), vec![3, 4]);
    let t = g.permute(x, vec![1, 0]);
    let e = g.unary(Unary::Exp, t);
    g.outputs = vec![(Role::param("e"), e)];
    let p = planned(&g);
    // One kernel: exp reads x through the transposed view.
    assert_eq!(p.program.kernels.len(), 1, "{}", kernel::print::print(&p.program));
    let text = kernel::print::print(&p.program);
    assert!(text.contains("load x[1, 4]"), "{text}");
}

#[test]
fn a_transposed_operand_is_a_strided_product() {
    let mut g = Graph::default();
    let a = g.input_value(Role::param("a"), vec![6, 4]);
    let b = g.input_value(Role::param("b"), vec![5, 6]);
    let at = g.permute(a, vec![1, 0]); // [4, 6]
    let y = g.matmul(at, b, false, true); // [4, 6] · [6, 5]
    g.outputs = vec![(Role::param("y"), y)];
    let p = planned(&g);
    assert_eq!(p.program.kernels.len(), 1);
    let text = kernel::print::print(&p.program);
    assert!(text.contains("= a[1, 4] · b[1, 6]"), "{text}");
}

#[test]
fn reductions_of_the_same_data_share_a_pass() {
    use hoyer_ir::{ReduceOp, Unary};
    let mut g = Graph::default();
    let w = g.input_value(Role::param("w"), vec![30, 20]);
    let a = g.unary(Unary::Abs, w);
    let l1 = g.reduce(ReduceOp::Sum, a, vec![1]);
    let sq = g.pow_const(w, 2.0);
    let l2 = g.reduce(ReduceOp::Sum, sq, vec![1]);
    let mx = g.reduce(ReduceOp::Max, w, vec![1]);
    g.outputs = vec![(Role::param("l1"), l1), (Role::param("l2"), l2), (Role::param("max"), mx)];
    let p = planned(&g);
    assert_eq!(p.program.kernels.len(), 1, "{}", kernel::print::print(&p.program));
    assert_eq!(loops(&p)[0].reductions.len(), 3);
}

#[test]
fn large_whole_tensor_reductions_split_in_two_stages() {
    use hoyer_ir::ReduceOp;
    let mut g = Graph::default();
    let w = g.input_value(Role::param("w"), vec![200, 100]);
    let s = g.sum_all(w);
    let small = g.input_value(Role::param("v"), vec![20, 7]);
    let t = g.reduce(ReduceOp::Sum, small, vec![0, 1]);
    g.outputs = vec![(Role::param("s"), s), (Role::param("t"), t)];
    let p = planned(&g);
    let shapes: Vec<(Vec<usize>, Vec<usize>)> =
        loops(&p).iter().map(|l| (l.parallel.clone(), l.reduce.clone())).collect();
    assert!(shapes.contains(&(vec![200], vec![100])) && shapes.contains(&(vec![], vec![200])), "{shapes:?}");
    assert!(shapes.contains(&(vec![], vec![140])), "the small one stays whole: {shapes:?}");
}

#[test]
fn updates_are_in_place_after_every_reader_of_the_old_value() {
    use hoyer_ir::{Binary, ReduceOp};
    let mut g = Graph::default();
    let p = g.input_value(Role::param("p"), vec![8, 8]);
    // new p = p - mean-free: p - sum(p) broadcast; the sum reads old p before the update.
    let s = g.reduce(ReduceOp::Sum, p, vec![0, 1]);
    let sb = g.broadcast(s, &[8, 8], vec![]);
    let new = g.binary(Binary::Sub, p, sb);
    // q reads its old value transposed: it cannot be overwritten element by element.
    let q = g.input_value(Role::param("q"), vec![8, 8]);
    let qt = g.permute(q, vec![1, 0]);
    let new_q = g.binary(Binary::Add, q, qt);
    g.outputs = vec![(Role::param("p"), new), (Role::param("q"), new_q)];
    let planned = planned(&g);
    let prog = &planned.program;
    let text = kernel::print::print(prog);
    let p_id = prog.find(&Role::param("p")).unwrap();
    let writer =
        prog.kernels.iter().position(|k| k.args.iter().any(|a| a.buffer == p_id && a.access == Access::ReadWrite));
    let writer = writer.unwrap_or_else(|| panic!("p is not updated in place:\n{text}"));
    assert!(prog.kernels[writer + 1..].iter().all(|k| k.args.iter().all(|a| a.buffer != p_id)), "{text}");
    // q is computed aside and copied over at the end.
    let q_id = prog.find(&Role::param("q")).unwrap();
    let last = prog.kernels.last().unwrap();
    assert!(last.args.iter().any(|a| a.buffer == q_id && a.access == Access::Write), "{text}");
}

#[test]
fn an_output_that_is_a_view_is_copied() {
    let mut g = Graph::default();
    let x = g.input_value(Role::param("x"), vec![2, 3]);
    let t = g.permute(x, vec![1, 0]);
    g.outputs = vec![(Role::param("t"), t)];
    let p = planned(&g);
    assert_eq!(p.program.kernels.len(), 1);
}

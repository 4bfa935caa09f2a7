//! The derived gradients of DeepHoyer's regularizers against their closed forms, and one
//! optimizer step against PyTorch's update rules, all through the reference interpreter.

use hoyer_compiler::graph::{autodiff, lower, step};
use hoyer_front::check_source;
use hoyer_front::program::{PlanStep, TrainPlan};
use hoyer_ir::interp::{self, Precision};
use std::collections::HashMap;

const SPEC: &str = "data d = synthetic(classes = 3, train = 30, test = 6)
model m(x: f32[4]) {
    fc1 = dense(x, 5) |> relu
    fc2 = dense(fc1, 3)
    return fc2
}
";

mod common;
use common::numbers;

fn checked(train: &str) -> hoyer_front::Checked {
    check_source(&format!("{SPEC}{train}")).unwrap_or_else(|d| panic!("{d:#?}"))
}

fn phases(plan: &TrainPlan) -> Vec<&hoyer_front::program::PhasePlan> {
    plan.steps.iter().filter_map(|s| if let PlanStep::Phase(p) = s { Some(p) } else { None }).collect()
}

/// The gradient of the penalty alone with respect to fc1.weight, from the derived graph.
fn penalty_grad(penalty: &str, w: &[f64]) -> Vec<f64> {
    let c = checked(&format!("train m on d {{ phase p {{ epochs 1  optimizer sgd(lr = 0.1)  penalty {penalty} }} }}"));
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model("m").unwrap();
    let mut f = lower::lower(&c.program, model, &phases(plan)[0].penalties, 2).unwrap();
    let p = f.params[0].1;
    let g = autodiff::grad(&mut f.graph, f.penalty, &[p])[0];
    let mut inputs: HashMap<String, Vec<f64>> = HashMap::new();
    inputs.insert("fc1.weight".into(), w.to_vec());
    inputs.insert("strength.0".into(), vec![1.0]);
    let vals =
        interp::run(&f.graph, &by_role(&f.graph, &inputs_with_defaults(&f.graph, inputs)), Precision::F64).unwrap();
    vals[g.index()].clone()
}

/// Fills every input not given with small numbers (labels with class 0).
fn inputs_with_defaults(g: &hoyer_ir::Graph, mut given: HashMap<String, Vec<f64>>) -> HashMap<String, Vec<f64>> {
    for (id, role) in g.inputs() {
        let name = role.to_string();
        let name = name.as_str();
        if !given.contains_key(name) {
            let n = hoyer_ir::numel(g.shape(id));
            let v = match role {
                hoyer_ir::Role::Labels => vec![0.0; n],
                // A second moment is never negative.
                _ if name.ends_with("exp_avg_sq") => numbers(n, 5).into_iter().map(f64::abs).collect(),
                _ => numbers(n, name.len() as u64 + 7).into_iter().map(|x| x * 0.5).collect(),
            };
            given.insert(name.to_string(), v);
        }
    }
    given
}

/// The test's values, named as `--emit` names the inputs, by the inputs' roles.
fn by_role(g: &hoyer_ir::Graph, named: &HashMap<String, Vec<f64>>) -> interp::Values {
    g.inputs().filter_map(|(_, role)| Some((role.clone(), named.get(&role.to_string())?.clone()))).collect()
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * y.abs().max(1.0), "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn hoyer_square_gradient_matches_closed_form() {
    let w = numbers(20, 1);
    let l1: f64 = w.iter().map(|x| x.abs()).sum();
    let l2: f64 = w.iter().map(|x| x * x).sum();
    // ∂/∂w = 2·sign(w)·‖W‖₁/‖W‖₂² − 2·‖W‖₁²·w/‖W‖₂⁴
    let expected: Vec<f64> = w.iter().map(|&x| 2.0 * x.signum() * l1 / l2 - 2.0 * l1 * l1 * x / (l2 * l2)).collect();
    assert_close(&penalty_grad("hoyer_square(fc1.weight)", &w), &expected, 1e-12, "HS");
}

#[test]
fn group_hs_gradient_matches_closed_form() {
    let w = numbers(20, 2); // fc1.weight is [5, 4]
    let (rows, cols) = (5, 4);
    let n: f64 = w.iter().map(|x| x * x).sum();
    for axis in [0usize, 1] {
        // Groups: rows for axis 0, columns for axis 1.
        let group = |i: usize| if axis == 0 { i / cols } else { i % cols };
        let groups = if axis == 0 { rows } else { cols };
        let mut norms = vec![0.0; groups];
        for (i, x) in w.iter().enumerate() {
            norms[group(i)] += x * x;
        }
        norms.iter_mut().for_each(|v| *v = v.sqrt());
        let s: f64 = norms.iter().sum();
        // ∂/∂w = 2·S·w/‖w_g‖/N − 2·S²·w/N²
        let expected: Vec<f64> =
            w.iter().enumerate().map(|(i, &x)| 2.0 * s * x / norms[group(i)] / n - 2.0 * s * s * x / (n * n)).collect();
        assert_close(&penalty_grad(&format!("group_hs(fc1.weight, {axis})"), &w), &expected, 1e-12, "Group-HS");
    }
}

/// `coupled(...)`: Group-HS over each filter's unit group (the filter, its batch norm's γ
/// and β, the dense layer's columns that read its channel after `flatten`), its value and
/// gradient against the closed form over those groups; the dense layer's bias is in none.
#[test]
fn coupled_group_hs_covers_each_unit_group() {
    let spec = "data d = synthetic(classes = 3, train = 30, test = 6)
model m(x: f32[2, 4, 4]) {
    c1 = conv2d(x, 3, kernel = 3, padding = 1, bias = false)
    n1 = batchnorm(c1) |> relu
    fc = dense(flatten(n1), 3)
    return fc
}
train m on d { phase p { epochs 1  optimizer sgd(lr = 0.1)  penalty group_hs(coupled(c1.weight), 0) } }
";
    let c = check_source(spec).unwrap_or_else(|d| panic!("{d:#?}"));
    let model = c.program.model("m").unwrap();
    let penalties = &phases(c.program.train.as_ref().unwrap())[0].penalties;
    let mut f = lower::lower(&c.program, model, penalties, 2).unwrap();
    let names = ["c1.weight", "n1.weight", "n1.bias", "fc.weight", "fc.bias"];
    let ids: Vec<_> = names.iter().map(|n| f.params.iter().find(|(p, _)| p == n).unwrap().1).collect();
    let grads = autodiff::grad(&mut f.graph, f.penalty, &ids);
    let mut given = HashMap::new();
    given.insert("strength.0".to_string(), vec![1.0]);
    let inputs = inputs_with_defaults(&f.graph, given);
    let vals = interp::run(&f.graph, &by_role(&f.graph, &inputs), Precision::F64).unwrap();

    // Unit u's cells: row u of c1.weight [3, 18], entry u of γ and β, and of fc.weight
    // [3, 48] the columns 16u..16u+16.
    let unit_of = |name: &str, i: usize| -> Option<usize> {
        match name {
            "c1.weight" => Some(i / 18),
            "n1.weight" | "n1.bias" => Some(i),
            "fc.weight" => Some((i % 48) / 16),
            _ => None,
        }
    };
    let (mut norms, mut total) = (vec![0.0; 3], 0.0);
    for n in names {
        for (i, x) in inputs[n].iter().enumerate() {
            if let Some(u) = unit_of(n, i) {
                norms[u] += x * x;
                total += x * x;
            }
        }
    }
    norms.iter_mut().for_each(|v| *v = f64::sqrt(*v));
    let s: f64 = norms.iter().sum();
    let value = vals[f.penalty.index()][0];
    assert!((value - s * s / total).abs() < 1e-12, "penalty {value} vs {}", s * s / total);
    for (n, g) in names.iter().zip(&grads) {
        let expected: Vec<f64> = inputs[*n]
            .iter()
            .enumerate()
            .map(|(i, &x)| match unit_of(n, i) {
                Some(u) => 2.0 * s * x / norms[u] / total - 2.0 * s * s * x / (total * total),
                None => 0.0,
            })
            .collect();
        assert_close(&vals[g.index()], &expected, 1e-12, n);
    }
}

/// A tensor pruned to zero contributes nothing and gets no gradient (not 0/0 = NaN), and a
/// group pruned to zero passes no gradient through its norm (not 0 · ∞).
#[test]
fn ratio_regularizers_guard_zero_tensors_and_groups() {
    let zeros = vec![0.0; 20];
    for penalty in
        ["hoyer_square(fc1.weight)", "hoyer(fc1.weight)", "group_hs(fc1.weight, 0)", "group_hs(fc1.weight, 1)"]
    {
        let g = penalty_grad(penalty, &zeros);
        assert!(g.iter().all(|&x| x == 0.0), "{penalty} of a zero tensor: gradient {g:?}");
    }
    // fc1.weight is [5, 4]: zero the second row and the third column.
    let mut w = numbers(20, 3);
    for c in 0..4 {
        w[4 + c] = 0.0;
    }
    for r in 0..5 {
        w[r * 4 + 2] = 0.0;
    }
    for penalty in ["group_hs(fc1.weight, 0)", "group_hs(fc1.weight, 1)", "group_lasso(fc1.weight, 0)"] {
        let g = penalty_grad(penalty, &w);
        assert!(g.iter().all(|x| x.is_finite()), "{penalty} with zero groups: gradient {g:?}");
        assert!(g.iter().enumerate().all(|(i, &x)| w[i] != 0.0 || x == 0.0), "{penalty}: a zero weight moved: {g:?}");
    }
}

/// Runs one step of the phase's graph from given parameters and returns (inputs, outputs).
fn one_step(
    train: &str,
    scalars: &[(&str, f64)],
    masks: Option<&[f64]>,
) -> (HashMap<String, Vec<f64>>, HashMap<String, Vec<f64>>) {
    let c = checked(train);
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model("m").unwrap();
    let phase = *phases(plan).last().unwrap();
    let s = step::build(&c.program, model, phase, 2).unwrap();
    let mut given: HashMap<String, Vec<f64>> = scalars.iter().map(|(k, v)| (k.to_string(), vec![*v])).collect();
    given.insert("labels".into(), vec![2.0, 1.0]);
    if let Some(m) = masks {
        given.insert("fc1.weight.mask".into(), m.to_vec());
        for p in ["fc1.bias", "fc2.weight", "fc2.bias"] {
            let n = model.param(p).unwrap().numel() as usize;
            given.insert(format!("{p}.mask"), vec![1.0; n]);
        }
    }
    let inputs = inputs_with_defaults(s.graph(), given);
    let out = interp::outputs(s.graph(), &by_role(s.graph(), &inputs), Precision::F64).unwrap();
    (inputs, out.into_iter().map(|(r, v)| (r.to_string(), v)).collect())
}

/// The gradient of the objective alone, for comparing updates.
fn objective_grad(train: &str, inputs: &HashMap<String, Vec<f64>>, param: &str) -> Vec<f64> {
    let c = checked(train);
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model("m").unwrap();
    let phase = *phases(plan).last().unwrap();
    let mut f = lower::lower(&c.program, model, &phase.penalties, 2).unwrap();
    let p = f.params.iter().find(|(n, _)| n == param).unwrap().1;
    let g = autodiff::grad(&mut f.graph, f.objective, &[p])[0];
    interp::run(&f.graph, &by_role(&f.graph, inputs), Precision::F64).unwrap()[g.index()].clone()
}

#[test]
fn adam_step_follows_pytorch() {
    let train = "train m on d { phase p { epochs 1  optimizer adam(lr = 0.01, betas = (0.8, 0.9), eps = 1e-6, weight_decay = 0.1)  penalty 1e-3 * hoyer_square(*) } }";
    let (lr, t) = (0.01f64, 3);
    let (bc1, bc2) = (1.0 - 0.8f64.powi(t), 1.0 - 0.9f64.powi(t));
    let (inputs, out) = one_step(
        train,
        &[("lr", lr), ("step_size", lr / bc1), ("inv_bias_correction2_sqrt", 1.0 / bc2.sqrt()), ("strength.0", 1e-3)],
        None,
    );
    let g = objective_grad(train, &inputs, "fc2.weight");
    let (p, m, v) = (&inputs["fc2.weight"], &inputs["fc2.weight.exp_avg"], &inputs["fc2.weight.exp_avg_sq"]);
    for i in 0..p.len() {
        let d = g[i] + 0.1 * p[i];
        let m1 = 0.8 * m[i] + 0.2 * d;
        let v1 = 0.9 * v[i] + 0.1 * d * d;
        let p1 = p[i] - lr / bc1 * m1 / (v1.sqrt() / bc2.sqrt() + 1e-6);
        assert!((out["fc2.weight.exp_avg"][i] - m1).abs() < 1e-12);
        assert!((out["fc2.weight.exp_avg_sq"][i] - v1).abs() < 1e-12);
        assert!((out["fc2.weight"][i] - p1).abs() < 1e-12, "{i}: {} vs {p1}", out["fc2.weight"][i]);
    }
}

#[test]
fn sgd_momentum_and_nesterov_follow_pytorch() {
    for nesterov in [false, true] {
        let train = format!(
            "train m on d {{ phase p {{ epochs 1  optimizer sgd(lr = 0.1, momentum = 0.9, dampening = 0, weight_decay = 0.01, nesterov = {nesterov}) }} }}"
        );
        for first in [1.0, 0.0] {
            let (inputs, out) = one_step(&train, &[("lr", 0.1), ("first_step", first)], None);
            let g = objective_grad(&train, &inputs, "fc1.bias");
            let (p, buf) = (&inputs["fc1.bias"], &inputs["fc1.bias.momentum_buffer"]);
            for i in 0..p.len() {
                let d = g[i] + 0.01 * p[i];
                let b = if first == 1.0 { d } else { 0.9 * buf[i] + d };
                let step = if nesterov { d + 0.9 * b } else { b };
                assert!((out["fc1.bias.momentum_buffer"][i] - b).abs() < 1e-12);
                assert!((out["fc1.bias"][i] - (p[i] - 0.1 * step)).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn masked_weights_stay_zero_and_keep_their_state() {
    let train = "train m on d {
        phase a { epochs 1  optimizer adam(lr = 0.01) }
        prune below 0.3 on fc1.weight
        phase b { epochs 1  optimizer adam(lr = 0.01)  masks frozen }
    }";
    let mask: Vec<f64> = (0..20).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
    let (inputs, out) = one_step(
        train,
        &[("lr", 0.01), ("step_size", 0.01 / 0.1), ("inv_bias_correction2_sqrt", 1.0 / 0.1f64.sqrt())],
        Some(&mask),
    );
    for (i, &m) in mask.iter().enumerate() {
        if m == 0.0 {
            assert_eq!(out["fc1.weight"][i], 0.0, "masked weight {i} moved");
            assert_eq!(out["fc1.weight.exp_avg"][i], inputs["fc1.weight.exp_avg"][i], "state {i} changed");
            assert_eq!(out["fc1.weight.exp_avg_sq"][i], inputs["fc1.weight.exp_avg_sq"][i]);
        } else {
            assert_ne!(out["fc1.weight"][i], inputs["fc1.weight"][i], "unmasked weight {i} did not move");
        }
    }
}

//! The CPU back end against the reference interpreter: every output of whole training steps
//! (forward, loss, penalties, gradients, optimizer updates, masks) must agree in float32, and
//! be bit-identical for any number of threads. And special values (NaN, ±inf, ±0) through
//! every op, on every back end, exactly as the interpreter gives them.

mod common;

use common::{inputs_for, run, Values};
use hoyer_compiler::pipeline;
use hoyer_front::check_source;
use hoyer_front::program::PlanStep;
use hoyer_ir::{Augment, Binary, Dtype, Graph, ReduceOp, Role, Scalar, Unary};
use hoyer_runtime::backend::{Backend, Interpreter};
use hoyer_runtime::cpu::Cpu;
use hoyer_runtime::data::Rng;

fn compare(spec: &str, batch: usize) {
    let c = check_source(spec).unwrap_or_else(|d| panic!("{d:#?}"));
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model(&plan.model).unwrap();
    let cpus: Vec<Cpu> = [1, 2, 4].iter().map(|&t| Cpu::new(t).unwrap()).collect();
    for s in &plan.steps {
        let PlanStep::Phase(phase) = s else { continue };
        let (_, planned) = pipeline::step(&c.program, model, phase, batch, &cpus[0].options()).unwrap();
        let inputs = inputs_for(&planned.graph, 17);
        let want = run(&Interpreter, &planned, &inputs);
        let one = run(&cpus[0], &planned, &inputs);
        for (name, w) in &want {
            for (i, (a, b)) in w.iter().zip(&one[name]).enumerate() {
                let err = (a - b).abs() / a.abs().max(1.0);
                assert!(err <= 1e-5, "phase {}: {name}[{i}]: interpreter {a}, cpu {b}", phase.name);
            }
        }
        // Threads only choose which tasks they run: the bits do not change.
        for cpu in &cpus[1..] {
            let got = run(cpu, &planned, &inputs);
            for (name, v) in &one {
                let same = v.iter().zip(&got[name]).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "phase {}: {name} differs between 1 and {} threads", phase.name, cpu.threads());
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
fn embeddings_of_token_ids_with_rows_read_many_times() {
    compare(
        &format!(
            "{DATA}model m(x: i32[5]) {{ e = embedding(x, 6, 4)\n n = layernorm(e)\n o = n |> flatten |> dense(3)\n return o }}
             train m on d {{ phase a {{ epochs 1  optimizer adam(lr = 1e-3)  penalty 2e-4 * hoyer_square(e.weight) }} }}"
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

/// Large enough that products are tiled, loop nests cut into tasks, whole-tensor reductions
/// split in two stages, and reductions vectorized along either axis.
#[test]
fn large_layers_split_into_tasks() {
    compare(
        "data d = synthetic(classes = 3, train = 60, test = 12)
         model m(x: f32[256]) { fc1 = dense(x, 300) |> relu\n fc2 = dense(fc1, 3)\n return fc2 }
         train m on d {
            phase a { epochs 1  optimizer adam(lr = 1e-3)  penalty 1e-4 * (group_hs(*.weight, 0) + hoyer_square(*)) }
            prune below std_ratio(0.5) on *
            phase b { epochs 1  optimizer sgd(lr = 0.1, momentum = 0.9)  masks frozen }
         }",
        203,
    );
}

/// Convolutions with padding and stride, tiled and strided pooling, and their gradients
/// (windows, their sums, the first maximum), channels-last inside and flattened as PyTorch.
/// The first phase's large learning rate makes small gradients visible in the weights.
#[test]
fn conv_nets_with_padding_stride_and_pooling() {
    compare(
        "data d = synthetic(classes = 3, train = 60, test = 12)
         model m(x: f32[3, 11, 10]) {
            c1 = conv2d(x, 6, kernel = 3, padding = 1) |> relu |> maxpool(2)
            c2 = conv2d(c1, 5, kernel = 3, stride = 2, padding = 1, bias = false) |> relu |> avgpool(2, stride = 1)
            c3 = conv2d(c2, 4, kernel = 2, padding = 1)
            fc = dense(global_avgpool(c3) |> dropout(0.25), 3)
            return fc
         }
         train m on d {
            phase a { epochs 1  optimizer sgd(lr = 100)  penalty 1e-4 * (group_hs(*.weight, 0) + hoyer_square(*)) }
            prune below std_ratio(0.5) on *
            phase b { epochs 1  optimizer adam(lr = 1e-3)  masks frozen }
         }",
        5,
    );
}

/// Penalties over unit groups (`coupled`): each filter side by side with its batch norm's γ
/// and β and its readers' input channels (views of the parameters, padded and added), a
/// residual stream's channels across both of its writers, and the gradient back to each.
#[test]
fn coupled_group_penalties_over_batch_norm_and_residuals() {
    compare(
        "data d = synthetic(classes = 3, train = 60, test = 12)
         model m(x: f32[2, 6, 6]) {
            c0 = conv2d(x, 4, kernel = 3, padding = 1, bias = false)
            n0 = batchnorm(c0) |> relu
            c1 = conv2d(n0, 3, kernel = 3, padding = 1, bias = false)
            n1 = batchnorm(c1) |> relu
            c2 = conv2d(n1, 4, kernel = 3, padding = 1, bias = false)
            b = relu(n0 + batchnorm(c2)) |> maxpool(2)
            fc = dense(flatten(b), 3)
            return fc
         }
         train m on d {
            phase a { epochs 1  optimizer sgd(lr = 1, momentum = 0.9)
                penalty 1e-2 * group_hs(coupled(c*.weight), 0) + 1e-3 * group_lasso(coupled(fc.weight), 0) }
            prune filters below 0.5 on coupled(c*.weight)
            phase b { epochs 1  optimizer adam(lr = 1e-3)  masks frozen }
         }",
        5,
    );
}

/// Every op on NaN, ±inf, ±0 and ordinary numbers, on every back end, as the interpreter
/// gives them (libm functions to a few ulps on ordinary numbers).
#[test]
fn special_values_through_every_op() {
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1.5, -2.25, 3.0e-39];
    let n = specials.len();
    // Every ordered pair, as two columns [n*n].
    let a: Vec<f32> = (0..n * n).map(|i| specials[i / n]).collect();
    let b: Vec<f32> = (0..n * n).map(|i| specials[i % n]).collect();
    let mut g = Graph::default();
    // Tensors of this test, named by it.
    let named = |n: &str| Role::param(n);
    let x = g.input_value(named("a"), vec![n * n]);
    let y = g.input_value(named("b"), vec![n * n]);
    let mut outputs = Vec::new();
    for u in [
        Unary::Neg,
        Unary::Abs,
        Unary::Sqrt,
        Unary::Exp,
        Unary::Log,
        Unary::Sign,
        Unary::Relu,
        Unary::Step,
        Unary::Recip,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Erf,
    ] {
        outputs.push((named(u.name()), g.unary(u, x)));
    }
    for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max, Binary::Eq, Binary::Random] {
        outputs.push((named(op.name()), g.binary(op, x, y)));
    }
    outputs.push((named("pow2"), g.pow_const(x, 2.0)));
    outputs.push((named("pow3"), g.pow_const(x, 3.0)));
    outputs.push((named("select"), g.select(x, y, x)));
    // Reductions over rows of the pair table: each row holds one `a` and every `b`.
    let rows = g.reshape(y, vec![n, n]);
    let prod = g.binary(Binary::Mul, x, y);
    let prod_rows = g.reshape(prod, vec![n, n]);
    outputs.push((named("reduce_sum"), g.reduce(ReduceOp::Sum, prod_rows, vec![1])));
    outputs.push((named("reduce_max"), g.reduce(ReduceOp::Max, rows, vec![0])));
    outputs.push((named("reduce_max_rows"), g.reduce(ReduceOp::Max, prod_rows, vec![1])));
    g.outputs = outputs;
    let inputs: Values = [(named("a"), a), (named("b"), b)].into_iter().collect();
    let planned = pipeline::plan(&g, &Cpu::new(1).unwrap().options()).unwrap();
    let want = run(&Interpreter, &planned, &inputs);
    for backend in [&Cpu::new(1).unwrap() as &dyn Backend, &Cpu::new(2).unwrap()] {
        let got = run(backend, &planned, &inputs);
        for (name, w) in &want {
            for (i, (&e, &o)) in w.iter().zip(&got[name]).enumerate() {
                let libm = matches!(name.to_string().as_str(), "exp" | "log" | "pow3" | "tanh" | "sigmoid" | "erf")
                    && e.is_finite()
                    && e != 0.0;
                let ok = if e.is_nan() {
                    o.is_nan()
                } else if libm {
                    (e - o).abs() <= 4.0 * f32::EPSILON * e.abs()
                } else {
                    e.to_bits() == o.to_bits()
                };
                assert!(
                    ok,
                    "{} {name}[{i}] (a = {}, b = {}): interpreter {e:?}, back end {o:?}",
                    backend.name(),
                    inputs[&named("a")][i % inputs[&named("a")].len()],
                    inputs[&named("b")][i % inputs[&named("b")].len()]
                );
            }
        }
    }
}

/// The training gather's augmentation (crop with padding, mirror) against a direct
/// implementation of torchvision's RandomCrop then RandomHorizontalFlip, on every back end.
#[test]
fn augmented_gather_crops_and_flips_as_torchvision() {
    use hoyer_compiler::graph::lower::Augmentation;
    let (rows, c, h, w, batch, padding) = (7usize, 2usize, 5usize, 4usize, 3usize, 2usize);
    let n = c * h * w;
    let mut rng = Rng::new(5);
    let table: Vec<f32> = (0..rows * n).map(|i| 1.0 + i as f32).collect();
    let order: Vec<f32> = vec![4.0, 1.0, 6.0, 0.0, 2.0, 3.0, 5.0];
    let draw = |rng: &mut Rng, k: u64| (0..rows).map(|_| rng.below(k) as f32).collect::<Vec<f32>>();
    let (dy, dx, flip) =
        (draw(&mut rng, 2 * padding as u64 + 1), draw(&mut rng, 2 * padding as u64 + 1), draw(&mut rng, 2));
    let inputs: Values = [
        (Role::Table, table.clone()),
        (Role::TableLabels, (0..rows).map(|i| i as f32).collect()),
        (Role::Order, order.clone()),
        (Role::Scalar(Scalar::Start), vec![2.0]),
        (Role::Augment(Augment::Dy), dy.clone()),
        (Role::Augment(Augment::Dx), dx.clone()),
        (Role::Augment(Augment::Flip), flip.clone()),
    ]
    .into_iter()
    .collect();
    let a = Augmentation { padding, flip: true };
    let planned =
        pipeline::gather(rows, &[c, h, w], Dtype::F32, 1, batch, Some(a), &Cpu::new(1).unwrap().options()).unwrap();
    let mut want = vec![0f32; batch * n];
    for b in 0..batch {
        let r = order[2 + b] as usize;
        for ch in 0..c {
            for i in 0..h {
                for j in 0..w {
                    let jj = if flip[r] == 1.0 { w - 1 - j } else { j };
                    let (si, sj) =
                        (i as i64 + dy[r] as i64 - padding as i64, jj as i64 + dx[r] as i64 - padding as i64);
                    let inside = (0..h as i64).contains(&si) && (0..w as i64).contains(&sj);
                    want[b * n + (ch * h + i) * w + j] =
                        if inside { table[r * n + (ch * h + si as usize) * w + sj as usize] } else { 0.0 };
                }
            }
        }
    }
    assert!(want.contains(&0.0) && flip.contains(&1.0), "the case pads and flips");
    for backend in [&Interpreter as &dyn Backend, &Cpu::new(1).unwrap(), &Cpu::new(2).unwrap()] {
        assert_eq!(run(backend, &planned, &inputs)[&Role::Data], want, "{}", backend.name());
    }
}

/// Batched products of two activations (attention's q·kᵀ and its weights times v), with an
/// operand that is a permuted view (batch stride smaller than a row's), an epilogue over
/// [batch, m, n], and their gradients' shapes (transposed operands); many small products and
/// a few large ones cut into tasks, on one and on three threads.
#[test]
fn batched_products_agree_with_the_interpreter() {
    for (batch, t, d) in [(12usize, 5usize, 4usize), (3, 70, 48)] {
        let mut g = Graph::default();
        let named = |s: &str| Role::param(s);
        let q = g.input_value(named("q"), vec![batch, t, d]);
        let k = g.input_value(named("k"), vec![batch, t, d]);
        // v arrives as [t, batch, d] and is read as [batch, t, d] through a permute.
        let v_in = g.input_value(named("v"), vec![t, batch, d]);
        let v = g.permute(v_in, vec![1, 0, 2]);
        let scores = g.matmul(q, k, false, true);
        let scale = g.constant(0.5, vec![batch, t, t]);
        let scaled = g.binary(Binary::Mul, scores, scale);
        let w = g.unary(Unary::Tanh, scaled);
        let out = g.matmul(w, v, false, false);
        let back = g.matmul(w, out, true, false);
        g.outputs = vec![(named("scores"), w), (named("out"), out), (named("back"), back)];
        let inputs: Values = ["q", "k", "v"]
            .iter()
            .enumerate()
            .map(|(i, n)| (named(n), (0..batch * t * d).map(|j| ((j * 7 + i * 3) % 11) as f32 / 11.0 - 0.4).collect()))
            .collect();
        let planned = pipeline::plan(&g, &Cpu::new(1).unwrap().options()).unwrap();
        let want = run(&Interpreter, &planned, &inputs);
        for backend in [&Cpu::new(1).unwrap() as &dyn Backend, &Cpu::new(3).unwrap()] {
            let got = run(backend, &planned, &inputs);
            for (name, w) in &want {
                for (i, (a, b)) in w.iter().zip(&got[name]).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{batch}×{t}×{d} {name}[{i}]: {a} vs {b}");
                }
            }
        }
    }
}

//! Every layer's gradient, as autodiff derives it from the layer's lowering, against central
//! finite differences of the training loss, in float64 through the reference interpreter:
//! one small model per layer kind, every parameter.

use hoyer_compiler::graph::{autodiff, lower};
use hoyer_front::check_source;
use hoyer_ir::interp::{self, Precision};
use hoyer_ir::{numel, Dtype, Role, Scalar};
use std::collections::HashMap;

mod common;
use common::numbers;

const BATCH: usize = 3;

/// A model of `input` whose body is `body` (ending in class scores), trained on synthetic
/// data of 3 classes.
fn spec(input: &str, body: &str) -> String {
    format!(
        "data d = synthetic(classes = 3, train = 6, test = 3)
model m(x: {input}) {{
{body}
}}
train m on d {{ phase p {{ epochs 1  optimizer sgd(lr = 0.1) }} }}"
    )
}

/// Every parameter's derived gradient against (L(p + h) − L(p − h)) / 2h, element by element.
fn check_gradients(what: &str, spec: &str) {
    let c = check_source(spec).unwrap_or_else(|d| panic!("{what}: {d:#?}"));
    let model = c.program.model("m").unwrap();
    let mut f = lower::lower(&c.program, model, &[], BATCH).unwrap();
    let wrt: Vec<_> = f.params.iter().map(|p| p.1).collect();
    let grads = autodiff::grad(&mut f.graph, f.loss, &wrt);
    let g = &f.graph;
    let mut inputs: interp::Values = HashMap::new();
    for (k, (id, role)) in g.inputs().enumerate() {
        let n = numel(g.shape(id));
        let v = match role {
            Role::Labels => (0..n).map(|i| (i % 3) as f64).collect(),
            // Token ids 0..4 of the test's vocabulary of 5: each read several times, 4 never.
            Role::Data if g.value(id).dtype == Dtype::I32 => (0..n).map(|i| ((i * 7 + 3) % 4) as f64).collect(),
            Role::Buffer(b) if b.ends_with("running_var") => vec![1.5; n],
            Role::Scalar(Scalar::DropoutKey) => vec![12345.0],
            _ => numbers(n, k as u64 + 11),
        };
        inputs.insert(role.clone(), v);
    }
    let values = interp::run(g, &inputs, Precision::F64).unwrap();
    let loss_at = |inputs: &interp::Values| interp::run(g, inputs, Precision::F64).unwrap()[f.loss.index()][0];
    let h = 1e-6;
    let mut checked = 0;
    for ((name, _), grad) in f.params.iter().zip(&grads) {
        let derived = &values[grad.index()];
        for i in 0..derived.len() {
            let role = Role::param(name);
            let mut plus = inputs.clone();
            plus.get_mut(&role).unwrap()[i] += h;
            let mut minus = inputs.clone();
            minus.get_mut(&role).unwrap()[i] -= h;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
            let tol = 1e-6 * numeric.abs().max(1.0);
            assert!(
                (derived[i] - numeric).abs() <= tol,
                "{what}: ∂L/∂{name}[{i}] derived {} vs finite differences {numeric}",
                derived[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "{what}: no parameter was checked");
}

#[test]
fn dense_and_activations() {
    for act in ["relu", "tanh", "sigmoid", "gelu", "leaky_relu(slope = 0.2)"] {
        check_gradients(
            act,
            &spec("f32[4]", &format!("    h = dense(x, 5) |> {act}\n    o = dense(h, 3, bias = false)\n    return o")),
        );
    }
}

#[test]
fn conv_pooling_and_batch_norm() {
    check_gradients(
        "conv2d, maxpool, batchnorm",
        &spec(
            "f32[2, 6, 6]",
            "    c = conv2d(x, 3, kernel = 3, padding = 1, stride = 2, bias = false)
    n = batchnorm(c) |> relu |> maxpool(2, stride = 1)
    o = dense(flatten(n), 3)
    return o",
        ),
    );
    check_gradients(
        "dilated conv2d, avgpool, global_avgpool",
        &spec(
            "f32[2, 7, 7]",
            "    c = conv2d(x, 4, kernel = 2, dilation = 2) |> avgpool(2, stride = 1, padding = 1)
    o = dense(global_avgpool(c), 3)
    return o",
        ),
    );
}

#[test]
fn residual_shortcut_and_dropout() {
    check_gradients(
        "shortcut, add, dropout",
        &spec(
            "f32[2, 4, 4]",
            "    c1 = conv2d(x, 2, kernel = 3, padding = 1)
    r = relu(c1 + shortcut(x, 2, stride = 1))
    c2 = conv2d(r, 4, kernel = 3, padding = 1, stride = 2)
    s = c2 + shortcut(r, 4) |> dropout(p = 0.25)
    o = dense(flatten(s), 3)
    return o",
        ),
    );
}

#[test]
fn layer_norm() {
    check_gradients(
        "layernorm",
        &spec("f32[6]", "    h = dense(x, 5)\n    n = layernorm(h) |> relu\n    o = dense(n, 3)\n    return o"),
    );
    check_gradients(
        "layernorm without bias, eps 0.1",
        &spec(
            "f32[6]",
            "    h = dense(x, 4)\n    n = layernorm(h, eps = 0.1, bias = false)\n    o = dense(n, 3)\n    return o",
        ),
    );
}

#[test]
fn embedding() {
    // Rows read several times and one never read (vocabulary 5, ids 0..4 at 12 positions).
    check_gradients(
        "embedding",
        &spec(
            "i32[4]",
            "    e = embedding(x, 5, 3)\n    n = layernorm(e)\n    o = n |> flatten |> dense(3)\n    return o",
        ),
    );
}

#[test]
fn attention_and_dense_per_token() {
    // Causal and not, with and without biases; a per-token MLP after it.
    for (args, what) in [
        ("heads = 2", "attention"),
        ("heads = 2, causal = true", "causal attention"),
        ("heads = 1, causal = true, bias = false", "one head, no biases"),
    ] {
        check_gradients(
            what,
            &spec(
                "i32[4]",
                &format!(
                    "    e = embedding(x, 5, 4)\n    a = attention(e, {args})\n    h = layernorm(e + a)\n\
                     \x20   up = dense(h, 6) |> gelu\n    down = dense(up, 4, bias = false)\n\
                     \x20   o = (h + down) |> flatten |> dense(3)\n    return o"
                ),
            ),
        );
    }
}

#[test]
fn vision_transformer_pieces() {
    // Patches by a strided conv as tokens, a class token and a positional embedding of their
    // own, concatenated and added; attention; the class token read out, or the mean.
    for readout in ["n[0]", "mean_tokens(n)"] {
        check_gradients(
            readout,
            &spec(
                "f32[2, 4, 4]",
                &format!(
                    "    p = conv2d(x, 4, kernel = 2, stride = 2) |> tokens\n    param cls: f32[1, 4] = normal(0.5)\n\
                     \x20   param pos: f32[5, 4] = normal(0.5)\n    h = concat(cls, p) + pos\n\
                     \x20   a = attention(h, heads = 2)\n    n = layernorm(h + a)\n    o = dense({readout}, 3)\n    return o"
                ),
            ),
        );
    }
}

//! `then shrink` is exact: the shrunk model's logits equal the masked model's (1e-5
//! relative), through the reference interpreter, for dense and conv→dense models, with
//! constant units folded into the next layer's bias, and with the units that cannot be
//! folded kept.

use hoyer_compiler::graph::lower;
use hoyer_compiler::shrink::{shrink, Weights};
use hoyer_front::check_source;
use hoyer_front::program::Model;
use hoyer_ir::interp::{self, Precision};
use hoyer_ir::{Output, Role};
use std::collections::HashMap;

fn model(body: &str, input: &str) -> Model {
    let spec = format!(
        "data d = synthetic(classes = 3, train = 30, test = 6)\nmodel m(x: f32[{input}]) {{\n{body}\n}}\n\
         train m on d {{ phase p {{ epochs 1  optimizer sgd(lr = 0.1) }} }}\n"
    );
    let c = check_source(&spec).unwrap_or_else(|d| panic!("{d:#?}"));
    c.program.model("m").unwrap().clone()
}

/// Deterministic weights in [−1, 1] for every parameter; batch norm's running variances in
/// [0.5, 1.5], positive as a trained one's are.
fn weights(m: &Model) -> Weights {
    m.params
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut v: Vec<f32> =
                (0..p.numel() as usize).map(|i| (((i * 37 + k * 11) % 19) as f32 - 9.0) / 9.0).collect();
            if p.name.ends_with("running_var") {
                v.iter_mut().for_each(|x| *x = x.abs() + 0.5);
            }
            (p.name.clone(), v)
        })
        .collect()
}

fn logits(m: &Model, w: &Weights, batch: usize) -> Vec<f64> {
    let (g, _) = lower::lower_eval(m, batch).unwrap();
    let mut inputs: interp::Values = HashMap::new();
    for (id, role) in g.inputs() {
        let n = hoyer_ir::numel(g.shape(id));
        let v = match role.of_param().and_then(|p| w.get(p)) {
            Some(v) => v.iter().map(|&x| x as f64).collect(),
            None => (0..n).map(|i| ((i * 7919 % 23) as f64 - 11.0) / 11.0).collect(),
        };
        inputs.insert(role.clone(), v);
    }
    interp::outputs(&g, &inputs, Precision::F32).unwrap().remove(&Role::Output(Output::Logits)).unwrap()
}

fn same_logits(m: &Model, w: &Weights) -> (Model, Weights) {
    let s = shrink(m, w).unwrap();
    let (a, b) = (logits(m, w, 4), logits(&s.model, &s.weights, 4));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "logit {i}: masked {x}, shrunk {y}");
    }
    (s.model, s.weights)
}

fn zero_row(w: &mut Weights, name: &str, row: usize, width: usize) {
    w.get_mut(name).unwrap()[row * width..(row + 1) * width].fill(0.0);
}

fn zero_column(w: &mut Weights, name: &str, col: usize, width: usize, block: usize) {
    let v = w.get_mut(name).unwrap();
    for r in 0..v.len() / width {
        v[r * width + col * block..r * width + (col + 1) * block].fill(0.0);
    }
}

fn outs(m: &Model) -> Vec<u64> {
    m.nodes
        .iter()
        .filter(|n| n.name.is_some() && n.layer.describe().starts_with(['d', 'c']))
        .map(|n| n.shape[0])
        .collect()
}

#[test]
fn dense_units_go_and_constants_fold_into_the_next_bias() {
    let m = model(
        "    fc1 = dense(x, 10) |> relu\n    fc2 = dense(fc1, 8) |> relu\n    fc3 = dense(fc2, 3)\n    return fc3",
        "12",
    );
    let mut w = weights(&m);
    // fc1 unit 2: zero weights, bias 0.7 (a constant 0.7 after relu, folded into fc2's bias);
    // unit 5: zero weights, bias −0.4 (relu gives 0); unit 7: nothing reads it.
    zero_row(&mut w, "fc1.weight", 2, 12);
    zero_row(&mut w, "fc1.weight", 5, 12);
    w.get_mut("fc1.bias").unwrap()[2] = 0.7;
    w.get_mut("fc1.bias").unwrap()[5] = -0.4;
    zero_column(&mut w, "fc2.weight", 7, 10, 1);
    // fc2 unit 1: a constant that fc3 folds; fc2 unit 4: fc3 does not read it.
    zero_row(&mut w, "fc2.weight", 1, 10);
    zero_column(&mut w, "fc3.weight", 4, 8, 1);
    let (s, sw) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![7, 6, 3], "{:?}", outs(&s));
    assert_eq!(sw["fc2.weight"].len(), 6 * 7);
    assert_eq!(s.parameter_count(), (7 * 12 + 7) + (6 * 7 + 6) + (3 * 6 + 3));
    // The first unit of a layer goes as any other (unit 0 of fc1: nothing reads it).
    zero_column(&mut w, "fc2.weight", 0, 10, 1);
    let (s, _) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![6, 6, 3], "{:?}", outs(&s));
}

#[test]
fn conv_filters_go_through_pooling_and_flatten() {
    // (No relu after fc1: every logit then depends on fc1's bias, where the fold lands.)
    let body = "    c1 = conv2d(x, 4, kernel = 3) |> relu |> maxpool(2)\n    f = flatten(c1)\n    fc1 = dense(f, 5)\n    fc2 = dense(fc1, 3)\n    return fc2";
    let m = model(body, "2, 8, 8");
    let mut w = weights(&m);
    // Filter 1 zero with bias 0.5: a constant channel through relu and pooling, folded into
    // fc1's bias (each of its 9 pixels' columns). Channel 3: fc1 reads none of its columns.
    zero_row(&mut w, "c1.weight", 1, 2 * 9);
    w.get_mut("c1.bias").unwrap()[1] = 0.5;
    for col in 27..36 {
        zero_column(&mut w, "fc1.weight", col, 36, 1);
    }
    // Input channel 1 of c1: its columns zero in every filter (the input never shrinks).
    zero_column(&mut w, "c1.weight", 1, 2 * 9, 9);
    let (s, sw) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![2, 5, 3], "{:?}", outs(&s));
    assert_eq!(sw["fc1.weight"].len(), 5 * 2 * 9);
    assert_eq!(sw["c1.weight"].len(), 2 * 2 * 9);
    // Some of a kept channel's columns unread (Group-HS zeroes single columns): the channel
    // stays whole after flatten, its unread columns with it.
    for col in [0, 4, 20] {
        zero_column(&mut w, "fc1.weight", col, 36, 1);
    }
    let (s, sw) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![2, 5, 3], "{:?}", outs(&s));
    assert_eq!(sw["fc1.weight"].len(), 5 * 2 * 9);
}

#[test]
fn constants_a_reader_cannot_fold_stay() {
    // fc2 has no bias: fc1's constant unit stays. A padded conv sees zeros at its border
    // instead of a constant channel: that channel stays too.
    let m = model("    fc1 = dense(x, 4) |> relu\n    fc2 = dense(fc1, 3, bias = false)\n    return fc2", "5");
    let mut w = weights(&m);
    zero_row(&mut w, "fc1.weight", 0, 5);
    w.get_mut("fc1.bias").unwrap()[0] = 0.9;
    let (s, _) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![4, 3]);
    // The shrink says which stayed and why.
    let notes = shrink(&m, &w).unwrap().notes;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("`fc1`: 1 zeroed neurons stay") && notes[0].contains("`fc2` cannot fold: it has no bias"),
        "{notes:?}"
    );

    let body = "    c1 = conv2d(x, 3, kernel = 3) |> relu\n    c2 = conv2d(c1, 2, kernel = 3, padding = 1) |> relu\n    f = flatten(c2)\n    fc = dense(f, 3)\n    return fc";
    let m = model(body, "1, 6, 6");
    let mut w = weights(&m);
    zero_row(&mut w, "c1.weight", 2, 9);
    w.get_mut("c1.bias").unwrap()[2] = 0.3;
    let (s, _) = same_logits(&m, &w);
    assert_eq!(outs(&s)[0], 3, "the constant channel under a padded conv stays");
    let notes = shrink(&m, &w).unwrap().notes;
    assert!(
        notes.iter().any(|n| n.starts_with("`c1`: 1 zeroed filters stay") && n.contains("its padding sees zeros")),
        "{notes:?}"
    );
    // A zero constant (bias 0) is no contribution at all: it goes even there.
    w.get_mut("c1.bias").unwrap()[2] = 0.0;
    let (s, _) = same_logits(&m, &w);
    assert_eq!(outs(&s)[0], 2);
}

/// A residual block with batch norm: channel 2 of the block's space (read by neither the
/// block's second conv nor the classifier) goes from both convs, both batch norms and the
/// classifier's columns at once; the logits (evaluation mode: running statistics) stay.
#[test]
fn residual_channels_go_from_every_branch_together() {
    let body = "    c0 = conv2d(x, 4, kernel = 3, padding = 1, bias = false)\n    n0 = batchnorm(c0) |> relu\n\
                \x20   c1 = conv2d(n0, 4, kernel = 3, padding = 1, bias = false)\n    n1 = batchnorm(c1)\n\
                \x20   b = relu(n0 + n1)\n    fc = dense(global_avgpool(b), 3)\n    return fc";
    let m = model(body, "2, 5, 5");
    let mut w = weights(&m);
    zero_column(&mut w, "c1.weight", 2, 4 * 9, 9);
    zero_column(&mut w, "fc.weight", 2, 4, 1);
    let (s, sw) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![3, 3, 3], "{:?}", outs(&s));
    assert_eq!(sw["n0.running_mean"].len(), 3);
    assert_eq!(sw["c1.weight"].len(), 3 * 3 * 9);
    // Channel 2 read by the classifier only through the second branch still ties both.
    let mut w2 = w.clone();
    w2.get_mut("fc.weight").unwrap()[2] = 0.5;
    let (s, _) = same_logits(&m, &w2);
    assert_eq!(outs(&s), vec![4, 4, 3]);
}

/// An option-A shortcut (every other pixel, its new channels zero) keeps the streams on both
/// its sides whole, but the channels inside the block go: a filter of the block's first conv
/// that its second conv does not read is removed, with its batch norm entries.
#[test]
fn option_a_blocks_shrink_inside() {
    let body = "    c0 = conv2d(x, 4, kernel = 3, padding = 1, bias = false)\n    n0 = batchnorm(c0) |> relu\n\
                \x20   ca = conv2d(n0, 8, kernel = 3, stride = 2, padding = 1, bias = false)\n    na = batchnorm(ca) |> relu\n\
                \x20   cb = conv2d(na, 8, kernel = 3, padding = 1, bias = false)\n    nb = batchnorm(cb)\n\
                \x20   b = relu(nb + shortcut(n0, 8))\n    fc = dense(global_avgpool(b), 3)\n    return fc";
    let m = model(body, "2, 6, 6");
    let mut w = weights(&m);
    zero_column(&mut w, "cb.weight", 3, 8 * 9, 9);
    // Unread, but on a shortcut's streams: these stay.
    zero_column(&mut w, "ca.weight", 1, 4 * 9, 9);
    zero_column(&mut w, "fc.weight", 5, 8, 1);
    let (s, sw) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![4, 7, 8, 3], "{:?}", outs(&s));
    assert_eq!(sw["na.running_mean"].len(), 7);
    assert_eq!(sw["cb.weight"].len(), 8 * 7 * 9);
}

/// A layer every unit of which could go keeps one: a width of 0 cannot be written (and in a
/// residual block the branch may be all that went).
#[test]
fn a_layer_keeps_at_least_one_unit() {
    let m = model("    fc1 = dense(x, 4) |> relu\n    fc2 = dense(fc1, 3)\n    return fc2", "5");
    let mut w = weights(&m);
    for r in 0..4 {
        zero_row(&mut w, "fc1.weight", r, 5);
    }
    w.get_mut("fc1.bias").unwrap().fill(-1.0);
    // Every unit of fc1 is a constant zero: the logits are fc2's bias.
    let (s, _) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![1, 3]);
}

/// `model_spec` (the text of a shrunk model's `model.hoyer`) checks back to the same model,
/// for every example and valid test spec, and for a shrunk one.
#[test]
fn a_models_spec_text_checks_to_the_same_model() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut files: Vec<_> = ["examples", "tests/valid"]
        .iter()
        .flat_map(|d| std::fs::read_dir(format!("{root}/{d}")).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|e| e == "hoyer"))
        .collect();
    files.sort();
    let mut models = Vec::new();
    for f in &files {
        let c =
            check_source(&std::fs::read_to_string(f).unwrap()).unwrap_or_else(|d| panic!("{}: {d:#?}", f.display()));
        models.extend(c.program.models.iter().cloned());
    }
    let m = model(
        "    fc1 = dense(x, 10) |> relu\n    fc2 = dense(fc1, 8) |> relu\n    fc3 = dense(fc2, 3)\n    return fc3",
        "12",
    );
    let mut w = weights(&m);
    zero_row(&mut w, "fc1.weight", 2, 12);
    models.push(shrink(&m, &w).unwrap().model);
    assert!(models.len() > 10);
    for m in models {
        let text = hoyer_front::summary::model_spec(&m);
        let c = check_source(&text).unwrap_or_else(|d| panic!("{text}\n{d:#?}"));
        let back = &c.program.models[0];
        let layers = |m: &Model| m.nodes.iter().map(|n| (n.layer.describe(), n.shape.clone())).collect::<Vec<_>>();
        let params = |m: &Model| m.params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect::<Vec<_>>();
        assert_eq!(layers(back), layers(&m), "{text}");
        assert_eq!(params(back), params(&m), "{text}");
    }
}

/// A filter, its bias and its batch norm's γ and β are one group (`coupled_with_rows`): with
/// all of them zero, the channel is exactly zero after batch norm and relu, which a padded
/// conv folds, so the filter goes; with only the filter zero, batch norm still gives the
/// channel its γ and β, and it stays, saying so.
#[test]
fn a_filter_goes_with_its_batch_norm() {
    let body = "    c1 = conv2d(x, 3, kernel = 3)\n    b1 = batchnorm(c1) |> relu\n    c2 = conv2d(b1, 2, kernel = 3, padding = 1)\n    b2 = batchnorm(c2) |> relu\n    fc = dense(flatten(b2), 3)\n    return fc";
    let m = model(body, "1, 6, 6");
    assert_eq!(hoyer_compiler::shrink::coupled_with_rows(&m, "c1.weight"), vec!["b1.weight", "b1.bias"]);
    assert_eq!(hoyer_compiler::shrink::coupled_with_rows(&m, "c2.weight"), vec!["b2.weight", "b2.bias"]);
    assert!(hoyer_compiler::shrink::coupled_with_rows(&m, "fc.weight").is_empty());
    let mut w = weights(&m);
    zero_row(&mut w, "c1.weight", 1, 9);
    w.get_mut("c1.bias").unwrap()[1] = 0.0;
    let (s, _) = same_logits(&m, &w);
    assert_eq!(outs(&s)[0], 3, "batch norm's β alone keeps the channel");
    let notes = shrink(&m, &w).unwrap().notes;
    assert!(
        notes.iter().any(
            |n| n.starts_with("`c1`: 1 zeroed filters stay") && n.contains("`b1.weight`, `b1.bias` still not zero")
        ),
        "{notes:?}"
    );
    for name in ["b1.weight", "b1.bias"] {
        w.get_mut(name).unwrap()[1] = 0.0;
    }
    let (s, _) = same_logits(&m, &w);
    assert_eq!(outs(&s)[0], 2, "the filter goes with its batch norm");
    assert!(shrink(&m, &w).unwrap().notes.is_empty());
}

/// The VGG example's model (conv → batch norm → relu → pool, three times, padded convs, then
/// two dense layers): filters pruned with their batch norm's γ and β go, through the pools
/// and `flatten`, and the logits stay. In a residual block a filter's coupling stops where
/// its stream is read twice or added: its own batch norm goes with it, nothing beyond.
#[test]
fn the_vgg_example_shrinks_exactly_and_residual_coupling_stops_at_the_add() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/vgg_fmnist_group_hs.hoyer")).unwrap();
    let checked = check_source(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    let m = checked.program.model("vgg").unwrap().clone();
    let mut w = weights(&m);
    for (conv, rows, per_row) in
        [("conv1", vec![0, 5], 9), ("conv2", vec![3], 8 * 9), ("conv3", vec![1, 2, 30], 16 * 9)]
    {
        for &r in &rows {
            zero_row(&mut w, &format!("{conv}.weight"), r, per_row);
            for coupled in m.coupled_with_rows(&format!("{conv}.weight")) {
                w.get_mut(&coupled).unwrap()[r] = 0.0;
            }
        }
    }
    let (s, _) = same_logits(&m, &w);
    // Every zeroed filter went (and where these made-up weights give a channel batch norm
    // maps to zero by itself, that one too: the logits say it was right to).
    let (got, at_most) = (outs(&s), [6, 15, 29, 64, 10]);
    assert!(got.iter().zip(at_most).all(|(&g, m)| g <= m) && got[3..] == [64, 10], "{got:?}");

    let body = "    c0 = conv2d(x, 4, kernel = 3, padding = 1, bias = false)\n    n0 = batchnorm(c0) |> relu\n\
                \x20   c1 = conv2d(n0, 4, kernel = 3, padding = 1, bias = false)\n    n1 = batchnorm(c1)\n\
                \x20   b = relu(n0 + n1)\n    fc = dense(global_avgpool(b), 3)\n    return fc";
    let m = model(body, "2, 5, 5");
    assert_eq!(m.coupled_with_rows("c1.weight"), vec!["n1.weight", "n1.bias"]);
    // c0's batch norm is its own; the stream after the relu is read by the second conv and
    // the add, and the chain stops there.
    assert_eq!(m.coupled_with_rows("c0.weight"), vec!["n0.weight", "n0.bias"]);
}

/// Zeroes unit `u` of every member of `weight`'s unit group (`Model::unit_group`), as a
/// coupled prune does: rows of the writers, batch norm's entries, the readers' columns.
fn zero_unit_group(m: &Model, w: &mut Weights, weight: &str, u: usize) {
    use hoyer_front::program::Along;
    let g = m.unit_group(weight).unwrap();
    let units = g.units as usize;
    for member in &g.members {
        let v = w.get_mut(&member.name).unwrap();
        let n = v.len();
        match member.along {
            Along::Rows => v[u * n / units..(u + 1) * n / units].fill(0.0),
            Along::Columns => {
                let out = m.param(&member.name).unwrap().shape[0] as usize;
                let rest = n / (out * units);
                for r in 0..out {
                    v[(r * units + u) * rest..(r * units + u + 1) * rest].fill(0.0);
                }
            }
        }
    }
}

/// A unit group follows the dependencies of the layer graph: a filter in a plain chain is
/// the filter, its batch norm's γ and β and the next conv's input channel; a channel of a
/// residual stream is that channel of every layer writing the stream (the stem and each
/// block's last conv, with their batch norms) and of every layer reading it. Zeroed as one,
/// either goes in the shrink, exactly: the stream becomes one channel narrower.
#[test]
fn unit_groups_follow_batch_norm_and_residual_streams() {
    let body = "    c0 = conv2d(x, 4, kernel = 3, padding = 1, bias = false)\n    n0 = batchnorm(c0) |> relu\n\
                \x20   c1 = conv2d(n0, 3, kernel = 3, padding = 1, bias = false)\n    n1 = batchnorm(c1) |> relu\n\
                \x20   c2 = conv2d(n1, 4, kernel = 3, padding = 1, bias = false)\n    n2 = batchnorm(c2)\n\
                \x20   b = relu(n0 + n2)\n    c3 = conv2d(b, 5, kernel = 3, padding = 1)\n\
                \x20   fc = dense(flatten(c3), 3)\n    return fc";
    let m = model(body, "2, 5, 5");
    let group = |w: &str| m.unit_group(w).unwrap().describe_others();
    assert_eq!(group("c1.weight"), "n1.weight, n1.bias, c2.weight's columns");
    assert_eq!(
        group("c0.weight"),
        "n0.weight, n0.bias, c1.weight's columns, c2.weight, n2.weight, n2.bias, c3.weight's columns"
    );
    // After flatten, a channel is its block of 5·5 columns of the dense layer.
    assert_eq!(group("c3.weight"), "fc.weight's columns");
    assert_eq!(m.unit_group("c3.weight").unwrap().shape(&m), vec![5, 4 * 9 + 3 * 25]);
    assert!(m.unit_group("n0.weight").is_none() && m.unit_group("fc.bias").is_none());

    let mut w = weights(&m);
    zero_unit_group(&m, &mut w, "c1.weight", 2);
    zero_unit_group(&m, &mut w, "c0.weight", 1);
    zero_unit_group(&m, &mut w, "c3.weight", 0);
    let (s, _) = same_logits(&m, &w);
    assert_eq!(outs(&s), vec![3, 2, 3, 4, 3], "c0 and c2 (the stream) lose channel 1, c1 its unit 2, c3 its unit 0");
}

/// A transformer's model (free parameters, tokens, concatenation, attention, a token read
/// out, blocks) is written back as a spec that checks to the same layers and parameters,
/// as `model.hoyer` is after a shrink.
#[test]
fn a_vision_transformer_is_written_back_as_it_was() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/vit_mnist.hoyer")).unwrap();
    let m = check_source(&text).unwrap_or_else(|d| panic!("{d:#?}")).program.model("vit").unwrap().clone();
    let written = hoyer_front::summary::model_spec(&m);
    let c = check_source(&written).unwrap_or_else(|d| panic!("{written}\n{d:#?}"));
    let back = &c.program.models[0];
    let layers = |m: &Model| m.nodes.iter().map(|n| (n.layer.describe(), n.shape.clone())).collect::<Vec<_>>();
    let params = |m: &Model| m.params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect::<Vec<_>>();
    assert_eq!(layers(back), layers(&m), "{written}");
    assert_eq!(params(back), params(&m), "{written}");
}

//! Blocks and repeats are a way of writing a model, not another model: ResNet-20 written with
//! a block and `repeat` (examples/resnet20_cifar.hoyer) trains — Group-HS, a group prune and
//! shrink, fine-tuning — to the same bits as the same network written out layer by layer
//! (tests/blocks/resnet20_written_out.hoyer), only its parameters named as PyTorch nests its
//! modules. And the shrunk model it writes back (model.hoyer, nested names as paths) checks
//! and loads its own weights.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

/// The spec's ResNet-20 (block and model) with a short schedule on synthetic CIFAR-shaped
/// data.
fn short(spec: &str) -> String {
    let start = spec.find("\nblock ").or_else(|| spec.find("\nmodel ")).unwrap();
    let model = &spec[start..spec.find("\ntrain ").unwrap()];
    format!(
        "data d = synthetic(classes = 10, train = 48, test = 16, seed = 3)
{model}
train resnet20 on d {{
    batch 16
    seed 7
    phase sparsify {{
        epochs 2
        optimizer sgd(lr = 0.1, momentum = 0.9, weight_decay = 1e-4)
        penalty 2e-2 * (group_hs(*conv*.weight, 0) + group_hs(*conv*.weight, 1))
    }}
    prune groups below 2e-2 on *conv*.weight, then shrink
    phase finetune {{
        epochs 1
        optimizer sgd(lr = 0.01, momentum = 0.9)
        masks frozen
    }}
}}
"
    )
}

fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, t)| (n, (t.shape().to_vec(), t.data().to_vec()))).collect()
}

/// `conv_s2b3_a.weight` is `layer2.2.conv1.weight`; `fc` is `linear`.
fn nested(flat: &str) -> String {
    let (layer, kind) = flat.split_once('.').unwrap();
    let Some(rest) = layer.strip_prefix("conv_s").or_else(|| layer.strip_prefix("bn_s")) else {
        return format!("{}.{kind}", if layer == "fc" { "linear" } else { layer });
    };
    let module = if layer.starts_with("conv") { "conv" } else { "bn" };
    let (stage, rest) = rest.split_once('b').unwrap();
    let (block, half) = rest.split_once('_').unwrap();
    let index = if half == "a" { 1 } else { 2 };
    format!("layer{stage}.{}.{module}{index}.{kind}", block.parse::<usize>().unwrap() - 1)
}

#[test]
fn resnet20_with_blocks_trains_to_the_bits_of_the_written_out_model() {
    let root = common::Scratch::dir("blocks-resnet20");
    let here = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{here}/{p}")).unwrap();
    let blocks = short(&read("examples/resnet20_cifar.hoyer"));
    let flat = short(&read("tests/blocks/resnet20_written_out.hoyer"))
        .replace("group_hs(*conv*.weight", "group_hs(conv*.weight")
        .replace("on *conv*.weight", "on conv*.weight");
    for (name, spec) in [("blocks", &blocks), ("flat", &flat)] {
        std::fs::write(root.join(format!("{name}.hoyer")), spec).unwrap();
        let (code, _, err) = common::hoyerc_in(&root, &["run", &format!("{name}.hoyer"), "--out", name]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(err.contains("shrink:"), "{name}: the prune removes filters and shrinks: {err}");
    }
    let (b, f) = (tensors(&root.join("blocks/model.safetensors")), tensors(&root.join("flat/model.safetensors")));
    assert_eq!(b.len(), f.len());
    for (name, (shape, data)) in &f {
        let mapped = nested(name);
        let (bs, bd) = b.get(&mapped).unwrap_or_else(|| panic!("{name}: no {mapped} among {:?}", b.keys()));
        assert_eq!((bs, bd), (shape, data), "{name} and {mapped} differ");
    }
}

/// A model of repeated dense blocks, rows pruned and shrunk: model.hoyer writes the shrunk
/// network with nested names as paths (`blocks.0.fc1 = dense(...)`), it checks, and its
/// parameters are exactly those of the model.safetensors written beside it.
#[test]
fn a_shrunk_block_model_is_written_back_with_its_nested_names() {
    let root = common::Scratch::dir("blocks-shrink");
    let spec = "data d = synthetic(classes = 4, train = 200, test = 40)
block mlp(x, width) {
    fc1 = dense(x, width) |> relu
    fc2 = dense(fc1, width) |> relu
    return fc2
}
model net(x: f32[16]) {
    blocks = repeat(2, mlp(x, 32))
    head = dense(blocks, 4)
    return head
}
train net on d {
    batch 20
    phase sparsify {
        epochs 4
        optimizer adam(lr = 1e-2)
        penalty 3e-2 * group_hs(blocks.*.weight, 0)
    }
    prune rows below 5e-2 on blocks.*.weight, then shrink
    phase finetune { epochs 1  optimizer adam(lr = 1e-3)  masks frozen }
}
";
    std::fs::write(root.join("net.hoyer"), spec).unwrap();
    let (code, _, err) = common::hoyerc_in(&root, &["run", "net.hoyer", "--out", "out"]);
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read_to_string(root.join("out/model.hoyer")).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!(
        written.contains("blocks.0.fc1 = relu(dense(x, ") && written.contains("blocks.1.fc2 = relu(dense("),
        "{written}"
    );
    let (code, summary, err) = common::hoyerc_in(&root, &["compile", "out/model.hoyer", "--emit", "model"]);
    assert_eq!(code, 0, "{err}");
    let weights = tensors(&root.join("out/model.safetensors"));
    for (name, (shape, _)) in &weights {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let row = format!("{name} [{}]", dims.join(", "));
        assert!(
            summary.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").starts_with(&row)),
            "{row} is not a parameter of model.hoyer:\n{summary}"
        );
    }
}

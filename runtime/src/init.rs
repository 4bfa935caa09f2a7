//! Initial parameters as PyTorch's defaults: `nn.Linear` and `nn.Conv2d` draw weights and
//! biases from U(-1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5 gives that bound);
//! `nn.BatchNorm2d` starts at weight 1, bias 0, running mean 0, running variance 1.

use crate::data::Rng;
use hoyer_front::program::{LayerOp, Model, ParamKind};

/// Parameters in model order, drawn from `seed`.
pub fn pytorch_default(model: &Model, seed: u64) -> Vec<(String, Vec<f32>)> {
    let mut rng = Rng::new(seed ^ 0x1A17_1A11_5EED);
    model
        .params
        .iter()
        .map(|p| {
            if let LayerOp::BatchNorm { .. } = model.nodes[p.node].op {
                let one = p.name.ends_with(".weight") || p.name.ends_with(".running_var");
                return (p.name.clone(), vec![if one { 1.0 } else { 0.0 }; p.numel() as usize]);
            }
            // fan_in: every axis of the weight but the first (out).
            let weight = model.params.iter().find(|q| q.layer == p.layer && q.kind == ParamKind::Weight).unwrap_or(p);
            let fan_in: u64 = weight.shape[1..].iter().product();
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            let values = (0..p.numel()).map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32).collect();
            (p.name.clone(), values)
        })
        .collect()
}

//! Initial parameters as PyTorch's modules start them: each layer says how (`layers::Init`):
//! `nn.Linear` and `nn.Conv2d` draw weights and biases from U(-1/√fan_in, 1/√fan_in);
//! `nn.BatchNorm2d` and `nn.LayerNorm` start at weight 1, bias 0 (and batch norm's running
//! mean 0, running variance 1); `nn.Embedding` draws from N(0, 1).

use crate::data::Rng;
use hoyer_front::layers::Init;
use hoyer_front::program::Model;

/// Parameters in model order, drawn from `seed` (only the drawn ones take numbers from it,
/// in that order).
pub fn pytorch_default(model: &Model, seed: u64) -> Vec<(String, Vec<f32>)> {
    let mut rng = Rng::new(seed ^ 0x1A17_1A11_5EED);
    model
        .params
        .iter()
        .map(|p| {
            let n = p.numel() as usize;
            let values = match p.init {
                Init::Constant(v) => vec![v as f32; n],
                Init::UniformFanIn { fan_in } => {
                    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                    (0..n).map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32).collect()
                }
                Init::Normal => (0..n).map(|_| rng.normal() as f32).collect(),
                Init::Gaussian { std } => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
            };
            (p.name.clone(), values)
        })
        .collect()
}

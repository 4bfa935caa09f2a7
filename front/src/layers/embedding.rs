//! `embedding(x, vocab, dim)`: PyTorch's `nn.Embedding(vocab, dim)` over a sequence of token
//! ids `i32[t]`: row `x[i]` of `weight` [vocab, dim] for each position, giving [t, dim].
//! Its gradient adds each position's gradient into the row it read; ids are checked against
//! `vocab` when the data is loaded, so a kernel never reads outside the table.

use super::*;

pub static DEF: LayerDef = LayerDef {
    name: "embedding",
    doc: "a learned vector per token id, as nn.Embedding(vocab, dim): weight [vocab, dim], N(0, 1) init",
    args: &[("input", true), ("vocab", true), ("dim", true)],
    example: "embedding(x, 1000, 64)",
    input_dtype: Dtype::I32,
    build,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub vocab: u64,
    pub dim: u64,
}

fn build(b: &mut Build) -> Option<LayerRef> {
    let vocab = b.size("vocab", "the number of token ids", 1, None);
    let dim = b.size("dim", "the size of each embedding", 1, None);
    let (vocab, dim) = (vocab?, dim?);
    if b.input_shape().len() != 1 {
        b.wrong_rank(
            "a sequence of token ids [tokens]",
            "declare the model's input as a sequence of ids, e.g. `x: i32[64]`",
        );
        return None;
    }
    Some(Arc::new(Embedding { vocab, dim }))
}

impl Layer for Embedding {
    /// The gradient's one-hot: tokens × vocabulary.
    fn work(&self, inputs: &[&[u64]], out: &[u64]) -> u64 {
        saturating_product(inputs[0].iter().chain([&self.vocab])).max(saturating_product(out))
    }
    fn name(&self) -> &'static str {
        "embedding"
    }
    fn describe(&self) -> String {
        format!("embedding({}, {})", self.vocab, self.dim)
    }
    fn shape(&self, inputs: &[&[u64]]) -> Vec<u64> {
        vec![inputs[0][0], self.dim]
    }
    fn params(&self, _inputs: &[&[u64]], _out: &[u64]) -> Vec<ParamDef> {
        vec![ParamDef {
            suffix: "weight",
            kind: ParamKind::Weight,
            shape: vec![self.vocab, self.dim],
            init: Init::Normal,
        }]
    }
    /// The ids of the whole batch as one list of rows to gather, then back to [batch, t, dim].
    fn lower(&self, cx: &mut Lowering) -> Result<ValueId, String> {
        let ids = cx.input(0);
        let n: usize = cx.g.shape(ids).iter().product();
        let flat = cx.g.reshape(ids, vec![n]);
        let rows = cx.g.gather(cx.param("weight")?, flat);
        Ok(cx.g.reshape(rows, cx.shape.clone()))
    }
    /// Its output's units are positions and embedding axes, not removable on their own.
    fn units(&self) -> Units {
        Units::Whole
    }
    fn index_bound(&self) -> Option<u64> {
        Some(self.vocab)
    }
}

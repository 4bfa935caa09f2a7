//! `then shrink`: a model and its weights to a smaller model that computes the same logits.
//!
//! Each dense or conv layer's output units (rows, filters) are kept or removed:
//! - a unit no later layer reads (its column or input channel is zero in every reader) goes;
//! - a unit whose incoming weights are all zero is a constant (its bias, through the
//!   activations after it); its readers add what it contributes to their own biases, and it
//!   goes. Where a reader cannot take that (no bias; a padded convolution or pooling, whose
//!   border sees zeros instead of the constant; dropout while training), the unit stays.
//!
//! Liveness runs over the model's nodes: forward for constants (a unit constant in, the
//! same unit constant out of every per-unit op), backward for readers (a kept unit reads
//! what its row or filter touches). A channel of a conv output is a block of H·W units after
//! `flatten`, in PyTorch's order. Residual adds tie their inputs' and output's units into
//! one space, removed only where every branch agrees; batch norm's entries go with their
//! channel. An option-A shortcut places its input's channels among zero ones by position, so
//! the streams on both of its sides are kept whole; the channels inside each block (a conv's
//! filters read only by the next conv) still go.

use hoyer_front::layers::Units;
use hoyer_front::program::{params_of, Model, Node};
use std::collections::HashMap;

/// Weights by parameter name, as PyTorch lays them out (dense `[out, in]`, conv
/// `[out, in, kh, kw]`).
pub type Weights = HashMap<String, Vec<f32>>;

#[derive(Debug, Clone)]
pub struct Shrunk {
    pub model: Model,
    /// The shrunk model's weights and biases (biases with the removed constants folded in).
    pub weights: Weights,
    /// For each node, the original indices of the units it keeps along its first axis.
    pub kept: Vec<Vec<usize>>,
    /// Per layer whose zeroed rows (filters, neurons) stay, how many and why:
    /// `conv3: 27 zeroed filters stay: ...`.
    pub notes: Vec<String>,
}

/// Units of each node along its first axis: a vector's entries, an image's channels.
fn units(node: &Node) -> usize {
    node.shape.first().copied().unwrap_or(1) as usize
}

/// Pixels per unit (1 for vectors).
fn pixels(node: &Node) -> usize {
    node.shape.iter().skip(1).product::<u64>() as usize
}

/// A layer whose output units are rows of its weight (dense, conv).
fn is_layer(node: &Node) -> bool {
    matches!(node.layer.units(), Units::Rows { .. })
}

/// A layer whose border sees zeros (a padded convolution): a constant input unit is not
/// constant there.
fn padded(node: &Node) -> bool {
    matches!(node.layer.units(), Units::Rows { padded: true })
}

/// A layer's weight as rows of `width`, each row a block of `per_in` values per input unit.
struct Rows<'a> {
    w: &'a [f32],
    width: usize,
    per_in: usize,
}

impl Rows<'_> {
    fn block(&self, r: usize, c: usize) -> &[f32] {
        &self.w[r * self.width + c * self.per_in..r * self.width + (c + 1) * self.per_in]
    }
    fn reads(&self, r: usize, c: usize) -> bool {
        self.block(r, c).iter().any(|&x| x != 0.0)
    }
    fn sum(&self, r: usize, c: usize) -> f64 {
        self.block(r, c).iter().map(|&x| x as f64).sum()
    }
}

impl Shrunk {
    /// `data`, a tensor shaped like parameter `name` of `original` (a weight, its mask, its
    /// optimizer state), cut to the shrunk model's shape: kept rows, and of a weight the
    /// kept input units.
    pub fn cut(&self, original: &Model, name: &str, data: &[f32]) -> Option<Vec<f32>> {
        let p = original.param(name)?;
        let node = &original.nodes[p.node];
        // A layer kept whole (layer norm, attention, embedding, a per-token dense layer)
        // keeps its parameters whole: their axes are not its output's first axis.
        if node.layer.units() == Units::Whole {
            return Some(data.to_vec());
        }
        let rows = &self.kept[p.node];
        match p.shape.len() {
            0 => return Some(data.to_vec()),
            1 => return Some(rows.iter().map(|&r| data[r]).collect()),
            _ => {}
        }
        let input = node.inputs.first().copied()?;
        let width = data.len() / units(node);
        let w = Rows { w: data, width, per_in: width / units(&original.nodes[input]).max(1) };
        let mut out = Vec::with_capacity(rows.len() * self.kept[input].len() * w.per_in);
        for &r in rows {
            for &c in &self.kept[input] {
                out.extend_from_slice(w.block(r, c));
            }
        }
        Some(out)
    }
}

/// Nodes whose units are the same units share a space (`Model::unit_spaces`).
fn spaces(model: &Model) -> Vec<usize> {
    model.unit_spaces()
}

/// What goes with the rows of layer weight `weight` (`Model::coupled_with_rows`).
pub fn coupled_with_rows(model: &Model, weight: &str) -> Vec<String> {
    model.coupled_with_rows(weight)
}

/// The spaces (of `spaces`) whose units are never removed: the logits, the input, and both
/// sides of whatever mixes or places units by position (layer norm, an option-A shortcut).
fn whole_spaces(model: &Model, space: &[usize]) -> Vec<usize> {
    let mut whole = vec![space[model.output], space[0]];
    for (i, node) in model.nodes.iter().enumerate() {
        if node.layer.units() == Units::Whole {
            whole.push(space[i]);
            whole.extend(node.inputs.iter().map(|&j| space[j]));
        }
    }
    whole
}

/// The smaller model computing `model`'s logits from `weights`, or why it cannot be made.
pub fn shrink(model: &Model, weights: &Weights) -> Result<Shrunk, String> {
    let n = model.nodes.len();
    let named = |i: usize, what: &str| format!("{}.{what}", model.nodes[i].name.as_deref().unwrap_or(""));
    let mut rows: HashMap<usize, Rows> = HashMap::new();
    for (i, node) in model.nodes.iter().enumerate() {
        if is_layer(node) {
            let w =
                weights.get(&named(i, "weight")).ok_or_else(|| format!("no weights for `{}`", named(i, "weight")))?;
            let width = w.len() / units(node);
            rows.insert(i, Rows { w, width, per_in: width / units(&model.nodes[node.inputs[0]]).max(1) });
        }
    }
    let bias = |i: usize| weights.get(&named(i, "bias"));

    // Forward: each unit's constant value, where it has one.
    let mut constant: Vec<Vec<Option<f32>>> = Vec::with_capacity(n);
    for (i, node) in model.nodes.iter().enumerate() {
        let input = |k: usize| &constant[node.inputs[k]];
        let c: Vec<Option<f32>> = match node.layer.units() {
            Units::Rows { .. } => {
                let w = &rows[&i];
                (0..units(node))
                    .map(|r| {
                        let mut v = bias(i).map_or(0.0, |b| b[r] as f64);
                        for (c, x) in input(0).iter().enumerate() {
                            match x {
                                None if w.reads(r, c) => return None,
                                // A padded conv sees zeros, not the constant, at its border.
                                Some(x) if *x != 0.0 && padded(node) && w.reads(r, c) => return None,
                                Some(x) => v += w.sum(r, c) * *x as f64,
                                None => {}
                            }
                        }
                        Some(v as f32)
                    })
                    .collect()
            }
            Units::Flatten => {
                let per = pixels(&model.nodes[node.inputs[0]]);
                input(0).iter().flat_map(|&c| std::iter::repeat_n(c, per)).collect()
            }
            Units::Sum => input(0).iter().zip(input(1)).map(|(a, b)| Some((*a)? + (*b)?)).collect(),
            // Mixed or placed units, and the model's input: nothing there is folded.
            Units::Whole => vec![None; units(node)],
            Units::PerUnit => {
                let params = |suffix: &str| weights.get(&named(i, suffix)).map(Vec::as_slice);
                (0..units(node)).map(|u| node.layer.constant(input(0).get(u).copied().flatten(), u, &params)).collect()
            }
        };
        constant.push(c);
    }

    // Backward, to a fixpoint (residual adds tie a space's producers to its readers both
    // ways): `keep[space][u]`, whether some reader needs unit u of a space: it varies where
    // read, or the reader cannot fold its constant. The logits, the input and both sides of
    // every option-A shortcut (and layer norm: whatever mixes or places units by position)
    // are kept whole.
    let space = spaces(model);
    let mut keep: Vec<Vec<bool>> = model.nodes.iter().map(|nd| vec![false; units(nd)]).collect();
    let whole_spaces = whole_spaces(model, &space);
    let whole = |keep: &mut Vec<Vec<bool>>| {
        for &s in &whole_spaces {
            keep[s].iter_mut().for_each(|k| *k = true);
        }
    };
    whole(&mut keep);
    // Why a unit is needed where it is a constant: the reader that cannot fold it.
    let mut why: HashMap<(usize, usize), String> = HashMap::new();
    loop {
        let mut next: Vec<Vec<bool>> = model.nodes.iter().map(|nd| vec![false; units(nd)]).collect();
        whole(&mut next);
        for (i, node) in model.nodes.iter().enumerate().rev() {
            match node.layer.units() {
                Units::Rows { .. } => {
                    let (w, j) = (&rows[&i], node.inputs[0]);
                    let s = space[j];
                    for c in 0..units(&model.nodes[j]) {
                        if !(0..units(node)).any(|r| keep[space[i]][r] && w.reads(r, c)) {
                            continue;
                        }
                        let folds = |x: f32| x == 0.0 || (bias(i).is_some() && !padded(node));
                        if !constant[j][c].is_some_and(folds) {
                            next[s][c] = true;
                            if let Some(x) = constant[j][c] {
                                let reader = node.name.as_deref().unwrap_or("a layer");
                                let cannot =
                                    if padded(node) { "its padding sees zeros there" } else { "it has no bias" };
                                why.entry((s, c)).or_insert_with(|| {
                                    format!("each outputs a constant ({x:.3e}, a bias or a batch-norm shift) that `{reader}` cannot fold: {cannot}")
                                });
                            }
                        }
                    }
                }
                Units::Flatten => {
                    let (j, per) = (node.inputs[0], pixels(&model.nodes[node.inputs[0]]));
                    for c in 0..units(&model.nodes[j]) {
                        if next[space[i]][c * per..(c + 1) * per].iter().any(|&k| k) {
                            next[space[j]][c] = true;
                        }
                    }
                }
                _ => {}
            }
        }
        // Monotone: what was needed stays needed; done when nothing new is.
        let mut grew = false;
        for (k, nk) in keep.iter_mut().zip(&next) {
            for (a, &b) in k.iter_mut().zip(nk) {
                grew |= b && !*a;
                *a |= b;
            }
        }
        if !grew {
            // Settled. A layer keeps at least one unit (kept units compute what they did): a
            // width of 0 cannot be written, and a residual block's branch may be all that
            // went. Its unit's inputs are then needed too: settle again.
            let mut forced = false;
            for (i, node) in model.nodes.iter().enumerate() {
                if is_layer(node) && !keep[space[i]].iter().any(|&k| k) {
                    keep[space[i]][0] = true;
                    forced = true;
                }
            }
            if !forced {
                break;
            }
        }
    }
    // After `flatten`, a kept channel keeps its whole block of H·W units (the shrunk model's
    // shapes say so), the ones no reader needs included; a removed channel's block goes.
    for (i, node) in model.nodes.iter().enumerate() {
        if node.layer.units() == Units::Flatten {
            let (j, per) = (node.inputs[0], pixels(&model.nodes[node.inputs[0]]));
            for c in 0..units(&model.nodes[j]) {
                let k = keep[space[j]][c];
                keep[space[i]][c * per..(c + 1) * per].iter_mut().for_each(|u| *u = k);
            }
        }
    }
    let kept: Vec<Vec<usize>> =
        (0..n).map(|i| (0..units(&model.nodes[i])).filter(|&u| keep[space[i]][u]).collect()).collect();
    let keeps = |i: usize, u: usize| keep[space[i]][u];

    let widths: HashMap<String, u64> = (0..n)
        .filter(|&i| is_layer(&model.nodes[i]))
        .filter_map(|i| Some((model.nodes[i].name.clone()?, kept[i].len() as u64)))
        .collect();
    let new = with_widths(model, &widths)?;
    let notes = kept_notes(model, weights, &rows, &space, &keep, &whole_spaces, &why);
    let mut shrunk = Shrunk { model: new, weights: Weights::new(), kept, notes };
    for (i, node) in model.nodes.iter().enumerate() {
        if !is_layer(node) {
            continue;
        }
        let w = &rows[&i];
        let cut = shrunk.cut(model, &named(i, "weight"), w.w).expect("a layer's weight");
        shrunk.weights.insert(named(i, "weight"), cut);
        if let Some(b) = bias(i) {
            let j = node.inputs[0];
            // Each removed constant input's contribution, folded in.
            let folded: Vec<f32> = shrunk.kept[i]
                .iter()
                .map(|&r| {
                    let extra: f64 = (0..units(&model.nodes[j]))
                        .filter(|&c| !keeps(j, c))
                        .map(|c| w.sum(r, c) * constant[j][c].unwrap_or(0.0) as f64)
                        .sum();
                    (b[r] as f64 + extra) as f32
                })
                .collect();
            shrunk.weights.insert(named(i, "bias"), folded);
        }
    }
    // Batch norm's parameters and statistics go with their channels.
    for p in &model.params {
        if !shrunk.weights.contains_key(&p.name) {
            if let Some(v) = weights.get(&p.name) {
                let cut = shrunk.cut(model, &p.name, v).unwrap_or_else(|| v.clone());
                shrunk.weights.insert(p.name.clone(), cut);
            }
        }
    }
    Ok(shrunk)
}

/// For each layer, its zeroed rows that stay, and why (the first reason found).
fn kept_notes(
    model: &Model,
    weights: &Weights,
    rows: &HashMap<usize, Rows>,
    space: &[usize],
    keep: &[Vec<bool>],
    whole_spaces: &[usize],
    why: &HashMap<(usize, usize), String>,
) -> Vec<String> {
    let mut notes = Vec::new();
    for (i, node) in model.nodes.iter().enumerate().filter(|(_, n)| is_layer(n)) {
        let w = &rows[&i];
        let inputs = units(&model.nodes[node.inputs[0]]);
        let stay: Vec<usize> =
            (0..units(node)).filter(|&u| keep[space[i]][u] && !(0..inputs).any(|c| w.reads(u, c))).collect();
        let Some(&first) = stay.first() else { continue };
        // What goes with these rows (`coupled_with_rows`, the layer's own bias aside) and is
        // not zero there: batch norm's γ or β, so the channel still varies or is a constant.
        let own_bias = format!("{}.bias", node.name.as_deref().unwrap_or(""));
        let alive: Vec<String> = coupled_with_rows(model, &format!("{}.weight", node.name.as_deref().unwrap_or("")))
            .into_iter()
            .filter(|c| *c != own_bias)
            .filter(|c| weights.get(c).is_some_and(|v| stay.iter().any(|&u| v.get(u).is_some_and(|&x| x != 0.0))))
            .collect();
        let reason = if whole_spaces.contains(&space[i]) {
            "their channels are kept whole (the logits, or a residual stream across a shortcut or layer norm)"
                .to_string()
        } else if let Some(r) = stay.iter().find_map(|&u| why.get(&(space[i], u))) {
            r.clone()
        } else if !alive.is_empty() {
            let names: Vec<String> = alive.iter().map(|a| format!("`{a}`")).collect();
            format!(
                "{} still not zero there, so their channels are not zero (a group prune of these rows zeroes them too)",
                names.join(", ")
            )
        } else if keep[space[i]].iter().filter(|&&k| k).count() == 1 && stay.len() == 1 && first == 0 {
            "a layer keeps at least one unit".to_string()
        } else {
            "another layer adds to their channels (a residual branch that is not zero there)".to_string()
        };
        let what = if node.shape.len() == 3 { "filters" } else { "neurons" };
        notes.push(format!("`{}`: {} zeroed {what} stay: {reason}", node.name.as_deref().unwrap_or("?"), stay.len()));
    }
    notes
}

/// `model` with its dense and conv layers `widths[name]` units wide (the others as they
/// are), every shape after them following: a shrunk model, from its layers' widths alone
/// (a checkpoint's weights give them). Only what `shrink` could have made is accepted: no
/// layer wider than the spec's, the logits, the input and whatever is kept whole as they
/// are, and the branches of every residual add equally wide.
pub fn with_widths(model: &Model, widths: &HashMap<String, u64>) -> Result<Model, String> {
    let mut new = model.clone();
    for i in 0..new.nodes.len() {
        if let Some((name, &w)) = new.nodes[i].name.as_ref().and_then(|n| Some((n.clone(), widths.get(n)?))) {
            let full = units(&model.nodes[i]) as u64;
            if w == 0 || w > full {
                return Err(format!("`{name}` is {w} units wide; the spec's is {full}, and a shrink only narrows"));
            }
            if let Some(narrower) = new.nodes[i].layer.with_width(w) {
                new.nodes[i].layer = narrower;
            }
        }
        let shapes: Vec<&[u64]> = new.nodes[i].inputs.iter().map(|&j| new.nodes[j].shape.as_slice()).collect();
        if new.nodes[i].layer.units() == Units::Sum && shapes.windows(2).any(|p| p[0] != p[1]) {
            let name = new.nodes[i].name.clone().unwrap_or_else(|| "a residual add".into());
            return Err(format!("the branches added in `{name}` have shapes {shapes:?}: a shrink keeps them equal"));
        }
        let shape = new.nodes[i].layer.shape(&shapes);
        new.nodes[i].shape = shape;
    }
    let space = spaces(model);
    for s in whole_spaces(model, &space) {
        for (i, node) in model.nodes.iter().enumerate().filter(|(i, _)| space[*i] == s) {
            if new.nodes[i].shape != node.shape {
                let name = node.name.clone().unwrap_or_else(|| format!("node {i}"));
                return Err(format!(
                    "`{name}` has shape {:?}, the spec's {:?}: a shrink keeps the logits, the input and \
                     residual streams across shortcuts whole",
                    new.nodes[i].shape, node.shape
                ));
            }
        }
    }
    new.params = params_of(&new.nodes);
    Ok(new)
}

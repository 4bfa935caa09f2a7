//! `train MODEL on DATA { ... }`: settings, phases, optimizers, learning-rate schedules,
//! penalties (normalised to a weighted sum of regularizer calls) and pruning events.

use super::func::{Evaluator, Shapes, Val};
use super::selector;
use super::values::{bind, boolean, const_eval, count, in_range, number, Range};
use crate::codes::Code;
use crate::diagnostics::{closest, did_you_mean, Diagnostic, Sink};
use crate::layers::fmt_shape;
use crate::program::*;
use crate::syntax::ast::{
    BinOp, Call, Expr, ExprKind, Phase, PhaseStmt, Prune, PruneRule, Setting, SettingValue, Span, TrainDef, TrainStmt,
};
use std::collections::HashMap;

const TRAIN_SETTINGS: [&str; 7] = ["batch", "loss", "seed", "shuffle", "init", "checkpoint", "validation"];
const PHASE_SETTINGS: [&str; 5] = ["epochs", "optimizer", "lr_schedule", "penalty", "masks"];
const OPTIMIZERS: [&str; 3] = ["sgd", "adam", "adamw"];
const SCHEDULES: [&str; 3] = ["constant", "step", "cosine"];
/// Zhu & Gupta's pruning interval when a gradual prune does not say `every N steps`.
pub const DEFAULT_PRUNE_EVERY: u64 = 100;

pub fn check_train(sink: &mut Sink, t: &TrainDef, program: &Program, declared: &Declared) -> Option<TrainPlan> {
    let model = program.model(&t.model.name);
    if model.is_none() && !declared.models.contains(&t.model.name) {
        sink.push(
            Diagnostic::error(Code::UnknownModel, format!("unknown model `{}`", t.model.name))
                .label(t.model.span, "no model of this name")
                .maybe_help(did_you_mean(&t.model.name, declared.models.iter().map(String::as_str)).or_else(|| {
                    Some(if declared.models.is_empty() {
                        "define it with `model NAME(x: f32[...]) { ... }`".into()
                    } else {
                        format!("models in this file: {}", declared.models.join(", "))
                    })
                })),
        );
    }
    let data = program.data_set(&t.data.name);
    if data.is_none() && !declared.data.contains(&t.data.name) {
        let hint = if declared.models.contains(&t.data.name) {
            Some(format!("`{}` is a model; `train MODEL on DATA`", t.data.name))
        } else {
            None
        };
        sink.push(
            Diagnostic::error(Code::UnknownData, format!("unknown data set `{}`", t.data.name))
                .label(t.data.span, "no data set of this name")
                .maybe_help(
                    hint.or_else(|| did_you_mean(&t.data.name, declared.data.iter().map(String::as_str))).or_else(
                        || {
                            Some(if declared.data.is_empty() {
                                "define it with `data NAME = idx(\"folder\")` or `synthetic(...)`".into()
                            } else {
                                format!("data sets in this file: {}", declared.data.join(", "))
                            })
                        },
                    ),
                ),
        );
    }
    if let (Some(m), Some(d)) = (model, data) {
        check_fit(sink, t, m, d);
    }

    let mut plan = TrainPlan {
        model: t.model.name.clone(),
        data: t.data.name.clone(),
        batch: 100,
        loss: Loss::CrossEntropy,
        seed: 0,
        shuffle: true,
        init: None,
        checkpoint_every: None,
        validation: None,
        steps: vec![],
    };
    let mut ok = true;
    let mut seen = Seen::default();
    let mut phase_names: HashMap<&str, Span> = HashMap::new();
    let mut pruned_before = false;
    let mut phases = 0;
    let cx = PhaseContext { model, functions: &program.functions, invalid_fns: &declared.invalid_fns };
    for stmt in &t.body {
        match stmt {
            TrainStmt::Setting(s) => {
                if !seen.first(sink, s) {
                    ok = false;
                    continue;
                }
                ok &= train_setting(sink, s, &mut plan).is_some();
            }
            TrainStmt::Phase(p) => {
                phases += 1;
                if let Some(first) = phase_names.insert(&p.name.name, p.name.span) {
                    sink.push(
                        Diagnostic::error(Code::Duplicate, format!("phase `{}` is defined twice", p.name.name))
                            .label(p.name.span, "defined again here")
                            .label(first, "first defined here")
                            .help("give each phase its own name: phases are named in reports and in `--set`"),
                    );
                    ok = false;
                }
                match cx.phase(sink, p, pruned_before) {
                    Some(plan_phase) => plan.steps.push(PlanStep::Phase(plan_phase)),
                    None => ok = false,
                }
                // A gradual prune counts as written even where it failed its check, so that
                // a later `masks frozen` is not reported as well.
                pruned_before |= p.body.iter().any(|s| matches!(s, PhaseStmt::Prune(_)));
            }
            TrainStmt::Prune(p) => {
                pruned_before = true;
                match cx.prune(sink, p, None) {
                    Some(pp) => plan.steps.push(PlanStep::Prune(pp)),
                    None => ok = false,
                }
            }
        }
    }
    if let Some(m) = model {
        ok &= batch_fits(sink, t, m, plan.batch) && batch_norm_sees_a_batch(sink, t, m, plan.batch);
    }
    if phases == 0 {
        sink.push(
            Diagnostic::error(Code::NoPhases, "training has no phases")
                .label(Span::new(t.span.start, t.span.start + 5), "this `train` block has no `phase`")
                .help("add one: `phase fit { epochs 10  optimizer adam(lr = 1e-3) }`"),
        );
        ok = false;
    }
    (ok && model.is_some() && data.is_some()).then_some(plan)
}

/// The span of the train block's `batch` setting, where it has one.
fn batch_span(t: &TrainDef) -> Option<Span> {
    t.body.iter().find_map(|s| match s {
        TrainStmt::Setting(s) if s.key.name == "batch" => Some(s.span),
        _ => None,
    })
}

/// That a batch of `m`'s largest tensor can be indexed: at most 2^46 elements (2^48 bytes,
/// what a 64-bit machine addresses), so that no size the compiler computes from it wraps.
fn batch_fits(sink: &mut Sink, t: &TrainDef, m: &Model, batch: u64) -> bool {
    const MAX_BATCH_ELEMENTS: u64 = 1 << 46;
    // Per node: the largest tensor its passes compute (its output, or a convolution's
    // columns, an embedding's one-hot gradient).
    let work = |i: usize| m.nodes[i].layer.work(&m.input_shapes(i), &m.nodes[i].shape);
    let Some(i) = (0..m.nodes.len()).max_by_key(|&i| work(i)) else { return true };
    if batch.checked_mul(work(i)).is_some_and(|n| n <= MAX_BATCH_ELEMENTS) {
        return true;
    }
    let largest = &m.nodes[i];
    let numel = largest.shape.iter().product::<u64>();
    let name = largest.binding.as_deref().unwrap_or(largest.layer.name());
    let message = if work(i) > numel {
        format!(
            "a batch of {batch} makes `{name}` compute on {} values per sample on the way: too large for this machine to hold",
            work(i)
        )
    } else {
        format!(
            "a batch of {batch} makes `{name}` {} too large for this machine to hold",
            fmt_shape(&[&[batch][..], &largest.shape].concat())
        )
    };
    let mut d = Diagnostic::error(Code::BadDimension, message)
        .label(largest.span, format!("{} per sample", fmt_shape(&largest.shape)));
    if let Some(span) = batch_span(t) {
        d = d.label(span, format!("a batch of {batch}"));
    }
    sink.push(d.help("a batch of a tensor holds at most 2^46 elements: use a smaller batch"));
    false
}

/// That every batch-norm layer of `m` sees more than one value per channel in a batch of
/// `batch` (batch × pixels per channel): with one, training normalizes every value to 0.
fn batch_norm_sees_a_batch(sink: &mut Sink, t: &TrainDef, m: &Model, batch: u64) -> bool {
    let batch_span = batch_span(t);
    let mut ok = true;
    for node in m.nodes.iter().filter(|n| n.layer.batch_statistics()) {
        let pixels: u64 = node.shape.iter().skip(1).product();
        if batch.saturating_mul(pixels) > 1 {
            continue;
        }
        let mut d = Diagnostic::error(
            Code::BatchNormOneValue,
            format!(
                "batch norm `{}` sees one value per channel in training (a batch of {batch} of shape {:?})",
                node.binding.as_deref().unwrap_or("batchnorm"),
                node.shape
            ),
        )
        .label(node.span, "normalizes each channel over the batch: every value becomes 0");
        if let Some(span) = batch_span {
            d = d.label(span, format!("a batch of {batch}"));
        }
        sink.push(d.help("train with a larger batch (e.g. `batch 32`), or remove this batch norm"));
        ok = false;
    }
    ok
}

/// Names the file declares, valid or not, so that a broken definition is not reported
/// again as "unknown" where it is used.
#[derive(Default)]
pub struct Declared {
    pub models: Vec<String>,
    pub data: Vec<String>,
    pub invalid_fns: Vec<String>,
}

fn check_fit(sink: &mut Sink, t: &TrainDef, m: &Model, d: &DataSet) {
    let outputs = m.nodes[m.output].shape[0];
    let per_position = m.nodes[m.output].shape.len() == 2;
    if per_position && !matches!(d.source, DataSource::Text { .. }) {
        sink.push(
            Diagnostic::error(
                Code::DataMismatch,
                format!(
                    "model `{}` gives scores per position {}, which only text data has targets for",
                    m.name,
                    fmt_shape(&m.nodes[m.output].shape)
                ),
            )
            .label(t.data.span, "one class per sample")
            .label(t.model.span, "this model")
            .help("end a classifier with one vector of scores (`dense(n[0], classes)`, `dense(mean_tokens(n), classes)`), or train on `text(...)`"),
        );
        return;
    }
    if let Some(n) = &d.normalize {
        let channels = if m.input_shape.len() == 3 { m.input_shape[0] } else { 1 };
        if n.mean.len() > 1 && n.mean.len() as u64 != channels {
            sink.push(
                Diagnostic::error(
                    Code::DataMismatch,
                    format!(
                        "`normalize` of `{}` gives {} channels, model `{}` takes {channels}",
                        d.name,
                        n.mean.len(),
                        m.name
                    ),
                )
                .label(n.span, format!("{} channels", n.mean.len()))
                .label(t.model.span, format!("input {:?}", m.input_shape))
                .help("give one mean and one standard deviation per channel of the input, or one of each for all"),
            );
        }
    }
    if let Some((size, padding, span)) = d.augment.crop {
        let fits = matches!(m.input_shape[..], [_, h, w] if h == size && w == size);
        if !fits || padding >= size {
            let help = match m.input_shape[..] {
                [_, h, w] if h == w => {
                    format!("crop to the image's size, `random_crop({h}, padding = 4)`: the padding moves it")
                }
                [_, _, _] => "random crops of non-square images are not supported".to_string(),
                _ => "random crops are for images: declare the input as `x: f32[channels, height, width]`".to_string(),
            };
            sink.push(
                Diagnostic::error(
                    Code::DataMismatch,
                    format!(
                        "`random_crop({size}, padding = {padding})` does not fit model `{}`'s input {:?}",
                        m.name, m.input_shape
                    ),
                )
                .label(span, "this crop")
                .label(t.model.span, format!("input {:?}", m.input_shape))
                .help(help),
            );
        }
    }
    if d.augment.hflip && m.input_shape.len() != 3 {
        sink.push(
            Diagnostic::error(Code::DataMismatch, format!("`hflip` flips images; model `{}` takes a vector", m.name))
                .label(t.data.span, "flipped data")
                .label(t.model.span, format!("input {:?}", m.input_shape))
                .help("remove `hflip`, or declare the input as an image `x: f32[channels, height, width]`"),
        );
    }
    if let DataSource::Cifar10 { .. } = d.source {
        if m.input_shape != [3, 32, 32] || outputs != 10 {
            sink.push(
                Diagnostic::error(
                    Code::DataMismatch,
                    format!(
                        "CIFAR-10 holds 10 classes of [3, 32, 32] images; model `{}` takes {:?} and gives {outputs} scores",
                        m.name, m.input_shape
                    ),
                )
                .label(t.data.span, "CIFAR-10")
                .label(t.model.span, "this model")
                .help("declare the input `x: f32[3, 32, 32]` and end with `dense(..., 10)`"),
            );
        }
    }
    if let DataSource::Text { context, .. } = d.source {
        let out = &m.nodes[m.output].shape;
        let vocab = crate::program::BYTE_VOCABULARY;
        if m.input_shape != [context] || m.input_dtype != hoyer_ir::Dtype::I32 || out[..] != [context, vocab] {
            sink.push(
                Diagnostic::error(
                    Code::DataMismatch,
                    format!(
                        "text of {context}-byte windows needs a model from i32[{context}] to scores [{context}, {vocab}]; `{}` takes {}[{}] and gives {}",
                        m.name,
                        m.input_dtype,
                        m.input_shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
                        fmt_shape(out)
                    ),
                )
                .label(t.data.span, format!("{context} bytes per window"))
                .label(t.model.span, "this model")
                .help(format!(
                    "declare the input `x: i32[{context}]` and end with a per-token `dense(..., {vocab})`: one score per byte value at each position"
                )),
            );
        }
    }
    if let DataSource::Synthetic { classes, .. } = d.source {
        if classes != outputs {
            sink.push(
                Diagnostic::error(
                    Code::DataMismatch,
                    format!("data set `{}` has {classes} classes, model `{}` gives {outputs} scores", d.name, m.name),
                )
                .label(t.data.span, format!("{classes} classes"))
                .label(t.model.span, format!("{outputs} outputs"))
                .help(format!("make the last layer `dense(..., {classes})`, or the data `classes = {outputs}`")),
            );
        }
    }
}

/// Remembers which settings a block gave, to report the second of two.
#[derive(Default)]
struct Seen<'a> {
    keys: HashMap<&'a str, Span>,
}

impl<'a> Seen<'a> {
    fn first(&mut self, sink: &mut Sink, s: &'a Setting) -> bool {
        let key = s.key.name.as_str();
        if key == "penalty" || matches!(s.value, SettingValue::Unknown { .. }) {
            return true;
        }
        if let Some(first) = self.keys.insert(key, s.key.span) {
            sink.push(
                Diagnostic::error(Code::DuplicateSetting, format!("`{key}` is given twice"))
                    .label(s.key.span, "given again here")
                    .label(first, "first given here")
                    .help("keep one of them"),
            );
            return false;
        }
        true
    }
}

fn misplaced(sink: &mut Sink, s: &Setting, block: &str) -> Option<()> {
    let key = s.key.name.as_str();
    let (message, help) = if let SettingValue::Unknown { .. } = s.value {
        let words: &[&str] = if block == "train" { &TRAIN_SETTINGS } else { &PHASE_SETTINGS };
        let suggestion = did_you_mean(key, words.iter().copied().chain(["phase", "prune"]));
        let elsewhere = if block == "train" { &PHASE_SETTINGS[..] } else { &TRAIN_SETTINGS[..] };
        let other = did_you_mean(key, elsewhere.iter().copied())
            .map(|d| format!("{d} (it belongs in {})", if block == "train" { "a phase" } else { "the `train` block" }));
        (
            format!("unknown setting `{key}` in {}", if block == "train" { "a `train` block" } else { "a phase" }),
            suggestion.or(other).unwrap_or_else(|| {
                format!("{} takes: {}", if block == "train" { "`train`" } else { "a phase" }, words.join(", "))
            }),
        )
    } else if block == "train" {
        (format!("`{key}` belongs in a phase"), format!("move it into a `phase` block: each phase has its own `{key}`"))
    } else {
        (
            format!("`{key}` belongs in the `train` block"),
            format!("`{key}` holds for the whole run: move it out of the phase"),
        )
    };
    sink.push(Diagnostic::error(Code::UnknownStatement, message).label(s.key.span, "not here").help(help));
    None
}

fn expr_of(s: &Setting) -> Option<&Expr> {
    match &s.value {
        SettingValue::Expr(e) => Some(e),
        _ => None,
    }
}

fn train_setting(sink: &mut Sink, s: &Setting, plan: &mut TrainPlan) -> Option<()> {
    let key = s.key.name.as_str();
    if !TRAIN_SETTINGS.contains(&key) || matches!(s.value, SettingValue::Unknown { .. }) {
        return misplaced(sink, s, "train");
    }
    let e = expr_of(s)?;
    match key {
        "batch" => plan.batch = count(sink, e, "the batch size", 1)?,
        "seed" => plan.seed = count(sink, e, "the seed", 0)?,
        "shuffle" => plan.shuffle = boolean(sink, e, "`shuffle`")?,
        "checkpoint" => plan.checkpoint_every = Some(count(sink, e, "the checkpoint interval", 1)?),
        "validation" => plan.validation = Some((count(sink, e, "the number of validation samples", 1)?, e.span)),
        "init" => match &e.kind {
            ExprKind::Str(path) if !path.is_empty() => plan.init = Some(path.clone()),
            _ => {
                sink.push(
                    Diagnostic::error(Code::WrongKind, "`init from` needs the path of a safetensors file")
                        .label(e.span, "empty path")
                        .help("e.g. `init from \"runs/dense/model.safetensors\"`"),
                );
                return None;
            }
        },
        _ => {
            // loss
            let ExprKind::Name(n) = &e.kind else { return None };
            if n != "cross_entropy" {
                sink.push(
                    Diagnostic::error(Code::UnknownLoss, format!("unknown loss `{n}`"))
                        .label(e.span, "not a loss")
                        .help(
                            did_you_mean(n, ["cross_entropy"]).unwrap_or_else(|| "the loss is `cross_entropy`".into()),
                        ),
                );
                return None;
            }
        }
    }
    Some(())
}

struct PhaseContext<'a> {
    model: Option<&'a Model>,
    functions: &'a [Function],
    invalid_fns: &'a [String],
}

impl PhaseContext<'_> {
    fn phase(&self, sink: &mut Sink, p: &Phase, pruned_before: bool) -> Option<PhasePlan> {
        let mut ok = true;
        let mut seen = Seen::default();
        let (mut epochs, mut optimizer, mut lr_schedule, mut masks) = (None, None, LrSchedule::Constant, None);
        let mut penalties = Vec::new();
        let mut epochs_known = true;
        // Epochs first: gradual windows and ramps are checked against them.
        for stmt in &p.body {
            if let PhaseStmt::Setting(s) = stmt {
                if s.key.name == "epochs" {
                    if let Some(e) = expr_of(s) {
                        epochs = count(sink, e, "the number of epochs", 1);
                        epochs_known = epochs.is_some();
                        ok &= epochs_known;
                    }
                }
            }
        }
        let mut gradual = Vec::new();
        for stmt in &p.body {
            match stmt {
                PhaseStmt::Prune(pr) => match self.prune(sink, pr, Some((epochs, epochs_known))) {
                    Some(plan) => gradual.push(plan),
                    None => ok = false,
                },
                PhaseStmt::Setting(s) => {
                    if !seen.first(sink, s) {
                        ok = false;
                        continue;
                    }
                    let key = s.key.name.as_str();
                    if !PHASE_SETTINGS.contains(&key) || matches!(s.value, SettingValue::Unknown { .. }) {
                        misplaced(sink, s, "phase");
                        ok = false;
                        continue;
                    }
                    let Some(e) = expr_of(s) else { continue };
                    let done = match key {
                        "epochs" => Some(()),
                        "optimizer" => optimizer_of(sink, e).map(|o| optimizer = Some(o)),
                        "lr_schedule" => schedule_of(sink, e).map(|l| lr_schedule = l),
                        "masks" => masks_of(sink, e).map(|m| masks = Some((m, s.key.span))),
                        _ => self.penalty(sink, e).map(|terms| penalties.extend(terms)),
                    };
                    ok &= done.is_some();
                }
            }
        }
        let mut missing = Vec::new();
        if epochs.is_none() && epochs_known {
            missing.push(("epochs", "epochs 10"));
        }
        if optimizer.is_none()
            && !p.body.iter().any(|s| matches!(s, PhaseStmt::Setting(s) if s.key.name == "optimizer"))
        {
            missing.push(("optimizer", "optimizer adam(lr = 1e-3)"));
        }
        // A misspelt setting is reported as unknown; do not also report it as missing.
        let unknown: Vec<&str> = p
            .body
            .iter()
            .filter_map(|s| match s {
                PhaseStmt::Setting(s) if matches!(s.value, SettingValue::Unknown { .. }) => Some(s.key.name.as_str()),
                _ => None,
            })
            .collect();
        missing.retain(|(what, _)| !unknown.iter().any(|u| closest(u, [*what]).is_some()));
        for (what, example) in missing {
            sink.push(
                Diagnostic::error(Code::MissingSetting, format!("phase `{}` has no `{what}`", p.name.name))
                    .label(p.name.span, format!("this phase needs `{what}`"))
                    .help(format!("add `{example}`")),
            );
            ok = false;
        }
        let masks_frozen = matches!(masks, Some((true, _)));
        if let Some((true, span)) = masks {
            if !pruned_before && gradual.is_empty() {
                sink.push(
                    Diagnostic::error(Code::FrozenBeforePrune, "masks are frozen before anything is pruned")
                        .label(span, "nothing has been pruned yet")
                        .help("add a `prune` between the previous phase and this one, e.g. `prune below std_ratio(0.03) on *`"),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        Some(PhasePlan {
            name: p.name.name.clone(),
            epochs: epochs?,
            optimizer: optimizer?,
            lr_schedule,
            penalties,
            masks_frozen,
            gradual,
        })
    }

    /// A pruning event; `phase` carries the phase's epochs for a prune written inside one.
    /// That every tensor a group prune selects has rows and columns (two or more axes).
    fn group_targets(&self, sink: &mut Sink, p: &Prune, tensors: &Option<Vec<String>>, kind_span: Span) -> Option<()> {
        let (Some(m), Some(names)) = (self.model, tensors) else { return Some(()) };
        let flat: Vec<&Param> = names.iter().filter_map(|n| m.param(n)).filter(|p| p.shape.len() < 2).collect();
        let Some(first) = flat.first() else { return Some(()) };
        let sel = p.selectors.iter().find(|s| selector::matches(&s.pattern, first)).map_or(p.span, |s| s.span);
        let more = if flat.len() > 1 { format!(" (and {} more)", flat.len() - 1) } else { String::new() };
        sink.push(
            Diagnostic::error(
                Code::BadTarget,
                format!(
                    "group pruning needs weights with two or more axes; `{}` has shape {}",
                    first.name,
                    fmt_shape(&first.shape)
                ),
            )
            .label(sel, format!("selects `{}`{more}", first.name))
            .label(kind_span, "groups are rows and columns of a weight")
            .help("select weights only, e.g. `*.weight`"),
        );
        None
    }

    fn prune(&self, sink: &mut Sink, p: &Prune, phase: Option<(Option<u64>, bool)>) -> Option<PrunePlan> {
        let first_word = Span::new(p.span.start, p.span.start + 5);
        match (phase.is_some(), p.gradually) {
            (true, None) => {
                sink.push(
                    Diagnostic::error(Code::MisplacedPrune, "a one-shot prune inside a phase")
                        .label(first_word, "runs between phases")
                        .help("move it between two phases, or prune during the phase with `prune gradually to sparsity ...`"),
                );
                return None;
            }
            (false, Some(span)) => {
                sink.push(
                    Diagnostic::error(Code::MisplacedPrune, "a gradual prune between phases")
                        .label(span, "gradual pruning runs during a phase")
                        .help("move it into the phase whose epochs it spans"),
                );
                return None;
            }
            _ => {}
        }
        if p.gradually.is_none() {
            if let Some(e) = p.window.as_ref().map(|w| w.0.span).or(p.every.as_ref().map(|e| e.span)) {
                sink.push(
                    Diagnostic::error(Code::MisplacedPrune, "a prune window or interval without `gradually`")
                        .label(e, "only gradual prunes have a schedule")
                        .help("write `prune gradually to sparsity ...`, or drop the schedule"),
                );
                return None;
            }
        }
        let tensors = match self.model {
            Some(m) => Some(selector::expand(sink, &p.selectors, m)?),
            None => None,
        };

        let criterion = match &p.rule {
            PruneRule::Below { groups: None, threshold } => threshold_of(sink, threshold)?,
            PruneRule::Below { groups: Some((kind, kind_span)), threshold } => {
                let rule = match threshold_of(sink, threshold)? {
                    PruneCriterion::StdRatio { ratio } => GroupRule::StdRatio(ratio),
                    PruneCriterion::Magnitude { threshold } => GroupRule::Below(threshold),
                    _ => return None,
                };
                self.group_targets(sink, p, &tensors, *kind_span)?;
                PruneCriterion::Groups { kind: *kind, rule }
            }
            PruneRule::ToSparsity { groups, target, globally } => {
                let v = number(sink, target, "the target sparsity")?;
                let target = in_range(sink, v, target.span, "the target sparsity", Range::Fraction)?;
                match groups {
                    None => PruneCriterion::Sparsity { target, global: globally.is_some() },
                    Some((kind, kind_span)) => {
                        self.group_targets(sink, p, &tensors, *kind_span)?;
                        PruneCriterion::Groups {
                            kind: *kind,
                            rule: GroupRule::Sparsity { target, global: globally.is_some() },
                        }
                    }
                }
            }
        };
        let tensors = match (p.coupled, tensors) {
            (Some(word), Some(names)) => {
                if !matches!(criterion, PruneCriterion::Groups { kind: crate::syntax::ast::GroupKind::Rows, .. }) {
                    sink.push(
                        Diagnostic::error(Code::BadTarget, "coupled groups are a layer's units: filters or rows")
                            .label(word, "each unit with what goes with it")
                            .help("prune them as rows: `prune filters below 0.1 on coupled(conv*.weight)`"),
                    );
                    return None;
                }
                let span = p.selectors.first().map_or(word, |s| s.span);
                Some(unit_group_weights(sink, self.model?, &names, span)?)
            }
            (_, t) => t,
        };
        if p.gradually.is_some() && !matches!(criterion, PruneCriterion::Sparsity { .. }) {
            sink.push(
                Diagnostic::error(Code::MisplacedPrune, "gradual pruning raises sparsity towards a target")
                    .label(p.span, "a threshold cannot be reached gradually")
                    .help("write `prune gradually to sparsity 90% on *.weight`"),
            );
            return None;
        }
        if let Some(span) = p.shrink {
            if !matches!(criterion, PruneCriterion::Groups { .. }) {
                sink.push(
                    Diagnostic::error(Code::ShrinkWithoutGroups, "`then shrink` needs group pruning")
                        .label(span, "nothing whole to remove")
                        .help("shrink removes zeroed rows, columns, filters or channels: `prune rows below 0.01 on *.weight, then shrink`"),
                );
                return None;
            }
        }
        let gradual = match phase {
            Some((epochs, known)) => {
                let every = match &p.every {
                    Some(e) => count(sink, e, "the pruning interval", 1)?,
                    None => DEFAULT_PRUNE_EVERY,
                };
                let Some(epochs) = epochs else {
                    // Missing or invalid epochs are reported by the phase.
                    let _ = known;
                    return None;
                };
                let (from, to) = match &p.window {
                    Some((a, b)) => {
                        let from = count(sink, a, "the first epoch", 0);
                        let to = count(sink, b, "the last epoch", 0);
                        let (from, to) = (from?, to?);
                        if from >= to || to > epochs {
                            sink.push(
                                Diagnostic::error(
                                    Code::BadWindow,
                                    format!("pruning window {from}..{to} does not fit a phase of {epochs} epochs"),
                                )
                                .label(a.span.to(b.span), "from this epoch to that")
                                .help(format!(
                                    "epochs count from 0: use `from epoch A to B` with 0 <= A < B <= {epochs}"
                                )),
                            );
                            return None;
                        }
                        (from, to)
                    }
                    None => (0, epochs),
                };
                Some(Gradual { from_epoch: from, to_epoch: to, every_steps: every })
            }
            None => None,
        };
        Some(PrunePlan {
            criterion,
            tensors: tensors.unwrap_or_default(),
            coupled: p.coupled.is_some(),
            shrink: p.shrink.is_some(),
            gradual,
            span: p.span,
        })
    }

    /// Normalises a penalty into `strength * regularizer(selector, ...)` terms.
    fn penalty(&self, sink: &mut Sink, e: &Expr) -> Option<Vec<PenaltyTerm>> {
        let shape = self.penalty_shape(sink, e)?;
        let PenaltyShape::Terms(terms) = shape else {
            sink.push(
                Diagnostic::error(Code::BadPenalty, "a penalty needs a regularizer")
                    .label(e.span, "this is only a strength")
                    .help("multiply the strength by a regularizer over a selector: `penalty 2e-4 * hoyer_square(*)`"),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (strength, call) in terms {
            let negative = match strength {
                Strength::Constant(c) => c < 0.0,
                Strength::Ramp { from, to, .. } => from < 0.0 || to < 0.0,
            };
            if negative {
                sink.push(
                    Diagnostic::error(Code::OutOfRange, "penalty strengths must be 0 or more")
                        .label(call.span, "this term has a negative strength")
                        .help("a negative strength would reward density; use a positive number"),
                );
                ok = false;
                continue;
            }
            match self.term(sink, strength, call) {
                Some(t) => out.push(t),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn penalty_shape<'e>(&self, sink: &mut Sink, e: &'e Expr) -> Option<PenaltyShape<'e>> {
        let bad = |sink: &mut Sink, span: Span, label: &str, help: &str| {
            sink.push(
                Diagnostic::error(Code::BadPenalty, "a penalty is a weighted sum of regularizers")
                    .label(span, label.to_string())
                    .help(help.to_string()),
            );
            None
        };
        if let Ok(v) = const_eval(e) {
            if !v.is_finite() {
                return bad(sink, e.span, "not a finite number", "check for a division by zero");
            }
            return Some(PenaltyShape::Strength(Strength::Constant(v)));
        }
        match &e.kind {
            ExprKind::Call(c) if c.func.name == "ramp" => {
                let b = bind(sink, c, "`ramp`", &[("from", true), ("to", true), ("epochs", true)])?;
                let from = number(sink, b[0]?, "the start of the ramp");
                let to = number(sink, b[1]?, "the end of the ramp");
                let epochs = count(sink, b[2]?, "the length of the ramp", 1);
                Some(PenaltyShape::Strength(Strength::Ramp { from: from?, to: to?, epochs: epochs? }))
            }
            ExprKind::Call(c) => Some(PenaltyShape::Terms(vec![(Strength::Constant(1.0), c)])),
            ExprKind::Neg(x) => Some(match self.penalty_shape(sink, x)? {
                PenaltyShape::Strength(s) => PenaltyShape::Strength(s.scaled(-1.0)),
                PenaltyShape::Terms(t) => {
                    PenaltyShape::Terms(t.into_iter().map(|(s, c)| (s.scaled(-1.0), c)).collect())
                }
            }),
            ExprKind::Binary(op, a, b) => {
                let (pa, pb) = (self.penalty_shape(sink, a), self.penalty_shape(sink, b));
                let (pa, pb) = (pa?, pb?);
                use PenaltyShape::*;
                match (op, pa, pb) {
                    (BinOp::Add, Terms(mut x), Terms(y)) => {
                        x.extend(y);
                        Some(Terms(x))
                    }
                    (BinOp::Sub, Terms(mut x), Terms(y)) => {
                        x.extend(y.into_iter().map(|(s, c)| (s.scaled(-1.0), c)));
                        Some(Terms(x))
                    }
                    (BinOp::Mul, Strength(s), Terms(t)) | (BinOp::Mul, Terms(t), Strength(s)) => {
                        let mut out = Vec::new();
                        for (ts, c) in t {
                            match combine(&s, &ts) {
                                Some(st) => out.push((st, c)),
                                None => return bad(sink, e.span, "two ramps multiplied", "give each term one ramp"),
                            }
                        }
                        Some(Terms(out))
                    }
                    (BinOp::Mul, Strength(x), Strength(y)) => match combine(&x, &y) {
                        Some(s) => Some(Strength(s)),
                        None => bad(sink, e.span, "two ramps multiplied", "give each term one ramp"),
                    },
                    (BinOp::Div, Terms(t), Strength(crate::program::Strength::Constant(k))) if k != 0.0 => {
                        Some(Terms(t.into_iter().map(|(s, c)| (s.scaled(1.0 / k), c)).collect()))
                    }
                    (BinOp::Mul, Terms(_), Terms(_)) => bad(
                        sink,
                        e.span,
                        "a product of two regularizers",
                        "add terms instead: `1e-4 * hoyer_square(*) + 1e-5 * l1(*)`",
                    ),
                    (BinOp::Add | BinOp::Sub, ..) => bad(
                        sink,
                        e.span,
                        "a constant added to regularizers",
                        "a constant does not change the gradient; multiply it instead: `2e-4 * hoyer_square(*)`",
                    ),
                    _ => bad(
                        sink,
                        e.span,
                        &format!("`{}` in a penalty", op.symbol()),
                        "a penalty is `strength * regularizer(selector)`, added up: `1e-4 * hoyer_square(*.weight)`",
                    ),
                }
            }
            ExprKind::Selector(_) | ExprKind::Name(_) => {
                bad(sink, e.span, "a selector alone", "apply a regularizer to it, e.g. `hoyer_square(*)`")
            }
            _ => bad(
                sink,
                e.span,
                "not a regularizer",
                "a penalty is `strength * regularizer(selector)`: `1e-4 * hoyer_square(*.weight)`",
            ),
        }
    }

    /// One regularizer call: resolved, its selector expanded, and instantiated per tensor.
    fn term(&self, sink: &mut Sink, strength: Strength, call: &Call) -> Option<PenaltyTerm> {
        let name = call.func.name.as_str();
        let known = super::find_function(self.functions, name).is_some() || super::BUILTINS.contains(&name);
        if !known {
            if self.invalid_fns.iter().any(|f| f == name) {
                return None;
            }
            let candidates: Vec<&str> =
                self.functions.iter().map(|f| f.def.name.name.as_str()).chain(super::BUILTINS).collect();
            let help = did_you_mean(name, candidates.iter().copied()).or_else(|| {
                Some(if name == "std_ratio" {
                    "`std_ratio` is a pruning threshold: `prune below std_ratio(0.03) on *`".into()
                } else {
                    "regularizers in the prelude: l1, l2, hoyer, hoyer_square, group_hs, group_lasso, transformed_l1; define others with `fn`".into()
                })
            });
            sink.push(
                Diagnostic::error(Code::UnknownFunction, format!("unknown function `{name}`"))
                    .label(call.func.span, "not defined")
                    .maybe_help(help),
            );
            return None;
        }
        // Which argument is the selector (maybe inside `coupled(...)`); the others must be
        // constants.
        let positional: Vec<&Expr> = call.positional().collect();
        let selector_args: Vec<(usize, &Expr)> = positional
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                matches!(a.kind, ExprKind::Selector(_) | ExprKind::Name(_))
                    || matches!(&a.kind, ExprKind::Call(c) if c.func.name == COUPLED)
            })
            .map(|(i, a)| (i, *a))
            .collect();
        let (tensor_arg, sel) = match selector_args[..] {
            [one] => one,
            [] => {
                sink.push(
                    Diagnostic::error(Code::BadPenalty, format!("`{name}` is applied to no parameters"))
                        .label(call.span, "no selector among the arguments")
                        .help(format!("say which tensors it regularizes, e.g. `{name}(*.weight)`")),
                );
                return None;
            }
            [_, (_, second), ..] => {
                sink.push(
                    Diagnostic::error(Code::BadPenalty, format!("`{name}` is given more than one selector"))
                        .label(second.span, "a second selector")
                        .help("a regularizer call goes over one selector; add separate terms for others"),
                );
                return None;
            }
        };
        let (sel, coupled) = match &sel.kind {
            ExprKind::Call(c) => (coupled_selector(sink, c)?, true),
            _ => (sel, false),
        };
        let pattern = match &sel.kind {
            ExprKind::Selector(s) | ExprKind::Name(s) => s.clone(),
            _ => return None,
        };
        let mut args: Vec<Option<f64>> = Vec::new();
        let mut ok = true;
        for (i, a) in positional.iter().enumerate() {
            if i == tensor_arg {
                args.push(None);
            } else {
                let v = number(sink, a, &format!("argument {} of `{name}`", i + 1));
                ok &= v.is_some();
                args.push(v);
            }
        }
        let mut named = Vec::new();
        for a in call.args.iter().filter(|a| a.name.is_some()) {
            let n = a.name.as_ref()?;
            let v = number(sink, &a.value, &format!("argument `{}` of `{name}`", n.name));
            ok &= v.is_some();
            named.push((n.name.clone(), v.map(Val::Num).unwrap_or(Val::Num(0.0)), a.value.span));
        }
        let model = self.model?;
        let mut tensors = selector::expand_one(sink, &pattern, sel.span, model)?;
        if coupled {
            tensors = unit_group_weights(sink, model, &tensors, sel.span)?;
            // Groups are a layer's units: the rows of the matrix the function sees.
            let axis = positional.iter().enumerate().find(|(i, _)| *i != tensor_arg).map(|(_, a)| *a);
            if let (true, Some(a)) = (matches!(name, "group_hs" | "group_lasso"), axis) {
                if const_eval(a).is_ok_and(|v| v != 0.0) {
                    sink.push(
                        Diagnostic::error(Code::BadTarget, format!("`{name}` over coupled groups keeps axis 0"))
                            .label(a.span, "a unit group is a row: axis 0")
                            .help(format!(
                                "write `{name}(coupled(...), 0)`; channels (axis 1) are a plain `{name}(w, 1)`"
                            )),
                    );
                    return None;
                }
            }
        }
        if !ok {
            return None;
        }
        let mut inst = Evaluator::new(self.functions, Shapes);
        let mut failures = Vec::new();
        for t in &tensors {
            let shape = if coupled { model.unit_group(t)?.shape(model) } else { model.param(t)?.shape.clone() };
            let vals: Vec<Val> = args.iter().map(|a| a.map_or_else(|| Val::Tensor(shape.clone()), Val::Num)).collect();
            match inst.call_named(name, &vals, &named, call.span) {
                Ok(v) if v.is_scalar() => {}
                Ok(v) => failures.push((t.clone(), shape, Err(v))),
                Err(e) => failures.push((t.clone(), shape, Ok(e))),
            }
        }
        if let Some((t, shape, what)) = failures.first() {
            let more = if failures.len() > 1 { format!(" (and {} more)", failures.len() - 1) } else { String::new() };
            let label = format!("selects `{t}` {}{more}", fmt_shape(shape));
            let d = match what {
                Err(v) => Diagnostic::error(
                    Code::NotScalar,
                    format!("`{name}` gives {} for `{t}`, not a number", v.describe()),
                )
                .label(sel.span, label)
                .help("a regularizer must reduce each tensor to one number: wrap it in `sum(...)`"),
                Ok(err) => {
                    let mut d = Diagnostic::error(
                        err.code,
                        format!("in `{name}` applied to `{t}` {}: {}", fmt_shape(shape), err.message),
                    )
                    .label(sel.span, label);
                    if !err.in_prelude && err.span != call.span {
                        d = d.label(err.span, "here, in the function");
                    }
                    let help = err.help.clone().map(|h| {
                        if err.code == Code::AxisOutOfRange {
                            format!("{h}; select only tensors that have this axis, e.g. `*.weight`")
                        } else {
                            h
                        }
                    });
                    d.maybe_help(
                        help.or_else(|| Some("select only tensors this function fits, e.g. `*.weight`".into())),
                    )
                }
            };
            sink.push(d);
            return None;
        }
        Some(PenaltyTerm { strength, function: name.to_string(), tensor_arg, args, tensors, coupled, span: call.span })
    }
}

/// The word that makes a selector's weights their unit groups: `coupled(conv*.weight)`.
const COUPLED: &str = "coupled";

/// The selector inside `coupled(...)`.
fn coupled_selector<'c>(sink: &mut Sink, c: &'c Call) -> Option<&'c Expr> {
    let mut args = c.args.iter();
    match (args.next(), args.next()) {
        (Some(a), None) if a.name.is_none() && matches!(a.value.kind, ExprKind::Selector(_) | ExprKind::Name(_)) => {
            Some(&a.value)
        }
        _ => {
            sink.push(
                Diagnostic::error(Code::BadPenalty, "`coupled` takes one selector")
                    .label(c.span, "not one selector")
                    .help("write `coupled(conv*.weight)`: the selected layers' filters with what goes with each"),
            );
            None
        }
    }
}

/// The selected layer weights whose unit groups `coupled(...)` stands for, in model order,
/// without those already in an earlier one's group as its rows (batch norm's γ and β, a
/// residual-tied layer): every selected tensor must be a dense or conv weight or be one of
/// those.
fn unit_group_weights(sink: &mut Sink, model: &Model, tensors: &[String], span: Span) -> Option<Vec<String>> {
    use crate::program::Along;
    let mut leaders: Vec<String> = Vec::new();
    let mut covered: Vec<String> = Vec::new();
    for t in tensors {
        if let Some(g) = model.unit_group(t) {
            if !covered.contains(t) {
                covered.extend(g.members.iter().filter(|m| m.along == Along::Rows).map(|m| m.name.clone()));
                leaders.push(t.clone());
            }
        }
    }
    if let Some(stray) = tensors.iter().find(|t| !covered.contains(t)) {
        sink.push(
            Diagnostic::error(
                Code::BadTarget,
                format!("`coupled` groups a layer's units; `{stray}` is not a dense or conv weight"),
            )
            .label(span, format!("selects `{stray}`"))
            .help("select layer weights, e.g. `coupled(conv*.weight)`: batch norm's γ and β come with them"),
        );
        return None;
    }
    Some(leaders)
}

enum PenaltyShape<'e> {
    Strength(Strength),
    Terms(Vec<(Strength, &'e Call)>),
}

/// The product of two strengths, where at most one is a ramp.
fn combine(a: &Strength, b: &Strength) -> Option<Strength> {
    match (a, b) {
        (Strength::Constant(x), s) | (s, Strength::Constant(x)) => Some(s.scaled(*x)),
        _ => None,
    }
}

fn threshold_of(sink: &mut Sink, e: &Expr) -> Option<PruneCriterion> {
    if let ExprKind::Call(c) = &e.kind {
        if c.func.name != "std_ratio" {
            sink.push(
                Diagnostic::error(Code::BadThreshold, format!("unknown threshold `{}`", c.func.name))
                    .label(c.func.span, "not a threshold")
                    .help(
                        did_you_mean(&c.func.name, ["std_ratio"])
                            .unwrap_or_else(|| "a threshold is a number or `std_ratio(s)`".into()),
                    ),
            );
            return None;
        }
        let b = bind(sink, c, "`std_ratio`", &[("ratio", true)])?;
        let r = number(sink, b[0]?, "the std ratio")?;
        let ratio = in_range(sink, r, b[0]?.span, "the std ratio", Range::NonNegative)?;
        return Some(PruneCriterion::StdRatio { ratio });
    }
    let v = number(sink, e, "the threshold")?;
    Some(PruneCriterion::Magnitude { threshold: in_range(sink, v, e.span, "the threshold", Range::NonNegative)? })
}

fn optimizer_of(sink: &mut Sink, e: &Expr) -> Option<Optimizer> {
    let call = match &e.kind {
        ExprKind::Call(c) => c.clone(),
        ExprKind::Name(n) => Call {
            func: crate::syntax::ast::Ident { name: n.clone(), span: e.span },
            args: vec![],
            piped: false,
            span: e.span,
        },
        _ => {
            sink.push(
                Diagnostic::error(Code::UnknownOptimizer, "expected an optimizer")
                    .label(e.span, "not an optimizer")
                    .help("e.g. `optimizer adam(lr = 1e-3)` or `optimizer sgd(lr = 0.1, momentum = 0.9)`"),
            );
            return None;
        }
    };
    let name = call.func.name.as_str();
    let what = format!("`{name}`");
    let num = |sink: &mut Sink, arg: Option<&Expr>, label: &str, range: Range, default: f64| -> Option<f64> {
        match arg {
            Some(a) => {
                let v = number(sink, a, label)?;
                in_range(sink, v, a.span, label, range)
            }
            None => Some(default),
        }
    };
    match name {
        "sgd" => {
            let b = bind(
                sink,
                &call,
                &what,
                &[
                    ("lr", true),
                    ("momentum", false),
                    ("dampening", false),
                    ("weight_decay", false),
                    ("nesterov", false),
                ],
            )?;
            let lr = num(sink, b[0], "the learning rate", Range::Positive, 0.0);
            let momentum = num(sink, b[1], "the momentum", Range::Fraction, 0.0);
            let dampening = num(sink, b[2], "the dampening", Range::UnitInterval, 0.0);
            let weight_decay = num(sink, b[3], "the weight decay", Range::NonNegative, 0.0);
            let nesterov = match b[4] {
                Some(a) => boolean(sink, a, "`nesterov`"),
                None => Some(false),
            };
            let (lr, momentum, dampening, weight_decay, nesterov) =
                (lr?, momentum?, dampening?, weight_decay?, nesterov?);
            if nesterov && (momentum == 0.0 || dampening != 0.0) {
                sink.push(
                    Diagnostic::error(Code::OutOfRange, "Nesterov momentum needs momentum above 0 and no dampening")
                        .label(b[4]?.span, "nesterov = true")
                        .help("set `momentum = 0.9` (and leave `dampening` at 0), as PyTorch requires"),
                );
                return None;
            }
            Some(Optimizer::Sgd { lr, momentum, dampening, weight_decay, nesterov })
        }
        "adam" | "adamw" => {
            let b =
                bind(sink, &call, &what, &[("lr", false), ("betas", false), ("eps", false), ("weight_decay", false)])?;
            let lr = num(sink, b[0], "the learning rate", Range::Positive, 1e-3);
            let betas = match b[1] {
                Some(a) => match &a.kind {
                    ExprKind::List(items) if items.len() == 2 => {
                        let b1 = num(sink, Some(&items[0]), "beta1", Range::Fraction, 0.9);
                        let b2 = num(sink, Some(&items[1]), "beta2", Range::Fraction, 0.999);
                        b1.zip(b2)
                    }
                    _ => {
                        sink.push(
                            Diagnostic::error(Code::WrongKind, "`betas` is a pair of numbers")
                                .label(a.span, "not a pair")
                                .help("write `betas = (0.9, 0.999)`"),
                        );
                        None
                    }
                },
                None => Some((0.9, 0.999)),
            };
            let eps = num(sink, b[2], "eps", Range::Positive, 1e-8);
            let decoupled = name == "adamw";
            let weight_decay =
                num(sink, b[3], "the weight decay", Range::NonNegative, if decoupled { 1e-2 } else { 0.0 });
            Some(Optimizer::Adam { lr: lr?, betas: betas?, eps: eps?, weight_decay: weight_decay?, decoupled })
        }
        _ => {
            sink.push(
                Diagnostic::error(Code::UnknownOptimizer, format!("unknown optimizer `{name}`"))
                    .label(call.func.span, "not an optimizer")
                    .help(
                        did_you_mean(name, OPTIMIZERS)
                            .unwrap_or_else(|| format!("optimizers: {}", OPTIMIZERS.join(", "))),
                    ),
            );
            None
        }
    }
}

fn schedule_of(sink: &mut Sink, e: &Expr) -> Option<LrSchedule> {
    let (name, span, call) = match &e.kind {
        ExprKind::Name(n) => (n.as_str(), e.span, None),
        ExprKind::Call(c) => (c.func.name.as_str(), c.func.span, Some(c)),
        _ => ("", e.span, None),
    };
    let empty;
    let call = match call {
        Some(c) => c,
        None => {
            empty = Call {
                func: crate::syntax::ast::Ident { name: name.to_string(), span },
                args: vec![],
                piped: false,
                span,
            };
            &empty
        }
    };
    match name {
        "constant" => {
            bind::<&str>(sink, call, "`constant`", &[])?;
            Some(LrSchedule::Constant)
        }
        "step" => {
            let b = bind(sink, call, "`step`", &[("every", true), ("gamma", false)])?;
            let every = count(sink, b[0]?, "the step interval", 1);
            let gamma = match b[1] {
                Some(g) => number(sink, g, "gamma").and_then(|v| in_range(sink, v, g.span, "gamma", Range::OpenUnit)),
                None => Some(0.1),
            };
            Some(LrSchedule::Step { every: every?, gamma: gamma? })
        }
        "cosine" => {
            let b = bind(sink, call, "`cosine`", &[("min_lr", false), ("per_step", false)])?;
            let min_lr = match b[0] {
                Some(m) => number(sink, m, "the minimum learning rate")
                    .and_then(|v| in_range(sink, v, m.span, "the minimum learning rate", Range::NonNegative)),
                None => Some(0.0),
            };
            let per_step = match b[1] {
                Some(a) => boolean(sink, a, "`per_step`"),
                None => Some(false),
            };
            Some(LrSchedule::Cosine { min_lr: min_lr?, per_step: per_step? })
        }
        _ => {
            sink.push(
                Diagnostic::error(Code::UnknownSchedule, format!("unknown learning-rate schedule `{name}`"))
                    .label(span, "not a schedule")
                    .help(did_you_mean(name, SCHEDULES).unwrap_or_else(|| {
                        "schedules: constant, step(every = n, gamma = 0.1), cosine(min_lr = 0, per_step = false)".into()
                    })),
            );
            None
        }
    }
}

fn masks_of(sink: &mut Sink, e: &Expr) -> Option<bool> {
    match &e.kind {
        ExprKind::Name(n) if n == "frozen" => Some(true),
        ExprKind::Name(n) if n == "free" => Some(false),
        ExprKind::Name(n) => {
            sink.push(
                Diagnostic::error(Code::WrongKind, format!("masks are `frozen` or `free`, not `{n}`"))
                    .label(e.span, "unknown mask mode")
                    .help(
                        did_you_mean(n, ["frozen", "free"])
                            .unwrap_or_else(|| "`masks frozen` keeps pruned weights at zero".into()),
                    ),
            );
            None
        }
        _ => None,
    }
}

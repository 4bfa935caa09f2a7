//! The canonical text of `hoyerc compile --emit model`: every model's layers and shapes,
//! parameters and counts, FLOPs; every data set; the training plan with selectors expanded.
//! Golden files hold this text, so it is deterministic and changes only on purpose.

use crate::check::fmt_num;
use crate::program::*;
use crate::syntax::ast::GroupKind;
use std::fmt::Write;

pub fn model_summary(p: &Program) -> String {
    let mut out = String::new();
    for m in &p.models {
        model(&mut out, m);
        out.push('\n');
    }
    for d in &p.data {
        data(&mut out, d);
    }
    if let Some(t) = &p.train {
        out.push('\n');
        train(&mut out, t, p.model(&t.model));
    }
    out
}

/// 266610 → "266,610".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shape(s: &[u64]) -> String {
    format!("[{}]", s.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}

fn model(out: &mut String, m: &Model) {
    let _ = writeln!(out, "model {} (input {}: {}{})", m.name, m.input_name, m.input_dtype, shape(&m.input_shape));
    let ops: Vec<String> = m.nodes.iter().map(|n| n.layer.describe()).collect();
    let op_width = ops.iter().map(|o| o.chars().count()).max().unwrap_or(0).max(24);
    let name_width =
        m.nodes.iter().filter_map(|n| n.binding.as_ref()).map(|b| b.chars().count()).max().unwrap_or(0).max(8);
    let _ = writeln!(out, "  {:<name_width$} {:<op_width$} output", "layer", "op");
    let mut last_binding: Option<&str> = None;
    for (n, op) in m.nodes.iter().zip(&ops) {
        let label = match n.binding.as_deref() {
            Some(b) if Some(b) == last_binding => "",
            Some(b) => b,
            None if n.name.is_some() => n.name.as_deref().unwrap_or(""),
            None => "(return)",
        };
        last_binding = n.binding.as_deref();
        let _ = writeln!(out, "  {:<name_width$} {:<op_width$} {}", label, op, shape(&n.shape));
    }
    let output = &m.nodes[m.output];
    let returned = output.binding.as_deref().or(output.name.as_deref()).unwrap_or("(return)");
    let _ = writeln!(out, "  returns {returned} {}", shape(&output.shape));
    out.push('\n');
    let pw = m.params.iter().map(|p| p.name.chars().count()).max().unwrap_or(0).max(10);
    let _ = writeln!(out, "  {:<pw$} {:<20} {:>12}", "parameter", "shape", "count");
    for p in m.trainable() {
        let _ = writeln!(out, "  {:<pw$} {:<20} {:>12}", p.name, shape(&p.shape), thousands(p.numel()));
    }
    let _ = writeln!(out, "  {:<pw$} {:<20} {:>12}", "total", "", thousands(m.parameter_count()));
    let mut kept: Vec<&str> = m.params.iter().filter(|p| !p.trainable()).map(|p| p.layer.as_str()).collect();
    kept.dedup();
    if !kept.is_empty() {
        let _ = writeln!(
            out,
            "  buffers, not trained: running_mean, running_var, num_batches_tracked of {}",
            kept.join(", ")
        );
    }
    let _ = writeln!(out, "  forward FLOPs per sample: {} (2 per multiply-add)", thousands(m.forward_flops()));
}

fn data(out: &mut String, d: &DataSet) {
    let source = match &d.source {
        DataSource::Idx { path } => format!("idx({path:?})"),
        DataSource::Cifar10 { path } => format!("cifar10({path:?})"),
        DataSource::Text { path, context, .. } => {
            format!("text({path:?}, context = {context}): byte tokens, next-byte targets")
        }
        DataSource::Synthetic { classes, train, test, noise, seed } => format!(
            "synthetic(classes = {classes}, train = {train}, test = {test}, noise = {}, seed = {seed})",
            fmt_num(*noise)
        ),
    };
    let mut line = format!("data {}: {source}, scale {}", d.name, fmt_num(d.scale));
    if let Some(n) = &d.normalize {
        let list = |v: &[f64]| match v {
            [x] => fmt_num(*x),
            _ => format!("[{}]", v.iter().map(|x| fmt_num(*x)).collect::<Vec<_>>().join(", ")),
        };
        line += &format!(", normalize(mean = {}, std = {})", list(&n.mean), list(&n.std));
    }
    if let Some((size, padding, _)) = d.augment.crop {
        line += &format!(", random_crop({size}, padding = {padding})");
    }
    if d.augment.hflip {
        line += ", hflip";
    }
    let _ = writeln!(out, "{line}");
}

fn train(out: &mut String, t: &TrainPlan, model: Option<&Model>) {
    let _ = writeln!(out, "train {} on {}", t.model, t.data);
    let _ = writeln!(out, "  batch {}, loss cross_entropy, seed {}, shuffle {}", t.batch, t.seed, t.shuffle);
    if let Some(init) = &t.init {
        let _ = writeln!(out, "  init from {init:?}");
    }
    if let Some(every) = t.checkpoint_every {
        let _ = writeln!(out, "  checkpoint every {every} epochs");
    }
    if let Some((n, _)) = t.validation {
        let _ =
            writeln!(out, "  validation: {n} training samples held out (chosen by the seed), evaluated every epoch");
    }
    for (i, step) in t.steps.iter().enumerate() {
        match step {
            PlanStep::Phase(ph) => {
                let _ = writeln!(
                    out,
                    "  {}. phase {}: {} epoch{}",
                    i + 1,
                    ph.name,
                    ph.epochs,
                    if ph.epochs == 1 { "" } else { "s" }
                );
                let _ = writeln!(out, "       optimizer {}", optimizer(&ph.optimizer));
                let _ = writeln!(out, "       lr_schedule {}", schedule(&ph.lr_schedule));
                for term in &ph.penalties {
                    let _ = writeln!(out, "       penalty {}", penalty(term));
                    if let Some(m) = model.filter(|_| term.coupled) {
                        unit_groups(out, m, &term.tensors);
                    }
                }
                let _ = writeln!(out, "       masks {}", if ph.masks_frozen { "frozen" } else { "free" });
                for g in &ph.gradual {
                    let _ = writeln!(out, "       {}", prune(g));
                }
            }
            PlanStep::Prune(pr) => {
                let _ = writeln!(out, "  {}. {}", i + 1, prune(pr));
                // A row prune's groups: each row with what goes with it.
                let rows =
                    matches!(pr.criterion, PruneCriterion::Groups { kind: GroupKind::Rows | GroupKind::Groups, .. });
                if let Some(m) = model.filter(|_| pr.coupled) {
                    unit_groups(out, m, &pr.tensors);
                } else if let Some(m) = model.filter(|_| rows) {
                    for w in &pr.tensors {
                        let with = m.coupled_with_rows(w);
                        if !with.is_empty() {
                            let _ = writeln!(out, "       a row of {w} goes with that entry of {}", with.join(", "));
                        }
                    }
                }
            }
        }
    }
}

/// Each weight's unit group: `each of conv1.weight's 8 filters with bn1.weight, bn1.bias,
/// conv2.weight's columns (155 values)`.
fn unit_groups(out: &mut String, m: &Model, weights: &[String]) {
    for w in weights {
        if let Some(g) = m.unit_group(w) {
            let size = g.shape(m)[1];
            let what = if m.param(w).is_some_and(|p| p.shape.len() > 2) { "filters" } else { "neurons" };
            let with = if g.others().is_empty() { String::new() } else { format!(" with {}", g.describe_others()) };
            let _ = writeln!(out, "       each of {w}'s {} {what}{with} ({size} values)", g.units);
        }
    }
}

fn optimizer(o: &Optimizer) -> String {
    match o {
        Optimizer::Sgd { lr, momentum, dampening, weight_decay, nesterov } => format!(
            "sgd(lr = {}, momentum = {}, dampening = {}, weight_decay = {}, nesterov = {nesterov})",
            fmt_num(*lr),
            fmt_num(*momentum),
            fmt_num(*dampening),
            fmt_num(*weight_decay)
        ),
        Optimizer::Adam { lr, betas, eps, weight_decay, decoupled } => format!(
            "{}(lr = {}, betas = ({}, {}), eps = {}, weight_decay = {})",
            if *decoupled { "adamw" } else { "adam" },
            fmt_num(*lr),
            fmt_num(betas.0),
            fmt_num(betas.1),
            fmt_num(*eps),
            fmt_num(*weight_decay)
        ),
    }
}

fn schedule(s: &LrSchedule) -> String {
    match s {
        LrSchedule::Constant => "constant".into(),
        LrSchedule::Step { every, gamma } => format!("step(every = {every}, gamma = {})", fmt_num(*gamma)),
        LrSchedule::Cosine { min_lr, per_step } => {
            format!("cosine(min_lr = {}{})", fmt_num(*min_lr), if *per_step { ", per_step = true" } else { "" })
        }
    }
}

fn penalty(t: &PenaltyTerm) -> String {
    let strength = match &t.strength {
        Strength::Constant(c) => fmt_num(*c),
        Strength::Ramp { from, to, epochs } => {
            format!("ramp({} → {} over {epochs} epochs)", fmt_num(*from), fmt_num(*to))
        }
    };
    let w = if t.coupled { "coupled(w)" } else { "w" };
    let args: Vec<String> = t.args.iter().map(|a| a.map_or_else(|| w.to_string(), fmt_num)).collect();
    format!("{strength} * {}({}) for w in {}", t.function, args.join(", "), t.tensors.join(", "))
}

fn prune(p: &PrunePlan) -> String {
    let rule = match &p.criterion {
        PruneCriterion::Magnitude { threshold } => format!("|w| < {}", fmt_num(*threshold)),
        PruneCriterion::StdRatio { ratio } => format!("|w| < {} * std(W), per tensor", fmt_num(*ratio)),
        PruneCriterion::Sparsity { target, global } => format!(
            "smallest |w| to {}% sparsity, {}",
            fmt_num(target * 100.0),
            if *global { "across the selected tensors together" } else { "per tensor" }
        ),
        PruneCriterion::Groups { kind, rule } => {
            let groups = match kind {
                GroupKind::Rows => "rows (filters)",
                GroupKind::Columns => "columns (channels)",
                GroupKind::Groups => "rows and columns (filters and channels)",
            };
            match rule {
                GroupRule::Below(t) => format!("{groups} with norm2 < {}", fmt_num(*t)),
                GroupRule::StdRatio(r) => {
                    format!("{groups} with norm2 < {} * std of their norm2s, per tensor", fmt_num(*r))
                }
                GroupRule::Sparsity { target, global } => format!(
                    "{groups} of smallest norm2 until {}% of them are zero, {}",
                    fmt_num(target * 100.0),
                    if *global { "across the selected tensors together (norm2 / sqrt(size))" } else { "per tensor" }
                ),
            }
        }
    };
    let mut s = match &p.gradual {
        Some(g) => format!(
            "prune gradually (cubic) {rule}, from epoch {} to {}, every {} steps",
            g.from_epoch, g.to_epoch, g.every_steps
        ),
        None => format!("prune {rule}"),
    };
    if p.coupled {
        s += &format!(" on coupled({})", p.tensors.join(", "));
    } else {
        s += &format!(" on {}", p.tensors.join(", "));
    }
    if p.shrink {
        s += ", then shrink";
    }
    s
}

/// `m` as the text of a `model` block that checks to the same model (layers, shapes,
/// parameter names): each binding a statement, its layers as nested calls. A shrunk model's
/// spec (`model.hoyer` of a run with `then shrink`) comes from here.
pub fn model_spec(m: &Model) -> String {
    // The node each binding's statement ends with: readers outside the statement name it.
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, n) in m.nodes.iter().enumerate() {
        if let Some(b) = &n.binding {
            last.insert(b.as_str(), i);
        }
    }
    // The expression of node `i` within the statement of `binding` (`None`: the return's).
    fn expr(m: &Model, i: usize, binding: Option<&str>, named: &dyn Fn(usize) -> Option<String>) -> String {
        let n = &m.nodes[i];
        if n.binding.as_deref() != binding || n.inputs.is_empty() {
            return named(i).unwrap_or_else(|| m.input_name.clone());
        }
        let args: Vec<String> = n.inputs.iter().map(|&j| expr(m, j, binding, named)).collect();
        n.layer.write(&args)
    }
    let named = |i: usize| {
        let b = m.nodes[i].binding.as_deref()?;
        (last.get(b) == Some(&i)).then(|| b.to_string())
    };
    let shape = |s: &[u64]| s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let mut out = format!("model {}({}: {}[{}]) {{\n", m.name, m.input_name, m.input_dtype, shape(&m.input_shape));
    let mut done = std::collections::HashSet::new();
    for (i, n) in m.nodes.iter().enumerate() {
        let Some(b) = n.binding.as_deref() else { continue };
        // A free parameter is a statement of its own (`param cls: f32[1, 64] = zeros`).
        if n.inputs.is_empty() && n.layer.name() == "param" && done.insert(b) {
            let name = b.rsplit('.').next().unwrap_or(b);
            let _ = writeln!(out, "    {}", n.layer.write(&[name.to_string()]));
            continue;
        }
        if n.inputs.is_empty() || last.get(b) != Some(&i) || !done.insert(b) {
            continue;
        }
        let _ = writeln!(out, "    {b} = {}", expr(m, i, Some(b), &named));
    }
    let ret = match m.nodes[m.output].binding {
        None => expr(m, m.output, None, &named),
        Some(_) => named(m.output).unwrap_or_else(|| m.input_name.clone()),
    };
    let _ = writeln!(out, "    return {ret}\n}}");
    out
}

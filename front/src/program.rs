//! What the checker hands on: a spec with every name resolved, every shape known, every
//! selector expanded and every setting given its value (defaults filled in).

use crate::layers::{Init, LayerRef, ParamKind};
use crate::syntax::ast::{FnDef, GroupKind, Span};
use hoyer_ir::{Dtype, Role};

#[derive(Debug, Clone)]
pub struct Program {
    pub data: Vec<DataSet>,
    pub models: Vec<Model>,
    /// User functions, then the prelude functions they do not shadow.
    pub functions: Vec<Function>,
    pub train: Option<TrainPlan>,
}

impl Program {
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }
    pub fn data_set(&self, name: &str) -> Option<&DataSet> {
        self.data.iter().find(|d| d.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct Function {
    pub def: FnDef,
    /// Defined in the prelude rather than the user's file (its spans point into the prelude).
    pub from_prelude: bool,
}

// ---------------------------------------------------------------- data

#[derive(Debug, Clone)]
pub struct DataSet {
    pub name: String,
    pub source: DataSource,
    /// Multiply every input value by this (e.g. 1/255).
    pub scale: f64,
    /// Then subtract `mean` and divide by `std`: one number for every value, or one per
    /// channel (the first axis of an image sample).
    pub normalize: Option<Normalize>,
    /// Augmentation of training samples (never of test or validation ones).
    pub augment: Augment,
    /// The source call (`idx("mnist")`): where run-time data errors point.
    pub span: Span,
}

/// Seeded augmentation of image samples, as torchvision's `RandomCrop(size, padding)` then
/// `RandomHorizontalFlip()`: new offsets and flips for every sample every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Augment {
    /// `random_crop(size, padding = p)`: the size (the image's) and the padding, and where
    /// it is written.
    pub crop: Option<(u64, u64, Span)>,
    pub hflip: bool,
}

impl Augment {
    pub fn any(&self) -> bool {
        self.crop.is_some() || self.hflip
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Where the setting is written, for a channel count that does not fit the model.
    pub span: Span,
}

impl Normalize {
    /// `(x - mean) / std` of value `i` of a sample of `features` values.
    pub fn apply(&self, x: f64, i: usize, features: usize) -> f64 {
        let c = (i * self.mean.len() / features.max(1)).min(self.mean.len() - 1);
        (x - self.mean[c]) / self.std[c]
    }
}

#[derive(Debug, Clone)]
pub enum DataSource {
    /// A folder with the four MNIST-family IDX files, as written in the spec.
    Idx { path: String },
    /// A folder with CIFAR-10's binary batches (`data_batch_1.bin` … `test_batch.bin`).
    Cifar10 { path: String },
    /// Gaussian clusters, one per class; samples take the model's input shape.
    Synthetic { classes: u64, train: u64, test: u64, noise: f64, seed: u64 },
    /// A text file as byte tokens (vocabulary 256): windows of `context` bytes, each byte's
    /// target the byte after it; the last tenth of the windows is the test split.
    Text { path: String, context: u64, context_span: Span },
}

impl DataSource {
    /// Targets per sample: one class, or one next token per position of a text window.
    pub fn targets(&self) -> u64 {
        match self {
            DataSource::Text { context, .. } => *context,
            _ => 1,
        }
    }
}

/// The vocabulary of `text(...)`: bytes.
pub const BYTE_VOCABULARY: u64 = 256;

// ---------------------------------------------------------------- models

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub input_name: String,
    /// Per-sample shape; the batch axis is added by the compiler.
    pub input_shape: Vec<u64>,
    /// f32 values, or i32 token ids.
    pub input_dtype: Dtype,
    pub nodes: Vec<Node>,
    pub output: usize,
    pub params: Vec<Param>,
    /// Where the spec defines it, `model` to its closing brace (a shrunk model keeps it:
    /// `model.hoyer` writes the new body there).
    pub span: Span,
}

impl Model {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
    /// Trainable elements, as PyTorch's `sum(p.numel() for p in model.parameters())`.
    pub fn parameter_count(&self) -> u64 {
        self.trainable().map(Param::numel).sum()
    }
    /// The trainable parameters, in model order.
    pub fn trainable(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.trainable())
    }
    /// Forward FLOPs per sample: 2 per multiply-add of dense and conv layers.
    pub fn forward_flops(&self) -> u64 {
        (0..self.nodes.len())
            .map(|i| self.nodes[i].layer.flops(&self.input_shapes(i), &self.nodes[i].shape))
            .fold(0u64, u64::saturating_add)
    }
    /// For a model of token ids: the bound every id must stay below (the smallest
    /// vocabulary of the layers reading them), and the layer that sets it.
    pub fn index_bound(&self) -> Option<(u64, &Node)> {
        self.nodes.iter().filter_map(|n| n.layer.index_bound().map(|b| (b, n))).min_by_key(|(b, _)| *b)
    }
}

/// What goes with each unit of a layer (`Model::unit_group`).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitGroup {
    /// Units of the layer (filters, neurons).
    pub units: u64,
    /// The selected weight first, then the rest in model order.
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub along: Along,
}

/// Where a member holds the units: unit u is the u-th block of its leading axis (a layer's
/// rows, batch norm's entries), or of its second axis (a reader's input columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Along {
    Rows,
    Columns,
}

impl UnitGroup {
    /// The group as a matrix: units, and each unit's values from every member.
    pub fn shape(&self, model: &Model) -> Vec<u64> {
        let width: u64 =
            self.members.iter().filter_map(|m| model.param(&m.name)).map(|p| p.numel() / self.units.max(1)).sum();
        vec![self.units, width]
    }
    /// The members other than the weight the group was asked for.
    pub fn others(&self) -> &[Member] {
        &self.members[1..]
    }
    /// `bn1.weight, bn1.bias, conv2.weight's columns`.
    pub fn describe_others(&self) -> String {
        let parts: Vec<String> = self
            .others()
            .iter()
            .map(|m| match m.along {
                Along::Rows => m.name.clone(),
                Along::Columns => format!("{}'s columns", m.name),
            })
            .collect();
        parts.join(", ")
    }
}

/// One layer of the model graph, in definition order (inputs come before their users).
#[derive(Debug, Clone)]
pub struct Node {
    /// The binding that holds this node's parameters or result, if any.
    pub name: Option<String>,
    /// The binding this node was written in (for display).
    pub binding: Option<String>,
    pub layer: LayerRef,
    pub inputs: Vec<usize>,
    pub shape: Vec<u64>,
    pub span: Span,
}

impl Model {
    /// The per-unit parameters that go with the rows of layer weight `weight` (a convolution's
    /// filters, a dense layer's neurons): those of the per-unit layers that follow it alone
    /// (batch norm's γ and β). A structural prune of a row zeroes them with it, as
    /// Torch-Pruning's dependency groups do: the unit's output is then exactly zero, which
    /// every reader folds (a padded convolution's border sees zeros too), so `then shrink`
    /// removes it. The layer's own bias is not among them: without batch norm after it, a
    /// zeroed row's output is its bias through the activation, which `then shrink` folds
    /// into the next layer's bias exactly, where that layer can take it.
    pub fn coupled_with_rows(&self, weight: &str) -> Vec<String> {
        use crate::layers::Units;
        let Some(p) = self.param(weight) else { return vec![] };
        let start = p.node;
        if !matches!(self.nodes[start].layer.units(), Units::Rows { .. }) || p.suffix != "weight" {
            return vec![];
        }
        let width = self.nodes[start].shape.first().copied().unwrap_or(1);
        let per_unit = |node: usize| {
            self.params
                .iter()
                .filter(move |q| q.node == node && q.trainable() && q.shape == [width])
                .map(|q| q.name.clone())
        };
        let mut out: Vec<String> = Vec::new();
        let mut at = start;
        loop {
            let readers: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].inputs.contains(&at)).collect();
            let [next] = readers[..] else { break };
            let node = &self.nodes[next];
            if node.layer.units() != Units::PerUnit || node.inputs.len() != 1 || node.shape.first() != Some(&width) {
                break;
            }
            out.extend(per_unit(next));
            at = next;
        }
        out
    }

    /// Union-find over nodes: nodes whose units are the same units (a per-unit op and its
    /// input; the inputs and output of a residual add) share a space. For each node, its
    /// space's root.
    pub fn unit_spaces(&self) -> Vec<usize> {
        use crate::layers::Units;
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let mut parent: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            if matches!(node.layer.units(), Units::PerUnit | Units::Sum) {
                for &j in &node.inputs {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a] = b;
                }
            }
        }
        (0..parent.len()).map(|i| root(&mut parent, i)).collect()
    }

    /// The structural group of each unit (filter, neuron) of layer weight `weight`: every
    /// trainable tensor that holds a part of that unit, which `coupled(...)` penalizes and
    /// prunes as one. The units' space (`unit_spaces`) is followed through per-unit ops and
    /// residual adds: the rows of every layer writing it (residual-tied layers together),
    /// batch norm's γ and β on it, and the input columns of every layer reading it (after
    /// `flatten`, each unit's block of H·W columns). Layers' own biases are not in it: a
    /// pruned unit's bias is a constant that `then shrink` folds into its readers.
    pub fn unit_group(&self, weight: &str) -> Option<UnitGroup> {
        use crate::layers::Units;
        let p = self.param(weight)?;
        if !matches!(self.nodes[p.node].layer.units(), Units::Rows { .. }) || p.suffix != "weight" {
            return None;
        }
        let space = self.unit_spaces();
        let units = *self.nodes[p.node].shape.first()?;
        let mut members = vec![Member { name: weight.to_string(), along: Along::Rows }];
        let mut spaces = vec![space[p.node]];
        while let Some(s) = spaces.pop() {
            for (i, node) in self.nodes.iter().enumerate() {
                let reads = |node: &Node| node.inputs.first().is_some_and(|&j| space[j] == s);
                let trainable = self.params.iter().filter(|q| q.node == i && q.trainable());
                let add = |members: &mut Vec<Member>, name: &str, along| {
                    if !members.iter().any(|m| m.name == name && m.along == along) {
                        members.push(Member { name: name.to_string(), along });
                    }
                };
                match node.layer.units() {
                    Units::Rows { .. } if space[i] == s => {
                        trainable.filter(|q| q.suffix == "weight").for_each(|q| add(&mut members, &q.name, Along::Rows))
                    }
                    Units::PerUnit if space[i] == s => trainable
                        .filter(|q| q.shape.len() == 1 && q.shape.first() == node.shape.first())
                        .for_each(|q| add(&mut members, &q.name, Along::Rows)),
                    _ => {}
                }
                match node.layer.units() {
                    Units::Rows { .. } if reads(node) => self
                        .params
                        .iter()
                        .filter(|q| q.node == i && q.trainable() && q.suffix == "weight")
                        .for_each(|q| add(&mut members, &q.name, Along::Columns)),
                    Units::Flatten if reads(node) && space[i] != s => spaces.push(space[i]),
                    _ => {}
                }
            }
        }
        Some(UnitGroup { units, members })
    }

    /// The shapes of node `i`'s inputs.
    pub fn input_shapes(&self, i: usize) -> Vec<&[u64]> {
        input_shapes(&self.nodes, i)
    }
}

fn input_shapes(nodes: &[Node], i: usize) -> Vec<&[u64]> {
    nodes[i].inputs.iter().map(|&j| nodes[j].shape.as_slice()).collect()
}

/// The parameters and buffers of `nodes` (named after the binding holding each layer), in
/// model order.
pub fn params_of(nodes: &[Node]) -> Vec<Param> {
    let mut params = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some(layer) = &node.name else { continue };
        for def in node.layer.params(&input_shapes(nodes, i), &node.shape) {
            params.push(Param {
                // A free parameter's one tensor is the binding itself (`pos`).
                name: if def.suffix.is_empty() { layer.clone() } else { format!("{layer}.{}", def.suffix) },
                layer: layer.clone(),
                suffix: def.suffix,
                kind: def.kind,
                shape: def.shape,
                init: def.init,
                node: i,
            });
        }
    }
    params
}

/// A trainable tensor or buffer, named and laid out as PyTorch does: dense weight [out, in],
/// conv weight [out, in, kh, kw], bias [out].
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub layer: String,
    /// Its name within the layer: `weight`.
    pub suffix: &'static str,
    pub kind: ParamKind,
    pub shape: Vec<u64>,
    pub init: Init,
    /// The model node that owns it.
    pub node: usize,
}

impl Param {
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
    pub fn trainable(&self) -> bool {
        self.kind != ParamKind::Buffer
    }
    /// Its role in a compiled step: a parameter, or a buffer.
    pub fn role(&self) -> Role {
        if self.trainable() {
            Role::Param(self.name.clone())
        } else {
            Role::Buffer(self.name.clone())
        }
    }
    /// Its shape as the IR and the store index it.
    pub fn dims(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }
}

// ---------------------------------------------------------------- training

/// The name of the `k`-th prune between phases (from 1), as `--set` paths, `--stop-before`
/// and sweeps write it: `prune.1`.
pub fn prune_step_name(k: usize) -> String {
    format!("prune.{k}")
}

impl TrainPlan {
    /// Each step of the plan by the name `--set` paths and `--stop-before` use: a phase's
    /// name, or `prune.N` for the Nth prune between phases.
    pub fn step_names(&self) -> Vec<String> {
        let mut prunes = 0;
        self.steps
            .iter()
            .map(|s| match s {
                PlanStep::Phase(p) => p.name.clone(),
                PlanStep::Prune(_) => {
                    prunes += 1;
                    prune_step_name(prunes)
                }
            })
            .collect()
    }

    /// The index of the step named `name` (see `step_names`).
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.step_names().iter().position(|n| n == name)
    }

    /// The step of the plan a `--set` path changes (`prune.2.ratio`: the second prune;
    /// `finetune.lr`: phase `finetune`); `None` for paths before every step (`batch`, a data
    /// set's numbers).
    pub fn step_of_override(&self, path: &str) -> Option<usize> {
        let mut parts = path.split('.');
        let first = parts.next().unwrap_or("");
        match first {
            "prune" => parts.next().and_then(|k| k.parse().ok()).and_then(|k| self.step_index(&prune_step_name(k))),
            _ => self.step_index(first),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainPlan {
    pub model: String,
    pub data: String,
    pub batch: u64,
    pub loss: Loss,
    pub seed: u64,
    pub shuffle: bool,
    /// Initial weights from a safetensors file, as written in the spec.
    pub init: Option<String>,
    pub checkpoint_every: Option<u64>,
    /// Samples held out of the training set (chosen by the seed) and evaluated beside the
    /// test set after every epoch; where the spec says it.
    pub validation: Option<(u64, Span)>,
    pub steps: Vec<PlanStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    CrossEntropy,
}

#[derive(Debug, Clone)]
pub enum PlanStep {
    Phase(PhasePlan),
    Prune(PrunePlan),
}

#[derive(Debug, Clone)]
pub struct PhasePlan {
    pub name: String,
    pub epochs: u64,
    pub optimizer: Optimizer,
    pub lr_schedule: LrSchedule,
    pub penalties: Vec<PenaltyTerm>,
    pub masks_frozen: bool,
    pub gradual: Vec<PrunePlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Optimizer {
    Sgd {
        lr: f64,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: bool,
    },
    /// `decoupled` is AdamW.
    Adam {
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
    },
}

impl Optimizer {
    /// The base learning rate (before any schedule).
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => *lr,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LrSchedule {
    Constant,
    Step {
        every: u64,
        gamma: f64,
    },
    /// CosineAnnealingLR over the phase: stepped once per epoch (T_max = epochs), or after
    /// every step (T_max = the phase's steps) when `per_step`.
    Cosine {
        min_lr: f64,
        per_step: bool,
    },
}

/// `strength * function(tensor, args...)`, summed over `tensors`.
#[derive(Debug, Clone)]
pub struct PenaltyTerm {
    pub strength: Strength,
    pub function: String,
    /// Which argument position takes the tensor.
    pub tensor_arg: usize,
    /// The other arguments, all constants, by position (the tensor's slot is `None`).
    pub args: Vec<Option<f64>>,
    pub tensors: Vec<String>,
    /// `coupled(...)`: the function sees, per tensor, its unit groups (`Model::unit_group`)
    /// as one matrix [units, members], each row a unit's values from every member; the
    /// tensors are then the groups' weights, a residual-tied layer's only once.
    pub coupled: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Strength {
    Constant(f64),
    /// Linear from `from` at the phase's first epoch to `to` after `epochs` epochs, then flat.
    Ramp {
        from: f64,
        to: f64,
        epochs: u64,
    },
}

impl Strength {
    pub fn scaled(&self, k: f64) -> Strength {
        match *self {
            Strength::Constant(c) => Strength::Constant(c * k),
            Strength::Ramp { from, to, epochs } => Strength::Ramp { from: from * k, to: to * k, epochs },
        }
    }
}

#[derive(Debug, Clone)]
pub struct PrunePlan {
    pub criterion: PruneCriterion,
    pub tensors: Vec<String>,
    /// `on coupled(...)`: each row is measured and zeroed with its unit group
    /// (`Model::unit_group`); the tensors are the groups' weights.
    pub coupled: bool,
    pub shrink: bool,
    pub gradual: Option<Gradual>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PruneCriterion {
    /// |w| < threshold
    Magnitude { threshold: f64 },
    /// |w| < ratio · std(W), per tensor
    StdRatio { ratio: f64 },
    /// The smallest |w| until `target` of the tensor (or of all selected tensors together,
    /// when `global`) is zero.
    Sparsity { target: f64, global: bool },
    /// Rows and/or columns (filters, neurons; channels, inputs) by their ‖g‖₂.
    Groups { kind: GroupKind, rule: GroupRule },
}

/// Which groups a structural prune zeroes, by their L2 norms.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupRule {
    /// ‖g‖₂ < threshold.
    Below(f64),
    /// ‖g‖₂ < ratio · std of the tensor's group norms (population std, as `std_ratio` of
    /// weights): the reference code's rule, on groups.
    StdRatio(f64),
    /// The groups of smallest ‖g‖₂ until `target` of them are zero: per tensor, or across
    /// the selected tensors together (`globally`, ranked by ‖g‖₂ / √(elements of the group),
    /// so that groups of different sizes compare).
    Sparsity { target: f64, global: bool },
}

/// Zhu & Gupta's schedule: sparsity rises from 0 to the target along a cubic between the
/// window's epochs, updated every `every_steps` optimizer steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradual {
    pub from_epoch: u64,
    pub to_epoch: u64,
    pub every_steps: u64,
}

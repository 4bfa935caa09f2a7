//! What each input and output of a graph is to the runtime: its role, and the type of its
//! elements. A compiled step lists its inputs and outputs by role, and the runtime binds its
//! tensors by role (a parameter, its mask, an optimizer state, the batch, a per-step number),
//! never by spelling or parsing names. `Display` gives the names that `--emit` prints and
//! that checkpoints use.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A trainable parameter, by its name in the model (PyTorch's: `fc1.weight`).
    Param(String),
    /// A buffer the forward pass reads and updates, not trained (batch norm's running
    /// statistics), by its name in the model.
    Buffer(String),
    /// The 0/1 mask of a parameter (a masked weight is held at exactly 0).
    Mask(String),
    /// An optimizer state of a parameter, by PyTorch's name of the state (`exp_avg`).
    State(String, String),
    /// A batch of samples: the model's input.
    Data,
    /// A batch of class labels.
    Labels,
    /// A number the runtime sets before each step.
    Scalar(Scalar),
    /// A sum the step adds to every step, read and reset by the runtime when it reports.
    Sum(Sum),
    /// What the host reads back: a forward pass's loss, penalty and objective, or the logits
    /// of evaluation.
    Output(Output),
    /// A split of the data set resident in memory: its samples, their labels, and the
    /// epoch's order of them (what the batch gather reads).
    Table,
    TableLabels,
    Order,
    /// Per-sample augmentation tables of the training split, drawn every epoch.
    Augment(Augment),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scalar {
    /// The learning rate of this step (the schedule's).
    Lr,
    /// Adam: lr / (1 − β1^t).
    StepSize,
    /// Adam: 1 / √(1 − β2^t).
    InvBiasCorrection2Sqrt,
    /// SGD with momentum: 1 on the first step (the buffer starts as the gradient), else 0.
    FirstStep,
    /// The strength of the phase's k-th penalty term at this epoch.
    Strength(usize),
    /// The key of dropout's random numbers at this step.
    DropoutKey,
    /// Where in the order the batch starts.
    Start,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sum {
    Loss,
    Penalty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Output {
    /// Mean cross-entropy over the batch.
    Loss,
    /// The penalty terms, each times its strength.
    Penalty,
    /// Loss plus penalty: what the step differentiates.
    Objective,
    Logits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Augment {
    /// The crop's offsets, 0 to 2 · padding.
    Dy,
    Dx,
    /// 1 where the sample is mirrored.
    Flip,
}

impl Role {
    pub fn param(name: &str) -> Role {
        Role::Param(name.to_string())
    }
    pub fn state(param: &str, state: &str) -> Role {
        Role::State(param.to_string(), state.to_string())
    }

    /// The parameter this role belongs to (a parameter, buffer, mask or optimizer state).
    pub fn of_param(&self) -> Option<&str> {
        match self {
            Role::Param(p) | Role::Buffer(p) | Role::Mask(p) | Role::State(p, _) => Some(p),
            _ => None,
        }
    }

    /// The word `--emit ir` prints before an input's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Param(_) => "param",
            Role::Buffer(_) | Role::Mask(_) | Role::State(..) | Role::Sum(_) => "state",
            Role::Data | Role::Table | Role::Order | Role::Augment(_) => "data",
            Role::Labels | Role::TableLabels => "labels",
            Role::Scalar(_) => "scalar",
            Role::Output(_) => "output",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Param(p) | Role::Buffer(p) => write!(f, "{p}"),
            Role::Mask(p) => write!(f, "{p}.mask"),
            Role::State(p, s) => write!(f, "{p}.{s}"),
            Role::Data => write!(f, "x"),
            Role::Labels => write!(f, "labels"),
            Role::Scalar(s) => match s {
                Scalar::Lr => write!(f, "lr"),
                Scalar::StepSize => write!(f, "step_size"),
                Scalar::InvBiasCorrection2Sqrt => write!(f, "inv_bias_correction2_sqrt"),
                Scalar::FirstStep => write!(f, "first_step"),
                Scalar::Strength(k) => write!(f, "strength.{k}"),
                Scalar::DropoutKey => write!(f, "dropout_key"),
                Scalar::Start => write!(f, "start"),
            },
            Role::Sum(Sum::Loss) => write!(f, "loss_sum"),
            Role::Sum(Sum::Penalty) => write!(f, "penalty_sum"),
            Role::Output(o) => write!(
                f,
                "{}",
                match o {
                    Output::Loss => "loss",
                    Output::Penalty => "penalty",
                    Output::Objective => "objective",
                    Output::Logits => "logits",
                }
            ),
            Role::Table => write!(f, "table"),
            Role::TableLabels => write!(f, "table_labels"),
            Role::Order => write!(f, "order"),
            Role::Augment(a) => write!(
                f,
                "{}",
                match a {
                    Augment::Dy => "augment_dy",
                    Augment::Dx => "augment_dx",
                    Augment::Flip => "augment_flip",
                }
            ),
        }
    }
}

/// The type of a tensor's elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    F32,
    /// Whole numbers: labels, token ids, indices. Kernels compute on them as float32
    /// (exact below 2^24) and convert where they load and store them.
    I32,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::I32 => "i32",
        }
    }
    pub fn bytes(self) -> usize {
        match self {
            Dtype::F32 | Dtype::I32 => 4,
        }
    }
    /// The spelling of a model input's type (`f32[784]`, `i32[16]`).
    pub fn parse(name: &str) -> Option<Dtype> {
        match name {
            "f32" => Some(Dtype::F32),
            "i32" => Some(Dtype::I32),
            _ => None,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

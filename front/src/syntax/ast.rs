//! The syntax tree of a spec, exactly as written, with a byte span on every node.
//!
//! The parser (`parse.rs`) builds it from the pest pairs; the checker (`check/`) reads it.
//! Nothing here knows about shapes or the model: that is the checker's business.

use std::fmt;

/// A byte range in the source file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
    pub fn len(self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.start, s.len()).into()
    }
}

#[derive(Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} @{:?}", self.name, self.span)
    }
}

#[derive(Debug, Clone, Default)]
pub struct File {
    pub items: Vec<Item>,
    /// Its comments, in order (`trivia::comments`).
    pub comments: Vec<super::trivia::Comment>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Data(DataDef),
    Model(ModelDef),
    Block(BlockDef),
    Fn(FnDef),
    Train(TrainDef),
    /// A top-level statement that is none of the above (a misspelt keyword).
    Unknown(Unknown),
}

/// `data mnist = idx("mnist") { scale 1/255 }`
#[derive(Debug, Clone)]
pub struct DataDef {
    pub name: Ident,
    pub source: Call,
    pub settings: Vec<Setting>,
    pub span: Span,
}

/// `model lenet300(x: f32[784]) { ... }`
#[derive(Debug, Clone)]
pub struct ModelDef {
    pub name: Ident,
    pub input: InputDecl,
    pub body: Vec<ModelStmt>,
    pub span: Span,
}

/// `x: f32[1, 28, 28]`: the per-sample input; the batch axis is added by the compiler.
#[derive(Debug, Clone)]
pub struct InputDecl {
    pub name: Ident,
    pub dtype: Ident,
    /// Each dimension with its span; `None` where the literal does not fit in 64 bits.
    pub dims: Vec<(Option<u64>, Span)>,
    pub span: Span,
}

/// `block basic(x, planes, stride = 1) { ... }`: a sub-model used like a layer.
#[derive(Debug, Clone)]
pub struct BlockDef {
    pub name: Ident,
    /// The first is the block's input.
    pub params: Vec<BlockParam>,
    pub body: Vec<ModelStmt>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct BlockParam {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone)]
pub enum ModelStmt {
    /// `fc1 = dense(x, 300) |> relu`
    Bind { name: Ident, value: Expr },
    /// `return fc3`
    Return { value: Expr, span: Span },
    /// `param pos: f32[17, 64] = normal(0.02)`: the declaration (name, type, dims) and its
    /// initializer, if written.
    Param { decl: InputDecl, init: Option<Expr>, span: Span },
}

/// `fn hoyer_square(w) = sum(abs(w))^2 / sum(w^2)`
#[derive(Debug, Clone)]
pub struct FnDef {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Expr,
    pub span: Span,
}

/// `train lenet300 on mnist { ... }`
#[derive(Debug, Clone)]
pub struct TrainDef {
    pub model: Ident,
    pub data: Ident,
    pub body: Vec<TrainStmt>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TrainStmt {
    Setting(Setting),
    Phase(Phase),
    Prune(Box<Prune>),
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: Ident,
    pub body: Vec<PhaseStmt>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum PhaseStmt {
    Setting(Setting),
    Prune(Box<Prune>),
}

/// A one-word statement and its value: `batch 100`, `epochs 250`, `optimizer adam(lr = 1e-3)`,
/// `masks frozen`, `init from "dense.safetensors"`, `checkpoint every 10 epochs`.
#[derive(Debug, Clone)]
pub struct Setting {
    pub key: Ident,
    pub value: SettingValue,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum SettingValue {
    Expr(Expr),
    /// `normalize(mean = .., std = ..)`: arguments without a callee.
    Args(Vec<Arg>),
    /// A statement word the grammar does not know; `text` is the rest of its line.
    Unknown {
        text: String,
    },
}

/// A pruning event. `gradually` ones run inside a phase, the others between phases.
#[derive(Debug, Clone)]
pub struct Prune {
    pub gradually: Option<Span>,
    pub rule: PruneRule,
    /// `from epoch A to B`
    pub window: Option<(Expr, Expr)>,
    /// `every N steps`
    pub every: Option<Expr>,
    pub selectors: Vec<Selector>,
    /// `on coupled(...)`: the word's span.
    pub coupled: Option<Span>,
    pub shrink: Option<Span>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum PruneRule {
    /// `below T` (|w| < T; T may be `std_ratio(s)`), or `rows below T` (‖group‖₂ < T).
    Below { groups: Option<(GroupKind, Span)>, threshold: Expr },
    /// `to sparsity S [globally]`, or `filters to sparsity S` (that fraction of the groups).
    ToSparsity { groups: Option<(GroupKind, Span)>, target: Expr, globally: Option<Span> },
}

/// Which groups a structural prune measures. For a dense weight [out, in], rows are output
/// neurons and columns are inputs; for a conv weight [out, in, kh, kw], filters and channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Rows,
    Columns,
    /// Rows and columns.
    Groups,
}

/// A pattern over parameter names: `fc1.weight`, `*.weight`, `conv*`, `*`.
#[derive(Debug, Clone)]
pub struct Selector {
    pub pattern: String,
    pub span: Span,
}

#[derive(Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{:?} ", self.span)?;
        self.kind.fmt(f)
    }
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Number(f64),
    Bool(bool),
    Str(String),
    /// A plain name: a function parameter, a layer, the model input, or a word such as
    /// `relu` after `|>`.
    Name(String),
    /// A name with a `.` or `*`: selects parameters.
    Selector(String),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Call),
    /// `(a, b)` or `[a, b]`.
    List(Vec<Expr>),
    /// `x[i]`: one token of a sequence.
    Index(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
        }
    }
}

/// `f(a, b, name = c)`. A pipe `a |> f(b)` is stored as this call with `a` first and
/// `piped` set.
#[derive(Debug, Clone)]
pub struct Call {
    pub func: Ident,
    pub args: Vec<Arg>,
    pub piped: bool,
    pub span: Span,
}

impl Call {
    pub fn positional(&self) -> impl Iterator<Item = &Expr> {
        self.args.iter().filter(|a| a.name.is_none()).map(|a| &a.value)
    }
    pub fn named(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == name))
    }
}

#[derive(Debug, Clone)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

/// A statement that the grammar accepted only as "a word and the rest of its line".
#[derive(Debug, Clone)]
pub struct Unknown {
    pub word: Ident,
    pub span: Span,
}

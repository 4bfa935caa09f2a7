//! Every diagnostic code, with what it means and a corrected example (`hoyerc explain`).
//!
//! Codes are stable: a code, once given out, keeps its meaning. Each example is a whole
//! spec that passes `hoyerc check` (a test makes sure of it).

macro_rules! codes {
    ($( $variant:ident = $code:literal, $title:literal, $explain:literal, $example:expr; )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title),* }
            }
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$variant => $explain),* }
            }
            /// A spec that does it right.
            pub fn example(self) -> &'static str {
                match self { $(Code::$variant => $example),* }
            }
            pub fn parse(code: &str) -> Option<Code> {
                let code = code.trim().to_ascii_uppercase();
                Code::ALL.iter().copied().find(|c| c.as_str() == code)
            }
        }
    };
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The small model most examples below share.
macro_rules! tiny {
    ($train:literal) => {
        concat!(
            "data toy = synthetic(classes = 3, train = 300, test = 60)\n",
            "model net(x: f32[8]) {\n    fc1 = dense(x, 16) |> relu\n    fc2 = dense(fc1, 3)\n    return fc2\n}\n",
            $train
        )
    };
}

codes! {
    // ------------------------------------------------------------------ reading the file
    Syntax = "E0001", "syntax error",
"The file does not follow hoyer's grammar at the marked place. The message says what the
grammar expected there. Common causes: a bracket left open, `**` instead of `^`, single
quotes instead of double quotes, a missing `=` in a layer binding.",
tiny!("train net on toy {\n    phase fit {\n        epochs 2\n        optimizer adam(lr = 1e-3)\n    }\n}\n");

    NotUtf8 = "E0002", "file is not UTF-8 text",
"A spec must be UTF-8 text. The marked byte is the first that is not; the file may be
binary, or saved in another encoding. Save it as UTF-8.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    TooDeep = "E0003", "nested too deeply",
"Brackets or operators are nested deeper than hoyer reads (32 brackets, 200 levels of
operators). No real spec comes near this; split long expressions into `fn` definitions.",
concat!("fn hs(w) = sum(abs(w))^2 / sum(w^2)\n",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * hs(*) } }\n"));

    UnknownStatement = "E0004", "unknown statement",
"The statement's first word is not one hoyer knows in this place. At the top level a spec
has `data`, `model`, `fn` and `train`; a `train` block has `batch`, `loss`, `seed`,
`shuffle`, `init from`, `checkpoint every`, `phase` and `prune`; a phase has `epochs`,
`optimizer`, `lr_schedule`, `penalty`, `masks` and `prune gradually`; a data block has
`scale` and `normalize`.",
tiny!("train net on toy {\n    batch 32\n    phase fit { epochs 1  optimizer sgd(lr = 0.1) }\n}\n");

    BadNumber = "E0005", "number out of range",
"A number literal is too large to represent (numbers are 64-bit floats, at most about
1.8e308), or a whole number is too large where a count is expected.",
tiny!("train net on toy { seed 1234567890  phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    BadPipe = "E0006", "bad pipe target",
"`a |> f(b)` means `f(a, b)`, so the right side of `|>` must be a layer or function: a name
(`relu`, `flatten`) or a call (`maxpool(2)`, `dense(10)`).",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    Io = "E0007", "cannot read the file",
"hoyerc could not read a file it was given: it does not exist, is a folder, or is not
readable. The message gives the reason from the operating system.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    // ------------------------------------------------------------------ names
    UnknownName = "E0101", "unknown name",
"The name is not defined where it is used. In a model, a layer can use the model input and
the layers bound above it; in a `fn`, only its parameters.",
"data toy = synthetic(classes = 3, train = 300, test = 60)
model net(x: f32[8]) {
    hidden = dense(x, 16) |> relu
    return dense(hidden, 3)
}
train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }
";

    Duplicate = "E0102", "defined twice",
"Two definitions use the same name: two models, data sets or functions, two layers in one
model, two parameters of one `fn`, or two phases of one `train`. Rename one of them.",
tiny!("train net on toy {\n    phase warmup { epochs 1  optimizer sgd(lr = 0.01) }\n    phase fit { epochs 2  optimizer sgd(lr = 0.1) }\n}\n");

    UnknownModel = "E0103", "unknown model",
"`train M on D` names a model `M` that the file does not define.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    UnknownData = "E0104", "unknown data set",
"`train M on D` names a data set `D` that the file does not define with `data D = ...`.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    UnknownFunction = "E0105", "unknown function",
"A penalty or `fn` body calls a function that is neither built in, nor in the prelude, nor
defined with `fn`. Built in: abs, sqrt, exp, log, sign, sum, mean, max, norm2. Prelude: l1,
l2, hoyer, hoyer_square, group_hs, group_lasso, transformed_l1.",
concat!("fn my_l1(w) = sum(abs(w))\n",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * my_l1(*.weight) } }\n"));

    UnknownLayer = "E0106", "unknown layer",
"A model uses a layer hoyer does not have. Layers: dense(x, out, bias = true),
conv2d(x, out, kernel = k, stride = 1, padding = 0, bias = true), maxpool(x, size,
stride = size), avgpool(x, size, stride = size), relu(x), flatten(x), and `a + b`.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    UnknownArgument = "E0107", "unknown argument",
"A call passes a named argument that the layer, function, optimizer, schedule or data source
does not take. The message lists the ones it takes.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1, momentum = 0.9) } }\n");

    Arity = "E0108", "wrong arguments",
"A call has too many or too few arguments, or is missing one it needs, or gives the same one
twice.",
"data toy = synthetic(classes = 3, train = 300, test = 60)
model net(x: f32[8]) { return dense(x, 3) }
train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }
";

    SecondTrain = "E0109", "more than one train block",
"A spec describes one training run, so it has at most one `train` block. Put alternatives
in separate files, or sweep values with `--set`.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    MissingReturn = "E0110", "model has no return",
"A model must end with `return` and the layer that gives the class scores.",
"data toy = synthetic(classes = 3, train = 300, test = 60)
model net(x: f32[8]) {
    fc1 = dense(x, 3)
    return fc1
}
train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }
";

    Recursive = "E0111", "recursive function or block",
"A `fn` calls itself, directly or through other functions, or a `block` uses itself,
directly or through other blocks. Both are expanded inline, so recursion would never end.
To stack a block several times, use `repeat(n, block(x, ...))`.",
concat!("fn hs(w) = sum(abs(w))^2 / sum(w^2)\nfn twice_hs(w) = 2 * hs(w)\n",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * twice_hs(*) } }\n"));

    // ------------------------------------------------------------------ models and shapes
    BadDtype = "E0201", "unsupported element type",
"Model inputs are `f32` tensors: `x: f32[784]` or `x: f32[1, 28, 28]`.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    BadDimension = "E0202", "bad dimension",
"Every dimension of the input, and every size a layer produces, must be at least 1 and at
most 2^31. The batch is not part of the shape: the compiler adds it.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    WrongRank = "E0203", "layer gets the wrong shape",
"dense takes a vector [features]; conv2d, batchnorm (PyTorch's BatchNorm2d), maxpool,
avgpool and global_avgpool take an image [channels, height, width]. Use `flatten` (or
`global_avgpool`) between an image and a dense layer, and give images their channel axis
(`f32[1, 28, 28]`, not `f32[28, 28]`).",
"data toy = synthetic(classes = 3, train = 300, test = 60)
model net(x: f32[1, 8, 8]) {
    c1 = conv2d(x, 4, kernel = 3) |> relu |> maxpool(2)
    return dense(flatten(c1), 3)
}
train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }
";

    WindowTooLarge = "E0204", "window larger than its input",
"A conv kernel (dilation · (kernel − 1) + 1 pixels when dilated) or pooling window does not
fit in the (padded) image it slides over. Use a smaller kernel, add padding, or pool less
before this layer.",
"data toy = synthetic(classes = 3, train = 300, test = 60)
model net(x: f32[1, 8, 8]) {
    c1 = conv2d(x, 4, kernel = 3, padding = 1) |> relu |> maxpool(2)
    return dense(flatten(c1), 3)
}
train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }
";

    BadOutput = "E0205", "model output is not a score vector",
"A classifier returns one score per class: a vector [classes]. Flatten an image and end
with a dense layer.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    ShapeMismatch = "E0206", "shapes do not match",
"An element-wise operation (`a + b` in a model, `+ - * /` in a `fn`) needs operands of the
same shape, or a scalar on one side.",
"data toy = synthetic(classes = 3, train = 300, test = 60)
model net(x: f32[8]) {
    a = dense(x, 16) |> relu
    b = dense(a, 16) |> relu
    return dense(a + b, 3)
}
train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }
";

    BadLayerArgument = "E0207", "bad layer argument",
"A layer argument has the wrong kind or value: sizes, kernels, strides and dilations are
whole numbers of at least 1, padding at least 0 (a pool's at most half its window), `bias`
is true or false, `leaky_relu`'s slope a number of 0 or more, `dropout`'s probability from 0
up to (not including) 1, `batchnorm`'s eps above 0 and momentum from 0 to 1.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    TwoLayersOneName = "E0208", "two layers with parameters under one name",
"Parameters are named after the binding of their layer (`fc1.weight`), so one binding may
hold at most one layer with parameters. Bind each to its own name.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    AfterReturn = "E0209", "statement after return",
"`return` ends a model: it must be its last statement, and there is only one.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    DataMismatch = "E0210", "data does not fit the model",
"The data set and the model disagree: the number of classes of the data must equal the size
of the model's output, and a synthetic data set's samples take the model's input shape.
CIFAR-10 needs an input of [3, 32, 32] and 10 outputs; a per-channel `normalize` needs one
number per input channel; `random_crop` crops to the image's own size and `hflip` flips
images; a `validation` split must leave training data.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    BatchNormOneValue = "E0211", "batch norm sees one value per channel",
"In training, batch norm normalizes each channel over the batch and the channel's pixels.
Where that is a single value (a batch of 1 on a 1×1 map, or a last batch of one sample on
one) every output is 0: its weight and bias never learn and the model stays at
chance, without any error. PyTorch refuses it too (\"Expected more than 1 value per channel
when training\"). Use a larger batch (one whose last batch is not a single sample), or no
batch norm there.",
"data toy = synthetic(classes = 3, train = 300, test = 60)
model net(x: f32[1, 3, 3]) {
    c1 = conv2d(x, 8, kernel = 3)
    bn1 = batchnorm(c1) |> relu
    return dense(flatten(bn1), 3)
}
train net on toy { batch 32  phase fit { epochs 1  optimizer sgd(lr = 0.1) } }
";

    // ------------------------------------------------------------------ functions and penalties
    AxisOutOfRange = "E0301", "axis out of range",
"An axis given to `over` or `keep` does not exist in the tensor. Axes count from 0; a dense
weight [out, in] has axes 0 and 1, a conv weight [out, in, kh, kw] axes 0 to 3, a bias only
axis 0. Select only the tensors the function fits, e.g. `*.weight`.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-3 * group_hs(*.weight, 1) } }\n");

    BadAxes = "E0302", "bad reduction axes",
"A reduction takes `over = axes` (reduce these) or `keep = axes` (reduce all others), not
both, each axis once, and as named arguments: `sum(w, over = 1)`, `norm2(w, keep = 0)`.",
concat!("fn row_l2(w) = sum(norm2(w, keep = 0))\n",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * row_l2(*.weight) } }\n"));

    NotConstant = "E0303", "expected a constant",
"This place needs a number known when the spec is compiled: an exponent, an axis, a
penalty strength, a setting. Tensors and selectors cannot go here.",
concat!("fn l2sq(w) = sum(w^2)\n",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * l2sq(*) } }\n"));

    NotScalar = "E0304", "regularizer does not give a number",
"A call over a selector is evaluated once per selected tensor and the results are added, so
it must return a single number for each. Reduce with `sum`, `mean`, `max` or `norm2`.",
concat!("fn l1(w) = sum(abs(w))\n",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * l1(*) } }\n"));

    SelectorOutsidePenalty = "E0305", "selector outside a penalty",
"Selectors such as `*.weight` pick model parameters; they can be arguments of a call in a
`penalty`, or follow `on` in a `prune`. Inside a `fn`, use its parameters.",
concat!("fn l1(w) = sum(abs(w))\n",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * l1(*.weight) } }\n"));

    BadPenalty = "E0306", "penalty is not a weighted sum of regularizers",
"A penalty is a sum of terms `strength * regularizer(selector, ...)` with strengths that are
non-negative numbers or `ramp(from, to, epochs = n)`. Products of two regularizers, and
regularizers without a selector, are not penalties.",
tiny!("train net on toy { phase fit { epochs 4  optimizer sgd(lr = 0.1)\n    penalty ramp(0, 2e-4, epochs = 2) * hoyer_square(*) + 1e-5 * l1(*.bias) } }\n");

    WrongKind = "E0307", "wrong kind of value",
"A value of one kind is used where another is needed: a tensor where a number is expected,
a string where a number is expected, a number where a name is expected, and so on.",
tiny!("train net on toy { shuffle false  phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    // ------------------------------------------------------------------ selectors
    EmptySelector = "E0401", "selector matches nothing",
"A selector must match at least one parameter of the trained model. Parameters are named
`layer.weight` and `layer.bias`; `*` matches any part of a name, and a bare layer name (or
glob such as `conv*`) selects all of that layer's parameters.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * hoyer_square(fc*.weight) } }\n");

    BadTarget = "E0402", "selected tensor does not fit the operation",
"Group pruning (rows, columns, filters, channels) needs weights with at least two axes; a
bias has one. Select weights only, e.g. `*.weight`. `coupled(...)` stands for the unit groups
of dense and conv weights (each filter or neuron with its batch norm's γ and β and its
readers' input columns): it takes layer weights, its groups are rows (axis 0 of the matrix a
regularizer sees; `prune filters ...`), and channels are pruned or penalized on the plain
weight.",
tiny!("train net on toy {\n    phase fit { epochs 2  optimizer sgd(lr = 0.1) }\n    prune rows below 0.01 on *.weight\n    phase tune { epochs 1  optimizer sgd(lr = 0.01)  masks frozen }\n}\n");

    // ------------------------------------------------------------------ training schedule
    NotPositiveInteger = "E0501", "expected a positive whole number",
"Epochs, batch sizes, checkpoint intervals and step counts are whole numbers of at least 1
(a seed may be 0).",
tiny!("train net on toy { batch 50  phase fit { epochs 3  optimizer sgd(lr = 0.1) } }\n");

    OutOfRange = "E0502", "value out of range",
"A hyper-parameter is outside the range where it means something: a learning rate and eps
above 0; momentum, betas and sparsity targets in [0, 1); weight decay, thresholds and
penalty strengths at least 0.",
tiny!("train net on toy { phase fit { epochs 1  optimizer adam(lr = 1e-3, betas = (0.9, 0.999)) } }\n");

    UnknownOptimizer = "E0503", "unknown optimizer",
"Optimizers: sgd(lr, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false),
adam(lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8, weight_decay = 0) and adamw with the same
arguments (decoupled weight decay, default 1e-2), all with PyTorch's semantics.",
tiny!("train net on toy { phase fit { epochs 1  optimizer adam(lr = 1e-3) } }\n");

    UnknownSchedule = "E0504", "unknown learning-rate schedule",
"Schedules: constant, step(every = epochs, gamma = 0.1) and cosine(min_lr = 0), evaluated
per epoch of the phase; cosine(per_step = true) anneals after every step instead.",
tiny!("train net on toy { phase fit { epochs 4  optimizer sgd(lr = 0.1)  lr_schedule step(every = 2, gamma = 0.5) } }\n");

    FrozenBeforePrune = "E0505", "masks frozen before anything is pruned",
"`masks frozen` keeps pruned weights at zero, so it needs a `prune` before its phase (or a
gradual prune in an earlier phase).",
tiny!("train net on toy {\n    phase fit { epochs 2  optimizer sgd(lr = 0.1) }\n    prune below std_ratio(0.03) on *\n    phase tune { epochs 1  optimizer sgd(lr = 0.01)  masks frozen }\n}\n");

    MissingSetting = "E0506", "phase is missing a setting",
"Every phase says how long it runs (`epochs N`) and how it steps (`optimizer ...`).",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    DuplicateSetting = "E0507", "setting given twice",
"A block gives the same setting twice; keep one. Penalties are the exception: several
`penalty` lines add up.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    MisplacedPrune = "E0508", "prune in the wrong place",
"A one-shot `prune` runs between phases, so it belongs in the `train` block; a
`prune gradually` runs during a phase, so it belongs inside one.",
tiny!("train net on toy {\n    phase fit {\n        epochs 4\n        optimizer sgd(lr = 0.1)\n        prune gradually to sparsity 80% from epoch 1 to 3 on *.weight\n    }\n}\n");

    ShrinkWithoutGroups = "E0509", "shrink without group pruning",
"`then shrink` removes whole rows, columns, filters or channels that are zero, so it
follows a group prune: `prune rows below 0.01 on *.weight, then shrink`.",
tiny!("train net on toy {\n    phase fit { epochs 2  optimizer sgd(lr = 0.1) }\n    prune groups below 0.01 on *.weight, then shrink\n    phase tune { epochs 1  optimizer sgd(lr = 0.01)  masks frozen }\n}\n");

    NoPhases = "E0510", "training has no phases",
"A `train` block needs at least one `phase`: that is where epochs and an optimizer are
given.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    UnknownLoss = "E0511", "unknown loss",
"The loss is `cross_entropy`: softmax cross-entropy over the model's class scores and
integer labels (PyTorch's `F.cross_entropy`, the same as `log_softmax` then `nll_loss`).",
tiny!("train net on toy { loss cross_entropy  phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    BadWindow = "E0512", "prune window outside the phase",
"`from epoch A to B` counts epochs of the phase from 0: it needs 0 <= A < B <= epochs.",
tiny!("train net on toy {\n    phase fit {\n        epochs 6\n        optimizer sgd(lr = 0.1)\n        prune gradually to sparsity 90% from epoch 1 to 5 on *.weight\n    }\n}\n");

    UnknownDataSource = "E0513", "unknown data source",
"Data comes from `idx(\"folder\")` (the four MNIST-family IDX files, gzip or raw) or from
`synthetic(classes = n, train = n, test = n, noise = 1.0, seed = 0)`, whose samples take the
shape of the model's input.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    BadThreshold = "E0514", "unknown pruning threshold",
"A prune threshold is a number (|w| below it is pruned) or `std_ratio(s)` (|w| below s
times the standard deviation of the tensor).",
tiny!("train net on toy {\n    phase fit { epochs 2  optimizer sgd(lr = 0.1) }\n    prune below std_ratio(0.03) on *\n}\n");

    UnknownOverride = "E0515", "bad --set override",
"`--set PATH=VALUE` changes one number written in the spec. Paths name where it is written:
`batch`, `seed`, `checkpoint`; `PHASE.epochs`, `PHASE.lr` (the optimizer's learning rate),
`PHASE.optimizer.ARG`, `PHASE.lr_schedule.ARG`, `PHASE.penalty` (the strength in front of a
penalty; `PHASE.penalty.2` for the second penalty line), `PHASE.penalty.K.PARAM` (a number
the K-th penalty passes to a function, by the parameter it binds: `sparsify.penalty.1.eps`
for `soft(*.weight, 1e-3)` of `fn soft(w, eps)`); `PHASE.prune.sparsity`, `.from`,
`.to`, `.every` for a gradual prune; `prune.K.threshold`, `prune.K.ratio` or
`prune.K.sparsity` for the K-th prune between phases; `DATA.scale` and `DATA.ARG` for a
data set. Only numbers that are written can be changed; the value must be a number.
`hoyerc compile FILE --set ... --emit model` shows the result.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    // ------------------------------------------------------------------ running
    DataNotFound = "E0701", "data not found",
"`hoyerc run` could not find the files of an `idx(\"folder\")` data set. It looks in the
folder given with `--data DIR`, then next to the spec, then in `$HOYER_DATA` (the folder
itself, or the spec's path under it). The folder needs train-images-idx3-ubyte,
train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each raw or .gz.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    BadDataFile = "E0702", "malformed data file",
"A data file is not what it should be: an IDX file with the wrong magic number (images
start 00000803, labels 00000801), truncated or with trailing bytes, a broken gzip stream,
image and label files that count different samples, or images whose size is not the
model's input. The message names the file; download it again, or fix the model's input.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    Diverged = "E0703", "training diverged",
"The loss, the penalty or a parameter became NaN or infinite. The message says which (the
first parameter that went bad), in which phase, epoch and step; the last checkpoint and
model.safetensors keep the last good weights. Lower the learning rate or the penalty
strength (a ramp helps), and resume or rerun. A regularizer that divides by a norm does not
cause this when a prune zeroes a whole tensor or group: x / 0 counts as 0 there.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    Interrupted = "E0704", "run interrupted",
"The run was stopped (Ctrl-C) after finishing its current step; it wrote a checkpoint and
model.safetensors. `hoyerc run FILE --resume DIR` continues it, ending with the same
weights as an uninterrupted run.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    BadCheckpoint = "E0705", "cannot use the checkpoint or weights",
"A safetensors file given to `--init`, `init from` or `--resume` cannot be used: it is
missing, not safetensors, lacks a parameter of the model, or has one of another shape.
Parameters are named as in the spec (`fc1.weight`), in PyTorch layouts.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    RunFailed = "E0706", "run failed",
"The run could not go on: an output could not be written, or a kernel could not be compiled
or run. The message says what; nothing already written was lost.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    WriteFailed = "E0709", "cannot write an output",
"A run could not write one of its files (metrics, model, checkpoint, report, plot): the
folder is missing or read-only, or the disk is full. Files are written to a temporary name
and renamed into place, so the previous version of the file is still complete. Free space,
or choose another folder with `--out`, and `--resume`.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    FolderInUse = "E0710", "output folder in use",
"Another run is writing into the same output folder (the message names its process). Two
runs in one folder would overwrite each other's metrics and checkpoints. Wait for it, stop
it, or give this run its own folder with `--out DIR`. The lock goes away with the process
that held it, however it ended.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    NotThisRun = "E0711", "folder holds another run",
"`--resume DIR` continues the run recorded in DIR/run.json, and that record does not match
this command: the spec changed (the message shows the first line that differs; comments and
layout may change), the run was started with `--set` options this resume does not repeat, or
the data files differ (size or checksum). Resume with the spec and data the run started
from; to change a number from here on, leave the spec as it was and pass `--set PATH=VALUE`.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    ClassCount = "E0712", "data has more classes than the model's outputs",
"The data set's labels go up to a class the model cannot score: its last layer gives fewer
numbers than there are classes. The diagnostic points at the model's output layer; give it
one output per class (`dense(..., 10)` for MNIST), or check that the data set is the one
meant.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    OutOfMemory = "E0713", "not enough memory",
"The run would need more memory than this machine has available (or than `--memory-limit`
allows): the message gives the estimate and its largest parts (the data set, the
parameters and their optimizer state, a batch's activations). Use a smaller batch or data
set, free memory, or pass a larger `--memory-limit` if the estimate is too cautious.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    Unsupported = "E0707", "not supported yet",
"The spec is valid, but this version of hoyerc cannot compile part of it for training yet
(the message names the layer or operation). `hoyerc check` and `compile --emit model` still
work on it; README.md lists what runs today.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    NoDevice = "E0708", "back end not available",
"The back end asked for cannot run on this machine: for `--backend cuda`, no NVIDIA driver,
no CUDA device, or no NVRTC or cuBLAS library was found; the message says which is missing.
Install the driver or CUDA 13 runtime libraries, or choose `--backend cpu` (`--backend auto`,
the default, falls back to the CPU by itself).",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    // ------------------------------------------------------------------ the compiler itself
    Internal = "E0901", "internal compiler error",
"hoyerc found a mistake in its own compilation of a valid spec (a pass produced something
the next one does not accept). This is a bug in hoyerc, not in the spec. Please report it
with the spec, the command line and the message; `hoyerc compile FILE --emit grad` and
`--emit kernels` show how far compilation got.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");

    // ------------------------------------------------------------------ warnings
    UnusedLayer = "W0601", "layer not used",
"A layer is bound but does not contribute to the model's output. Its parameters would get
no gradient and never train. Remove it, or use it.",
tiny!("train net on toy { phase fit { epochs 1  optimizer sgd(lr = 0.1) } }\n");
}

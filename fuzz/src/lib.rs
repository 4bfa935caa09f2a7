//! Mutational fuzzing of everything hoyer reads from outside: specs (parsed, checked, and
//! compiled down to kernels where they are valid), safetensors files (`--init`, `hoyerc
//! report`) and checkpoints (`--resume`), IDX data files (raw and gzip).
//!
//! Three more targets generate their inputs instead of mutating a corpus, each for a class
//! of failure found more than once: `sizes` (every layer with dimensions, paddings, strides,
//! windows and batches near 2^31, 2^32 and 2^63, and zero: checked, then compiled at the real
//! batch, where no size may wrap and nothing may fail as an internal error), `headers`
//! (hostile safetensors headers, written to a file and read by every reader: `--init`,
//! `--resume`, `report`) and `long` (generated specs of up to thousands of penalty lines or
//! layers, compiled within the time limit).
//!
//! Blind mutation, no coverage feedback: each round takes an input of the committed corpus
//! (`fuzz/corpus/TARGET/`) or of the inputs grown from it, and mutates it (bytes flipped,
//! inserted, deleted, runs duplicated, two inputs spliced, interesting numbers and tokens
//! written in). An input fails if the target panics or takes more than a few seconds; failing
//! inputs are saved to `fuzz/crashes/TARGET/`. The properties checked are the project's
//! promises: no panic, no hang, and every rejected spec carries coded, renderable
//! diagnostics.

use hoyer_compiler::pipeline::{self, Options};
use hoyer_front::diagnostics::Report;
use hoyer_front::program::PlanStep;
use hoyer_front::{check_source, decode};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Spec,
    Safetensors,
    Idx,
    Sizes,
    Headers,
    Long,
}

impl Target {
    pub const ALL: [Target; 6] =
        [Target::Spec, Target::Safetensors, Target::Idx, Target::Sizes, Target::Headers, Target::Long];
    pub fn name(self) -> &'static str {
        match self {
            Target::Spec => "spec",
            Target::Safetensors => "safetensors",
            Target::Idx => "idx",
            Target::Sizes => "sizes",
            Target::Headers => "headers",
            Target::Long => "long",
        }
    }
    /// Whether its inputs are generated (no corpus).
    pub fn generated(self) -> bool {
        matches!(self, Target::Sizes | Target::Headers | Target::Long)
    }
    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// The longest a single input may take.
pub const LIMIT: Duration = Duration::from_secs(5);

/// A small deterministic generator (xorshift).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Tokens and numbers worth writing into a spec.
const SPEC_TOKENS: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    "=",
    "|>",
    "*",
    "^",
    "/",
    "-",
    "+",
    "fn ",
    "model ",
    "data ",
    "train ",
    "phase ",
    "prune ",
    "penalty ",
    "epochs ",
    "batch ",
    "1e308",
    "1e-320",
    "-0",
    "0",
    "4294967297",
    "18446744073709551616",
    "99999999999999999999",
    "nan",
    "inf",
    "%",
    "*.weight",
    "fc1",
    "dense(x, 0)",
    "conv2d(x, 3, kernel = 99)",
    "hoyer_square(*)",
    "group_hs(*.weight, 7)",
    "sum(w, over = [0, 0])",
    "norm2(w, keep = -9)",
    "ramp(0, 1, epochs = 0)",
    "adam(lr = -1)",
    "sgd(lr = 0)",
    "relu",
    "flatten(x)",
    "maxpool(2)",
    "then shrink",
    "masks frozen",
    "\"",
    "//",
    "\n",
    "\u{feff}",
    "é",
    "\u{0}",
];

/// Numbers worth writing into binary files.
const INTERESTING: &[u64] =
    &[0, 1, 7, 8, 0x7f, 0xff, 0x100, 0xffff, 0x7fff_ffff, 0xffff_ffff, 1 << 32, u64::MAX, 1 << 62];

/// One mutation of `input`, possibly spliced with `other`.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], target: Target) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let at = rng.below(v.len() + 1);
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(at, rng.next_u64() as u8),
            2 if !v.is_empty() => {
                let n = 1 + rng.below(16.min(v.len()));
                let i = rng.below(v.len() - n + 1);
                v.drain(i..i + n);
            }
            3 if !v.is_empty() => {
                let n = 1 + rng.below(64.min(v.len()));
                let i = rng.below(v.len() - n + 1);
                let chunk = v[i..i + n].to_vec();
                let most = if rng.below(10) == 0 { 2000 } else { 4 };
                let times = 1 + rng.below(most);
                for _ in 0..times {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            4 if !other.is_empty() => {
                let cut = rng.below(v.len() + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            5 if target == Target::Spec => {
                let t = SPEC_TOKENS[rng.below(SPEC_TOKENS.len())];
                v.splice(at..at, t.bytes());
            }
            _ if target != Target::Spec && v.len() >= 8 => {
                let n = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1usize, 2, 4, 8][rng.below(4)];
                let i = rng.below(v.len() - width + 1);
                let bytes = if rng.below(2) == 0 { n.to_le_bytes() } else { n.to_be_bytes() };
                let bytes = if rng.below(2) == 0 { &bytes[..width] } else { &bytes[8 - width..] };
                v[i..i + width].copy_from_slice(bytes);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, b"0123456789 {}()[],.*=\n"[rng.below(22)]);
            }
        }
    }
    v.truncate(1 << 20);
    v
}

/// Sizes near where arithmetic wraps, and small ones.
const EXTREME: &[u64] = &[
    0,
    1,
    2,
    3,
    5,
    28,
    1 << 16,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    (1 << 32) + 1,
    1 << 40,
    1 << 46,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX,
];

fn extreme(rng: &mut Rng) -> u64 {
    EXTREME[rng.below(EXTREME.len())]
}

/// A size that is usually small and sometimes extreme.
fn size(rng: &mut Rng) -> u64 {
    if rng.below(3) == 0 {
        extreme(rng)
    } else {
        1 + rng.below(6) as u64
    }
}

/// A spec of one layer of each kind with extreme arguments, input dimensions and batch.
pub fn sizes_spec(rng: &mut Rng) -> String {
    let (image, input, layer) = match rng.below(8) {
        0 => (
            true,
            "f32",
            format!(
                "conv2d(x, {}, kernel = {}, stride = {}, padding = {}, dilation = {})",
                size(rng),
                size(rng),
                size(rng),
                size(rng),
                size(rng)
            ),
        ),
        1 => (true, "f32", format!("maxpool(x, {}, stride = {}, padding = {})", size(rng), size(rng), size(rng))),
        2 => (true, "f32", format!("avgpool(x, {}, stride = {}, padding = {})", size(rng), size(rng), size(rng))),
        3 => (true, "f32", format!("shortcut(x, {}, stride = {})", size(rng), size(rng))),
        4 => (false, "f32", format!("dense(x, {})", size(rng))),
        5 => (false, "i32", format!("embedding(x, {}, {})", size(rng), size(rng))),
        6 => (true, "f32", "batchnorm(x)".to_string()),
        _ => (false, "f32", "layernorm(x)".to_string()),
    };
    let dims = if image { format!("{}, {}, {}", size(rng), size(rng), size(rng)) } else { size(rng).to_string() };
    let batch = if rng.below(2) == 0 { extreme(rng) } else { 1 + rng.below(64) as u64 };
    format!(
        "data toy = synthetic(classes = 3, train = 30, test = 10)\n\
         model net(x: {input}[{dims}]) {{\n    y = {layer}\n    return dense(flatten(y), 3)\n}}\n\
         train net on toy {{ batch {batch}  phase fit {{ epochs 1  optimizer adam(lr = 1e-3)  penalty 1e-4 * hoyer_square(*.weight) }} }}\n"
    )
}

/// A safetensors file whose header lies: shapes with zeros and huge dimensions, offsets past
/// the data or overlapping, other dtypes, a length field that is not the header's.
pub fn hostile_header(rng: &mut Rng) -> Vec<u8> {
    let names =
        ["fc1.weight", "fc1.bias", "fc2.weight", "param/fc1.weight", "mask/fc1.weight", "state/fc1.weight.exp_avg"];
    let dtypes = ["F32", "F64", "I64", "BF16", "U8", "BOOL", "F32"];
    let mut header = String::from("{");
    let mut offset = 0u64;
    for i in 0..1 + rng.below(4) {
        let shape: Vec<String> = (0..rng.below(4)).map(|_| size(rng).to_string()).collect();
        let len = if rng.below(2) == 0 { extreme(rng) } else { 4 * rng.below(64) as u64 };
        let end = offset.saturating_add(len);
        let name = names[rng.below(names.len())];
        let name = if rng.below(5) == 0 { format!("{name}{i}") } else { name.to_string() };
        header += &format!(
            "\"{name}\": {{\"dtype\": \"{}\", \"shape\": [{}], \"data_offsets\": [{offset}, {end}]}},",
            dtypes[rng.below(dtypes.len())],
            shape.join(", ")
        );
        offset = if rng.below(4) == 0 { extreme(rng) } else { end };
    }
    header += "\"__metadata__\": {\"format\": \"hoyer-checkpoint-1\", \"plan_step\": \"0\", \"epoch\": \"0\", \"batch\": \"0\", \"phase_steps\": \"0\", \"global_step\": \"0\"}}";
    let length = if rng.below(4) == 0 { extreme(rng) } else { header.len() as u64 };
    let mut out = length.to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    // Data: as much as the header says where that is small, else a little.
    let data = if offset < (1 << 16) { offset as usize } else { rng.below(256) };
    out.resize(out.len() + data, 0);
    out
}

/// A long generated spec: the quickstart with hundreds to thousands of penalty lines, or a
/// model of hundreds of layers.
pub fn long_spec(rng: &mut Rng) -> String {
    let base = include_str!("../../examples/quickstart.hoyer");
    let line = "        penalty 1e-3 * hoyer_square(*.weight)     // summed over every selected tensor\n";
    if rng.below(2) == 0 {
        let selectors = ["fc1.weight", "fc2.weight", "fc3.weight", "*.weight", "fc1.bias", "fc*.weight"];
        let functions = ["hoyer_square", "l1", "hoyer"];
        let lines: String = (0..100 + rng.below(1900))
            .map(|i| {
                format!(
                    "        penalty {}e-5 * {}({})\n",
                    1 + i % 7,
                    functions[rng.below(functions.len())],
                    selectors[rng.below(selectors.len())]
                )
            })
            .collect();
        base.replace(line, &lines)
    } else {
        let n = 50 + rng.below(250);
        let layers: String =
            (1..n).map(|i| format!("    fc{} = dense(fc{i}, {}) |> relu\n", i + 1, 4 + rng.below(28))).collect();
        format!(
            "data blobs = synthetic(classes = 4, train = 200, test = 50)\n\
             model deep(x: f32[16]) {{\n    fc1 = dense(x, 8) |> relu\n{layers}    return dense(fc{n}, 4)\n}}\n\
             train deep on blobs {{ batch 50  phase fit {{ epochs 1  optimizer adam(lr = 1e-3)  penalty 1e-4 * hoyer_square(*.weight) }} }}\n"
        )
    }
}

/// The next generated input of `target`.
pub fn generate(rng: &mut Rng, target: Target) -> Vec<u8> {
    match target {
        Target::Sizes => sizes_spec(rng).into_bytes(),
        Target::Headers => hostile_header(rng),
        _ => long_spec(rng).into_bytes(),
    }
}

/// How many specs were valid and compiled (the rest were rejected by the checker).
static COMPILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Checks a spec and compiles every phase of a valid one at its own batch size: a rejection
/// must carry coded, rendered diagnostics; a compile may refuse (a coded error) but never
/// with an internal one.
fn spec_holds(input: &[u8], batch_limit: Option<usize>) -> Result<(), String> {
    let (text, bad) = decode(input);
    let result = match bad {
        Some(d) => Err(vec![d]),
        None => check_source(&text),
    };
    match result {
        Err(diagnostics) => {
            if !diagnostics.iter().any(|d| d.is_error()) {
                return Err("rejected without an error".into());
            }
            let rendered = Report::new("fuzz.hoyer", text, diagnostics.clone()).render(100, false);
            if let Some(d) = diagnostics.iter().find(|d| !rendered.contains(d.code.as_str())) {
                return Err(format!("{} not rendered", d.code));
            }
        }
        Ok(c) => {
            let Some((plan, m)) = c.program.train.as_ref().and_then(|p| Some((p, c.program.model(&p.model)?))) else {
                return Ok(());
            };
            COMPILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let batch = batch_limit.map_or(plan.batch as usize, |l| (plan.batch as usize).min(l));
            for s in &plan.steps {
                if let PlanStep::Phase(p) = s {
                    if let Err(e) = pipeline::step(&c.program, m, p, batch, &Options::default()) {
                        if e.code() == hoyer_front::codes::Code::Internal {
                            return Err(format!("internal error compiling a checked spec: {e}"));
                        }
                    }
                }
            }
            // At the real batch, what a run asks first: the memory estimate and its verdict.
            if batch_limit.is_none() {
                let plans = hoyer_runtime::plans::Plans::new(Options::default());
                match hoyer_runtime::memory::estimate(&c.program, plan, m, 40, &plans) {
                    Ok(e) => {
                        let limit = hoyer_runtime::memory::Limit {
                            bytes: 1 << 30,
                            source: hoyer_runtime::memory::LimitSource::Option,
                        };
                        let _ = hoyer_runtime::memory::check(&e, limit);
                    }
                    Err(e) if e.code == hoyer_front::codes::Code::Internal => {
                        return Err(format!("internal error estimating a checked spec's memory: {e}"))
                    }
                    Err(_) => {}
                }
            }
        }
    }
    Ok(())
}

/// The model the binary targets read files for (the quickstart's).
pub fn model() -> hoyer_front::program::Model {
    let src = include_str!("../../examples/quickstart.hoyer");
    let c = check_source(src).expect("the quickstart checks");
    c.program.models.into_iter().next().expect("it has a model")
}

/// Runs one input through `target`; `Err` says what went wrong (a wrong answer, not a
/// rejection: rejecting bad input is the point).
pub fn run_one(target: Target, input: &[u8], model: &hoyer_front::program::Model) -> Result<(), String> {
    match target {
        // Mutated specs compile at a small batch (their sizes are not the point); generated
        // ones at their own.
        Target::Spec => spec_holds(input, Some(8)),
        Target::Sizes | Target::Long => spec_holds(input, None),
        Target::Headers => {
            // Through the files, as the commands read them: the header is checked before the
            // data, and no size in it is believed.
            let dir = std::env::temp_dir().join(format!("hoyer-fuzz-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join("model.safetensors");
            std::fs::write(&path, input).map_err(|e| e.to_string())?;
            let _ = hoyer_runtime::checkpoint::load(&path, model);
            let _ = hoyer_runtime::checkpoint::load_checkpoint(&path, model);
            let _ = hoyer_runtime::checkpoint::shrunk_widths(&path, model);
            let _ = hoyer_runtime::checkpoint::extra_tensors(&path, model);
            let _ = hoyer_runtime::report::from_run_dir(&dir).map(|(r, _)| r.table());
            Ok(())
        }
        Target::Safetensors => {
            let p = Path::new("fuzz.safetensors");
            let _ = hoyer_runtime::checkpoint::load_bytes(p, input, model);
            let _ = hoyer_runtime::checkpoint::load_checkpoint_bytes(p, input, model);
            let _ = hoyer_runtime::report::tensor_reports(p, input).map(|t| {
                hoyer_runtime::report::Report {
                    phase: None,
                    tensors: t,
                    test_accuracy: None,
                    validation_accuracy: None,
                }
                .table()
            });
            Ok(())
        }
        Target::Idx => {
            let p = Path::new("fuzz-idx");
            for rank in [1, 3] {
                let _ = hoyer_runtime::data::idx::parse_file_bytes(p, input, rank);
            }
            Ok(())
        }
    }
}

pub fn corpus_dir(target: Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target.name())
}

pub fn corpus(target: Target) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir(target)).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files.into_iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

/// Where the last panic happened; the message alone rarely says.
static LAST_PANIC_AT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Panics are caught and reported as failures: keep their messages off the terminal, but
/// remember where they happened.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        *LAST_PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }));
}

/// The input being run and since when, for the watchdog.
static CURRENT: std::sync::Mutex<Option<(Vec<u8>, Instant, Target)>> = std::sync::Mutex::new(None);

/// Saves an input that made a target fail, in `fuzz/crashes/TARGET/`.
pub fn save_failure(target: Target, input: &[u8], tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crashes").join(target.name());
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{tag}-{:016x}", fnv(input)));
    let _ = std::fs::write(&path, input);
    path
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// A thread that watches the input being run: one that hangs (four times the limit) is saved
/// and the process stops, saying where the input is.
fn start_watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(200));
            let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some((input, since, target)) = current {
                if since.elapsed() > LIMIT * 4 {
                    let path = save_failure(target, &input, "hang");
                    eprintln!(
                        "hoyer-fuzz: {} hung for {:?}; the input is in {}",
                        target.name(),
                        since.elapsed(),
                        path.display()
                    );
                    std::process::exit(3);
                }
            }
        });
    });
}

/// What a fuzzing session did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub inputs: u64,
    /// Of the specs, how many checked and were compiled.
    pub compiled: u64,
    pub failures: Vec<(Vec<u8>, String)>,
    pub slowest: Duration,
}

/// How long a session runs: for a time, or for a number of inputs (what CI runs: the same
/// inputs on any machine).
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Time(Duration),
    Inputs(u64),
}

impl Budget {
    fn spent(self, started: Instant, inputs: u64) -> bool {
        match self {
            Budget::Time(d) => started.elapsed() >= d,
            Budget::Inputs(n) => inputs >= n,
        }
    }
}

/// Fuzzes `target` within `budget` from `seed`. A panic or an input slower than `LIMIT` is a
/// failure.
pub fn fuzz(target: Target, budget: Budget, seed: u64) -> Outcome {
    let model = model();
    let seeds = if target.generated() { vec![vec![]] } else { corpus(target) };
    assert!(!seeds.is_empty(), "no corpus for {}", target.name());
    let mut pool = seeds.clone();
    let mut rng = Rng::new(seed);
    let mut out = Outcome::default();
    let started = Instant::now();
    // Every corpus input as it is, then mutations.
    let compiled_before = COMPILED.load(std::sync::atomic::Ordering::Relaxed);
    let mut queue: Vec<Vec<u8>> = if target.generated() { vec![] } else { seeds };
    start_watchdog();
    while !budget.spent(started, out.inputs) || !queue.is_empty() {
        let input = match queue.pop() {
            Some(i) => i,
            None if target.generated() => generate(&mut rng, target),
            None => {
                let a = &pool[rng.below(pool.len())];
                let b = &pool[rng.below(pool.len())];
                mutate(&mut rng, a, b, target)
            }
        };
        let t = Instant::now();
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some((input.clone(), t, target));
        let result = std::panic::catch_unwind(|| run_one(target, &input, &model));
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let took = t.elapsed();
        out.inputs += 1;
        out.slowest = out.slowest.max(took);
        let failure = match result {
            Err(p) => Some(format!(
                "panic at {}: {}",
                LAST_PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()),
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
            Ok(Err(e)) => Some(e),
            Ok(Ok(())) if took > LIMIT => Some(format!("took {took:?}")),
            Ok(Ok(())) => None,
        };
        if let Some(why) = failure {
            out.failures.push((input.clone(), why));
        }
        // Grow the pool with inputs that stayed close to valid (a cheap stand-in for coverage).
        if pool.len() < 4096 && rng.below(8) == 0 {
            pool.push(input);
        }
    }
    out.compiled = COMPILED.load(std::sync::atomic::Ordering::Relaxed) - compiled_before;
    out
}

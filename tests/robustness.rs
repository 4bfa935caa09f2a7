//! No input makes the front end panic, hang or overflow its stack: every prefix of every
//! example, random byte flips, token deletions, and 100,000-deep nesting all end in a valid
//! spec or in diagnostics that each carry a code and render.
//!
//! These run in-process on the test harness's ordinary thread (2 MiB of stack, less than the
//! CLI's), so a recursion that escaped the bounds would overflow here first.

use hoyer_front::diagnostics::Report;
use hoyer_front::{check_source, decode};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Checks one input; panics (failing the test) if it is not handled cleanly.
fn must_end_cleanly(label: &str, bytes: &[u8]) {
    let start = Instant::now();
    let (text, bad) = decode(bytes);
    let result = match bad {
        Some(d) => Err(vec![d]),
        None => check_source(&text).map(|_| ()),
    };
    if let Err(diagnostics) = result {
        assert!(!diagnostics.is_empty(), "{label}: rejected without a diagnostic");
        assert!(diagnostics.iter().any(|d| d.is_error()), "{label}: rejected with warnings only");
        let rendered = Report::new("fuzz.hoyer", text, diagnostics.clone()).render(100, false);
        for d in &diagnostics {
            assert!(rendered.contains(d.code.as_str()), "{label}: {} not rendered", d.code);
        }
    }
    // Not a speed test: a bound far above any real cost, to catch a hang or blow-up.
    assert!(start.elapsed() < Duration::from_secs(5), "{label}: took {:?}", start.elapsed());
}

fn examples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hoyer"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 5);
    out
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_prefix_of_every_example() {
    for (name, text) in examples() {
        for (i, _) in text.char_indices().chain([(text.len(), ' ')]) {
            must_end_cleanly(&format!("{name}[..{i}]"), &text.as_bytes()[..i]);
        }
    }
}

#[test]
fn random_byte_flips() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Bytes that make interesting syntax, and arbitrary ones (including invalid UTF-8).
    let interesting = b"(){}[],.=*+-/^|>%\"\n 0123456789eE_xq;:";
    for (name, text) in examples() {
        for round in 0..400 {
            let mut bytes = text.clone().into_bytes();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                bytes[at] =
                    if rng.below(4) == 0 { rng.next() as u8 } else { interesting[rng.below(interesting.len())] };
            }
            must_end_cleanly(&format!("{name} flip round {round}"), &bytes);
        }
    }
}

#[test]
fn every_token_deleted_in_turn() {
    for (name, text) in examples() {
        let tokens: Vec<(usize, usize)> = {
            let mut v = Vec::new();
            let mut start = None;
            for (i, c) in text.char_indices() {
                match (c.is_whitespace(), start) {
                    (false, None) => start = Some(i),
                    (true, Some(s)) => {
                        v.push((s, i));
                        start = None;
                    }
                    _ => {}
                }
            }
            v
        };
        for (s, e) in tokens {
            let mutated = format!("{}{}", &text[..s], &text[e..]);
            must_end_cleanly(&format!("{name} without `{}`", &text[s..e]), mutated.as_bytes());
        }
    }
}

const DEEP: usize = 100_000;

fn in_penalty(expr: &str) -> String {
    format!(
        "data d = synthetic(classes = 2, train = 8, test = 8)\nmodel m(x: f32[4]) {{ return dense(x, 2) }}\n\
         train m on d {{ phase p {{ epochs 1  optimizer sgd(lr = 0.1)  penalty {expr} }} }}\n"
    )
}

#[test]
fn hundred_thousand_deep_nesting() {
    let cases: Vec<(&str, String)> = vec![
        ("parentheses", in_penalty(&format!("{}hoyer_square(*){}", "(".repeat(DEEP), ")".repeat(DEEP)))),
        ("unclosed parentheses", in_penalty(&"(".repeat(DEEP))),
        ("nested calls", format!("fn f(w) = {}w{}\n", "abs(".repeat(DEEP), ")".repeat(DEEP))),
        ("nested lists", format!("fn f(w) = sum(w, over = {}0{})\n", "[".repeat(DEEP), "]".repeat(DEEP))),
        ("unary minus", format!("fn f(w) = {}w\n", "-".repeat(DEEP))),
        ("right-associative powers", format!("fn f(w) = w{}\n", "^w".repeat(DEEP))),
        ("left-associative sums", format!("fn f(w) = w{}\n", " + w".repeat(DEEP))),
        ("pipes", format!("model m(x: f32[4]) {{ y = x{} return y }}\n", " |> relu".repeat(DEEP))),
        ("braces", format!("{}\n", "{".repeat(DEEP))),
        ("unknown statement with brackets", format!("train m on d {{ nonsense {} }}\n", "(".repeat(DEEP))),
        ("comment", format!("// {}\n", "(".repeat(DEEP))),
        ("string", format!("data d = idx(\"{}\")\n", "(".repeat(DEEP))),
    ];
    for (label, text) in cases {
        must_end_cleanly(label, text.as_bytes());
    }
}

#[test]
fn odd_inputs() {
    for (label, bytes) in [
        ("empty", &b""[..]),
        ("only a comment", b"// nothing here"),
        ("nul bytes", b"\0\0\0"),
        ("invalid UTF-8", b"data \xff\xfe = idx(\"x\")"),
        ("a lone quote", b"data d = idx(\""),
        ("huge number", b"model m(x: f32[99999999999999999999999]) { return dense(x, 2) }"),
        ("huge width", b"model m(x: f32[4]) { return dense(x, 1e300) }"),
        ("tiny float seed", b"data d = synthetic(classes = 2, train = 8, test = 8, seed = 1e-300)"),
        ("crlf", b"data d = idx(\"m\")\r\nmodel m(x: f32[4]) {\r\n return dense(x, 2)\r\n}\r\n"),
    ] {
        must_end_cleanly(label, bytes);
    }
}

/// A chain of functions that each call the next twice is checked and lowered in time linear
/// in its length (each call is evaluated once), not 2^30 times.
#[test]
fn doubling_call_chains_are_linear() {
    let mut spec = String::from(
        "data d = synthetic(classes = 3, train = 30, test = 6)\nmodel m(x: f32[4]) { fc1 = dense(x, 3)\n return fc1 }\nfn f0(w) = sum(w^2)\n",
    );
    for i in 1..=30 {
        spec += &format!("fn f{i}(w) = f{}(w) + f{}(w)\n", i - 1, i - 1);
    }
    spec += "train m on d { phase p { epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * f30(*) } }\n";
    must_end_cleanly("doubling chain", spec.as_bytes());
    let c = check_source(&spec).expect("the chain is a valid spec");
    let plan = c.program.train.as_ref().unwrap();
    let model = c.program.model("m").unwrap();
    let hoyer_front::program::PlanStep::Phase(phase) = &plan.steps[0] else { panic!() };
    let start = Instant::now();
    let (step, _) = hoyer_compiler::pipeline::step(&c.program, model, phase, 4, &Default::default()).unwrap();
    assert!(step.graph.values.len() < 2000, "{} values", step.graph.values.len());
    assert!(start.elapsed() < Duration::from_secs(5), "lowering took {:?}", start.elapsed());
}

/// Unknown statements skip bracketed groups; a bracket that never closes fails once, in
/// linear time (found by the fuzzer: 1,285 unclosed `) {` lines took over a minute).
#[test]
fn unclosed_brackets_in_unknown_statements_parse_linearly() {
    let head = "data d = synthetic(classes = 3, train = 30, test = 6)\nmodel m(x: f32[4]) { return dense(x, 3) }\n";
    for (label, opening, line) in [
        ("the fuzzer's input", "optie(a, 3e(a, 3e(a, 3x\n", ") {\n"),
        ("braces", "oops ) {\n", ") {\n"),
        ("parentheses", "oops { (\n", "} (\n"),
    ] {
        let spec = format!(
            "{head}train m on d {{\n phase p {{\n epochs 1\n {opening}{}  optimizer sgd(lr = 0.1)\n }}\n}}\n",
            line.repeat(1500)
        );
        must_end_cleanly(label, spec.as_bytes());
    }
}

/// Thousands of errors in one file are checked and rendered in linear time.
#[test]
fn thousands_of_errors_render_quickly() {
    let mut spec = String::from("data d = synthetic(classes = 3, train = 30, test = 6)\n");
    for i in 0..5000 {
        spec += &format!("fn g{i}(w) = sum(undefined_{i})\n");
    }
    must_end_cleanly("5000 errors", spec.as_bytes());
}

/// Identifiers and lines far longer than any real spec render without panicking: shortened
/// in messages, and named by line and column where the line is too long to show.
#[test]
fn very_long_names_and_lines() {
    let long = "a".repeat(70_000);
    let head = "data d = synthetic(classes = 3, train = 30, test = 6)\n";
    let specs = [
        format!("{head}model m(x: f32[4]) {{ {long} = dense(x, 3)\n return {long} }}\ntrain m on d {{ phase p {{ epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * hoyer_square(zz) }} }}\n"),
        format!("{head}model m(x: f32[4]) {{ fc1 = dense(x, 3)\n return fc1 }}\ntrain m on d {{ phase p {{ epochs 1  optimizer sgd(lr = 0.1)  penalty 1e-4 * hoyer_square({long}) }} }}\n"),
        format!("{head}model m(x: f32[4]) {{ fc1 = dense(x, 3)\n return fc1 }}\ntrain m on d {{ phase p {{ epochs 1  optimizer sgd(lr = 0.1) {} penalty 1e-4 * hoyer_square(zz) }} }}\n", " ".repeat(70_000)),
    ];
    for (i, s) in specs.iter().enumerate() {
        must_end_cleanly(&format!("long {i}"), s.as_bytes());
    }
}

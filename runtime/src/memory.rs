//! What a run will hold in memory, estimated before it starts, so that a run too large for
//! the machine is a diagnostic naming the largest parts instead of an abort halfway.

use crate::error::RunError;
use crate::plans::Plans;
use hoyer_front::codes::Code;
use hoyer_front::program::{Model, PlanStep, Program, TrainPlan};

/// The parts of a run's memory, in bytes, largest first.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub parts: Vec<(String, u64)>,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.parts.iter().fold(0u64, |t, p| t.saturating_add(p.1))
    }
}

/// Bytes as people read them.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

/// Reads a memory size: `8G`, `512M`, `1.5GiB`, or plain bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("ib").trim_end_matches('b');
    let (num, unit) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then_some((v * unit as f64) as u64)
}

/// How much memory a command may take, and what says so.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub bytes: u64,
    pub source: LimitSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// `--memory-limit`.
    Option,
    /// Linux's `MemAvailable`.
    Available,
    /// The process's address-space limit (`ulimit -v`, RLIMIT_AS), less what it uses.
    AddressSpace,
}

impl Limit {
    /// The least of `--memory-limit` (where given), the machine's available memory and the
    /// address space the process may still map; `None` where nothing says (not Linux).
    pub fn find(option: Option<u64>) -> Option<Limit> {
        let candidates = [
            option.map(|bytes| Limit { bytes, source: LimitSource::Option }),
            available().map(|bytes| Limit { bytes, source: LimitSource::Available }),
            address_space_left().map(|bytes| Limit { bytes, source: LimitSource::AddressSpace }),
        ];
        candidates.into_iter().flatten().min_by_key(|l| l.bytes)
    }

    fn describe(&self) -> &'static str {
        match self.source {
            LimitSource::Option => "--memory-limit allows",
            LimitSource::Available => "this machine has available",
            LimitSource::AddressSpace => "the process's address-space limit (ulimit -v) leaves",
        }
    }
}

/// Memory this process may still take: Linux's `MemAvailable`, where there is one.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Address space this process may still map under its RLIMIT_AS (`ulimit -v`), less a
/// margin for the threads' stacks and the compiler's code; `None` where it is unlimited.
pub fn address_space_left() -> Option<u64> {
    const MARGIN: u64 = 256 << 20;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max address space"))?;
    let soft: u64 = line["Max address space".len()..].split_whitespace().next()?.parse().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used: u64 = status.lines().find(|l| l.starts_with("VmSize:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(soft.saturating_sub(used * 1024).saturating_sub(MARGIN))
}

/// Estimates a run of `plan` on `samples` samples in all (train and test). The steps of the
/// phases up to the first shrink are compiled (once: the run reuses them) to read their
/// scratch; a phase after a shrink trains a smaller model, not known yet, and is bounded by
/// the largest of those until `Trainer` compiles it and checks again.
pub fn estimate(
    program: &Program,
    plan: &TrainPlan,
    model: &Model,
    samples: usize,
    plans: &Plans,
) -> Result<Estimate, RunError> {
    let f = 4u64; // float32
    let params: u64 = model.params.iter().map(|p| p.numel()).sum();
    let features: u64 = model.input_shape.iter().product();
    let targets = program.data_set(&plan.data).map_or(1, |d| d.source.targets());
    let mut states = 0u64;
    let mut scratch = 0u64;
    let batch = plan.batch as usize;
    let mut shrunk = false;
    for s in &plan.steps {
        let phase = match s {
            PlanStep::Phase(phase) => phase,
            PlanStep::Prune(p) => {
                shrunk |= p.shrink;
                continue;
            }
        };
        states = states
            .max((hoyer_compiler::graph::step::state_names(&phase.optimizer).len() as u64).saturating_mul(params));
        if !shrunk {
            scratch = scratch.max(plans.step(program, model, phase, batch)?.program.arena as u64);
        }
    }
    // Saturating: a data set of 2^40 samples of 2^20 values is "too much", never a wrap.
    let bytes = |factors: &[u64]| factors.iter().fold(1u64, |p, &x| p.saturating_mul(x));
    let mut parts = vec![
        (
            format!("the data set ({samples} samples of {features} values, loaded and resident)"),
            // With their labels: one per sample, or one per position of a text window.
            bytes(&[2, samples as u64, features + targets, f]),
        ),
        (format!("parameters and masks ({params} values, with the host's copies)"), bytes(&[4, params, f])),
        ("optimizer state".to_string(), bytes(&[states, f])),
        (scratch_part(batch), bytes(&[scratch, f])),
        // The batch's inputs: the step's, the last partial batch's, the evaluation's.
        (format!("batches of {batch} samples"), bytes(&[3, batch as u64, features, f])),
    ];
    parts.sort_by_key(|p| std::cmp::Reverse(p.1));
    Ok(Estimate { parts })
}

fn scratch_part(batch: usize) -> String {
    format!("activations and gradients of a batch of {batch}")
}

impl Estimate {
    /// The same estimate with a batch's scratch of at least `bytes` (a step compiled later,
    /// for a shrunk model), or `None` where it already allowed that much.
    pub fn with_scratch(&self, batch: usize, bytes: u64) -> Option<Estimate> {
        let name = scratch_part(batch);
        let i = self.parts.iter().position(|p| p.0 == name)?;
        if self.parts[i].1 >= bytes {
            return None;
        }
        let mut e = Estimate { parts: self.parts.clone() };
        e.parts[i].1 = bytes;
        e.parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        Some(e)
    }
}

/// Refuses a run whose estimate exceeds `limit` (see `Limit::find`).
pub fn check(estimate: &Estimate, limit: Limit) -> Result<(), RunError> {
    let total = estimate.total();
    if total <= limit.bytes {
        return Ok(());
    }
    let largest: Vec<String> =
        estimate.parts.iter().take(3).map(|(what, b)| format!("{what}: {}", human(*b))).collect();
    Err(RunError::new(
        Code::OutOfMemory,
        format!(
            "this run needs about {} of memory, more than the {} {}; largest: {}",
            human(total),
            human(limit.bytes),
            limit.describe(),
            largest.join("; ")
        ),
    )
    .help("use a smaller batch or data set, free memory, or pass --memory-limit SIZE (e.g. 32G) if the estimate is too cautious"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_print() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1G"), None);
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}

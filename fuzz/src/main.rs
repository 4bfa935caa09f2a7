//! `hoyer-fuzz TARGET SECONDS [SEED]`: fuzzes one target (`spec`, `safetensors`, `idx`,
//! `sizes`, `headers`, `long`, or `all`) for that long, prints what it did, and saves any failing input to
//! `fuzz/crashes/TARGET/`. Exit status 1 when something failed.

use hoyer_fuzz::{fuzz, Budget, Target};
use std::time::Duration;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        eprintln!("usage: hoyer-fuzz spec|safetensors|idx|sizes|headers|long|all SECONDS [SEED]");
        std::process::ExitCode::from(2)
    };
    let (Some(which), Some(secs)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok())) else {
        return usage();
    };
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let targets: Vec<Target> = match which.as_str() {
        "all" => Target::ALL.to_vec(),
        t => match Target::parse(t) {
            Some(t) => vec![t],
            None => return usage(),
        },
    };
    hoyer_fuzz::quiet_panics();
    let mut failed = false;
    for t in targets {
        let o = fuzz(t, Budget::Time(Duration::from_secs(secs)), seed);
        println!(
            "{}: {} inputs in {secs} s ({} valid specs compiled), {} failures, slowest input {:?}",
            t.name(),
            o.inputs,
            o.compiled,
            o.failures.len(),
            o.slowest
        );
        for (input, why) in &o.failures {
            failed = true;
            let path = hoyer_fuzz::save_failure(t, input, "failure");
            println!("  {}: {why}", path.display());
        }
    }
    std::process::ExitCode::from(u8::from(failed))
}

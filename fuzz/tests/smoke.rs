//! A bounded fuzzing session of every target, in `cargo test`: the corpus as it is, then a
//! fixed number of mutated or generated inputs from a fixed seed (the same inputs on every
//! machine). `cargo run --release -p hoyer-fuzz -- all 600` runs longer.

use hoyer_fuzz::{fuzz, quiet_panics, Budget, Target};

#[test]
fn every_target_survives_a_bounded_session() {
    quiet_panics();
    for t in Target::ALL {
        let inputs = match t {
            Target::Spec => 1500,
            Target::Long => 12,
            _ => 2000,
        };
        let o = fuzz(t, Budget::Inputs(inputs), 7);
        println!(
            "{}: {} inputs ({} valid specs compiled), {} failures, slowest {:?}",
            t.name(),
            o.inputs,
            o.compiled,
            o.failures.len(),
            o.slowest
        );
        // The panic hook is quiet (the fuzzer catches panics): say what failed here.
        for (input, why) in o.failures.iter().take(3) {
            println!("  {why}: {}", String::from_utf8_lossy(&input[..input.len().min(400)]));
        }
        assert!(o.inputs >= inputs, "{}: only {} inputs", t.name(), o.inputs);
        assert!(o.failures.is_empty(), "{}: {:?}", t.name(), o.failures.iter().map(|f| &f.1).collect::<Vec<_>>());
    }
}

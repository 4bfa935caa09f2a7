//! A short fuzzing session of every target, in `cargo test`: the corpus as it is, then a few
//! seconds of mutations. `cargo run --release -p hoyer-fuzz -- all 600` runs longer.

use hoyer_fuzz::{fuzz, quiet_panics, Target};
use std::time::Duration;

#[test]
fn every_target_survives_a_short_session() {
    quiet_panics();
    for t in Target::ALL {
        let o = fuzz(t, Duration::from_secs(3), 7);
        assert!(o.inputs > 20, "{}: only {} inputs", t.name(), o.inputs);
        assert!(o.failures.is_empty(), "{}: {:?}", t.name(), o.failures.iter().map(|f| &f.1).collect::<Vec<_>>());
    }
}

//! Values that change over a phase: the learning rate, penalty strengths, and the target of a
//! gradual prune.

use hoyer_front::program::{Gradual, LrSchedule, Strength};

/// The learning rate of step `step` (from 0) of `epoch` (from 0) in a phase of `epochs` with
/// `steps` steps an epoch, as PyTorch's StepLR and CosineAnnealingLR (T_max = epochs) stepped
/// once per epoch, or CosineAnnealingLR (T_max = epochs · steps) stepped after every step.
pub fn learning_rate(base: f64, schedule: &LrSchedule, epoch: u64, epochs: u64, step: u64, steps: u64) -> f64 {
    match *schedule {
        LrSchedule::Constant => base,
        LrSchedule::Step { every, gamma } => base * gamma.powi((epoch / every) as i32),
        LrSchedule::Cosine { min_lr, per_step } => {
            let t = if per_step {
                (epoch * steps + step) as f64 / (epochs * steps).max(1) as f64
            } else {
                epoch as f64 / epochs.max(1) as f64
            };
            min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
        }
    }
}

/// A penalty strength in `epoch` (from 0).
pub fn strength(s: &Strength, epoch: u64) -> f64 {
    match *s {
        Strength::Constant(c) => c,
        Strength::Ramp { from, to, epochs } => {
            let t = (epoch as f64 / epochs as f64).min(1.0);
            from + (to - from) * t
        }
    }
}

/// Zhu & Gupta: s_t = s_f (1 - (1 - (t - t0)/(n Δt))^3) for t in the window, where `t` counts
/// steps in the phase. Before the window 0, after it the target.
pub fn gradual_target(target: f64, g: &Gradual, step_in_phase: u64, steps_per_epoch: u64) -> f64 {
    let start = g.from_epoch * steps_per_epoch;
    let end = g.to_epoch * steps_per_epoch;
    if step_in_phase < start {
        return 0.0;
    }
    if step_in_phase >= end || end == start {
        return target;
    }
    let progress = (step_in_phase - start) as f64 / (end - start) as f64;
    target * (1.0 - (1.0 - progress).powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(learning_rate(0.1, &LrSchedule::Step { every: 2, gamma: 0.5 }, 3, 10, 7, 9), 0.05);
        let by_epoch = LrSchedule::Cosine { min_lr: 0.0, per_step: false };
        assert!((learning_rate(1.0, &by_epoch, 5, 10, 3, 4) - 0.5).abs() < 1e-12);
        // Per step: halfway through the phase's 40 steps, and a quarter of the way.
        let by_step = LrSchedule::Cosine { min_lr: 0.0, per_step: true };
        assert!((learning_rate(1.0, &by_step, 5, 10, 0, 4) - 0.5).abs() < 1e-12);
        let quarter = (1.0 + std::f64::consts::FRAC_PI_4.cos()) / 2.0;
        assert!((learning_rate(1.0, &by_step, 2, 10, 2, 4) - quarter).abs() < 1e-12);
        assert_eq!(learning_rate(1.0, &by_step, 0, 10, 0, 4), 1.0);
        assert_eq!(strength(&Strength::Ramp { from: 0.0, to: 1.0, epochs: 4 }, 2), 0.5);
        assert_eq!(strength(&Strength::Ramp { from: 0.0, to: 1.0, epochs: 4 }, 9), 1.0);
        let g = Gradual { from_epoch: 1, to_epoch: 3, every_steps: 10 };
        assert_eq!(gradual_target(0.9, &g, 5, 10), 0.0);
        assert!((gradual_target(0.9, &g, 20, 10) - 0.9 * (1.0 - 0.125)).abs() < 1e-12);
        assert_eq!(gradual_target(0.9, &g, 30, 10), 0.9);
    }
}

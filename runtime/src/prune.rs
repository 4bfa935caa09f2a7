//! Pruning rules: each turns weights into a 0/1 mask. A weight already masked stays masked.

use hoyer_front::program::PruneCriterion;
use hoyer_front::syntax::ast::GroupKind;

/// A tensor to prune: its values, its shape and its current mask.
pub struct Target<'a> {
    pub values: &'a [f32],
    pub shape: &'a [u64],
    pub mask: &'a mut Vec<f32>,
}

/// Updates the masks of `targets` by `criterion` (at `target` sparsity, for sparsity rules).
pub fn prune(criterion: &PruneCriterion, targets: &mut [Target]) {
    match *criterion {
        PruneCriterion::Magnitude { threshold } => {
            for t in targets.iter_mut() {
                below(t, threshold);
            }
        }
        PruneCriterion::StdRatio { ratio } => {
            for t in targets.iter_mut() {
                let threshold = ratio * std(t.values);
                below(t, threshold);
            }
        }
        PruneCriterion::Sparsity { target, global } => to_sparsity(targets, target, global),
        PruneCriterion::Groups { kind, threshold } => {
            for t in targets.iter_mut() {
                groups(t, kind, threshold);
            }
        }
    }
}

/// The population standard deviation (no Bessel correction), as the reference code's
/// `np.std(W)` (ddof = 0), not `torch.std`.
pub fn std(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    if n < 1.0 {
        return 0.0;
    }
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

fn below(t: &mut Target, threshold: f64) {
    for (m, &w) in t.mask.iter_mut().zip(t.values) {
        if (w as f64).abs() < threshold {
            *m = 0.0;
        }
    }
}

/// Zeroes the smallest |w| until `target` of the weights are zero, per tensor or across all.
pub fn to_sparsity(targets: &mut [Target], target: f64, global: bool) {
    if global {
        let mut all: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in targets.iter().enumerate() {
            all.extend(
                t.values
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| if t.mask[i] == 0.0 { (0.0, ti, i) } else { (w.abs(), ti, i) }),
            );
        }
        let k = (target * all.len() as f64).round() as usize;
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(_, ti, i) in &all[..k.min(all.len())] {
            targets[ti].mask[i] = 0.0;
        }
    } else {
        for t in targets.iter_mut() {
            let mut order: Vec<usize> = (0..t.values.len()).collect();
            let key = |i: usize| if t.mask[i] == 0.0 { 0.0 } else { t.values[i].abs() };
            order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
            let k = (target * order.len() as f64).round() as usize;
            for &i in &order[..k.min(order.len())] {
                t.mask[i] = 0.0;
            }
        }
    }
}

/// Rows are slices along axis 0 (output neurons, filters), columns along axis 1 (inputs,
/// channels); a group whose L2 norm is below `threshold` is zeroed whole.
fn groups(t: &mut Target, kind: GroupKind, threshold: f64) {
    let rows = t.shape[0] as usize;
    let cols = t.shape[1] as usize;
    let inner: usize = t.shape[2..].iter().product::<u64>() as usize;
    let at = |r: usize, c: usize, k: usize| (r * cols + c) * inner + k;
    if matches!(kind, GroupKind::Rows | GroupKind::Groups) {
        for r in 0..rows {
            let norm: f64 = (0..cols)
                .flat_map(|c| (0..inner).map(move |k| (c, k)))
                .map(|(c, k)| (t.values[at(r, c, k)] as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm < threshold {
                (0..cols).for_each(|c| (0..inner).for_each(|k| t.mask[at(r, c, k)] = 0.0));
            }
        }
    }
    if matches!(kind, GroupKind::Columns | GroupKind::Groups) {
        for c in 0..cols {
            let norm: f64 = (0..rows)
                .flat_map(|r| (0..inner).map(move |k| (r, k)))
                .map(|(r, k)| (t.values[at(r, c, k)] as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm < threshold {
                (0..rows).for_each(|r| (0..inner).for_each(|k| t.mask[at(r, c, k)] = 0.0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(criterion: PruneCriterion, values: &[f32], shape: &[u64]) -> Vec<f32> {
        let mut mask = vec![1.0; values.len()];
        prune(&criterion, &mut [Target { values, shape, mask: &mut mask }]);
        mask
    }

    #[test]
    fn magnitude_and_std_ratio() {
        let v = [0.5, -0.01, 0.2, -0.3];
        assert_eq!(run(PruneCriterion::Magnitude { threshold: 0.25 }, &v, &[4]), vec![1.0, 0.0, 0.0, 1.0]);
        // np.std(v) = 0.29243589 (ddof = 0); torch.std's Bessel-corrected 0.337676 would
        // prune -0.3 as well at a ratio of 1.
        assert!((std(&v) - 0.292_435_89).abs() < 1e-7, "{}", std(&v));
        assert_eq!(run(PruneCriterion::StdRatio { ratio: 1.0 }, &v, &[4]), vec![1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn sparsity_per_tensor_and_global() {
        let v = [0.4, 0.1, -0.3, 0.2];
        assert_eq!(run(PruneCriterion::Sparsity { target: 0.5, global: false }, &v, &[4]), vec![1.0, 0.0, 1.0, 0.0]);
        let (a, b) = ([1.0f32, 2.0], [0.1f32, 0.2]);
        let (mut ma, mut mb) = (vec![1.0; 2], vec![1.0; 2]);
        prune(
            &PruneCriterion::Sparsity { target: 0.5, global: true },
            &mut [Target { values: &a, shape: &[2], mask: &mut ma }, Target { values: &b, shape: &[2], mask: &mut mb }],
        );
        assert_eq!((ma, mb), (vec![1.0, 1.0], vec![0.0, 0.0]));
    }

    #[test]
    fn rows_and_columns() {
        // [[3, 0.01], [0.01, 0.01]]: row 1 and column 1 are small.
        let v = [3.0, 0.01, 0.01, 0.01];
        assert_eq!(
            run(PruneCriterion::Groups { kind: GroupKind::Rows, threshold: 0.1 }, &v, &[2, 2]),
            vec![1.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(
            run(PruneCriterion::Groups { kind: GroupKind::Columns, threshold: 0.1 }, &v, &[2, 2]),
            vec![1.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(
            run(PruneCriterion::Groups { kind: GroupKind::Groups, threshold: 0.1 }, &v, &[2, 2]),
            vec![1.0, 0.0, 0.0, 0.0]
        );
    }
}

//! Pruning rules: each turns weights into a 0/1 mask. A weight already masked stays masked.

use hoyer_front::program::{Along, GroupRule, PruneCriterion};
use hoyer_front::syntax::ast::GroupKind;

/// A tensor to prune: its values, its shape and its current mask; for a coupled prune, the
/// other tensors holding a part of each of its rows.
pub struct Target<'a> {
    pub values: &'a [f32],
    pub shape: &'a [u64],
    pub mask: &'a mut Vec<f32>,
    pub parts: Vec<Part<'a>>,
}

/// A member of a row's unit group (`Model::unit_group`) other than the row itself: measured
/// in the row's norm and zeroed with it. Its mask is its own copy: groups may overlap (a
/// layer's input columns are in the group of the layer before), so the caller merges.
pub struct Part<'a> {
    pub values: &'a [f32],
    pub shape: &'a [u64],
    pub along: Along,
    pub mask: Vec<f32>,
}

impl Part<'_> {
    /// The element indices of unit `u` of `units`.
    fn cells(&self, units: usize, u: usize) -> Vec<usize> {
        let n = self.values.len();
        match self.along {
            Along::Rows => {
                let b = n / units.max(1);
                (u * b..(u + 1) * b).collect()
            }
            Along::Columns => {
                let out = self.shape.first().copied().unwrap_or(1) as usize;
                let rest = n / (out * units).max(1);
                (0..out).flat_map(|r| (r * units + u) * rest..(r * units + u + 1) * rest).collect()
            }
        }
    }
}

/// What a prune did to one tensor: what it zeroed, by which threshold, and how close the
/// kept and the removed came to it (|w| for weights, ‖g‖₂ for groups).
#[derive(Debug, Clone, PartialEq)]
pub struct Pruned {
    /// Elements zeroed by this prune (not counting those zero before).
    pub zeroed: u64,
    pub numel: u64,
    /// For group prunes: groups zeroed by this prune, and groups in all.
    pub groups: Option<(u64, u64)>,
    /// The threshold used (for sparsity targets, the magnitude the cut fell at).
    pub threshold: f64,
    /// The smallest magnitude (or group norm) kept, and the largest removed.
    pub smallest_kept: Option<f64>,
    pub largest_removed: Option<f64>,
}

impl Pruned {
    fn new(t: &Target, before: &[f32], threshold: f64) -> Pruned {
        let zeroed = t.mask.iter().zip(before).filter(|(m, b)| **m == 0.0 && **b != 0.0).count() as u64;
        let (mut kept, mut removed) = (None::<f64>, None::<f64>);
        for ((&m, &b), &w) in t.mask.iter().zip(before).zip(t.values) {
            let a = (w as f64).abs();
            if m != 0.0 {
                kept = Some(kept.map_or(a, |k| k.min(a)));
            } else if b != 0.0 {
                removed = Some(removed.map_or(a, |r| r.max(a)));
            }
        }
        Pruned {
            zeroed,
            numel: t.values.len() as u64,
            groups: None,
            threshold,
            smallest_kept: kept,
            largest_removed: removed,
        }
    }

    /// `fc1.weight: 12,345 of 235,200 zeroed (5.2%) below 0.031; smallest kept 0.0312,
    /// largest removed 0.0309`.
    pub fn line(&self, name: &str) -> String {
        let what = match self.groups {
            Some((g, of)) => format!("{g} of {of} groups zeroed ({} weights)", self.zeroed),
            None => format!(
                "{} of {} zeroed ({:.1}%)",
                self.zeroed,
                self.numel,
                100.0 * self.zeroed as f64 / self.numel.max(1) as f64
            ),
        };
        let near = |label: &str, v: Option<f64>| v.map_or(String::new(), |v| format!(", {label} {v:.4e}"));
        format!(
            "{name}: {what} below {:.4e}{}{}",
            self.threshold,
            near("smallest kept", self.smallest_kept),
            near("largest removed", self.largest_removed)
        )
    }

    pub fn to_json(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "tensor": name,
            "zeroed": self.zeroed,
            "numel": self.numel,
            "groups_zeroed": self.groups.map(|g| g.0),
            "groups": self.groups.map(|g| g.1),
            "threshold": self.threshold,
            "smallest_kept": self.smallest_kept,
            "largest_removed": self.largest_removed,
        })
    }
}

/// Updates the masks of `targets` by `criterion` (at `target` sparsity, for sparsity rules);
/// what it did to each.
pub fn prune(criterion: &PruneCriterion, targets: &mut [Target]) -> Vec<Pruned> {
    let before: Vec<Vec<f32>> = targets.iter().map(|t| t.mask.clone()).collect();
    let thresholds: Vec<f64> = match *criterion {
        PruneCriterion::Magnitude { threshold } => targets
            .iter_mut()
            .map(|t| {
                below(t, threshold);
                threshold
            })
            .collect(),
        PruneCriterion::StdRatio { ratio } => targets
            .iter_mut()
            .map(|t| {
                let threshold = ratio * std(t.values);
                below(t, threshold);
                threshold
            })
            .collect(),
        PruneCriterion::Sparsity { target, global } => to_sparsity(targets, target, global),
        PruneCriterion::Groups { kind, ref rule } => {
            let axes: &[usize] = match kind {
                GroupKind::Rows => &[0],
                GroupKind::Columns => &[1],
                GroupKind::Groups => &[0, 1],
            };
            let mut results: Vec<Groups> = targets.iter().map(|_| Groups::default()).collect();
            for &axis in axes {
                // Every tensor's group norms along `axis`, measured before any is zeroed.
                let norms: Vec<Vec<f64>> = targets.iter().map(|t| group_norms(t, axis)).collect();
                let thresholds: Vec<f64> = match *rule {
                    GroupRule::Below(t) => vec![t; targets.len()],
                    GroupRule::StdRatio(r) => norms.iter().map(|n| r * std_f64(n)).collect(),
                    GroupRule::Sparsity { target, global: false } => norms.iter().map(|n| cut(n, target)).collect(),
                    GroupRule::Sparsity { target, global: true } => {
                        // Ranked by ‖g‖₂ / √size: one cut for every tensor, scaled back to each.
                        let scaled: Vec<f64> = targets
                            .iter()
                            .zip(&norms)
                            .flat_map(|(t, n)| n.iter().map(move |x| x / (group_size(t, axis) as f64).sqrt()))
                            .collect();
                        let c = cut(&scaled, target);
                        targets.iter().map(|t| c * (group_size(t, axis) as f64).sqrt()).collect()
                    }
                };
                for ((t, n), (th, r)) in targets.iter_mut().zip(&norms).zip(thresholds.iter().zip(results.iter_mut())) {
                    zero_groups(t, axis, n, *th, r);
                    r.threshold = *th;
                }
            }
            return targets
                .iter()
                .zip(&before)
                .zip(results)
                .map(|((t, b), g)| {
                    let mut p = Pruned::new(t, b, g.threshold);
                    p.groups = Some((g.zeroed, g.total));
                    p.smallest_kept = g.smallest_kept;
                    p.largest_removed = g.largest_removed;
                    p
                })
                .collect();
        }
    };
    targets.iter().zip(&before).zip(thresholds).map(|((t, b), th)| Pruned::new(t, b, th)).collect()
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

/// Zeroes the smallest |w| until `target` of the weights are zero, per tensor or across all;
/// for each tensor, the magnitude the cut fell at (the largest |w| zeroed).
pub fn to_sparsity(targets: &mut [Target], target: f64, global: bool) -> Vec<f64> {
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
        let cut = all[..k.min(all.len())].last().map_or(0.0, |a| a.0 as f64);
        vec![cut; targets.len()]
    } else {
        targets
            .iter_mut()
            .map(|t| {
                let mut order: Vec<usize> = (0..t.values.len()).collect();
                let key = |i: usize| if t.mask[i] == 0.0 { 0.0 } else { t.values[i].abs() };
                order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
                let k = (target * order.len() as f64).round() as usize;
                let cut = order[..k.min(order.len())].last().map_or(0.0, |&i| key(i) as f64);
                for &i in &order[..k.min(order.len())] {
                    t.mask[i] = 0.0;
                }
                cut
            })
            .collect()
    }
}

/// What a group prune did to one tensor.
#[derive(Default)]
struct Groups {
    zeroed: u64,
    total: u64,
    threshold: f64,
    smallest_kept: Option<f64>,
    largest_removed: Option<f64>,
}

/// The element indices of group `g` along `axis` (0: rows, filters; 1: columns, channels).
fn group_cells(shape: &[u64], axis: usize, g: usize) -> impl Iterator<Item = usize> {
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    let inner: usize = shape[2..].iter().product::<u64>() as usize;
    let (outer, fixed_is_row) = if axis == 0 { (cols, true) } else { (rows, false) };
    (0..outer).flat_map(move |o| {
        let (r, c) = if fixed_is_row { (g, o) } else { (o, g) };
        (0..inner).map(move |k| (r * cols + c) * inner + k)
    })
}

/// Elements in a group along `axis` (a row's with its parts).
fn group_size(t: &Target, axis: usize) -> usize {
    let parts: usize = if axis == 0 { t.parts.iter().map(|p| p.values.len()).sum() } else { 0 };
    (t.values.len() + parts) / (t.shape[axis] as usize).max(1)
}

/// ‖g‖₂ of every group of `t` along `axis` (rows with their parts).
fn group_norms(t: &Target, axis: usize) -> Vec<f64> {
    let units = t.shape[axis] as usize;
    (0..units)
        .map(|g| {
            let own: f64 = group_cells(t.shape, axis, g).map(|i| (t.values[i] as f64).powi(2)).sum();
            let parts: f64 = if axis == 0 {
                t.parts
                    .iter()
                    .map(|p| p.cells(units, g).iter().map(|&i| (p.values[i] as f64).powi(2)).sum::<f64>())
                    .sum()
            } else {
                0.0
            };
            (own + parts).sqrt()
        })
        .collect()
}

/// Zeroes the groups along `axis` whose norm is below `threshold`; counts what it did.
fn zero_groups(t: &mut Target, axis: usize, norms: &[f64], threshold: f64, out: &mut Groups) {
    for (g, &norm) in norms.iter().enumerate() {
        out.total += 1;
        let was_zero = group_cells(t.shape, axis, g).all(|i| t.mask[i] == 0.0);
        if norm < threshold {
            if !was_zero {
                out.zeroed += 1;
                out.largest_removed = Some(out.largest_removed.map_or(norm, |r| r.max(norm)));
            }
            group_cells(t.shape, axis, g).for_each(|i| t.mask[i] = 0.0);
            if axis == 0 {
                let units = t.shape[0] as usize;
                for p in &mut t.parts {
                    p.cells(units, g).into_iter().for_each(|i| p.mask[i] = 0.0);
                }
            }
        } else {
            out.smallest_kept = Some(out.smallest_kept.map_or(norm, |k| k.min(norm)));
        }
    }
}

/// The threshold below which `target` of `values` fall: just above the k-th smallest, so that
/// exactly k = round(target · n) are below it (ties at the cut go together).
fn cut(values: &[f64], target: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let k = ((target * sorted.len() as f64).round() as usize).min(sorted.len());
    match k {
        0 => 0.0,
        k if k == sorted.len() => f64::INFINITY,
        k => (sorted[k - 1] + sorted[k]) / 2.0,
    }
}

fn std_f64(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 1.0 {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(criterion: PruneCriterion, values: &[f32], shape: &[u64]) -> Vec<f32> {
        let mut mask = vec![1.0; values.len()];
        let _ = prune(&criterion, &mut [Target { values, shape, mask: &mut mask, parts: vec![] }]);
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
        let _ = prune(
            &PruneCriterion::Sparsity { target: 0.5, global: true },
            &mut [
                Target { values: &a, shape: &[2], mask: &mut ma, parts: vec![] },
                Target { values: &b, shape: &[2], mask: &mut mb, parts: vec![] },
            ],
        );
        assert_eq!((ma, mb), (vec![1.0, 1.0], vec![0.0, 0.0]));
    }

    #[test]
    fn rows_and_columns() {
        // [[3, 0.01], [0.01, 0.01]]: row 1 and column 1 are small.
        let v = [3.0, 0.01, 0.01, 0.01];
        assert_eq!(
            run(PruneCriterion::Groups { kind: GroupKind::Rows, rule: GroupRule::Below(0.1) }, &v, &[2, 2]),
            vec![1.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(
            run(PruneCriterion::Groups { kind: GroupKind::Columns, rule: GroupRule::Below(0.1) }, &v, &[2, 2]),
            vec![1.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(
            run(PruneCriterion::Groups { kind: GroupKind::Groups, rule: GroupRule::Below(0.1) }, &v, &[2, 2]),
            vec![1.0, 0.0, 0.0, 0.0]
        );
    }

    /// A coupled prune measures each row with its parts (batch norm's entry, a reader's
    /// input columns) and zeroes them together.
    #[test]
    fn rows_with_their_parts() {
        // Rows of a [2, 2] weight: norms 0.05 and 1 alone; γ = [0.5, 0.1] and a reader
        // [3, 2] whose column 0 is 0.1s and column 1 is 0s.
        let w = [0.03f32, 0.04, 0.6, 0.8];
        let gamma = [0.5f32, 0.1];
        let reader = [0.1f32, 0.0, 0.1, 0.0, 0.1, 0.0];
        let group = |mask_w: &mut Vec<f32>| {
            let parts = vec![
                Part { values: &gamma, shape: &[2], along: Along::Rows, mask: vec![1.0; 2] },
                Part { values: &reader, shape: &[3, 2], along: Along::Columns, mask: vec![1.0; 6] },
            ];
            let mut t = [Target { values: &w, shape: &[2, 2], mask: mask_w, parts }];
            let done = prune(&PruneCriterion::Groups { kind: GroupKind::Rows, rule: GroupRule::Below(0.55) }, &mut t);
            let [t] = t;
            (done, t.parts.into_iter().map(|p| p.mask).collect::<Vec<_>>())
        };
        // Row 0: √(0.05² + 0.5² + 3·0.1²) = 0.5315 < 0.55; row 1: √(1 + 0.01) ≥ 0.55.
        let mut m = vec![1.0; 4];
        let (done, parts) = group(&mut m);
        assert_eq!(m, vec![0.0, 0.0, 1.0, 1.0]);
        assert_eq!(parts, vec![vec![0.0, 1.0], vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]]);
        assert!((done[0].largest_removed.unwrap() - 0.2825f64.sqrt()).abs() < 1e-6, "{:?}", done[0]);
    }

    /// Groups by fraction (the smallest norms, per tensor or across tensors by norm/√size) and
    /// by ratio to the std of the tensor's group norms; what each prune reports.
    #[test]
    fn groups_by_fraction_and_ratio() {
        // Rows of norm 4, 0.5, 3, 1 (two columns each).
        let v = [4.0, 0.0, 0.3, 0.4, 0.0, 3.0, 0.6, 0.8];
        let rows = |rule| PruneCriterion::Groups { kind: GroupKind::Rows, rule };
        let m = run(rows(GroupRule::Sparsity { target: 0.5, global: false }), &v, &[4, 2]);
        assert_eq!(m, vec![1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        // std of [4, 0.5, 3, 1] = 1.4306; 0.5 × that = 0.715: only the row of 0.5 goes.
        let m = run(rows(GroupRule::StdRatio(0.5)), &v, &[4, 2]);
        assert_eq!(m, vec![1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        // Across tensors, by norm/√size: rows of norm 1.5 and 0 in a [2, 2] (1.06 and 0 per
        // √2) and one of norm 1.41 in a [1, 8] (0.5 per √8); a third of them: the zero row.
        let (a, b) = ([1.5f32, 0.0, 0.0, 0.0], [0.5f32; 8]);
        let (mut ma, mut mb) = (vec![1.0; 4], vec![1.0; 8]);
        let done = prune(
            &rows(GroupRule::Sparsity { target: 0.34, global: true }),
            &mut [
                Target { values: &a, shape: &[2, 2], mask: &mut ma, parts: vec![] },
                Target { values: &b, shape: &[1, 8], mask: &mut mb, parts: vec![] },
            ],
        );
        assert_eq!((ma, mb), (vec![1.0, 1.0, 0.0, 0.0], vec![1.0; 8]));
        assert_eq!((done[0].groups, done[1].groups), (Some((1, 2)), Some((0, 1))));
        // Two thirds: the [1, 8] row (0.5) goes before the 1.5 row (1.06).
        let (mut ma, mut mb) = (vec![1.0; 4], vec![1.0; 8]);
        let _ = prune(
            &rows(GroupRule::Sparsity { target: 0.67, global: true }),
            &mut [
                Target { values: &a, shape: &[2, 2], mask: &mut ma, parts: vec![] },
                Target { values: &b, shape: &[1, 8], mask: &mut mb, parts: vec![] },
            ],
        );
        assert_eq!((ma, mb), (vec![1.0, 1.0, 0.0, 0.0], vec![0.0; 8]));
        let mut m = vec![1.0; 8];
        let done = prune(
            &rows(GroupRule::Below(2.0)),
            &mut [Target { values: &v, shape: &[4, 2], mask: &mut m, parts: vec![] }],
        );
        assert_eq!(done[0].groups, Some((2, 4)));
        let (kept, removed) = (done[0].smallest_kept.unwrap(), done[0].largest_removed.unwrap());
        assert!((kept - 3.0).abs() < 1e-6 && (removed - 1.0).abs() < 1e-6, "{kept} {removed}");
        assert!(
            done[0].line("w").starts_with("w: 2 of 4 groups zeroed (4 weights) below 2.0000e0"),
            "{}",
            done[0].line("w")
        );
    }
}

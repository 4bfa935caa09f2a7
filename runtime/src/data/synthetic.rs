//! `synthetic(classes, train, test, noise, seed)`: one Gaussian cluster per class.
//!
//! Each class has a centre drawn from N(0, 1) in every feature; a sample is its class centre
//! plus `noise` · N(0, 1) per feature. Classes take turns, then the order is shuffled, so
//! every class has ⌊n / classes⌋ or one more samples. Train and test share the centres and
//! come from separate streams of the same seed.

use super::{Dataset, Rng, Split};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Synthetic {
    pub classes: usize,
    pub train: usize,
    pub test: usize,
    pub noise: f64,
    pub seed: u64,
}

impl Synthetic {
    /// Generates the data set for a model whose input has `features` values per sample.
    pub fn generate(&self, features: usize) -> Dataset {
        let mut centres_rng = Rng::new(self.seed);
        let centres: Vec<f64> = (0..self.classes * features).map(|_| centres_rng.normal()).collect();
        let split = |n: usize, stream: u64| -> Split {
            let mut rng = Rng::new(self.seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
            let mut y: Vec<u32> = (0..n).map(|i| (i % self.classes) as u32).collect();
            rng.shuffle(&mut y);
            let mut x = Vec::with_capacity(n * features);
            for &c in &y {
                let centre = &centres[c as usize * features..(c as usize + 1) * features];
                x.extend(centre.iter().map(|m| (m + self.noise * rng.normal()) as f32));
            }
            Split { x, y }
        };
        Dataset { features, classes: self.classes, train: split(self.train, 1), test: split(self.test, 2) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> Synthetic {
        Synthetic { classes: 4, train: 2000, test: 500, noise: 1.0, seed }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        assert_eq!(spec(7).generate(16), spec(7).generate(16));
        assert_ne!(spec(7).generate(16).train.x, spec(8).generate(16).train.x);
    }

    #[test]
    fn sizes_and_balanced_labels() {
        let d = spec(1).generate(16);
        assert_eq!((d.train.len(), d.test.len()), (2000, 500));
        assert_eq!(d.train.x.len(), 2000 * 16);
        for c in 0..4 {
            assert_eq!(d.train.y.iter().filter(|&&y| y == c).count(), 500);
        }
        assert!(d.train.y.windows(2).any(|w| w[0] == w[1]), "labels are shuffled, not cyclic");
    }

    /// The clusters are learnable: nearest class mean (from train) classifies test well.
    #[test]
    fn nearest_mean_separates_the_classes() {
        let d = spec(3).generate(16);
        let f = d.features;
        let mut means = vec![0.0f64; d.classes * f];
        let mut counts = vec![0usize; d.classes];
        for i in 0..d.train.len() {
            let c = d.train.y[i] as usize;
            counts[c] += 1;
            for (m, v) in means[c * f..(c + 1) * f].iter_mut().zip(d.train.sample(i, f)) {
                *m += *v as f64;
            }
        }
        for c in 0..d.classes {
            means[c * f..(c + 1) * f].iter_mut().for_each(|m| *m /= counts[c] as f64);
        }
        let correct = (0..d.test.len())
            .filter(|&i| {
                let x = d.test.sample(i, f);
                let dist = |c: usize| -> f64 {
                    means[c * f..(c + 1) * f].iter().zip(x).map(|(m, v)| (m - *v as f64).powi(2)).sum()
                };
                let best = (0..d.classes).min_by(|&a, &b| dist(a).total_cmp(&dist(b))).unwrap();
                best == d.test.y[i] as usize
            })
            .count();
        assert!(correct as f64 / d.test.len() as f64 > 0.95, "accuracy {correct}/500");
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Rng::new(11);
        let v: Vec<f64> = (0..200_000).map(|_| r.normal()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "mean {mean}, var {var}");
    }
}

//! `synthetic(classes, train, test, noise, seed)`: one Gaussian cluster per class.
//!
//! Each class has a centre drawn from N(0, 1) in every feature; a sample is its class centre
//! plus `noise` · N(0, 1) per feature. Classes take turns, then the order is shuffled, so
//! every class has ⌊n / classes⌋ or one more samples. Train and test share the centres and
//! come from separate streams of the same seed.
//!
//! For a model reading token ids (`i32[t]` into an `embedding` of `vocab` rows), each class
//! has instead a topic: its own ⌊vocab / classes⌋ ids of a random permutation of them (one
//! shared id where there are more classes than ids). Each position of a sample is a
//! topic id with probability 1 / (1 + noise), otherwise any id below `vocab`, uniformly.

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
        self.splits(features, |rng, c, x| {
            let centre = &centres[c * features..(c + 1) * features];
            x.extend(centre.iter().map(|m| (m + self.noise * rng.normal()) as f32));
        })
    }

    /// Generates sequences of `positions` token ids below `vocab` (see the module comment).
    pub fn generate_tokens(&self, positions: usize, vocab: usize) -> Dataset {
        let mut ids: Vec<u64> = (0..vocab as u64).collect();
        Rng::new(self.seed).shuffle(&mut ids);
        let per_topic = (vocab / self.classes.max(1)).max(1);
        let topics: Vec<Vec<u64>> =
            (0..self.classes).map(|c| (0..per_topic).map(|k| ids[(c * per_topic + k) % vocab]).collect()).collect();
        let on_topic = 1.0 / (1.0 + self.noise);
        self.splits(positions, |rng, c, x| {
            let topic = &topics[c];
            x.extend((0..positions).map(|_| {
                let id = if rng.uniform() < on_topic {
                    topic[rng.below(topic.len() as u64) as usize]
                } else {
                    rng.below(vocab as u64)
                };
                id as f32
            }));
        })
    }

    /// The train and test splits, each from its own stream of the seed: the classes taking
    /// turns, shuffled, then `sample(rng, class, x)` appending each sample's `features` values.
    fn splits(&self, features: usize, sample: impl Fn(&mut Rng, usize, &mut Vec<f32>)) -> Dataset {
        let split = |n: usize, stream: u64| -> Split {
            let mut rng = Rng::new(self.seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
            let mut y: Vec<u32> = (0..n).map(|i| (i % self.classes) as u32).collect();
            rng.shuffle(&mut y);
            let mut x = Vec::with_capacity(n * features);
            for &c in &y {
                sample(&mut rng, c as usize, &mut x);
            }
            Split { x, y, targets: 1 }
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
    fn token_ids_are_whole_numbers_below_the_vocabulary_and_follow_their_class() {
        let d = spec(5).generate_tokens(32, 50);
        assert_eq!(d.train.x.len(), 2000 * 32);
        assert!(d.train.x.iter().chain(&d.test.x).all(|&v| v >= 0.0 && v < 50.0 && v.fract() == 0.0));
        // Samples of one class share their topic's ids: the most common id of class 0's
        // samples is much more common there than in class 1's.
        let counts = |c: u32| {
            let mut n = vec![0usize; 50];
            for i in (0..d.train.len()).filter(|&i| d.train.y[i] == c) {
                d.train.sample(i, 32).iter().for_each(|&v| n[v as usize] += 1);
            }
            n
        };
        let (a, b) = (counts(0), counts(1));
        let top = (0..50).max_by_key(|&i| a[i]).unwrap();
        assert!(a[top] > 3 * b[top], "class 0's top id {top}: {} vs {} in class 1", a[top], b[top]);
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

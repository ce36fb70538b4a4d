//! AdamW, gradient-norm clipping and the learning-rate schedule.
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::decoder::linalg::in_pool;
use crate::decoder::params::{Dims, Weights};
use crate::simd::vectorized;

/// Decoupled weight decay Adam (Loshchilov & Hutter), PyTorch's `AdamW` update.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Updates done so far (bias correction).
    pub t: u64,
    pub m: Weights<f32>,
    pub v: Weights<f32>,
}

impl AdamW {
    pub fn new(dims: &Dims, weight_decay: f32) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            t: 0,
            m: Weights::zeros(dims),
            v: Weights::zeros(dims),
        }
    }

    pub fn step(&mut self, w: &mut Weights<f32>, g: &Weights<f32>, lr: f32) {
        in_pool(|| self.step_in_pool(w, g, lr));
    }

    fn step_in_pool(&mut self, w: &mut Weights<f32>, g: &Weights<f32>, lr: f32) {
        self.t += 1;
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        let c1 = 1.0 - b1.powi(self.t.min(i32::MAX as u64) as i32);
        let c2 = 1.0 - b2.powi(self.t.min(i32::MAX as u64) as i32);
        let (step, c2_sqrt) = (lr / c1, c2.sqrt());
        const CHUNK: usize = 1 << 14;
        for (((p, g), m), v) in w
            .tensors_mut()
            .into_iter()
            .zip(g.tensors())
            .zip(self.m.tensors_mut())
            .zip(self.v.tensors_mut())
        {
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m), v)| {
                    vectorized(
                        #[inline(always)]
                        || {
                            // Zipped, not indexed: without bounds checks the loop vectorises.
                            for (((p, g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                                *m = b1 * *m + (1.0 - b1) * g;
                                *v = b2 * *v + (1.0 - b2) * g * g;
                                *p -= lr * wd * *p;
                                *p -= step * *m / (v.sqrt() / c2_sqrt + eps);
                            }
                        },
                    )
                });
        }
    }
}

/// Scales the gradient so its global L2 norm is at most `max_norm` (as PyTorch's
/// `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(g: &mut Weights<f32>, max_norm: f32) -> f32 {
    in_pool(|| clip_in_pool(g, max_norm))
}

fn clip_in_pool(g: &mut Weights<f32>, max_norm: f32) -> f32 {
    // Fixed chunks summed in order: the same norm bits whatever the thread split, which
    // exact resume relies on.
    let sq: f64 = g
        .tensors()
        .iter()
        .flat_map(|t| {
            t.par_chunks(1 << 14)
                .map(|c| {
                    vectorized(
                        #[inline(always)]
                        || sum_of_squares(c),
                    )
                })
                .collect::<Vec<_>>()
        })
        .sum();
    let norm = sq.sqrt() as f32;
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for t in g.tensors_mut() {
            t.par_chunks_mut(1 << 14).for_each(|c| {
                vectorized(
                    #[inline(always)]
                    || c.iter_mut().for_each(|x| *x *= scale),
                )
            });
        }
    }
    norm
}

/// Σ x² in f64 with 8 partial sums in a fixed order (vectorises, unlike one running sum).
#[inline(always)]
fn sum_of_squares(x: &[f32]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| v as f64 * v as f64)
        .sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l] as f64 * c[l] as f64;
        }
    }
    acc.iter().fold(rest, |s, &v| s + v)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    Cosine,
    Linear,
    Constant,
}

/// Linear warm-up over `warmup` steps, then decay to `min_ratio · base` at `total` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub base: f32,
    pub warmup: u64,
    pub total: u64,
    pub decay: Decay,
    pub min_ratio: f32,
}

impl LrSchedule {
    pub fn at(&self, step: u64) -> f32 {
        if step < self.warmup {
            return self.base * (step + 1) as f32 / self.warmup as f32;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f32 / span as f32).min(1.0);
        let shape = match self.decay {
            Decay::Cosine => 0.5 * (1.0 + (std::f32::consts::PI * progress).cos()),
            Decay::Linear => 1.0 - progress,
            Decay::Constant => 1.0,
        };
        self.base * (self.min_ratio + (1.0 - self.min_ratio) * shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::for_each_level;

    /// Clipping and Adam run through `simd::vectorized`: the same bits at every
    /// instruction-set level (portable, AVX2, AVX-512), with lengths that leave partial vectors
    /// and chunks.
    #[test]
    fn clip_and_adam_are_the_same_bits_at_every_simd_level() {
        let d = Dims {
            vocab: 1031,
            embed: 17,
            hidden: 23,
            feat: 11,
            regions: 2,
            att: 5,
            attention: true,
        };
        let mut g: Weights<f32> = Weights::init(&d, 7);
        g.tensors_mut()
            .into_iter()
            .flatten()
            .enumerate()
            .for_each(|(i, x)| *x += (i % 13) as f32 * 0.01);
        let mut results = vec![];
        for_each_level(|_| {
            let (mut w, mut g) = (Weights::init(&d, 1), g.clone());
            let mut opt = AdamW::new(&d, 0.01);
            let norm = clip_grad_norm(&mut g, 0.5);
            for _ in 0..2 {
                opt.step(&mut w, &g, 1e-2);
            }
            results.push((norm.to_bits(), g, w, opt.m, opt.v));
        });
        assert!(f32::from_bits(results[0].0) > 0.5, "the clip scales");
        for r in &results[1..] {
            assert_eq!(r.0, results[0].0, "norm");
            assert!(r.1 == results[0].1, "clipped gradient");
            assert!(
                r.2 == results[0].2 && r.3 == results[0].3 && r.4 == results[0].4,
                "Adam"
            );
        }
    }
}

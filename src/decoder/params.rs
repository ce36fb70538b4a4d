//! The decoder's parameters as named flat tensors (PyTorch names for the GRU, so weights
//! trained with nn.GRU import), and their shapes.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::linalg::{Real, r};

/// Sizes of the decoder. `attention` picks additive temporal attention over the clip's
/// T·R feature items; without it the GRU sees only the words (mean-pool decoder: the clip
/// enters through the initial state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub vocab: usize,
    pub embed: usize,
    pub hidden: usize,
    pub feat: usize,
    pub regions: usize,
    pub att: usize,
    pub attention: bool,
}

impl Dims {
    /// Width of the GRU input: the word embedding, plus the attended context.
    pub fn gru_input(&self) -> usize {
        self.embed + if self.attention { self.feat } else { 0 }
    }
}

/// One value per parameter tensor; the same struct holds weights, gradients and optimiser
/// moments, so every loop over "all parameters" is `tensors()`/`tensors_mut()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights<T> {
    pub init_w: Vec<T>,
    pub init_b: Vec<T>,
    pub embed: Vec<T>,
    pub w_ih: Vec<T>,
    pub w_hh: Vec<T>,
    pub b_ih: Vec<T>,
    pub b_hh: Vec<T>,
    pub region: Vec<T>,
    pub att_w_feat: Vec<T>,
    pub att_b_feat: Vec<T>,
    pub att_w_hid: Vec<T>,
    pub att_v: Vec<T>,
    pub out_w: Vec<T>,
    pub out_b: Vec<T>,
}

/// (safetensors name, shape) of every tensor, in `tensors()` order. Attention-only tensors
/// have no elements in a mean-pool decoder and are not saved.
pub fn layout(d: &Dims) -> [(&'static str, Vec<usize>); 14] {
    let (h, a, f) = (d.hidden, d.att, d.feat);
    let att = |shape: Vec<usize>| if d.attention { shape } else { vec![0] };
    [
        ("init_h.weight", vec![h, f]),
        ("init_h.bias", vec![h]),
        ("embed.weight", vec![d.vocab, d.embed]),
        ("gru.weight_ih_l0", vec![3 * h, d.gru_input()]),
        ("gru.weight_hh_l0", vec![3 * h, h]),
        ("gru.bias_ih_l0", vec![3 * h]),
        ("gru.bias_hh_l0", vec![3 * h]),
        ("region_embed.weight", att(vec![d.regions, f])),
        ("att_feat.weight", att(vec![a, f])),
        ("att_feat.bias", att(vec![a])),
        ("att_hid.weight", att(vec![a, h])),
        ("att_v.weight", att(vec![1, a])),
        ("out.weight", vec![d.vocab, h]),
        ("out.bias", vec![d.vocab]),
    ]
}

impl<T: Real> Weights<T> {
    pub fn zeros(d: &Dims) -> Self {
        let l = layout(d);
        let z = |i: usize| vec![T::zero(); l[i].1.iter().product()];
        Self {
            init_w: z(0),
            init_b: z(1),
            embed: z(2),
            w_ih: z(3),
            w_hh: z(4),
            b_ih: z(5),
            b_hh: z(6),
            region: z(7),
            att_w_feat: z(8),
            att_b_feat: z(9),
            att_w_hid: z(10),
            att_v: z(11),
            out_w: z(12),
            out_b: z(13),
        }
    }

    /// PyTorch's default initialisation for linear layers and the GRU (uniform
    /// ±1/sqrt(fan_in)); the word embedding uniform ±0.1 (PyTorch's N(0, 1) saturates small
    /// GRUs); zeros for the region embedding. Seeded, so runs repeat.
    pub fn init(d: &Dims, seed: u64) -> Self {
        let mut w = Self::zeros(d);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = |v: &mut Vec<T>, fan_in: usize| {
            let k = 1.0 / (fan_in.max(1) as f64).sqrt();
            for x in v.iter_mut() {
                *x = r(rng.random_range(-k..k));
            }
        };
        uniform(&mut w.init_w, d.feat);
        uniform(&mut w.init_b, d.feat);
        uniform(&mut w.w_ih, d.hidden);
        uniform(&mut w.w_hh, d.hidden);
        uniform(&mut w.b_ih, d.hidden);
        uniform(&mut w.b_hh, d.hidden);
        uniform(&mut w.att_w_feat, d.feat);
        uniform(&mut w.att_b_feat, d.feat);
        uniform(&mut w.att_w_hid, d.hidden);
        uniform(&mut w.att_v, d.att);
        uniform(&mut w.out_w, d.hidden);
        uniform(&mut w.out_b, d.hidden);
        uniform(&mut w.embed, 100);
        w
    }

    pub fn tensors(&self) -> [&Vec<T>; 14] {
        [
            &self.init_w,
            &self.init_b,
            &self.embed,
            &self.w_ih,
            &self.w_hh,
            &self.b_ih,
            &self.b_hh,
            &self.region,
            &self.att_w_feat,
            &self.att_b_feat,
            &self.att_w_hid,
            &self.att_v,
            &self.out_w,
            &self.out_b,
        ]
    }

    pub fn tensors_mut(&mut self) -> [&mut Vec<T>; 14] {
        [
            &mut self.init_w,
            &mut self.init_b,
            &mut self.embed,
            &mut self.w_ih,
            &mut self.w_hh,
            &mut self.b_ih,
            &mut self.b_hh,
            &mut self.region,
            &mut self.att_w_feat,
            &mut self.att_b_feat,
            &mut self.att_w_hid,
            &mut self.att_v,
            &mut self.out_w,
            &mut self.out_b,
        ]
    }

    pub fn count(&self) -> usize {
        self.tensors().iter().map(|t| t.len()).sum()
    }

    pub fn cast<U: Real>(&self) -> Weights<U> {
        let mut out = Weights::<U> {
            init_w: vec![],
            init_b: vec![],
            embed: vec![],
            w_ih: vec![],
            w_hh: vec![],
            b_ih: vec![],
            b_hh: vec![],
            region: vec![],
            att_w_feat: vec![],
            att_b_feat: vec![],
            att_w_hid: vec![],
            att_v: vec![],
            out_w: vec![],
            out_b: vec![],
        };
        for (dst, src) in out.tensors_mut().into_iter().zip(self.tensors()) {
            *dst = src.iter().map(|x| r(x.to_f64().unwrap_or(0.0))).collect();
        }
        out
    }
}

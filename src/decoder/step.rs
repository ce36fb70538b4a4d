//! One decoding step, shared by greedy and beam search: what a clip contributes
//! ([`ClipMemory`]), what is prepared once per model ([`Prepared`]), and the step itself.
use std::sync::OnceLock;

use super::bptt::{
    attention_weights_with, gru_cell_with, items_with_regions, mean_items, weighted_sum,
};
use super::half::HalfMatrix;
use super::linalg::{
    RowsProduct, View, exp_fast, rows_products, sigmoid_fast, sum_lanes, tanh_fast,
};
use super::params::{Dims, Weights};
use crate::features::ClipFeatures;

/// What the decoder reads from a clip at every step.
pub struct ClipMemory {
    h0: Vec<f32>,
    keys: Vec<f32>,
    /// `W_ih[:, ctx] · f_i` for every item: the context's share of the GRU input gates is
    /// `Σ alpha_i` of these rows, which reads N·3H values per step instead of the 3H × D
    /// weight block. Computing them costs N·D·3H MACs once, from cache; the alternative
    /// reads the 3H × D block (7.9 MB at the peer's sizes) at every step. At 16 items that
    /// is several times cheaper; at 80 (5 regions × 16 frames) and 20 steps about even.
    ctx_gates: Vec<f32>,
}

impl ClipMemory {
    pub fn new(w: &Weights<f32>, d: &Dims, clip: &ClipFeatures) -> Self {
        let mut mean = vec![0.0; d.feat];
        mean_items(&clip.features, d.feat, &mut mean);
        let n = clip.features.len() / d.feat;
        let h3 = 3 * d.hidden;
        let mut h0 = vec![0.0; d.hidden];
        let (mut keys, mut ctx_gates) = (vec![], vec![]);
        let fprime;
        // One pass over the three weight blocks a clip needs, shared over the threads.
        let mut products = vec![RowsProduct {
            x: View::new(&mean, 1, d.feat),
            w: View::new(&w.init_w, d.hidden, d.feat),
            bias: Some(&w.init_b),
            accumulate: false,
            dst: &mut h0,
        }];
        if d.attention {
            fprime = items_with_regions(w, d, &clip.features);
            keys = vec![0.0; n * d.att];
            ctx_gates = vec![0.0; n * h3];
            products.push(RowsProduct {
                x: View::new(&fprime, n, d.feat),
                w: View::new(&w.att_w_feat, d.att, d.feat),
                bias: Some(&w.att_b_feat),
                accumulate: false,
                dst: &mut keys,
            });
            products.push(RowsProduct {
                x: View::new(&fprime, n, d.feat),
                w: View::columns(&w.w_ih, h3, d.gru_input(), d.embed, d.feat),
                bias: None,
                accumulate: false,
                dst: &mut ctx_gates,
            });
        }
        rows_products(&mut products);
        h0.iter_mut().for_each(|x| *x = x.tanh());
        Self {
            h0,
            keys,
            ctx_gates,
        }
    }

    /// Initial decoder state of the clip.
    pub fn h0(&self) -> &[f32] {
        &self.h0
    }
}

/// What decoding reads besides the f32 weights, made once per model
/// (`CaptionModel::decoder` keeps it until the weights change).
pub struct Prepared {
    /// The output projection in f16, screened (see [`HalfMatrix`]).
    out: HalfMatrix,
    /// `W_ih[:, word] · embed[t] + b_ih`, the word's share of the GRU input gates, for every
    /// token `t` met so far. A step otherwise reads the 3H × E weight block (1.8 MB at the
    /// peer's sizes) for one row; a captioner meets the same few hundred words again and
    /// again, so each is computed once, when first met.
    word_gates: Vec<OnceLock<Box<[f32]>>>,
}

impl Prepared {
    pub fn new(w: &Weights<f32>, d: &Dims) -> Self {
        Self {
            out: HalfMatrix::new(&w.out_w, d.vocab, d.hidden),
            word_gates: (0..d.vocab).map(|_| OnceLock::new()).collect(),
        }
    }
}

/// The decoder as search runs it: the f32 weights and what was prepared from them
/// (`prepared` must have been made from `w`; `CaptionModel::decoder` pairs them).
#[derive(Clone, Copy)]
pub struct Decoder<'a> {
    pub w: &'a Weights<f32>,
    pub d: Dims,
    pub prepared: &'a Prepared,
}

impl Decoder<'_> {
    /// Width of a hypothesis's state row: `h`, then what the next step needs from it and is
    /// computed with its logits (the hidden gates `W_hh h + b_hh`, then the attention query
    /// `W_att h` when the model attends).
    pub fn state_width(&self) -> usize {
        4 * self.d.hidden + if self.d.attention { self.d.att } else { 0 }
    }

    /// The hidden vector of a state row.
    pub fn hidden<'s>(&self, state: &'s [f32]) -> &'s [f32] {
        &state[..self.d.hidden]
    }

    /// State rows of the hidden vectors `h` (`rows × hidden`), e.g. the clips' initial ones.
    pub fn states(&self, h: &[f32]) -> Vec<f32> {
        let (gh, hp) = self.recurrent_products(h);
        self.assemble(h, &gh, &hp)
    }

    /// `W_hh h + b_hh` and the attention query `W_att h` of every row of `h`.
    fn recurrent_products(&self, h: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (w, d) = (self.w, &self.d);
        let (hs, h3) = (d.hidden, 3 * d.hidden);
        let rows = h.len() / hs;
        let mut gh = vec![0.0; rows * h3];
        let mut hp = vec![0.0; if d.attention { rows * d.att } else { 0 }];
        let mut products = vec![RowsProduct {
            x: View::new(h, rows, hs),
            w: View::new(&w.w_hh, h3, hs),
            bias: Some(&w.b_hh),
            accumulate: false,
            dst: &mut gh,
        }];
        if d.attention {
            products.push(RowsProduct {
                x: View::new(h, rows, hs),
                w: View::new(&w.att_w_hid, d.att, hs),
                bias: None,
                accumulate: false,
                dst: &mut hp,
            });
        }
        rows_products(&mut products);
        (gh, hp)
    }

    fn assemble(&self, h: &[f32], gh: &[f32], hp: &[f32]) -> Vec<f32> {
        let (hs, h3, a) = (
            self.d.hidden,
            3 * self.d.hidden,
            self.state_width() - 4 * self.d.hidden,
        );
        let rows = h.len() / hs;
        let mut states = Vec::with_capacity(rows * self.state_width());
        for i in 0..rows {
            states.extend_from_slice(&h[i * hs..][..hs]);
            states.extend_from_slice(&gh[i * h3..][..h3]);
            states.extend_from_slice(&hp[i * a..][..a]);
        }
        states
    }

    /// The word's share of the input gates (see [`Prepared::word_gates`]).
    fn word_gates(&self, token: u32) -> &[f32] {
        let (w, d) = (self.w, &self.d);
        self.prepared.word_gates[token as usize].get_or_init(|| {
            let (e, h3) = (d.embed, 3 * d.hidden);
            let mut gates = vec![0.0; h3];
            rows_products(&mut [RowsProduct {
                x: View::new(&w.embed[token as usize * e..][..e], 1, e),
                w: View::columns(&w.w_ih, h3, d.gru_input(), 0, e),
                bias: Some(&w.b_ih),
                accumulate: false,
                dst: &mut gates,
            }]);
            gates.into_boxed_slice()
        })
    }

    /// One decoder step for `rows` hypotheses: row i belongs to clip `clip_of[i]`, has state
    /// row `states[i]` (see [`Self::state_width`]) and last token `tokens[i]`. Returns the
    /// new state rows and the log-probabilities of the next token; in each row, every token
    /// that could be among the `exact` most probable has its f32 log-probability, the others
    /// are within the screening bound of it (see [`HalfMatrix`]).
    ///
    /// Decoding a few rows is bound by reading the weights, and everything a step reads
    /// depends on the new state only: its logits (5 MB of f16 at the peer's sizes) and the
    /// products the next step needs (3.5 MB of f32). So they are one pass, shared over the
    /// threads, and the state carries the products to the next step.
    pub fn step(
        &self,
        mems: &[ClipMemory],
        clip_of: &[usize],
        states: &[f32],
        tokens: &[u32],
        exact: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let (w, d) = (self.w, &self.d);
        let (hs, h3, a, width) = (d.hidden, 3 * d.hidden, d.att, self.state_width());
        let rows = tokens.len();
        assert_eq!(states.len(), rows * width, "one state row per token");
        let mut h_new = vec![0.0; rows * hs];
        let mut gi = vec![0.0f32; h3];
        let (mut rg, mut zg, mut ng) = (vec![0.0; hs], vec![0.0; hs], vec![0.0; hs]);
        for (i, state) in states.chunks_exact(width).enumerate() {
            gi.copy_from_slice(self.word_gates(tokens[i]));
            if d.attention {
                let m = &mems[clip_of[i]];
                let n = m.keys.len() / a;
                let (mut pre, mut alpha) = (vec![0.0; n * a], vec![0.0; n]);
                attention_weights_with(
                    &m.keys,
                    &state[4 * hs..][..a],
                    &w.att_v,
                    &mut pre,
                    &mut alpha,
                    tanh_fast,
                    exp_fast,
                );
                let mut ctx_gi = vec![0.0; h3];
                weighted_sum(&m.ctx_gates, &alpha, &mut ctx_gi);
                gi.iter_mut().zip(&ctx_gi).for_each(|(g, c)| *g += *c);
            }
            gru_cell_with(
                &gi,
                &state[hs..4 * hs],
                &state[..hs],
                &mut rg,
                &mut zg,
                &mut ng,
                &mut h_new[i * hs..(i + 1) * hs],
                sigmoid_fast,
                tanh_fast,
            );
        }
        let (mut logp, (gh, hp)) = rayon::join(
            || self.prepared.out.logits(&w.out_w, &w.out_b, &h_new, exact),
            || self.recurrent_products(&h_new),
        );
        let v = d.vocab;
        let mut exps = vec![0.0; v];
        for z in logp.chunks_exact_mut(v) {
            let max = z.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            exps.iter_mut()
                .zip(&*z)
                .for_each(|(e, &x)| *e = exp_fast(x - max));
            let lse = max + sum_lanes(&exps).ln();
            z.iter_mut().for_each(|x| *x -= lse);
        }
        (self.assemble(&h_new, &gh, &hp), logp)
    }
}
